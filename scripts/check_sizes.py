#!/usr/bin/env python3
"""Fails when a Rust source file is over 600 lines or a function over 100 lines.

Scans every `.rs` file under crates/, tests/, examples/ and benches/ (not fuzz/, not build
outputs). A function's length counts the lines from its `fn` line to its closing brace, doc
comments and attributes excluded; closures and functions nested in it count towards it.
Strings, character literals and comments are skipped when matching braces.

Usage: scripts/check_sizes.py [--max-file N] [--max-fn N] [--top K]
"""

import argparse
import re
import sys
from pathlib import Path

# Functions allowed over the limit, each with the reason; empty, and it should stay so.
KNOWN_LONG: dict[str, int] = {}

FN_RE = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?"
                   r"(?:extern\s+\"[^\"]*\"\s+)?fn\s+(\w+)")


def code_only(text: str) -> str:
    """The text with comments, strings and char literals blanked (newlines kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not text[i - 1].isalnum()):
            hashes = len(re.match(r"r(#*)\"", text[i:]).group(1))
            end = '"' + "#" * hashes
            j = text.find(end, i + 2 + hashes)
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]):
            m = re.match(r"'(\\.|[^\\'])'", text[i:i + 4])
            out.append(" " * len(m.group(0)))
            i += len(m.group(0))
        elif c == "'" and re.match(r"'\\u\{[0-9a-fA-F]+\}'", text[i:i + 12]):
            m = re.match(r"'\\u\{[0-9a-fA-F]+\}'", text[i:])
            out.append(" " * len(m.group(0)))
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(text: str):
    """(name, first line, line count) of every function with a body."""
    code = code_only(text)
    lines = code.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    found = []
    for ln, line in enumerate(lines):
        m = FN_RE.match(line)
        if not m:
            continue
        # The body starts at the first `{` after the signature (or there is none: `;`).
        start = offsets[ln] + m.end()
        depth_paren, i = 0, start
        while i < len(code):
            ch = code[i]
            if ch in "(<[":
                depth_paren += 1
            elif ch in ")>]":
                depth_paren -= 1
            elif ch == ";" and depth_paren <= 0:
                i = -1
                break
            elif ch == "{" and depth_paren <= 0:
                break
            i += 1
        if i < 0 or i >= len(code):
            continue
        depth, j = 0, i
        while j < len(code):
            if code[j] == "{":
                depth += 1
            elif code[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        end_line = code.count("\n", 0, j)
        found.append((m.group(1), ln + 1, end_line - ln + 1))
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-file", type=int, default=600)
    ap.add_argument("--max-fn", type=int, default=100)
    ap.add_argument("--top", type=int, default=0, help="also list the K longest functions")
    a = ap.parse_args()
    root = Path(__file__).resolve().parent.parent
    files = []
    for d in ["crates", "tests", "examples", "benches"]:
        files += [p for p in (root / d).rglob("*.rs") if "target" not in p.parts]
    bad, all_fns = [], []
    for f in sorted(files):
        text = f.read_text()
        rel = f.relative_to(root)
        n = text.count("\n") + (0 if text.endswith("\n") else 1)
        if n > a.max_file:
            bad.append(f"{rel}: {n} lines (limit {a.max_file})")
        for name, line, length in functions(text):
            all_fns.append((length, f"{rel}:{line} {name}"))
            if length > a.max_fn and length > KNOWN_LONG.get(f"{rel}:{name}", 0):
                bad.append(f"{rel}:{line}: fn {name} is {length} lines (limit {a.max_fn})")
    if a.top:
        for length, where in sorted(all_fns, reverse=True)[: a.top]:
            print(f"{length:5} {where}")
    if bad:
        print("\n".join(bad))
        sys.exit(1)
    print(
        f"{len(files)} files <= {a.max_file} lines, {len(all_fns)} functions <= {a.max_fn} "
        f"lines but {len(KNOWN_LONG)} listed in KNOWN_LONG"
    )


if __name__ == "__main__":
    main()
