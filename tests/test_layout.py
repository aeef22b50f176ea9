"""The shape of the code, as a new maintainer relies on it: no import cycles (between modules or
between the stage families), every module says what it owns, and none grows past a size one
can read at once without saying why at its top."""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

from harness import ROOT

PACKAGE = ROOT / "relay"
MAX_LINES = 400  # beyond this a module says at its top why it is one module


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports(mods: Mapping[str, Path]) -> dict[str, set[str]]:
    """What each module imports from relay when it is loaded (imports inside functions and
    under TYPE_CHECKING are deliberate and left out). `from relay.x import y` counts `relay.x.y`
    when that is a module, else `relay.x`."""
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        for node in ast.parse(path.read_text()).body:
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("relay"):
                module = node.module or ""
                subs = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in mods]
                targets = subs + ([module] if len(subs) < len(node.names) else [])
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("relay")]
            graph[name].update(t for t in targets if t in mods and t != name)
    return graph


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    state: dict[str, int] = {}
    found: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, path)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def family(module: str) -> str:
    """`relay.store.sqlite` -> `relay.store`; a top-level module is its own family."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else module


def test_no_module_imports_itself_back() -> None:
    assert cycles(imports(modules())) == []


def test_no_stage_family_depends_on_one_that_depends_on_it() -> None:
    families: dict[str, set[str]] = defaultdict(set)
    for module, targets in imports(modules()).items():
        families[family(module)].update(family(t) for t in targets if family(t) != family(module))
    assert cycles(families) == []


def test_every_module_says_what_it_owns_and_none_is_too_long_to_read_at_once() -> None:
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        doc = ast.get_docstring(tree)
        assert doc, f"{name} has no docstring saying what it owns"
        lines = len(path.read_text().splitlines())
        assert lines <= MAX_LINES or "one module because" in doc, (name, lines)
