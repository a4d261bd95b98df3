"""The layers the tree shows hold in the imports: no cycle, and each package imports only the
layers below it (README "Layout")."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "domain", "ingest", "worker", "console", "cli")
PROJECT = (*PACKAGES, "schemas")
# package -> the project packages it may import (besides itself)
ALLOWED = {
    "core": {"schemas"},
    "domain": {"core.errors"},
    "ingest": {"core", "schemas"},
    "worker": {"core", "domain", "schemas"},
    "console": {"core", "domain", "worker", "schemas"},
    "cli": {"core", "domain", "ingest", "worker", "console", "schemas"},
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
    modules = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    return {
        name: {i for i in imports_of(path) if i in modules and i != name}
        for name, path in modules.items()
    }


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
