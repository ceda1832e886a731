#!/usr/bin/env bash
# Prepares, on a CPU machine with the Rust toolchain, everything scripts/gpu-check.sh needs on
# a GPU machine that has no Rust crates and no internet: the `patchcore` binary built with the
# GPU features, the EfficientNet-Lite0 weights, the parity fixtures and a few MVTec AD bottle
# images, in one folder (default .gpu-bundle/, ignored by git; about 45 MB).
#
#   FEATURES   cargo features of the binary (default "tch"; "cuda" needs network access at
#              build time, see docs/GPU.md)
#   BUNDLE     output folder (default .gpu-bundle)
#   SKIP_BUILD=1 with LIBTORCH_VERSION=X  bundle the binary already built (e.g. against the
#              GPU machine's own LibTorch version, LIBTORCH_BYPASS_VERSION_CHECK=1; docs/GPU.md)
set -euo pipefail
cd "$(dirname "$0")/.."
FEATURES="${FEATURES:-tch}"
BUNDLE="${BUNDLE:-.gpu-bundle}"
SHARED="${PATCHCORE_SHARED_DIR:-$(cd .. && pwd)/shared}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/patchcore-rs/target}"
if [ -z "${SKIP_BUILD:-}" ]; then
    if [[ ",$FEATURES," == *",tch,"* ]]; then
        source <(scripts/install-libtorch.sh --env)
    fi
    if [[ ",$FEATURES," == *",cuda,"* ]]; then
        export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13000}"
    fi
    feats=""
    for f in ${FEATURES//,/ }; do feats+="patchcore/$f,patchcore-cli/$f,"; done
    cargo build --release --workspace --features "${feats%,}" --bin patchcore --test conformance
fi

rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/bin" "$BUNDLE/cache" "$BUNDLE/shared/fixtures"
strip -o "$BUNDLE/bin/patchcore" "$CARGO_TARGET_DIR/release/patchcore"
echo "$FEATURES" >"$BUNDLE/features"
if [ -n "${LIBTORCH_VERSION:-}" ]; then
    echo "$LIBTORCH_VERSION" >"$BUNDLE/libtorch-version"
elif [[ ",$FEATURES," == *",tch,"* ]]; then
    python -c 'import torch; print(torch.__version__)' 2>/dev/null >"$BUNDLE/libtorch-version"
fi
cache="${PATCHCORE_CACHE_DIR:-$HOME/.cache/patchcore-rs}"
cp "$cache/efficientnet-lite0-57934424.pth" "$BUNDLE/cache/"
for f in effnet_lite0.safetensors aggregation.safetensors resnet_basic_tiny.pth resnet_basic_tiny.safetensors; do
    cp "$SHARED/fixtures/$f" "$BUNDLE/shared/fixtures/"
done
# The conformance suite's end-to-end images: first 8 train, first 2 test images per type.
src="$SHARED/datasets/mvtec_ad_256/bottle"
dst="$BUNDLE/shared/datasets/mvtec_ad_256/bottle"
mkdir -p "$dst/train/good"
ls "$src/train/good" | sort | head -8 | while read -r f; do cp "$src/train/good/$f" "$dst/train/good/"; done
for t in $(ls "$src/test"); do
    mkdir -p "$dst/test/$t"
    ls "$src/test/$t" | sort | head -2 | while read -r f; do
        cp "$src/test/$t/$f" "$dst/test/$t/"
        if [ -d "$src/ground_truth/$t" ]; then
            mkdir -p "$dst/ground_truth/$t"
            cp "$src/ground_truth/$t/${f%.*}_mask.png" "$dst/ground_truth/$t/"
        fi
    done
done
du -sh "$BUNDLE"
