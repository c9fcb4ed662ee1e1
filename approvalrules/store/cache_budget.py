"""Per-process caches bounded by an approximate size in bytes, not by a count of entries.

A tenant's whole directory snapshot and one company's slice differ in size by
orders of magnitude: a count (the former ``SNAPSHOTS_KEPT = 256``) bounds
neither.  Entries carry an estimate (records counted at build time times
:data:`BYTES_PER_ROW`) and each cache evicts its least recently used entries
past ``approvalrules.cache.max_bytes`` (default 64 MiB per cache).
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from .. import observability

#: default byte budget of each per-process cache (``approvalrules.cache.max_bytes``)
DEFAULT_MAX_BYTES = 64 * 1024 * 1024

#: approximate bytes one directory record costs in a MemoryDirectory (the record, its
#: MappingProxy fields, its place in the indexes): bench/tenant_size.py measured 888 (RSS
#: growth of a 50,000-account tenant's snapshot / its records), rounded up for the engine's
#: approver pools built on a directory
BYTES_PER_ROW = 1_000

#: the least an entry is counted as: the directory object and its empty indexes
BYTES_PER_ENTRY = 4_096


class ByteBudgetCache:
    """A per-process LRU map whose entries have an approximate size in bytes.

    Past ``max_bytes`` the least recently used entries go; the newest entry is kept
    even when it alone is larger than the budget (a cache that held nothing would
    rebuild it on every call).  ``hits`` / ``misses`` / ``evictions`` count lookups
    and drops, for metrics.  Thread-safe; values are built outside the lock by the
    caller.
    """

    def __init__(self, name: str, max_bytes: int = DEFAULT_MAX_BYTES):
        self.name = name
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        # the same counts for /metrics (approvalrules_cache_hits_total{cache=name}, ...)
        self._hit_counter, self._miss_counter = observability.cache_counters(name)

    @property
    def bytes(self) -> int:
        """The approximate size of every entry held."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Any:
        """The entry under ``key`` (now the most recently used), or None."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                self._miss_counter.inc()
                return None
            self.hits += 1
            self._hit_counter.inc()
            self._entries.move_to_end(key)
            return found[0]

    def put(self, key: Hashable, value: Any, size: int) -> None:
        """Store ``value`` of about ``size`` bytes under ``key``, evicting what is over budget."""
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (value, size)
            self._bytes += size
            self._evict()

    def resize(self, max_bytes: int) -> None:
        """A new budget, applied at once."""
        with self._lock:
            self.max_bytes = max_bytes
            self._evict()

    def _evict(self) -> None:
        while self._bytes > self.max_bytes and len(self._entries) > 1:
            _, (_, dropped) = self._entries.popitem(last=False)
            self._bytes -= dropped
            self.evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


def entry_size(rows: int) -> int:
    """The approximate bytes an entry of ``rows`` directory records holds."""
    return BYTES_PER_ENTRY + rows * BYTES_PER_ROW


#: every cache that ``approvalrules.cache.max_bytes`` sizes, by name
_BUDGETED: dict[str, ByteBudgetCache] = {}


def budgeted_cache(name: str) -> ByteBudgetCache:
    """The process's cache called ``name``, created on first use with the configured budget."""
    cache = _BUDGETED.get(name)
    if cache is None:
        cache = _BUDGETED.setdefault(name, ByteBudgetCache(name, _budget["max_bytes"]))
    return cache


_budget = {"max_bytes": DEFAULT_MAX_BYTES}


def budgeted_caches() -> list[ByteBudgetCache]:
    """Every cache sized by ``approvalrules.cache.max_bytes`` (each has ``name``, ``hits``,
    ``misses``, ``evictions``, ``bytes`` and a length, for metrics)."""
    return list(_BUDGETED.values())


def configure(settings) -> None:
    """Apply ``approvalrules.cache.max_bytes`` (bytes, per cache) to the per-process caches."""
    raw = settings.get("approvalrules.cache.max_bytes")
    if raw in (None, ""):
        return
    try:
        max_bytes = int(str(raw).replace("_", ""))
    except ValueError:
        max_bytes = 0
    if max_bytes <= 0:
        raise ValueError(
            f"approvalrules.cache.max_bytes must be a positive number of bytes, not {raw!r}"
        )
    _budget["max_bytes"] = max_bytes
    for cache in _BUDGETED.values():
        cache.resize(max_bytes)


def includeme(config) -> None:
    """Pyramid: size the caches from the app's settings."""
    configure(config.get_settings())


def approximate_size(value: Any) -> int:
    """``sys.getsizeof`` summed over an object graph (for measuring, not the hot path)."""
    seen: set[int] = set()
    stack = [value]
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif isinstance(obj, (str, bytes, int, float, bool, type(None))):
            continue
        else:
            if hasattr(obj, "__dict__"):
                stack.append(vars(obj))
            for cls in type(obj).__mro__:
                slots = cls.__dict__.get("__slots__", ())
                slots = (slots,) if isinstance(slots, str) else slots
                stack.extend(getattr(obj, s) for s in slots if hasattr(obj, s))
    return total
