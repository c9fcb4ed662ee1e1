"""Helpers for the engine tests: build policies and directories from dicts or YAML strings.

Everything here is pure engine (no Pyramid, no database).  Tests write their
rule sets inline, as Python dicts or YAML text, so each test shows the rules
it depends on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from approvalrules.engine import Policy, ValidatedRuleSet, check_ruleset, compile_ruleset
from approvalrules.engine.directory import MemoryDirectory
from approvalrules.errors import DocumentError, Problem

NOW = "2026-01-15T12:00:00Z"

#: a small org used by most evaluation tests:
#: company acme with groups sales and ops; boss is master; mgr-sales and mgr-ops
#: are managers in their groups; sam (sales) and olga (ops) are users; lou has no group.
BASE_ROLES = {
    "admin": {
        "label": "Company Admin",
        "permissions": ["place_orders", "approve_orders", "manage_accounts"],
    },
    "manager": {"label": "Company Manager", "permissions": ["place_orders", "approve_orders"]},
    "user": {"label": "Company User", "permissions": ["place_orders"]},
    "viewer": {"label": "Viewer", "permissions": []},
}

BASE_DIRECTORY: dict[str, Any] = {
    "companies": {
        "acme": {"name": "Acme", "groups": {"sales": {"name": "Sales"}, "ops": {"name": "Ops"}}},
    },
    "accounts": {
        "boss": {
            "name": "Boss",
            "email": "boss@acme.test",
            "memberships": [{"company": "acme", "role": "admin", "master": True}],
        },
        "mgr-sales": {
            "name": "Mia",
            "email": "mia@acme.test",
            "memberships": [{"company": "acme", "role": "manager", "group": "sales"}],
        },
        "mgr-ops": {
            "name": "Otto",
            "email": "otto@acme.test",
            "memberships": [{"company": "acme", "role": "manager", "group": "ops"}],
        },
        "sam": {
            "name": "Sam",
            "email": "sam@acme.test",
            "memberships": [{"company": "acme", "role": "user", "group": "sales"}],
        },
        "olga": {
            "name": "Olga",
            "email": "olga@acme.test",
            "memberships": [{"company": "acme", "role": "user", "group": "ops"}],
        },
        "lou": {
            "name": "Lou",
            "email": "lou@acme.test",
            "memberships": [{"company": "acme", "role": "user"}],
        },
    },
}


def to_yaml(data: dict) -> str:
    """YAML text for a dict (block style, keys in the given order)."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def ruleset(**fields: Any) -> dict:
    """A rule-set dict named ``t`` with the base roles, updated with ``fields``."""
    data: dict[str, Any] = {"ruleset": "t", "currency": "USD", "roles": BASE_ROLES}
    data.update(fields)
    return data


def make_policy(source: dict | str, resolve=None) -> Policy:
    """Validate and compile a rule set given as a dict or YAML text."""
    text = source if isinstance(source, str) else to_yaml(source)
    return compile_ruleset(text, "t.yaml", resolve)


def checked(source: dict | str, resolve=None) -> ValidatedRuleSet:
    text = source if isinstance(source, str) else to_yaml(source)
    return check_ruleset(text, "t.yaml", resolve)


def make_directory(data: dict | None = None, **changes: Any) -> MemoryDirectory:
    """A MemoryDirectory from ``data`` (default: BASE_DIRECTORY).

    The top-level ``changes`` are applied to it.
    """
    base = json.loads(json.dumps(data if data is not None else BASE_DIRECTORY))
    base.update(changes)
    return MemoryDirectory.from_dict(base)


def with_account(account_id: str, spec: dict, data: dict | None = None) -> dict:
    """A copy of a directory dict with one account added or replaced."""
    base = json.loads(json.dumps(data if data is not None else BASE_DIRECTORY))
    base["accounts"][account_id] = spec
    return base


def problems_of(text: str | bytes, source: str = "t.yaml", resolve=None) -> list[Problem]:
    """The problems check_ruleset raises for ``text``; fails the test if it raises nothing else."""
    with pytest.raises(DocumentError) as info:
        check_ruleset(text, source, resolve)
    assert info.value.problems, "a DocumentError must list at least one problem"
    return info.value.problems


def only_problem(text: str | bytes, source: str = "t.yaml", resolve=None) -> Problem:
    problems = problems_of(text, source, resolve)
    assert len(problems) == 1, [p.format() for p in problems]
    return problems[0]


def load_in_subprocess(text: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``load_document(text)`` in a fresh interpreter; prints the first problem as JSON.

    Inputs that may crash the C parser (deep nesting) are tried here so that a
    segfault fails one test instead of killing the whole run.
    """
    code = (
        "import sys, json\n"
        "from approvalrules.engine.load import load_document\n"
        "from approvalrules.errors import DocumentError\n"
        "text = sys.stdin.read()\n"
        "try:\n"
        "    load_document(text, 'deep.yaml')\n"
        "    print(json.dumps({'ok': True}))\n"
        "except DocumentError as e:\n"
        "    p = e.problems[0]\n"
        "    print(json.dumps({'code': p.code, 'line': p.line, 'path': p.path,"
        " 'text': p.format()}))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], input=text, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def directory() -> MemoryDirectory:
    return make_directory()


@pytest.fixture
def write(tmp_path):
    """write(name, text_or_dict) -> Path of a file in tmp_path (dicts become YAML)."""

    def _write(name: str, content: str | dict) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else to_yaml(content), encoding="utf-8")
        return path

    return _write
