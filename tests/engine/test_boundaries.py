"""The engine is pure Python: importing it pulls in no web framework, database or service layer."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import approvalrules.engine

#: what the engine must never import (directly or through a dependency)
FORBIDDEN = (
    "pyramid",
    "sqlalchemy",
    "zope.sqlalchemy",
    "transaction",
    "deform",
    "webob",
    "waitress",
    "alembic",
    "approvalrules.store",
    "approvalrules.workflow",
    "approvalrules.views",
    "approvalrules.cli",
    "approvalrules.diff",
)


def engine_modules() -> list[str]:
    """``approvalrules.engine`` and every module in it."""
    return ["approvalrules.engine"] + [
        module.name
        for module in pkgutil.iter_modules(approvalrules.engine.__path__, "approvalrules.engine.")
    ]


def test_the_engine_imports_no_web_database_or_service_module():
    modules = engine_modules()
    # every submodule, so a new one is covered without editing this test
    assert {"approvalrules.engine.compile", "approvalrules.engine.evaluate"} <= set(modules)
    # a fresh interpreter: this test process has imported everything already
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(n for n in {list(FORBIDDEN)!r} if n in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(result.stdout) == []
