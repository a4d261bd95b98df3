"""The layers the tree shows hold in the imports: no cycle, and each package imports only the
layers below it (README "Layout")."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# core -> domain -> store -> ingest | worker -> ops -> console | cli (README "Layout")
PACKAGES = ("core", "domain", "store", "ingest", "worker", "ops", "console", "cli")
PROJECT = (*PACKAGES, "schemas")
# package -> the project packages it may import (besides itself)
ALLOWED = {
    "core": {"schemas"},
    "domain": {"core.errors"},
    "store": {"core", "domain"},
    "ingest": {"core", "schemas"},
    "worker": {"core", "domain", "store", "schemas"},
    "ops": {"core", "domain", "store", "worker", "schemas"},
    "console": {"core", "domain", "store", "ops", "schemas"},
    "cli": {"core", "domain", "store", "ingest", "worker", "ops", "console", "schemas"},
}
IO_LIBRARIES = {"asyncpg", "aio_pika", "aiormq", "aiohttp", "prometheus_client", "structlog"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports; `from store import sql` imports store.sql, not
    the package's __init__ (a package importing its own rooms is no cycle)."""
    modules = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        found = {i for i in imports_of(path) if i in modules and i != name}
        packages = {i.rpartition(".")[0] for i in found}
        edges[name] = {i for i in found if i not in packages or _names_more_than_modules(path, i)}
    return edges


def _names_more_than_modules(path: Path, package: str) -> bool:
    """Whether `from package import ...` in this file takes anything but submodules."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == package and node.level == 0:
            submodules = {p.stem for p in (ROOT / package.replace(".", "/")).glob("*.py")}
            if any(alias.name not in submodules for alias in node.names):
                return True
        if isinstance(node, ast.Import) and any(a.name == package for a in node.names):
            return True
    return False


def test_no_import_cycle() -> None:
    edges = graph()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(name) :], name]))
        if name in done:
            return
        for target in edges[name]:
            visit(target, [*path, name])
        done.add(name)

    for name in edges:
        visit(name, [])


def test_each_package_imports_only_the_layers_below() -> None:
    for package, allowed in ALLOWED.items():
        for path in (ROOT / package).rglob("*.py"):
            for name in imports_of(path):
                top = name.split(".")[0]
                if top not in PROJECT or top == package:
                    continue
                assert any(name == a or name.startswith(a + ".") for a in allowed), (
                    f"{path.relative_to(ROOT)} imports {name}"
                )


def test_the_domain_does_no_io() -> None:
    for path in (ROOT / "domain").rglob("*.py"):
        used = {name.split(".")[0] for name in imports_of(path)} & IO_LIBRARIES
        assert not used, f"{path.relative_to(ROOT)} imports {used}"


def test_every_package_says_what_lives_there() -> None:
    for package in (*PACKAGES, "testkit"):
        docstring = ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text()))
        assert docstring, f"{package}/__init__.py has no docstring"


def test_only_the_store_and_core_database_import_the_driver() -> None:
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if path.relative_to(ROOT).as_posix() == "core/database.py":
                continue
            assert "asyncpg" not in {n.split(".")[0] for n in imports_of(path)}, path


def test_no_shipped_module_is_over_500_lines() -> None:
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            lines = len(path.read_text().splitlines())
            assert lines <= 500, f"{path.relative_to(ROOT)} has {lines} lines"
