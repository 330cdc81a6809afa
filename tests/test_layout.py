"""The kernel/plugin boundary: plugins import only `ganzoo.api`, the kernel names no plugin
package, kernel imports form no circle, and no module grows past the size a reader can hold."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ganzoo.api

REPO = Path(__file__).resolve().parents[1]
KERNEL = REPO / "ganzoo"
MAX_LINES = 400
# Entry points that import lazily on purpose, to keep `ganzoo --version` and `import ganzoo` fast.
LAZY_ENTRY_POINTS = {"ganzoo/cli.py", "ganzoo/__init__.py"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, local_only: bool = False) -> set[str]:
    """Absolute names of the modules `path` imports (`from . import x` resolved); with
    `local_only`, only imports inside functions."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    nodes = ast.walk(tree)
    if local_only:
        nodes = (n for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(fn))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if (REPO / Path(*sub.split("."))).with_suffix(".py").exists() else base)
    return found


def kernel_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in KERNEL.rglob("*.py")}
    return {m: {t for t in imported_modules(p) if t in modules and t != m} for m, p in modules.items()}


def python_files(*roots: str) -> list[Path]:
    return [p for root in roots for p in sorted((REPO / root).rglob("*.py")) if "tests" not in p.relative_to(REPO).parts]


@pytest.mark.parametrize("path", python_files("plugins", "examples"), ids=lambda p: str(p.relative_to(REPO)))
def test_plugins_import_only_the_public_surface(path: Path) -> None:
    bypass = sorted(m for m in imported_modules(path) if m.startswith("ganzoo.") and m != "ganzoo.api")
    assert not bypass, f"{path.relative_to(REPO)} imports {bypass}; plugins import ganzoo.api only"


def test_the_kernel_imports_no_plugin_package() -> None:
    plugin_packages = {p.name for p in (REPO / "plugins").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    for path in KERNEL.rglob("*.py"):
        named = {m.split(".")[0] for m in imported_modules(path)} & plugin_packages
        assert not named, f"{path.relative_to(REPO)} imports plugin package(s) {sorted(named)}"


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of `graph` (module -> imported modules), or None."""
    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> list[str] | None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return trail[trail.index(target):] + [target]
            if target not in state and (circle := visit(target, trail + [target])):
                return circle
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (circle := visit(module, [module])):
            return circle
    return None


def test_kernel_imports_form_no_circle() -> None:
    graph = kernel_graph()
    assert len(graph) > 10
    circle = find_circle(graph)
    assert circle is None, "import circle: " + " -> ".join(circle)


def test_the_circle_check_sees_a_circle() -> None:
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": set()}) is None


def test_no_function_local_imports_between_kernel_modules() -> None:
    for path in KERNEL.rglob("*.py"):
        if str(path.relative_to(REPO)) in LAZY_ENTRY_POINTS:
            continue
        local = sorted(m for m in imported_modules(path, local_only=True) if m == "ganzoo" or m.startswith("ganzoo."))
        assert not local, f"{path.relative_to(REPO)} imports {local} inside a function; import at module level"


@pytest.mark.parametrize("path", python_files("ganzoo", "plugins"), ids=lambda p: str(p.relative_to(REPO)))
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(REPO)} has {lines} lines (> {MAX_LINES}): split it by responsibility"


def test_the_api_exports_what_it_lists() -> None:
    missing = [name for name in ganzoo.api.__all__ if not hasattr(ganzoo.api, name)]
    assert not missing and len(set(ganzoo.api.__all__)) == len(ganzoo.api.__all__)


def test_the_lazy_api_table_matches_its_static_imports() -> None:
    """`ganzoo.api` resolves names from EXPORTS at run time; the TYPE_CHECKING imports are what
    readers and type checkers see. Both must name the same objects."""
    tree = ast.parse((KERNEL / "api.py").read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", None) == "TYPE_CHECKING")
    static = {alias.asname or alias.name: f"{node.module}:{alias.name}" for node in block.body for alias in node.names}
    assert static == ganzoo.api.EXPORTS
