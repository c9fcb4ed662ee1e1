"""Verified API keys, cached per process: authentication without a query per request.

What a request needs of its key and its tenant is read once (one query,
:func:`verify_key`) and kept as :class:`VerifiedKey` under the sha256 of the
presented token (never the token itself).  An entry is used only while the
process's invalidation listener (``store/bus.py``) is connected: every write of
a tenant row or an API key notifies every process, which drops that tenant's
entries; without a listener (SQLite, or PostgreSQL while it reconnects) every
request reads its key again, as before.

The tenant's row comes with the key, so ``Tenant.rules_version`` and
``Tenant.directory_version`` (which name the per-process rule and directory
caches) are as fresh as the key: a publish or a directory change writes the
tenant row, which notifies.  :func:`attach_tenant` gives a request a ``Tenant``
bound to its session from the cached fields, without a query.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from . import bus
from .db import known_row
from .models import Tenant
from .services import find_api_key

#: keys a process keeps (least recently used go first)
KEYS_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class TenantFields:
    """The columns of a tenant row, as read with its key."""

    id: int
    slug: str
    name: str
    settings: Any
    directory_version: int
    rules_version: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class VerifiedKey:
    """A live API key as a request sees it: who, what it may do, how often."""

    id: int
    prefix: str
    name: str
    scope: str
    #: requests a minute; None: the service's default
    rate_per_minute: int | None
    tenant_id: int
    tenant: TenantFields


def token_digest(plain: str) -> str:
    """The cache's and the rate limiter's name for a presented token (never the token)."""
    return hashlib.sha256(plain.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def verify_key(session: Session, plain: str) -> VerifiedKey | None:
    """The live key ``plain`` names, with its tenant's fields (one query), or None."""
    key = find_api_key(session, plain)
    if key is None:
        return None
    tenant = key.tenant
    return VerifiedKey(
        id=key.id,
        prefix=key.prefix,
        name=key.name,
        scope=key.scope,
        rate_per_minute=key.rate_per_minute,
        tenant_id=key.tenant_id,
        tenant=TenantFields(
            id=tenant.id,
            slug=tenant.slug,
            name=tenant.name,
            settings=copy.deepcopy(tenant.settings),
            directory_version=tenant.directory_version or 0,
            rules_version=tenant.rules_version or 0,
            created_at=tenant.created_at,
        ),
    )


def attach_tenant(session: Session, fields: TenantFields) -> Tenant:
    """A ``Tenant`` bound to ``session`` with ``fields``, without a query.

    The session's own instance when it has one already; otherwise a new instance
    put in its identity map as if loaded (its settings are a copy: a view may
    change them without touching the cache).
    """
    return known_row(
        session,
        Tenant,
        {
            "id": fields.id,
            "slug": fields.slug,
            "name": fields.name,
            "settings": copy.deepcopy(fields.settings),
            "directory_version": fields.directory_version,
            "rules_version": fields.rules_version,
            "created_at": fields.created_at,
        },
    )


class KeyCache:
    """token digest -> :class:`VerifiedKey`, trusted only while ``listener.healthy``."""

    def __init__(self, listener: bus.Listener | None, kept: int = KEYS_KEPT):
        self.listener = listener
        self.kept = kept
        self._entries: OrderedDict[str, VerifiedKey] = OrderedDict()
        self._lock = threading.Lock()
        #: moves on at every invalidation: a read that started before one is not stored
        self._epoch = 0
        if listener is not None:
            listener.subscribe(self)
        bus.LOCAL_CACHES.add(self)

    @property
    def active(self) -> bool:
        """Whether entries may be served now."""
        return self.listener is not None and self.listener.healthy

    def get(self, digest: str) -> VerifiedKey | None:
        """The cached key of ``digest`` when the cache may be trusted, else None."""
        if not self.active:
            return None
        with self._lock:
            found = self._entries.get(digest)
            if found is not None:
                self._entries.move_to_end(digest)
            return found

    def verify(self, session: Session, plain: str) -> VerifiedKey | None:
        """The live key ``plain`` names: from the cache, else read (and kept when trusted)."""
        digest = token_digest(plain)
        found = self.get(digest)
        if found is not None:
            return found
        epoch = self._epoch
        key = verify_key(session, plain)
        if key is not None and self.active:
            with self._lock:
                if epoch == self._epoch:  # nothing was invalidated while we read
                    self._entries[digest] = key
                    while len(self._entries) > self.kept:
                        self._entries.popitem(last=False)
        return key

    def invalidate(self, topic: str, tenant_id: int | None) -> None:
        """Drop the entries of ``tenant_id`` (every entry for None or topic ``*``)."""
        with self._lock:
            self._epoch += 1
            if topic == "*" or tenant_id is None:
                self._entries.clear()
                return
            for digest in [d for d, k in self._entries.items() if k.tenant_id == tenant_id]:
                del self._entries[digest]

    def __len__(self) -> int:
        return len(self._entries)


def key_cache_for(settings, engine) -> KeyCache:
    """The app's key cache: with a listener on PostgreSQL (``approvalrules.listen_url``, else
    ``sqlalchemy.url``) unless ``approvalrules.key_cache = false``; without one (always read)
    on SQLite."""
    from pyramid.settings import asbool

    from .db import DatabaseTimeouts, postgres_connect_args

    listener = None
    if engine.dialect.name == "postgresql" and asbool(
        settings.get("approvalrules.key_cache", True)
    ):
        url = settings.get("approvalrules.listen_url") or engine.url.render_as_string(
            hide_password=False
        )
        timeouts = DatabaseTimeouts.from_settings(settings)
        args = postgres_connect_args(timeouts)
        args.pop("options", None)  # no statement timeout on a connection that only waits
        listener = bus.listener_for(url, args)
    return KeyCache(listener)
