"""The layer rule, walked from the source: no import circle, no layer importing one above it.

Layers, bottom up (docs/architecture.md draws them):

0. ``errors``, ``_compat``, ``registry``: every exception, every private API, each
   check's metadata; torch-free, so the plugin can read them at ``pytest --help``.
1. ``spec/``: Input, Spec and their examples.
2. ``load/`` (spec files -> specs), ``numerics/`` (oracle, noise, allowances),
   ``report`` (failures as data, rendered), ``strategies`` (Hypothesis).
3. ``checks/``: one example made concrete, and every check.
4. ``verify``: checks over explicit and drawn examples.
5. the pytest plugin (``plugin``, ``plugin_options``, ``plugin_items``, ``tally``),
   ``bench/``, ``power``, ``__main__`` and the package's re-exports.

A module may import from its own layer or below. Imports under ``TYPE_CHECKING``
count for the layers (a type is a dependency too) but not for circles (they never
run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "harness"
LAYERS = (
    ("harness.errors", "harness._compat", "harness.registry"),
    ("harness.spec",),
    ("harness.load", "harness.numerics", "harness.report", "harness.strategies"),
    ("harness.checks",),
    ("harness.verify",),
    ("harness.plugin", "harness.plugin_options", "harness.plugin_items", "harness.tally",
     "harness.bench", "harness.power", "harness.__main__", "harness"),
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> int:
    """The layer of a module: that of the longest prefix in LAYERS."""
    best = None
    for rank, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (
                    best is None or len(name) > len(best[1])):
                best = (rank, name)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[0]


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported harness module, under TYPE_CHECKING) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(child) for child in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                found += [(_resolved(node.module, alias.name), id(node) in typing_only)]
        elif isinstance(node, ast.Import):
            found += [(alias.name, id(node) in typing_only) for alias in node.names]
    return [(name, typing) for name, typing in found if name.split(".")[0] == "harness"]


def _resolved(module: str, name: str) -> str:
    """``from harness.checks import evaluate`` imports the module harness.checks.evaluate."""
    candidate = f"{module}.{name}"
    return candidate if candidate in MODULES else module


GRAPH = {module: _imports(path) for module, path in MODULES.items()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_layer_above_its_own(module: str) -> None:
    above = [(name, _layer(name)) for name, _ in GRAPH[module]
             if _layer(name) > _layer(module)]
    assert not above, f"{module} (layer {_layer(module)}) imports {above}"


def test_no_import_circle() -> None:
    runtime = {module: {name for name, typing in edges if not typing and name != module}
               for module, edges in GRAPH.items()}
    visiting, done, path = set(), set(), []

    def visit(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, f"import circle: {' -> '.join([*path, module])}"
        visiting.add(module)
        path.append(module)
        for name in sorted(runtime.get(module, ())):
            if name in runtime:
                visit(name)
        path.pop()
        visiting.discard(module)
        done.add(module)

    for module in sorted(runtime):
        visit(module)


def test_every_module_has_a_layer_and_stays_small() -> None:
    """A module over ~400 lines holds two ideas (DESIGN): split it by idea."""
    for module, path in MODULES.items():
        _layer(module)
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= 450, f"{module} has {lines} lines: split it by idea"
