#!/usr/bin/env bash
# Installs LibTorch for the `tch` feature (burn-tch) from PyPI's torch==2.9.0, the version
# tch 0.22 is built against, into a virtual environment outside the clone (about 6.7 GB).
# Prints the environment to export; `source <(scripts/install-libtorch.sh --env)` sets it.
#
#   PATCHCORE_TORCH_VENV  where the venv lives (default ~/.cache/patchcore-rs/torch-2.9.0)
#   PATCHCORE_PYTHON      the Python used to create it (default python3)
set -euo pipefail
VENV="${PATCHCORE_TORCH_VENV:-$HOME/.cache/patchcore-rs/torch-2.9.0}"
PY="${PATCHCORE_PYTHON:-python3}"
TORCH_VERSION=2.9.0

print_env() {
    local lib="$VENV/lib/$("$VENV/bin/python" -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}")')/site-packages/torch/lib"
    echo "export LIBTORCH_USE_PYTORCH=1"
    echo "export PATH=\"$VENV/bin:\$PATH\""
    echo "export LD_LIBRARY_PATH=\"$lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\""
}

installed() {
    [ -x "$VENV/bin/python" ] &&
        [ "$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null)" = "$TORCH_VERSION" ]
}

if ! installed; then
    echo "installing torch==$TORCH_VERSION into $VENV (about 6.7 GB, a few minutes)" >&2
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
    "$VENV/bin/python" -m pip install --quiet "torch==$TORCH_VERSION" >&2
    installed || { echo "torch==$TORCH_VERSION did not install into $VENV" >&2; exit 1; }
fi
if [ "${1:-}" = "--env" ]; then
    print_env
else
    echo "LibTorch $TORCH_VERSION ready in $VENV; for builds and runs with --features tch:" >&2
    print_env >&2
fi
