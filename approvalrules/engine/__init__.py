"""The engine's public face: text in, policies and decisions out.

load -> check -> compile -> evaluate (-> diff in ``approvalrules.diff``).
Pure Python: nothing here imports Pyramid or a database
(``tests/engine/test_boundaries.py`` keeps it so).

Code outside the engine imports engine names from here, or from the stable
submodules ``load``, ``money``, ``durations``, ``currencies``, ``directory`` and
``conditions``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DirectoryError, DocumentError
from .buyer import resolve_buyer
from .cache import PolicyCache
from .check import (
    Resolver,
    ValidatedRuleSet,
    check_document,
    check_ruleset,
    directory_problems,
    listed_names,
)
from .compile import CompiledStep, Policy, compile_policy, data_hash
from .decision import ORDER_TYPES, Decision, Order, priced_total
from .directory import Directory, MemoryDirectory
from .load import GUARD_CODES, Document, guard_problems, load_document, text_hash
from .ruletests import run_tests
from .schema import check_directory, schema, validator

__all__ = [
    "listed_names",
    "GUARD_CODES",
    "ORDER_TYPES",
    "CompiledStep",
    "Decision",
    "Directory",
    "Document",
    "DocumentError",
    "MemoryDirectory",
    "Order",
    "Policy",
    "PolicyCache",
    "Resolver",
    "ValidatedRuleSet",
    "check_directory",
    "check_document",
    "check_ruleset",
    "directory_problems",
    "compile_policy",
    "compile_ruleset",
    "data_hash",
    "folder_resolver",
    "load_directory",
    "guard_problems",
    "load_document",
    "priced_total",
    "resolve_buyer",
    "run_tests",
    "schema",
    "text_hash",
    "validator",
]


def compile_ruleset(
    text: str | bytes,
    source: str | None = None,
    resolve: Resolver | None = None,
    *,
    version: int | None = None,
    published: bool = False,
) -> Policy:
    """Validate and compile rule-set text into a :class:`Policy`; raises :class:`DocumentError`.

    Pure: it compiles every time.  A caller that compiles the same text often
    keeps the result, e.g. in a :class:`PolicyCache` keyed by the text's hash
    (``approvalrules.store.versions`` does).  ``published=True`` for a version published
    already: checks added since then warn instead of refusing it (see :func:`check_ruleset`).
    """
    return compile_policy(check_ruleset(text, source, resolve, published=published), version)


def load_directory(text: str | bytes, source: str | None = None) -> MemoryDirectory:
    """Load and validate a directory fixture into a :class:`MemoryDirectory`."""
    doc = check_directory(text, source)
    try:
        return MemoryDirectory.from_dict(doc.data)
    except DirectoryError as exc:
        # "accounts.sam.memberships.0": indexes are numbers in the document's paths
        path = tuple(int(p) if p.isdigit() else p for p in (exc.path or "").split(".") if p)
        raise DocumentError([doc.problem(exc.code, exc.message, path)]) from None


def folder_resolver(folder: str | Path) -> Resolver:
    """Resolve ``extends: NAME`` to ``folder/NAME.yaml``, or to the file in folder whose
    ``ruleset:`` is NAME."""
    folder = Path(folder)

    def resolve(name: str):
        candidate = folder / f"{name}.yaml"
        if candidate.is_file():
            return load_document(candidate.read_text("utf-8"), str(candidate))
        for path in sorted(folder.glob("*.yaml")):
            try:
                doc = load_document(path.read_text("utf-8"), str(path))
            except DocumentError:
                continue
            if isinstance(doc.data, dict) and doc.data.get("ruleset") == name:
                return doc
        return None

    return resolve
