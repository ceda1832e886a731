#!/usr/bin/env bash
# Every measurement of issue #17 (Performance II) in one run, for docs/BENCHMARKS.md: the
# reference side (PyTorch, anomalib) and ours back to back on the same machine, one after the
# other (never two at once: these machines have 2 cores).
#
#   scripts/perf2_bench.sh OUT_DIR
#
# Needs: a release build of `patchcore` (PATCHCORE_BIN, default target/release/patchcore), a
# Python with torch, timm and anomalib 2.7 (PYTHON, e.g. a venv outside the repository) with
# the patchcore_rs wheel (for the metrics of the anomalib run), the shared data folder
# (PATCHCORE_SHARED_DIR, default ../shared) and the EfficientNet-Lite0 weights in
# ~/.cache/patchcore-rs (`patchcore` fetches them on first use).
set -euo pipefail
out=${1:?usage: scripts/perf2_bench.sh OUT_DIR}
mkdir -p "$out"
bin=${PATCHCORE_BIN:-target/release/patchcore}
# The bench suites live in the development tooling (crates/xtask), beside the binary.
xtask=${PATCHCORE_XTASK:-$(dirname "$bin")/xtask}
py=${PYTHON:-python3}
shared=${PATCHCORE_SHARED_DIR:-../shared}
data="$shared/datasets/mvtec_ad_256"
export OMP_WAIT_POLICY=PASSIVE PATCHCORE_SHARED_DIR="$shared"

{
    date -u
    lscpu | grep -E "Model name|^CPU\(s\)|L2|L3"
    lscpu | grep Flags | tr ' ' '\n' | grep -E "^(avx2|fma|avx512f|avx512bw|avx512vl|avx512_vnni|avx512_bf16)$" | tr '\n' ' '
    echo
    uptime
    "$py" -c "import torch, timm, anomalib; print('torch', torch.__version__, 'timm', timm.__version__, 'anomalib', anomalib.__version__, 'threads', torch.get_num_threads())"
} >"$out/machine.txt" 2>&1

step() { echo "== $1: $(date -u +%T)" >>"$out/log.txt"; }

# 1. Dense convolutions: PyTorch (its own best ISA, then limited to AVX2 as on an AVX2-only
#    machine), then ours with GFLOP/s against this run's sgemm peak.
step torch
"$py" scripts/torch_reference_bench.py >"$out/torch.md" 2>/dev/null
step torch-avx2
ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 "$py" scripts/torch_reference_bench.py >"$out/torch_avx2.md" 2>/dev/null
step backbones
"$xtask" bench --suite backbones --arch efficientnet_lite0 --arch resnet18 --arch wide_resnet50_2 \
    --device flex --batch 1 --batch 8 --min-time 3 >"$out/backbones.md"
step torch-again
"$py" scripts/torch_reference_bench.py >"$out/torch_again.md" 2>/dev/null

# 3. Predict latency, decode excluded: EfficientNet-Lite0 (default experiment) and WRN50-2.
step latency
"$xtask" bench --suite latency --device flex --batch 1 --min-time 5 >"$out/latency_lite0.md"
"$xtask" bench --suite latency --config configs/wide_resnet50_2.toml --device flex --batch 1 \
    --min-time 5 >"$out/latency_wrn50.md" 2>"$out/latency_wrn50.err"

# 4. End to end: anomalib 2.7 fit + test, then `patchcore evaluate` three times.
step anomalib
"$py" scripts/anomalib_coreset_dropin.py --data "$data/bottle" \
    --weights ~/.cache/patchcore-rs/efficientnet-lite0-57934424.pth --only-anomalib \
    2>/dev/null | grep -v "^Selecting" >"$out/anomalib.txt"
step evaluate
for i in 1 2 3; do
    rm -rf "$out/evaluate"
    /usr/bin/time -f "wall %e s, user %U s, peak RSS %M KB" "$bin" evaluate \
        --config configs/mvtec_effnet_lite0.toml --data-root "$data" --category bottle \
        --output "$out/evaluate" --quiet >>"$out/evaluate.txt" 2>&1
done

# 2. Coreset: exact (default) against partitioned on bottle and on the weakly clustered
#    synthetic weave, then the growth suite to 10000 images.
step coreset
"$xtask" bench --suite coreset --category bottle --seeds 0..3 >"$out/coreset_bottle.md"
"$xtask" bench --suite coreset --category synthetic_weave --seeds 0..3 >"$out/coreset_weave.md"
step growth
"$xtask" bench --suite growth >"$out/growth.md"
step done
