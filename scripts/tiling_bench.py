#!/usr/bin/env python3
"""Tiling benchmark: resize-to-224 vs `tiling.mode = "shared"` vs `"per_position"` on one
MVTec-layout category, each variant one `patchcore evaluate` process (pixel metrics at the
masks' resolution), timed and measured with GNU time (peak RSS). Prints one Markdown table.

    scripts/tiling_bench.py --data-root /tmp/b900 --category bottle \
        --test-types good,broken_small,contamination --seeds 0,1,2 --out /tmp/tiling-bench

--test-types evaluates a view of the category with only those test folders (symlinks under
OUT/data; train/ unchanged), e.g. the small-defect types of bottle. The binary is
$PATCHCORE_BIN, else target/release/patchcore under $CARGO_TARGET_DIR or ./target.
"""
import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

VARIANTS = {
    "resize": [],
    "shared": ["--set", 'tiling.mode="shared"'],
    "per_position": ["--set", 'tiling.mode="per_position"'],
}


def patchcore_bin():
    if os.environ.get("PATCHCORE_BIN"):
        return os.environ["PATCHCORE_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    exe = Path(target) / "release" / "patchcore"
    if not exe.is_file():
        sys.exit(f"error: no {exe}: run `cargo build --release --workspace` or set PATCHCORE_BIN")
    return str(exe)


def view(root, category, types, out):
    """A copy of the category's layout with only `types` under test/ (symlinked files)."""
    src = Path(root) / category
    dst = Path(out) / "data" / category
    if dst.exists():
        return dst.parent
    (dst / "test").mkdir(parents=True)
    (dst / "ground_truth").mkdir()
    os.symlink((src / "train").resolve(), dst / "train")
    for t in types:
        if not (src / "test" / t).is_dir():
            sys.exit(f"error: {src}/test/{t} does not exist")
        os.symlink((src / "test" / t).resolve(), dst / "test" / t)
        if (src / "ground_truth" / t).is_dir():
            os.symlink((src / "ground_truth" / t).resolve(), dst / "ground_truth" / t)
    return dst.parent


def run(variant, args, root):
    out = Path(args.out) / variant
    cmd = ["/usr/bin/time", "-v", patchcore_bin(), "evaluate", "--data-root", str(root),
           "--category", args.category, "--output", str(out), "--quiet",
           "--seeds", args.seeds, "--set", 'data.metrics_resolution="full"']
    cmd += VARIANTS[variant]
    for s in args.set:
        cmd += ["--set", s]
    print("$ " + " ".join(cmd[2:]), file=sys.stderr, flush=True)
    p = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit(f"error: {variant} failed:\n{p.stderr[-3000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
    save_rss(out, rss_kb / 1024)
    report = json.loads((out / "report.json").read_text())
    return report["categories"][args.category], rss_kb / 1024


def interval(r, key):
    iv = r.get("intervals", {}).get(key)
    if not iv:
        return ""
    lo, hi = iv.get("lo"), iv.get("hi")
    return f" [{lo:.4f}, {hi:.4f}]" if lo is not None else ""


def row(name, variant, r, rss):
    spread = r["spread"]
    aupro = spread["pixel_aupro"]
    t = r["test_stage_seconds"]
    # Decoding and extraction run once for all seeds, search and maps once per seed.
    n, s = r["num_test"], len(r["seeds"])
    split = "/".join([f"{1000 * t['decode'] / n:.0f}", f"{1000 * t['extract'] / n:.0f}",
                      f"{1000 * t['search_and_score'] / n / s:.0f}",
                      f"{1000 * t['maps'] / n / s:.0f}"])
    return (f"| {name} | {variant} | {r['image_auroc']:.4f}{interval(r, 'image_auroc')} | "
            f"{r['pixel_auroc']:.4f}{interval(r, 'pixel_auroc')} | {aupro['mean']:.4f} ± "
            f"{aupro['std']:.4f} | {r['bank_rows']} of {r['bank_rows_full']} | "
            f"{r['fit_seconds']:.0f} | {r['infer_ms_per_image']:.0f} ({split}) | {rss:.0f} |")


def save_rss(out, rss):
    (Path(out) / "peak_rss_mib.txt").write_text(f"{rss:.0f}\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--category", required=True)
    ap.add_argument("--test-types", help="comma-separated test folders to keep")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variants", default="resize,shared,per_position")
    ap.add_argument("--set", action="append", default=[], help="extra config override")
    ap.add_argument("--label", help="data set name in the table (default: the category)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    root = Path(args.data_root)
    if args.test_types:
        root = view(root, args.category, args.test_types.split(","), args.out)
    rows = []
    for v in args.variants.split(","):
        if v not in VARIANTS:
            sys.exit(f"error: unknown variant {v}; allowed: {', '.join(VARIANTS)}")
        r, rss = run(v, args, root)
        rows.append(row(args.label or args.category, v, r, rss))
        print(rows[-1], file=sys.stderr, flush=True)
    print("| data | variant | image AUROC [95% CI] | pixel AUROC [95% CI] | pixel AUPRO (mean ± "
          "std over seeds) | bank rows | fit (s) | predict ms/image (extract/search/maps) | "
          "peak RSS (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
