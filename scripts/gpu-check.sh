#!/usr/bin/env bash
# Runs the backend conformance suite and the backbone throughput benchmark on a machine with
# an NVIDIA GPU, from a bundle made beforehand by scripts/gpu-bundle.sh on a CPU machine (no
# Rust, no internet needed here). Prints one table. Bounded to 8 minutes.
#
#   scripts/gpu-check.sh [BUNDLE]      (default .gpu-bundle)
#
# LibTorch (feature tch): the binary needs the LibTorch it was built against
# (bundle/libtorch-version); it looks for one in the Python `torch` package
# (PATCHCORE_GPU_PYTHON, default python3) and says so when the versions differ.
set -uo pipefail
cd "$(dirname "$0")/.."
BUNDLE="${1:-.gpu-bundle}"
DEADLINE=$((SECONDS + 470))
left() { echo $((DEADLINE - SECONDS)); }
[ -x "$BUNDLE/bin/patchcore" ] || { echo "no bundle at $BUNDLE: run scripts/gpu-bundle.sh on a CPU machine first" >&2; exit 1; }
export PATCHCORE_SHARED_DIR="$PWD/$BUNDLE/shared" PATCHCORE_CACHE_DIR="$PWD/$BUNDLE/cache"
BIN="$BUNDLE/bin/patchcore"
FEATURES="$(cat "$BUNDLE/features")"
echo "== patchcore GPU check: bundle features [$FEATURES], $(date -u +%FT%TZ)"

devices=(flex)
if [[ ",$FEATURES," == *",tch,"* ]]; then
    PY="${PATCHCORE_GPU_PYTHON:-python3}"
    want="$(cat "$BUNDLE/libtorch-version" 2>/dev/null || echo unknown)"
    have="$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo none)"
    lib="$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null || true)"
    echo "LibTorch: binary built against $want; this machine's torch is $have ($lib)"
    if [ "${want%%+*}" != "${have%%+*}" ]; then
        echo "WARNING: LibTorch versions differ ($want vs $have): the binary may fail to load"
    fi
    export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    if ! "$BIN" --version >/dev/null 2>"$BUNDLE/load-error.txt"; then
        echo "the tch binary does not start with this LibTorch:"; head -3 "$BUNDLE/load-error.txt"
        echo "RESULT: LibTorch $want is not available here; nothing else to test in this bundle"
        exit 4
    fi
    devices+=(libtorch)
fi
gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    gpu=1
    nvidia-smi -L
    [[ ",$FEATURES," == *",tch,"* ]] && devices+=(libtorch-cuda:0)
    [[ ",$FEATURES," == *",cuda,"* ]] && devices+=(cuda:0)
else
    echo "NO NVIDIA GPU FOUND (nvidia-smi missing or lists none): running the CPU devices only;"
    echo "the GPU steps need a machine with an NVIDIA GPU and driver."
fi

args=()
for d in "${devices[@]}"; do args+=(--device "$d"); done
echo "== conformance on ${devices[*]} ($(left) s left)"
timeout "$(left)" "$BIN" conformance "${args[@]}" --json "$BUNDLE/conformance.json"
conf=$?
echo "== backbone throughput, images/s ($(left) s left)"
timeout "$(($(left) - 5))" "$BIN" bench --arch efficientnet_lite0 --arch wide_resnet50_2 \
    "${args[@]}" --batch 1 --batch 8 --min-time 1 --suite components
bench=$?
echo "== summary: conformance exit $conf, bench exit $bench, GPU present: $gpu"
if [ $gpu -eq 0 ]; then
    echo "RESULT: stopped before the GPU steps (no GPU)"; exit 3
fi
[ $conf -eq 0 ] && [ $bench -eq 0 ]
