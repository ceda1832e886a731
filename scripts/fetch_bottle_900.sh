#!/usr/bin/env bash
# The original 900x900 MVTec AD bottle category (CC BY-NC-SA 4.0, MVTec Software GmbH), as
# published in the repository notalepower/PatchCoreViT at one fixed commit, into a local
# folder in the MVTec layout (never into this repository): OUT/bottle/{train,test,ground_truth}.
#
#   scripts/fetch_bottle_900.sh OUT              # clones from GitHub (needs the network)
#   BOTTLE900_GIT_DIR=/path/to/repo.git scripts/fetch_bottle_900.sh OUT
#                                                # or reads a local clone / mirror of it
#
# Checks the commit and the file counts (209 train, 83 test, 63 masks; 900x900 PNG) and
# writes OUT/bottle/SOURCE.txt with the commit. ../shared/datasets/PROVENANCE.md documents
# the same images resized to 256.
set -euo pipefail

REPO_URL="https://github.com/notalepower/PatchCoreViT.git"
COMMIT="b79f9e32cc5a168118a0bbb63ce3b606dd07ca39"
out="${1:?usage: scripts/fetch_bottle_900.sh OUT_DIR}"

if [[ -e "$out/bottle" ]]; then
    echo "error: $out/bottle exists; remove it or choose another folder" >&2
    exit 1
fi
git_dir="${BOTTLE900_GIT_DIR:-}"
tmp=""
if [[ -z "$git_dir" ]]; then
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    git init -q --bare "$tmp/repo.git"
    git --git-dir "$tmp/repo.git" fetch -q --depth 1 "$REPO_URL" "$COMMIT"
    git_dir="$tmp/repo.git"
fi
if ! git --git-dir "$git_dir" cat-file -e "$COMMIT^{commit}" 2>/dev/null; then
    echo "error: commit $COMMIT is not in $git_dir" >&2
    exit 1
fi
staging="$(mktemp -d "${out%/}.bottle900.XXXXXX" 2>/dev/null || mktemp -d)"
mkdir -p "$out"
git --git-dir "$git_dir" archive "$COMMIT" bottle | tar -x -C "$staging"
count() { find "$staging/bottle/$1" -name '*.png' | wc -l; }
train=$(count train) test=$(count test) masks=$(count ground_truth)
if [[ "$train" != 209 || "$test" != 83 || "$masks" != 63 ]]; then
    echo "error: expected 209 train, 83 test and 63 mask PNGs, got $train, $test, $masks" >&2
    rm -rf "$staging"
    exit 1
fi
python3 - "$staging/bottle/train/good/000.png" <<'PY'
import struct, sys
with open(sys.argv[1], "rb") as f:
    head = f.read(24)
w, h = struct.unpack(">II", head[16:24])
if (w, h) != (900, 900):
    sys.exit(f"error: expected 900x900 images, {sys.argv[1]} is {w}x{h}")
PY
echo "notalepower/PatchCoreViT@$COMMIT bottle/ (MVTec AD bottle at 900x900, CC BY-NC-SA 4.0)" \
    > "$staging/bottle/SOURCE.txt"
mv "$staging/bottle" "$out/bottle"
rmdir "$staging"
echo "wrote $out/bottle: $train train, $test test, $masks masks"
