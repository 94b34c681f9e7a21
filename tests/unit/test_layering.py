"""DESIGN.md's layering, checked in a second: the import-linter contracts of
pyproject.toml, and no import cycle between any two modules of ours."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

grimp = pytest.importorskip("grimp")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = ("agent", "dataplane", "dns")


def lint_imports() -> str:
    exe = shutil.which("lint-imports") or os.path.join(os.path.dirname(sys.executable), "lint-imports")
    return exe


def test_import_contracts_are_kept():
    r = subprocess.run([lint_imports()], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]


def cycles(graph) -> list[list[str]]:
    """Every import cycle between modules (Tarjan's strongly connected components)."""
    modules = sorted(m for m in graph.modules if m.split(".")[0] in PACKAGES)
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.find_modules_directly_imported_by(v)):
            if w.split(".")[0] not in PACKAGES:
                continue
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
                out.append(sorted(comp))
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for m in modules:
        if m not in index:
            visit(m)
    return out


def test_no_module_imports_itself_in_a_loop():
    sys.path.insert(0, ROOT)
    try:
        graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    finally:
        sys.path.remove(ROOT)
    assert cycles(graph) == []
