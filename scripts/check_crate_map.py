#!/usr/bin/env python3
"""Fails when the crate table of docs/ARCHITECTURE.md disagrees with `cargo metadata`.

The table under "## Crates and what each owns" has one row per workspace member; its last
column names the crate's normal dependencies. Workspace crates are named without the
`patchcore-` prefix (`core`, `nn`, `model-format`, ...); optional ones are written
`(+ a, b with `feature`)`. Every other word (burn, axum, ...) is free text and not checked.

The check: every workspace member has exactly one row, and for each row the named workspace
crates are exactly the member's normal workspace dependencies, the optional ones inside the
parentheses and the others outside.

Usage: scripts/check_crate_map.py [--doc docs/ARCHITECTURE.md]
"""

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path


def short(name: str) -> str:
    return name.removeprefix("patchcore-") if name != "patchcore" else "patchcore"


def workspace_deps() -> dict[str, tuple[set[str], set[str]]]:
    """Each member's short name → (required, optional) normal workspace dependencies."""
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    members = {p["name"] for p in meta["packages"]}
    out = {}
    for p in meta["packages"]:
        req, opt = set(), set()
        for d in p["dependencies"]:
            if d["name"] in members and d["kind"] is None:
                (opt if d.get("optional") else req).add(short(d["name"]))
        out[short(p["name"])] = (req, opt)
    return out


def table_rows(doc: str) -> dict[str, str]:
    """The crate table's rows: short crate name → its last column."""
    section = doc.split("## Crates and what each owns", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        name = short(cells[0].strip("`"))
        if name in rows:
            raise SystemExit(f"ARCHITECTURE.md: two rows for `{cells[0]}`")
        rows[name] = cells[-1]
    return rows


def named(cell: str, members: set[str]) -> tuple[set[str], set[str]]:
    """The workspace crates a cell names: (outside parentheses, inside `(+ ... with ...)`)."""
    optional: set[str] = set()
    for group in re.findall(r"\(\+([^)]*)\)", cell):
        words = re.split(r"[,\s]+", group.split(" with ")[0])
        optional |= {w.strip("`") for w in words if w.strip("`") in members}
    rest = re.sub(r"\(\+[^)]*\)", "", cell)
    required = {w.strip("`") for w in re.split(r"[,\s]+", rest) if w.strip("`") in members}
    return required, optional


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--doc", default="docs/ARCHITECTURE.md")
    a = ap.parse_args()
    deps = workspace_deps()
    rows = table_rows(Path(a.doc).read_text())
    members = set(deps)
    errors = []
    for m in sorted(members - set(rows)):
        errors.append(f"workspace member `{m}` has no row in the crate table")
    for r in sorted(set(rows) - members):
        errors.append(f"the crate table has a row for `{r}`, which is not a workspace member")
    for name in sorted(members & set(rows)):
        req, opt = named(rows[name], members - {name})
        want_req, want_opt = deps[name]
        if (req, opt) != (want_req, want_opt):
            errors.append(
                f"`{name}`: the table names {sorted(req)} (+ optional {sorted(opt)}), "
                f"Cargo.toml has {sorted(want_req)} (+ optional {sorted(want_opt)})"
            )
    for e in errors:
        print(f"ARCHITECTURE.md crate map: {e}", file=sys.stderr)
    if not errors:
        print(f"crate map: {len(rows)} rows agree with cargo metadata")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
