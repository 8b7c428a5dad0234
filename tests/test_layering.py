"""The package layering, read from the code's imports (``ast``, every ``import`` in a file, in functions too).

Each package of ``mimo`` (a top-level module counts as one) imports only from the packages listed before it in
:data:`LAYERS`, the order the README's "What is where" tree lists them in; and no files import each other in a
circle.  A lazy import inside a function is an import here too: hiding a circle in a function does not remove it.
(String-named modules loaded by ``importlib`` -- the command tables of ``cli.py`` and ``data/cli.py`` -- are
dispatch, not dependencies, and are not read.)
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

# Ground floor first.  ``mimo`` is the package's own __init__ (it registers the model with transformers).
LAYERS = ("errors", "utils", "domains", "config", "tokenizer", "model", "mimo", "tasks", "rewards", "infer", "eval",
          "data", "train", "rl", "curate", "demo", "cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((SRC / "mimo").rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(imported mimo module, line) for every import in the file; ``from a import b`` names ``a.b`` when that is
    a module, else ``a``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for a in node.names:
                out.append((f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod, node.lineno))
    return [(m, line) for m, line in out if m == "mimo" or m.startswith("mimo.")]


def _layer(module: str) -> str:
    return module.split(".")[1] if "." in module else "mimo"


@pytest.fixture(scope="module")
def graph() -> dict[str, list[tuple[str, int]]]:
    mods = _modules()
    known = set(mods)
    g = {name: [(m, line) for m, line in _imports(name, path, known) if m != name] for name, path in mods.items()}
    unknown = [(a, b) for a, edges in g.items() for b, _ in edges if b not in known]
    assert not unknown, f"imports of modules that do not exist: {unknown}"
    return g


def _cycles(nodes: set[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        x = stack.pop()
                        on.discard(x)
                        comp.append(x)
                        if x == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
            elif w not in index:
                index[w] = low[w] = counter
                counter += 1
                stack.append(w)
                on.add(w)
                work.append((w, iter(sorted(edges.get(w, ())))))
            elif w in on:
                low[v] = min(low[v], index[w])
    return out


def test_cycle_finder_finds_a_known_circle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles({"a", "b", "c", "d"}, edges) == [["a", "b", "c"]]
    assert _cycles({"a", "b"}, {"a": {"b"}}) == []


def test_every_package_is_in_the_layers(graph):
    assert {_layer(m) for m in graph} == set(LAYERS)


def test_no_circle_between_files(graph):
    edges = {a: {b for b, _ in e} for a, e in graph.items()}
    assert _cycles(set(graph), edges) == []


def test_no_upward_import(graph):
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = [f"{a}:{line} imports {b}" for a, edges in graph.items() for b, line in edges
              if rank[_layer(b)] > rank[_layer(a)]]
    assert upward == []


def test_no_circle_between_packages(graph):
    edges: dict[str, set[str]] = {}
    for a, e in graph.items():
        edges.setdefault(_layer(a), set()).update(_layer(b) for b, _ in e if _layer(b) != _layer(a))
    assert _cycles(set(LAYERS), edges) == []


def test_readme_tree_lists_the_layers_in_order():
    """The README's file tree shows the packages ground floor first, in the order this test enforces."""
    text = (ROOT / "README.md").read_text()
    tree = text.split("## What is where", 1)[1].split("```", 2)[1]
    listed = [m.group(1) for m in re.finditer(r"^  (\w+)(?:/|\.py)\s", tree, re.M)]
    order = [p for p in listed if p in LAYERS]
    assert order == [p for p in LAYERS if p != "mimo"]
