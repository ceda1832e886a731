"""PyTorch CPU reference throughput for docs/BENCHMARKS.md: WideResNet50-2 and ResNet18 up to
layer3 (torchvision's architecture, written out here so that torchvision is optional) and, when
timm is installed, EfficientNet-Lite0 (`tf_efficientnet_lite0`) up to blocks.4 (stride 16);
random weights, 224x224, batch 1 and 8, eval mode, no grad.

    OMP_WAIT_POLICY=PASSIVE python scripts/torch_reference_bench.py

Run it in the same session as `cargo xtask bench` and compare only rows of one run.
"""
import time

import torch
from torch import nn


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inp, planes, stride, width_per_group):
        super().__init__()
        width = planes * width_per_group // 64
        self.conv1 = nn.Conv2d(inp, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.down = None
        if stride != 1 or inp != planes * 4:
            self.down = nn.Sequential(nn.Conv2d(inp, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        idt = x if self.down is None else self.down(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + idt)


class Basic(nn.Module):
    expansion = 1

    def __init__(self, inp, planes, stride, width_per_group):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.down = None
        if stride != 1 or inp != planes:
            self.down = nn.Sequential(nn.Conv2d(inp, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        idt = x if self.down is None else self.down(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + idt)


class ToLayer3(nn.Module):
    """torchvision ResNet stem, layer1..layer3; returns (layer2, layer3) as PatchCore taps."""

    def __init__(self, block, layers, width_per_group):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        inp = 64
        stages = []
        for planes, n, stride in zip((64, 128, 256), layers, (1, 2, 2)):
            blocks = []
            for i in range(n):
                blocks.append(block(inp, planes, stride if i == 0 else 1, width_per_group))
                inp = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages

    def forward(self, x):
        x = self.layer1(self.stem(x))
        l2 = self.layer2(x)
        return l2, self.layer3(l2)


def median_seconds(f, x, min_runs, min_time):
    """One warm-up call, then calls until both `min_runs` and `min_time` are reached; the
    median seconds per call (as `cargo xtask bench` measures)."""
    with torch.inference_mode():
        f(x)
        times = []
        start = time.perf_counter()
        while len(times) < min_runs or time.perf_counter() - start < min_time:
            t = time.perf_counter()
            f(x)
            times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def bench(name, net, batch, min_time=2.0):
    med = median_seconds(net, torch.randn(batch, 3, 224, 224), 3, min_time)
    taps = "blocks.2+blocks.4" if name.startswith("efficientnet") else "layer2+layer3"
    print(f"| {name} | {taps} | pytorch {torch.__version__} | {batch} | {med * 1e3:.1f} | {batch / med:.2f} |")


def predict_latency(lite0, bank_rows=1639, min_time=3.0):
    """The peer's batch-1 predict path, written out with anomalib 2.7's PatchcoreModel
    operations (anomalib itself is not needed): 3x3 average pooling of both stages, nearest
    upsampling of the deeper one and concatenation (152-d), exact 1-NN by
    x^2 - 2xy + y^2 against a `bank_rows` x 152 bank, eq. 7 with 9 neighbours, bilinear
    upsampling of the patch scores to 224x224 and the sigma = 4 Gaussian blur (33x33,
    separable). Compare with `cargo xtask bench --suite latency` (bottle's bank has 1639 rows)."""
    import torch.nn.functional as F

    bank = torch.randn(bank_rows, 152)

    def dist(x, y):
        x2 = x.pow(2).sum(dim=-1, keepdim=True)
        y2 = y.pow(2).sum(dim=-1, keepdim=True)
        return (x2 - 2 * torch.matmul(x, y.transpose(-2, -1)) + y2.transpose(-2, -1)).clamp_min(0).sqrt()

    sigma = 4.0
    ks = 2 * int(4.0 * sigma + 0.5) + 1
    g = torch.exp(-((torch.arange(ks) - ks // 2).float() ** 2) / (2 * sigma * sigma))
    g = (g / g.sum()).view(1, 1, 1, ks)

    def forward(x):
        feats = [F.avg_pool2d(f, 3, 1, 1) for f in lite0(x)]
        emb = torch.cat([feats[0], F.interpolate(feats[1], size=feats[0].shape[-2:], mode="nearest")], 1)
        b, c, h, w = emb.shape
        emb = emb.permute(0, 2, 3, 1).reshape(-1, c)
        d = dist(emb, bank)
        scores, locs = d.min(dim=1)
        scores, locs = scores.view(b, -1), locs.view(b, -1)
        top = scores.argmax(dim=1)
        score = scores[torch.arange(b), top]
        q = emb.view(b, h * w, c)[torch.arange(b), top]
        support = dist(bank[locs[torch.arange(b), top]], bank).topk(9, largest=False).indices
        dsup = dist(q.unsqueeze(1), bank[support])
        weight = 1 - F.softmax(dsup.squeeze(1), 1)[..., 0]
        amap = F.interpolate(scores.view(b, 1, h, w), size=(224, 224), mode="bilinear")
        amap = F.pad(amap, (ks // 2,) * 4, mode="reflect")
        amap = F.conv2d(F.conv2d(amap, g), g.transpose(2, 3))
        return weight * score, amap

    med = median_seconds(forward, torch.randn(1, 3, 224, 224), 5, min_time)
    print(f"\npeer predict path (anomalib 2.7 operations, EfficientNet-Lite0, bank {bank_rows} x 152), batch 1: {med * 1e3:.1f} ms")


if __name__ == "__main__":
    print(f"torch threads: {torch.get_num_threads()}")
    print("| architecture | taps | device | batch | ms / batch | images / s |")
    print("|---|---|---|---:|---:|---:|")
    nets = {
        "resnet18": ToLayer3(Basic, (2, 2, 2), 64).eval(),
        "wide_resnet50_2": ToLayer3(Bottleneck, (3, 4, 6), 128).eval(),
    }
    for name, net in nets.items():
        for b in (1, 8):
            bench(name, net, b)
    try:
        import timm

        lite0 = timm.create_model("tf_efficientnet_lite0", pretrained=False, features_only=True, out_indices=(2, 3)).eval()

        def lite0_taps(x):
            # timm's feature stages 2 and 3 end at blocks.2 (stride 8) and blocks.4 (stride 16).
            return lite0(x)

        for b in (1, 8):
            bench("efficientnet_lite0", lite0_taps, b)
        predict_latency(lite0)
    except ImportError:
        print("timm not installed: EfficientNet-Lite0 reference skipped")
