"""PyTorch CPU reference throughput for docs/BENCHMARKS.md: WideResNet50-2 and ResNet18 up to
layer3 (torchvision's architecture, written out here so that torchvision is optional) and, when
timm is installed, EfficientNet-Lite0 (`tf_efficientnet_lite0`) up to blocks.4 (stride 16);
random weights, 224x224, batch 1 and 8, eval mode, no grad.

    OMP_WAIT_POLICY=PASSIVE python scripts/torch_reference_bench.py

Run it in the same session as `patchcore bench` and compare only rows of one run.
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


def bench(name, net, batch, min_time=2.0):
    x = torch.randn(batch, 3, 224, 224)
    with torch.inference_mode():
        net(x)
        times = []
        start = time.perf_counter()
        while len(times) < 3 or time.perf_counter() - start < min_time:
            t = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - t)
    times.sort()
    med = times[len(times) // 2]
    taps = "blocks.2+blocks.4" if name.startswith("efficientnet") else "layer2+layer3"
    print(f"| {name} | {taps} | pytorch {torch.__version__} | {batch} | {med * 1e3:.1f} | {batch / med:.2f} |")


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
    except ImportError:
        print("timm not installed: EfficientNet-Lite0 reference skipped")
