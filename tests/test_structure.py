"""How the library is put together: modules that depend one way, and a command line that starts at once."""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

import vdna

PACKAGE = Path(vdna.__file__).parent
HEAVY = ("torch", "numba", "timm")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The library modules ``path`` imports, at the top or inside functions (not under ``TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text())
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.update(name for name in (target, *(f"{target}.{alias.name}" for alias in node.names)) if name in modules)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
    return found - {_module_name(path)}


def dependency_graph() -> dict[str, set[str]]:
    """``{module: library modules it imports}`` over every module of the package."""
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: _imports(path, set(paths)) for name, path in paths.items()}


def _imported_by(graph: dict[str, set[str]], module: str) -> set[str]:
    """Every library module ``module`` imports, directly or through others."""
    found, todo = set(), [module]
    while todo:
        for name in graph[todo.pop()] - found:
            found.add(name)
            todo.append(name)
    return found


def test_modules_depend_one_way_even_inside_functions():
    graph = dependency_graph()
    assert "vdna.engine" in graph and "vdna.dna" in graph["vdna.io"]
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")
    for low, high in (("vdna.kernels", "vdna.dna"), ("vdna.dna", "vdna.distributions"), ("vdna.distributions", "vdna.io"),
                      ("vdna.io", "vdna.distances"), ("vdna.distances", "vdna.neurons"), ("vdna.engine", "vdna.processor"),
                      ("vdna.engine", "vdna.distributed"), ("vdna.engine", "vdna.metrics"), ("vdna.distances", "vdna.metrics"),
                      ("vdna.engine", "vdna.explain"), ("vdna.explain", "vdna.report"), ("vdna.report", "vdna.cli")):
        assert high not in _imported_by(graph, low), (low, high)
    assert "vdna.engine" in _imported_by(graph, "vdna.metrics")
    assert not {name for name in graph["vdna.dna"] if name.startswith(("vdna.distances", "vdna.io"))}
    assert {name for name, imported in graph.items() if "vdna.explain" in imported} == {"vdna.report"}
    assert {"vdna.engine", "vdna.processor"} <= graph["vdna.explain"] and "vdna.explain" in graph["vdna.report"]


def test_the_ray_backend_uses_no_private_name_of_another_module():
    tree = ast.parse((PACKAGE / "distributed.py").read_text())
    private = [alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level
               for alias in node.names if alias.name.startswith("_")]
    assert private == []


def _imported_after(code: str) -> list[str]:
    script = f"import sys\n{code}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return eval(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], ["make", "--help"], ["compare", "--help"], ["report", "--help"],
                                  ["rank", "--help"], ["extractors"]])
def test_help_and_listing_import_no_network_library(argv):
    code = f"from vdna.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
    assert _imported_after(code) == []


def test_inspect_reads_a_dna_without_the_network_libraries(fixtures_dir):
    code = f"from vdna.cli import main\nassert main(['inspect', {str(fixtures_dir / 'hist_a')!r}]) == 0"
    assert _imported_after(code) == []
    assert _imported_after("import vdna; vdna.RunConfig; vdna.list_extractors()") == []
    assert "torch" in _imported_after("from vdna import VDNAProcessor, EMD")


def test_every_listed_name_of_the_package_resolves():
    for name in vdna.__all__:
        assert getattr(vdna, name) is not None, name
    with pytest.raises(AttributeError, match="has no attribute 'not_a_name'"):
        vdna.not_a_name  # noqa: B018
