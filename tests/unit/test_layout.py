"""The package layout, read from the source with ``ast`` (nothing is imported or run).

- ``channels`` and ``suppression`` import nothing from ``sequencer``: the engine depends
  on them, never the other way round, so there is no package-level cycle;
- ``suppression`` imports nothing from ``channels`` either (``channels`` takes its
  column types from ``suppression.columns``), so those two cannot form a cycle;
- the application layer (``sequencer.app``) is imported only from inside itself;
- its entry points (``sequencer.app.cli``, ``sequencer.app.api``) are imported by no
  module outside it: not the other packages, not the benchmarks (the tests drive them).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "sequencer" / "app"
# The layers, lowest first (README, "How it is built"): a package imports only the ones
# before it (and itself), so no two packages form a cycle and each reads without the later ones.
LAYERS = [
    "suppression", "channels", "sequencer.core", "sequencer.sequences", "sequencer.domains",
    "sequencer.sending", "sequencer.deliverability", "sequencer.enrollments", "sequencer.intake", "sequencer.rules",
    "sequencer.meetings", "sequencer.inbound", "sequencer.reports", "sequencer.engine", "sequencer.loopback",
    "sequencer.app",
]


def python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """Every module ``path`` imports, anywhere in it (inside functions too), with its line.

    ``from a.b import c`` counts as ``a.b`` and as ``a.b.c`` (``c`` may be a module);
    a relative import is resolved against the file's own package.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def offending(paths: list[Path], forbidden: str, root: Path = ROOT) -> list[str]:
    return sorted({f"{path.relative_to(root)}:{line}: imports {name}"
                   for path in paths for line, name in imported_modules(path, root) if within(name, forbidden)})


def test_the_scan_sees_imports_of_every_form(tmp_path: Path) -> None:
    """The checker itself: plain, from, nested and relative imports are all found."""
    package = tmp_path / "channels"
    package.mkdir()
    (package / "__init__.py").write_text("")
    sample = package / "sample.py"
    sample.write_text("import os\nfrom sequencer.core import models\n\ndef f():\n    import sequencer.app.cli\n"
                      "from . import email\n")
    assert set(imported_modules(sample, tmp_path)) == {
        (1, "os"), (2, "sequencer.core"), (2, "sequencer.core.models"), (5, "sequencer.app.cli"),
        (6, "channels"), (6, "channels.email"),
    }
    assert offending([sample], "sequencer", tmp_path) == [
        "channels/sample.py:2: imports sequencer.core", "channels/sample.py:2: imports sequencer.core.models",
        "channels/sample.py:5: imports sequencer.app.cli",
    ]


@pytest.mark.parametrize("package", ["channels", "suppression"])
def test_channels_and_suppression_import_nothing_from_sequencer(package: str) -> None:
    paths = python_files(package)
    assert paths
    assert offending(paths, "sequencer") == []


def test_suppression_imports_nothing_from_channels() -> None:
    assert offending(python_files("suppression"), "channels") == []


def test_only_the_app_layer_imports_sequencer_app() -> None:
    outside = [path for path in python_files("sequencer") if not path.is_relative_to(APP)]
    assert offending(outside, "sequencer.app") == []


@pytest.mark.parametrize("entry_point", ["sequencer.app.cli", "sequencer.app.api"])
def test_the_entry_points_are_imported_only_inside_the_app_layer(entry_point: str) -> None:
    """No library module (nor a benchmark) builds on the CLI or the HTTP API; tests may drive them."""
    outside = [path for path in python_files("sequencer", "channels", "suppression", "bench")
               if not path.is_relative_to(APP)]
    assert offending(outside, entry_point) == []


def layer_of(module: str) -> int | None:
    for index, layer in reversed(list(enumerate(LAYERS))):
        if within(module, layer):
            return index
    return None


def test_every_package_imports_only_the_layers_below_it() -> None:
    """No package-level cycle: a module of layer N imports nothing from a layer after N."""
    upward = []
    for path in python_files("suppression", "channels", "sequencer"):
        own = layer_of(module_name(path))
        if own is None:  # sequencer/__init__.py
            continue
        for line, name in imported_modules(path):
            other = layer_of(name)
            if other is not None and other > own:
                upward.append(f"{path.relative_to(ROOT)}:{line}: imports {name} ({LAYERS[other]} is above "
                              f"{LAYERS[own]})")
    assert sorted(set(upward)) == []


def test_every_package_has_a_layer() -> None:
    packages = {module_name(path.parent / "__init__.py") for path in python_files("sequencer")
                if (path.parent / "__init__.py").exists() and path.parent != ROOT / "sequencer"}
    assert {package for package in packages if layer_of(package) is None} == set()


def test_no_module_level_import_cycle() -> None:
    """Within the layers too: no two modules import each other, directly or through others."""
    paths = python_files("suppression", "channels", "sequencer")
    modules = {module_name(path): path for path in paths}
    graph = {name: {imported for _, imported in imported_modules(path) if imported in modules and imported != name
                    and not name.startswith(imported + ".")}
             for name, path in modules.items()}
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, trail: list[str]) -> list[str]:
        seen[name] = 1
        for other in sorted(graph[name]):
            if seen.get(other) == 1:
                return [*trail, name, other]
            if other not in seen and (cycle := visit(other, [*trail, name])):
                return cycle
        seen[name] = 2
        return []

    cycles = [cycle for name in sorted(graph) if name not in seen and (cycle := visit(name, []))]
    assert cycles == []
