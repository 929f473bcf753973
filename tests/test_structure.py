"""The shape of the code, kept: no module of the services over 450 lines, im-rpc's imports
going one way (the longest chain of imports between its own modules at most 7 modules, no
circle), and no layer importing one above it (docs/development.md, "Where code goes")."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("http_svc", "rpc_svc", "im_common")
MAX_LINES = 450
MAX_CHAIN = 7
# (package, a package it must never import): the layers of rpc_svc, top to bottom
NEVER = [
    ("rpc_svc.domain", "rpc_svc.service"),
    ("rpc_svc.domain", "rpc_svc.store"),
    ("rpc_svc.domain", "rpc_svc.edge"),
    ("rpc_svc.store", "rpc_svc.service"),
    ("rpc_svc.store", "rpc_svc.edge"),
    ("rpc_svc.service", "rpc_svc.edge"),
    ("rpc_svc.edge", "rpc_svc.store"),
    ("http_svc", "rpc_svc"),
    ("http_svc", "redis"),
]


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The modules `path` imports (any import statement, TYPE_CHECKING ones included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _graph(package: str) -> dict[str, set[str]]:
    files = {_module(p): p for p in (ROOT / package).rglob("*.py")}
    return {
        name: {m for m in _imports(path) if m in files and m != name}
        for name, path in files.items()
    }


@pytest.mark.parametrize("package", SERVICES)
def test_no_module_is_over_450_lines(package: str) -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / package).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_im_rpc_imports_go_one_way_in_chains_of_at_most_seven_modules() -> None:
    graph = _graph("rpc_svc")

    @functools.cache
    def chain(name: str, path: tuple[str, ...] = ()) -> tuple[str, ...]:
        assert name not in path, f"a circle: {' -> '.join((*path, name))}"
        longest = max((chain(m, (*path, name)) for m in graph[name]), key=len, default=())
        return (name, *longest)

    longest = max((chain(name) for name in graph), key=len)
    assert len(longest) <= MAX_CHAIN, " -> ".join(longest)


@pytest.mark.parametrize(("above", "below"), NEVER)
def test_no_layer_imports_one_it_must_not(above: str, below: str) -> None:
    package = above.split(".")[0]
    offenders = {
        _module(path): sorted(m for m in _imports(path) if m == below or m.startswith(below + "."))
        for path in (ROOT / package).rglob("*.py")
        if _module(path) == above or _module(path).startswith(above + ".")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
