"""A bounded, thread-safe cache of compiled policies keyed by content hash."""

from __future__ import annotations

import threading
from collections import OrderedDict

from .compile import Policy


class PolicyCache:
    """Compiled policies keyed by content hash, bounded, thread-safe.

    A version's text never changes, so its hash is a key that never needs
    invalidation: a new version is a new key.
    """

    def __init__(self, size: int = 2048):
        self.size = size
        self._items: OrderedDict[str, Policy] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Policy | None:
        """The policy cached under ``key`` (now the most recently used), or None."""
        with self._lock:
            policy = self._items.get(key)
            if policy is not None:
                self._items.move_to_end(key)
            return policy

    def put(self, key: str, policy: Policy) -> Policy:
        """Cache ``policy`` under ``key``, evicting the least recently used beyond ``size``."""
        with self._lock:
            self._items[key] = policy
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return policy

    def __len__(self) -> int:
        return len(self._items)
