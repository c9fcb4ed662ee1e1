"""The engine's public face: text in, policies and decisions out.

load -> validate -> compile -> evaluate (-> diff in ``approvalrules.diff``).
Pure Python: nothing here imports Pyramid or a database.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path

from ..errors import DocumentError
from .check import Resolver, ValidatedRuleSet, check_directory, check_document, check_ruleset
from .directory import Directory, MemoryDirectory
from .load import Document, load_document
from .policy import Decision, Order, Policy, compile_policy, data_hash, text_hash

__all__ = [
    "Decision",
    "Directory",
    "Document",
    "DocumentError",
    "MemoryDirectory",
    "Order",
    "Policy",
    "ValidatedRuleSet",
    "check_ruleset",
    "check_document",
    "compile_ruleset",
    "compile_policy",
    "load_directory",
    "load_document",
    "text_hash",
    "data_hash",
    "folder_resolver",
    "PolicyCache",
]


class PolicyCache:
    """Compiled policies keyed by content hash, bounded, thread-safe.

    A version's text never changes, so its hash is a key that never needs
    invalidation: a new version is a new key.
    """

    def __init__(self, size: int = 2048):
        self.size = size
        self._items: OrderedDict[str, Policy] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str):
        with self._lock:
            policy = self._items.get(key)
            if policy is not None:
                self._items.move_to_end(key)
            return policy

    def put(self, key: str, policy: Policy) -> Policy:
        with self._lock:
            self._items[key] = policy
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return policy

    def __len__(self) -> int:
        return len(self._items)


_cache = PolicyCache()


def compile_ruleset(
    text: str | bytes,
    source: str | None = None,
    resolve: Resolver | None = None,
    *,
    version: int | None = None,
) -> Policy:
    """Validate and compile rule-set text into a :class:`Policy`; raises :class:`DocumentError`.

    Standalone rule sets are cached by the hash of their text.  A rule set that
    ``extends`` another depends on its parent's text too, so it is cached by
    the hash of the resolved data instead (validation still runs).
    """
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    key = f"{hashlib.sha256(raw).hexdigest()}:{version}"
    cached = _cache.get(key)
    if cached is not None:
        return cached
    checked = check_ruleset(text, source, resolve)
    policy = compile_policy(checked, version)
    if checked.parent is None:
        _cache.put(key, policy)
    return policy


def load_directory(text: str | bytes, source: str | None = None) -> MemoryDirectory:
    """Load and validate a directory fixture into a :class:`MemoryDirectory`."""
    from ..errors import DirectoryError

    doc = check_directory(text, source)
    try:
        return MemoryDirectory.from_dict(doc.data)
    except DirectoryError as exc:
        path = tuple(p for p in exc.path.split(".") if p) if exc.path else ()
        raise DocumentError([doc.problem(exc.code, exc.message, path)]) from None


def folder_resolver(folder: str | Path) -> Resolver:
    """Resolve ``extends: NAME`` to ``folder/NAME.yaml``, or to the file in folder whose ``ruleset:`` is NAME."""
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
