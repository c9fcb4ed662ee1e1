"""Cache invalidation across processes: PostgreSQL ``LISTEN/NOTIFY``.

A process may keep what it read of a tenant (its row, its verified API keys) only
while it hears of every change to them.  Every transaction that changes a tenant
row or an API key says so with ``NOTIFY`` (:func:`publish`, called by a flush hook
for every ``Tenant`` and ``ApiKey`` it writes, so no writer can forget it);
PostgreSQL delivers the notification when the transaction commits, and never
when it rolls back.  One :class:`Listener` thread per process holds its own
connection with ``LISTEN`` and hands each notification to the subscribers, which
drop their entries of that tenant.

Why PostgreSQL and not Redis pub/sub: the notification is part of the writing
transaction, so it cannot be lost between a commit and a publish, it is never
sent for a rollback, and no second service has to be up for revocations to
reach every process.

Safety: while the listener is not connected (starting, reconnecting with
backoff) or its own ping (a NOTIFY it sends itself every :data:`PING_EVERY`
seconds) has not come back within :data:`STALE_AFTER` seconds, ``healthy`` is
False and the caches are not used: every request reads the database, as
without a bus.  When it connects again, every cache is dropped first, since
notifications may have been missed in between.

SQLite (one process; development and tests): no listener; the caches are off
and every request reads its key and tenant, as before.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
import weakref

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from .db import transaction_memo
from .models import ApiKey, Tenant

log = logging.getLogger(__name__)

#: the NOTIFY channel (one per database: LISTEN/NOTIFY never crosses databases)
CHANNEL = "approvalrules_cache"
#: the listener's connection as pg_stat_activity names it
APPLICATION_NAME = "approvalrules-listen"
#: the listener notifies itself this often (seconds) ...
PING_EVERY = 0.3
#: ... and counts as down when its last ping came back longer ago than this
STALE_AFTER = 1.0
#: a warning when the listener's own pings have not come back for this long (seconds)
NO_ECHO_WARNING = 5.0
#: reconnect backoff: first wait, longest wait (seconds)
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 5.0


#: caches in this process (objects with ``invalidate(topic, tenant_id)``) told at each commit
#: that wrote a tenant or key; weakly held: an app that is gone stops listening
LOCAL_CACHES: weakref.WeakSet = weakref.WeakSet()
#: ``session.info`` key: tenants whose row or keys the session's transaction wrote
_CHANGED_TENANTS = "approvalrules.bus.changed"


def publish(session: Session, topic: str, tenant_id: int | None) -> None:
    """Tell every process, when the session's transaction commits, that ``topic`` of
    ``tenant_id`` changed (None: every tenant).  Nothing is sent on SQLite, nor on a rollback.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    payload = json.dumps({"topic": topic, "tenant": tenant_id})
    session.connection().execute(
        text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload}
    )


def wrote_tenant(session: Session, tenant_id: int) -> bool:
    """Whether the session's transaction wrote ``tenant_id``'s row or keys (flushed): what it
    reads of that tenant may not be committed yet, so no per-process cache may keep it."""
    return tenant_id in session.info.get(_CHANGED_TENANTS, ())


@event.listens_for(Session, "before_flush")
def _publish_tenant_changes(session: Session, flush_context, instances) -> None:
    # every written tenant row (its counters: rules_version, directory_version; its
    # settings) and every written API key (revoked, scope, rate) retires what processes
    # cached of that tenant.  Before the flush: after it, nothing counts as modified.
    # The notification is part of the transaction either way (sent at its commit only).
    written = [
        obj
        for obj in (*session.new, *session.dirty, *session.deleted)
        if isinstance(obj, (Tenant, ApiKey))
        and (obj in session.new or obj in session.deleted or session.is_modified(obj))
    ]
    tenants = {obj.id if isinstance(obj, Tenant) else obj.tenant_id for obj in written}
    if not tenants:
        return
    session.info.setdefault(_CHANGED_TENANTS, set()).update(tenants)
    # once per (sub)transaction: the memo ends with each savepoint, whose rollback would
    # take its notifications with it
    sent = transaction_memo(session).setdefault("bus.notified", set())
    for tenant_id in sorted(t for t in tenants - sent if t is not None):
        publish(session, "tenant", tenant_id)
        sent.add(tenant_id)


@event.listens_for(Session, "after_commit")
def _forget_locally(session: Session) -> None:
    # this process's own caches forget at once, without waiting for the notification's
    # round trip: a request right after a publish here sees it here
    for tenant_id in session.info.pop(_CHANGED_TENANTS, ()):
        for cache in list(LOCAL_CACHES):
            cache.invalidate("tenant", tenant_id)


@event.listens_for(Session, "after_soft_rollback")
def _forget_nothing(session: Session, previous_transaction) -> None:
    if not session.in_transaction():
        session.info.pop(_CHANGED_TENANTS, None)


class Listener:
    """One thread holding ``LISTEN`` on its own PostgreSQL connection, reconnecting with
    backoff; ``healthy`` says whether caches fed by it may be trusted right now."""

    def __init__(self, url: str, connect_args: dict | None = None):
        self.url = url
        self.connect_args = dict(connect_args or {})
        #: objects with ``invalidate(topic, tenant_id)``, weakly held: an app that is gone
        #: (tests build many) stops listening without telling anyone
        self.subscribers: weakref.WeakSet = weakref.WeakSet()
        self._last_heard = 0.0
        self._connected = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned_at = -math.inf
        #: the payload of this listener's own pings
        self._ping = json.dumps({"topic": "ping", "from": uuid.uuid4().hex})

    @property
    def healthy(self) -> bool:
        """Connected, and its own ping came back within :data:`STALE_AFTER` seconds."""
        return self._connected and time.monotonic() - self._last_heard < STALE_AFTER

    def subscribe(self, subscriber) -> None:
        """Call ``subscriber.invalidate(topic, tenant_id)`` on every notification, and
        ``subscriber.invalidate("*", None)`` whenever notifications may have been missed."""
        self.subscribers.add(subscriber)

    def start(self) -> Listener:
        """Start the thread (a daemon: it never keeps a process alive)."""
        self._thread = threading.Thread(target=self._run, name="approvalrules-listen", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the thread to end (within :data:`PING_EVERY` seconds)."""
        self._stop.set()

    def wait_healthy(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the listener to be connected."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.healthy:
                return True
            time.sleep(0.02)
        return self.healthy

    def _deliver(self, topic: str, tenant_id: int | None) -> None:
        for subscriber in list(self.subscribers):
            try:
                subscriber.invalidate(topic, tenant_id)
            except Exception:  # pragma: no cover - a subscriber's bug must not stop the thread
                log.exception("cache invalidation subscriber failed")

    def _run(self) -> None:
        import psycopg

        backoff = BACKOFF_FIRST
        conninfo = (
            make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    conninfo,
                    autocommit=True,
                    application_name=APPLICATION_NAME,
                    **self.connect_args,
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    # what changed while nobody listened is unknown: start from empty caches
                    self._deliver("*", None)
                    self._connected = True
                    connected_at = time.monotonic()
                    if backoff > BACKOFF_FIRST:
                        log.warning("cache invalidation listener connected again")
                    backoff = BACKOFF_FIRST
                    while not self._stop.is_set():
                        # healthy only while our own notification comes back: proof, end to
                        # end, that notifications reach this connection (a pooler in
                        # transaction mode answers queries but never delivers them)
                        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, self._ping))
                        for notify in conn.notifies(timeout=PING_EVERY):
                            self._handle(notify.payload)
                        silent = time.monotonic() - max(self._last_heard, connected_at)
                        if silent > NO_ECHO_WARNING:
                            self._warn_once(
                                "cache invalidation listener: its own notifications do not come "
                                "back (is approvalrules.listen_url a pooler in transaction "
                                "mode?); caches are off, every request reads the database"
                            )
            except Exception as failure:  # noqa: BLE001 - any failure: reconnect
                self._connected = False
                self._deliver("*", None)
                if self._stop.is_set():
                    break  # asked to stop: its connection going away is no news
                self._warn(failure)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
        self._connected = False

    def _handle(self, payload: str) -> None:
        if payload == self._ping:
            self._last_heard = time.monotonic()
            return
        try:
            message = json.loads(payload)
            topic, tenant_id = str(message["topic"]), message.get("tenant")
        except (ValueError, KeyError, TypeError):
            topic, tenant_id = "*", None  # unreadable: drop everything rather than guess
        if topic == "ping":  # another process's proof of life
            return
        self._deliver(topic, tenant_id if isinstance(tenant_id, int) else None)

    def _warn(self, failure: Exception) -> None:
        self._warn_once(
            f"cache invalidation listener disconnected ({type(failure).__name__}); caches are "
            "off, every request reads the database until it reconnects"
        )

    def _warn_once(self, message: str) -> None:
        # at most one warning a minute: a database that is down says so once, not 200 times
        now = time.monotonic()
        if now - self._warned_at >= 60:
            self._warned_at = now
            log.warning(message)


_LISTENERS: dict[str, Listener] = {}
_LISTENERS_LOCK = threading.Lock()


def listener_for(url: str, connect_args: dict | None = None) -> Listener:
    """The process's listener on ``url``, started on first use: one thread and one
    connection per database, however many apps a process builds (tests build many)."""
    with _LISTENERS_LOCK:
        found = _LISTENERS.get(url)
        if found is None or found._stop.is_set():
            found = _LISTENERS[url] = Listener(url, connect_args).start()
        return found


def stop_listeners() -> None:
    """Ask every listener of the process to stop, quietly: for a program about to drop
    its database (a benchmark), whose listeners would otherwise warn that they lost it."""
    with _LISTENERS_LOCK:
        for listener in _LISTENERS.values():
            listener.stop()
