#!/usr/bin/env python3
"""Lists the circles of imports between the source files of a crate.

A file imports another when it names an item of the other's module by path
(`use crate::a::b`, `super::x`, `crate::a::f()` in code). `mod` declarations are not
imports, and test code is left out (files named tests.rs or under a tests/ folder, and
everything from a `#[cfg(test)]` line on). Prints each circle (a strongly connected
component of more than one file) and exits 1 if there is one.

    hack/modcycles.py core/src operator/src agent/src
"""

import re
import sys
from pathlib import Path

PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+|::\{)")
USE_GROUP = re.compile(r"\buse\s+(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*)\};", re.S)


def module_of(root: Path, file: Path) -> tuple[str, ...]:
    parts = list(file.relative_to(root).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def is_test(root: Path, file: Path) -> bool:
    rel = file.relative_to(root).parts
    return file.name == "tests.rs" or "tests" in rel[:-1] or "bin" in rel[:-1]


def code_of(file: Path) -> str:
    text = file.read_text()
    cut = re.search(r"^\s*#\[cfg\(test\)\]", text, re.M)
    if cut:
        text = text[: cut.start()]
    # Comments and strings name paths without importing them.
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    return text


def targets(module: tuple[str, ...], text: str) -> set[tuple[str, ...]]:
    paths = []
    for m in USE_GROUP.finditer(text):
        base = m.group(1) + m.group(2)
        for item in re.split(r"[,{}]", m.group(3)):
            item = item.strip().split(" as ")[0].strip()
            if item and item != "self":
                paths.append(base + "::" + item)
            elif item == "self":
                paths.append(base)
    for m in PATH.finditer(text):
        if m.group(2) != "::{":
            paths.append(m.group(1) + m.group(2))
    out = set()
    for path in paths:
        parts = path.split("::")
        if parts[0] == "crate":
            resolved = list(parts[1:])
        else:
            base = list(module)
            while parts and parts[0] in ("super", "self"):
                if parts[0] == "super":
                    base = base[:-1]
                parts = parts[1:]
            resolved = base + parts
        out.add(tuple(resolved))
    return out


def circles(root: Path) -> list[list[str]]:
    files = {module_of(root, f): f for f in sorted(root.rglob("*.rs")) if not is_test(root, f)}
    graph: dict[tuple, set[tuple]] = {m: set() for m in files}
    for module, file in files.items():
        for path in targets(module, code_of(file)):
            # The longest prefix of the path that is a file's module.
            for n in range(len(path), -1, -1):
                if path[:n] in files:
                    target = path[:n]
                    break
            else:
                continue
            if target != module:
                graph[module].add(target)
    # Tarjan's strongly connected components.
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(str(files[c]) for c in component))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main() -> int:
    args = sys.argv[1:]
    max_lines = None
    if args[:1] == ["--max-lines"]:
        max_lines, args = int(args[1]), args[2:]
    found = False
    for arg in args or ["core/src", "operator/src", "agent/src"]:
        root = Path(arg)
        for circle in circles(root):
            found = True
            print(f"circle in {arg}: " + " ↔ ".join(circle))
        if max_lines is not None:
            for file in sorted(root.rglob("*.rs")):
                lines = len(file.read_text().splitlines())
                if not is_test(root, file) and lines > max_lines:
                    found = True
                    print(f"{file}: {lines} lines, over {max_lines}: split it by responsibility")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
