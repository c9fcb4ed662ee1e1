"""Imports point one way: views -> workflow -> store -> engine; diff -> engine; cli -> anything.

docs/architecture.md states the rule; this reads every module's imports (without importing it)
so a layer that reaches up fails here, with the file and line that does it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: the layer of each part of the package, and the layers it may import
LAYERS = {
    "errors": set(),
    # logging and metric helpers (approvalrules/observability.py): any layer may record
    "observability": set(),
    "engine": {"errors"},
    "diff": {"errors", "engine"},
    "store": {"errors", "engine", "observability"},
    "workflow": {"errors", "engine", "store", "observability"},
    "views": {
        "errors",
        "observability",
        "engine",
        "store",
        "workflow",
        "diff",
        "app",
        "rulesfolder",
        "templates",
        "schemas",
    },
}


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "approvalrules" or len(parts) < 2:
        return None
    return parts[1]


def _module_name(path: Path) -> tuple[str, bool]:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "views":
        parts = ["approvalrules", *parts]
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def _imports(path: Path):
    """(line, absolute module) for every import in ``path``, relative ones resolved."""
    module, is_package = _module_name(path)
    package = module if is_package else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target
            if not node.module:  # `from . import x` imports the submodules x
                for alias in node.names:
                    yield node.lineno, f"{target}.{alias.name}"


def _sources():
    for folder in ("approvalrules", "views"):
        yield from sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", list(_sources()), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down_the_layers(path):
    own = _layer_of(_module_name(path)[0])
    if own not in LAYERS:
        return  # app.py, cli.py and the package root may import anything
    allowed = LAYERS[own] | {own}
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: {own} imports {target}"
        for line, target in _imports(path)
        if _layer_of(target) not in (None, *allowed)
    ]
    assert not wrong, "imports that point up a layer:\n" + "\n".join(wrong)


def test_the_engine_imports_no_framework_or_database():
    frameworks = (
        "pyramid",
        "sqlalchemy",
        "zope",
        "transaction",
        "deform",
        "webob",
        "waitress",
        "alembic",
    )
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: {target}"
        for path in sorted((ROOT / "approvalrules" / "engine").rglob("*.py"))
        for line, target in _imports(path)
        if target.split(".")[0] in frameworks
    ]
    assert not wrong, "the engine must stay pure Python:\n" + "\n".join(wrong)
