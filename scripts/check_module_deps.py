#!/usr/bin/env python3
"""Checks the module graph of every workspace crate: no cycle and no upward import.

A crate's modules are its files (`lib.rs`, `a.rs`, `a/mod.rs`, `a/b.rs`, ...). Module A
depends on module B when A's code names an item of B through `crate::...` or `super::...`
(in a `use` or inline). A parent's `mod b;` and its re-exports (`pub use b::X`, the crate's
facade) are not dependencies. Two rules:

* no upward import: a module names an item of an ancestor (the crate root included) only
  where the ancestor defines it (a trait in `lib.rs`, the type a `mod.rs` splits into
  children); an ancestor's re-export of another module's item is a detour up the tree that
  hides the real dependency (`crate::Config` for `crate::config::Config`).
* no cycle, at every level of the module tree: the graph of dependencies between modules,
  and the graph between the subtrees of each level (`results` -> `protocol::provenance`
  makes `results` depend on the `protocol` subtree, which depends on `results`), are acyclic.

Inline test modules (`#[cfg(test)] mod tests { ... }`, at the end of a file) are skipped:
their `super::*` is the file's own module. Exits 1 and lists the offending edges when a rule
is broken; prints one line per crate otherwise.

Usage: scripts/check_module_deps.py [CRATE_DIR ...]   (default: crates/*)
"""

import re
import sys
from pathlib import Path

USE_RE = re.compile(r"(\bpub(?:\([a-z]+\))?\s+)?\buse\s+((?:crate|super|self)(?:::[^;]*)?);", re.S)
DEF_RE = r"\b(?:struct|enum|trait|fn|type|const|static|union|mod)\s+{}\b|macro_rules!\s*{}\b"
INLINE_RE = re.compile(r"\b((?:crate|super)(?:::(?:super|[A-Za-z_][A-Za-z0-9_]*))+)")


def module_files(src: Path):
    """Maps module path tuples to files for a crate's src/."""
    mods = {}
    for f in src.rglob("*.rs"):
        rel = f.relative_to(src).with_suffix("")
        parts = list(rel.parts)
        if parts in (["lib"], ["main"]):
            parts = []
        elif parts[-1] == "mod":
            parts = parts[:-1]
        elif len(parts) == 1 and parts[0] not in ("lib", "main") and (src / "bin") in f.parents:
            continue
        mods[tuple(parts)] = f
    return mods


def strip(text: str) -> str:
    """Drops comments and the trailing inline test module."""
    text = re.sub(r"//[^\n]*", "", text)
    m = re.search(r"#\[cfg\(test\)\]\s*(pub(\([a-z]+\))?\s+)?mod\s+\w+\s*\{", text)
    if m:
        text = text[: m.start()]
    return text


def expand_use(tree: str):
    """Paths named by one use tree, e.g. `crate::a::{b, c::d}` -> crate::a::b, crate::a::c::d."""
    tree = re.sub(r"\s+", "", tree)
    if "{" not in tree:
        return [tree.split(" as ")[0]]
    head, _, rest = tree.partition("{")
    body = rest[: rest.rfind("}")]
    items, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    if cur:
        items.append(cur)
    out = []
    for it in items:
        if it == "self":
            out.append(head.rstrip(":"))
        else:
            out.extend(expand_use(head + it))
    return out


def resolve(path: str, here: tuple, mods: dict):
    """The module a `crate::`/`super::` path points into (longest module prefix)."""
    parts = path.split("::")
    if parts[0] == "crate":
        base, rest = [], parts[1:]
    elif parts[0] in ("super", "self"):
        base = list(here)
        rest = parts
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                if not base:
                    return None
                base = base[:-1]
            rest = rest[1:]
    else:
        return None
    target = tuple(base)
    for p in rest:
        if tuple(list(target) + [p]) in mods:
            target = tuple(list(target) + [p])
        else:
            break
    return target


def defines(text: str, name: str) -> bool:
    n = re.escape(name)
    return re.search(DEF_RE.format(n, n), text) is not None


def check_crate(crate: Path):
    src = crate / "src"
    if not src.is_dir():
        return None
    mods = module_files(src)
    texts = {m: strip(f.read_text()) for m, f in mods.items()}
    name = crate.name
    show = lambda m: "::".join(("crate",) + m)  # noqa: E731
    problems = []
    edges = {}
    for mod, text in texts.items():
        paths = []
        for m in USE_RE.finditer(text):
            if m.group(1):
                continue  # a re-export: the facade, not a dependency
            paths.extend(expand_use(m.group(2)))
        no_use = USE_RE.sub("", text)
        paths.extend(m.group(1) for m in INLINE_RE.finditer(no_use))
        for p in paths:
            t = resolve(p, mod, mods)
            if t is None or t == mod:
                continue
            item = p.split("::")[-1]
            if mod[: len(t)] == t and item not in ("*", "self") and not defines(texts[t], item):
                problems.append(
                    f"{name}: upward import in {show(mod)}: `{p}` goes through {show(t)}, "
                    f"which re-exports it; name the module that defines it"
                )
            edges.setdefault(mod, set()).add(t)
    depth = max((len(m) for m in mods), default=0)
    for level in range(1, depth + 1):
        cut = lambda m: m[:level]  # noqa: E731
        graph = {}
        for a, bs in edges.items():
            for b in bs:
                ca, cb = cut(a), cut(b)
                # An edge to an ancestor's own definitions is the tree, not a cycle.
                if ca != cb and ca[: len(cb)] != cb and cb[: len(ca)] != ca:
                    graph.setdefault(ca, set()).add(cb)
        for comp in sccs(graph):
            members = ", ".join(sorted(show(m) for m in comp))
            problems.append(f"{name}: import cycle among {members}")
    n_edges = sum(len(v) for v in edges.values())
    return sorted(set(problems)), len(mods), n_edges


def sccs(graph):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    nodes = set(graph) | {w for ws in graph.values() for w in ws}
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    root = Path(__file__).resolve().parent.parent
    crates = [Path(a) for a in sys.argv[1:]] or sorted((root / "crates").iterdir())
    failed = False
    for c in crates:
        res = check_crate(c)
        if not res:
            continue
        problems, n, e = res
        if problems:
            failed = True
            print("\n".join(problems))
        else:
            print(f"{c.name}: {n} modules, {e} edges, acyclic, no upward import")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
