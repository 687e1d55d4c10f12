"""The shape of :mod:`signing`, checked on its source: it depends on :mod:`schemas` only, its
modules import each other without cycles, none is too long, argparse and rich stay in
``signing/cli``, and the curated API is what ``signing.__all__`` says."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import signing

ROOT = Path(signing.__file__).resolve().parent
LIMIT = 600  # lines; the aim is ~400


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports, at any level of the file (type-checking blocks too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


MODULES = _modules()
IMPORTS = {name: _imports(name, path) for name, path in MODULES.items()}


def test_signing_depends_on_schemas_never_on_the_hub():
    for name, imported in IMPORTS.items():
        assert not [m for m in imported if m.split(".")[0] in ("exchange", "adapters")], name


def test_no_import_cycles_between_signing_modules():
    graph = {
        name: {m for m in imported if m in MODULES and m != name and m != "signing"}
        for name, imported in IMPORTS.items()
    }
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                pytest.fail("import cycle: " + " -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_no_module_is_too_long():
    lengths = {name: len(path.read_text("utf-8").splitlines()) for name, path in MODULES.items()}
    assert {n: k for n, k in lengths.items() if k > LIMIT} == {}


def test_argparse_and_rich_only_in_the_command_line():
    for name, imported in IMPORTS.items():
        if name.startswith("signing.cli"):
            continue
        assert not [m for m in imported if m.split(".")[0] in ("argparse", "rich")], name


def test_the_public_api():
    assert len(signing.__all__) == len(set(signing.__all__))
    for name in signing.__all__:
        assert getattr(signing, name) is not None, name
    for sync, core in [
        ("validate_pdf", "async_validate_pdf"),
        ("validate_package", "async_validate_package"),
        ("verify_package", "async_verify_package"),
        ("sign_pdf", "async_sign_pdf"),
        ("sign_package", "async_sign_package"),
        ("add_archive_timestamp", "async_add_archive_timestamp"),
    ]:
        assert sync in signing.__all__ and core in signing.__all__
