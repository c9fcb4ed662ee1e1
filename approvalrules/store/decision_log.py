"""The decision log, in the spirit of OPA's: one record per storefront decision.

Every evaluate and every submit that decides an order records when, which tenant, which
rule set and version (with the compiled policy's hash), a digest of the input, the outcome
and the approval steps, the request id and, for a submit, the order's id.  Where the records
go is ``approvalrules.decision_log``:

``off`` (the default)
    nothing is recorded.
``log``
    one JSON object per decision, as the message of an INFO record of the logger
    ``approvalrules.decisions`` (route it to its own file with a ``%(message)s`` formatter).
``table``
    the ``decision_log`` table, written by a background thread of each process: the request
    only puts a tuple on a bounded queue; the thread inserts in batches on its own
    connection (never the request's transaction), and deletes rows older than
    ``approvalrules.decision_log.retention_days`` (default 30; 0 keeps them forever).  A
    full queue drops the record and counts it (:attr:`TableWriter.dropped`) rather than
    slowing the request.

The order's body is never stored: ``input_digest`` is the sha256 of the request body's
bytes as received, enough to tell whether a body kept elsewhere is the one decided.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine

from . import versions
from .db import get_engine
from .models import DecisionLogEntry

__all__ = [
    "DECISIONS_LOGGER",
    "SINKS",
    "DecisionLogSettings",
    "DecisionRecord",
    "TableWriter",
    "prune",
    "record_evaluate",
    "record_submit",
]

#: where decisions go (``approvalrules.decision_log``)
SINKS = ("off", "log", "table")
SETTING = "approvalrules.decision_log"
#: the logger the ``log`` sink writes to, one JSON object per record
DECISIONS_LOGGER = "approvalrules.decisions"
#: the registry key of the application's sink (None when off)
REGISTRY_KEY = "approvalrules.decision_log"
#: the request id column's width; a longer client-sent id is cut
REQUEST_ID_WIDTH = 64

log = logging.getLogger(__name__)
decisions_log = logging.getLogger(DECISIONS_LOGGER)
_table = DecisionLogEntry.__table__


class DecisionRecord(NamedTuple):
    """One decision as the request thread hands it over: plain values only (no ORM object
    crosses to the writer thread), cheap to build."""

    decided_at: datetime
    tenant_id: int
    tenant: str
    kind: str
    request_id: str | None
    ruleset: str
    version: int | None
    policy_hash: str
    input_digest: str
    order_id: str | None
    outcome: str
    steps: tuple[str, ...]

    def as_row(self) -> dict[str, Any]:
        """The record as a ``decision_log`` row (its tenant by id)."""
        row = self._asdict()
        del row["tenant"]
        row["steps"] = list(self.steps)
        return row

    def as_json(self) -> dict[str, Any]:
        """The record as the ``log`` sink writes it (its tenant by slug)."""
        data = self._asdict()
        del data["tenant_id"]
        data["decided_at"] = self.decided_at.isoformat()
        data["steps"] = list(self.steps)
        return data


@dataclass(frozen=True)
class DecisionLogSettings:
    """``approvalrules.decision_log`` and its ``.retention_days``, ``.queue_size``,
    ``.batch_size`` and ``.flush_ms``; a bad value names its key."""

    sink: str = "off"
    retention_days: int = 30
    queue_size: int = 10_000
    batch_size: int = 500
    flush_ms: int = 200

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> DecisionLogSettings:
        sink = str(settings.get(SETTING) or cls.sink).strip().lower()
        if sink not in SINKS:
            raise ValueError(f"{SETTING} = {sink!r}: use one of {', '.join(SINKS)}")
        numbers = {}
        for name, smallest in (
            ("retention_days", 0),
            ("queue_size", 1),
            ("batch_size", 1),
            ("flush_ms", 1),
        ):
            raw = settings.get(f"{SETTING}.{name}")
            if raw is None or str(raw).strip() == "":
                continue
            try:
                numbers[name] = int(str(raw).strip())
            except ValueError:
                numbers[name] = smallest - 1
            if numbers[name] < smallest:
                raise ValueError(
                    f"{SETTING}.{name} = {raw!r}: expected a whole number, at least {smallest}"
                )
        return cls(sink=sink, **numbers)


# -- the request side -------------------------------------------------------------------------


def record_evaluate(request, tenant, decision, version) -> None:
    """Record the evaluate endpoint's ``decision`` under ``version`` (a stored version or the
    per-process :class:`~.versions.ActiveVersion`); nothing when the log is off."""
    sink = request.registry.get(REGISTRY_KEY)
    if sink is None:
        return
    sink.put(
        DecisionRecord(
            datetime.now(UTC),
            tenant.id,
            tenant.slug,
            "evaluate",
            _request_id(request),
            decision.ruleset["name"],
            version.number,
            _policy_hash(request.dbsession, tenant, version),
            hashlib.sha256(request.body).hexdigest(),
            None,
            decision.outcome,
            tuple(step.name for step in decision.steps),
        )
    )


def record_submit(request, tenant, order, created: bool) -> None:
    """Record the decision a submit made for ``order``; nothing when the log is off, and
    nothing for a repeated submission (``created`` False), which decides nothing anew and
    answers with the stored order."""
    if not created:
        return
    sink = request.registry.get(REGISTRY_KEY)
    if sink is None:
        return
    decision = order.decision
    ruleset = decision.get("ruleset") or {}
    record = DecisionRecord(
        datetime.now(UTC),
        tenant.id,
        tenant.slug,
        "submit",
        _request_id(request),
        ruleset.get("name", ""),
        ruleset.get("version"),
        # stamped on the stored decision by the workflow (transitions.decision_data)
        ruleset.get("policy_hash") or ruleset.get("hash", ""),
        hashlib.sha256(request.body).hexdigest(),
        order.external_id,
        decision.get("outcome", ""),
        tuple(step.get("name", "") for step in decision.get("steps") or ()),
    )
    # the order exists once the request's transaction commits: a submit that fails to commit
    # (and is retried, or answered 503) decided nothing that took effect
    manager = getattr(request, "tm", None)
    if manager is None:
        sink.put(record)
    else:
        manager.get().addAfterCommitHook(_put_when_committed, args=(sink, record))


def _put_when_committed(committed: bool, sink, record: DecisionRecord) -> None:
    if committed:
        sink.put(record)


def _request_id(request) -> str | None:
    # the request-id tween's value when it runs, else the header the caller sent
    value = getattr(request, "request_id", None) or request.headers.get("X-Request-Id")
    return str(value)[:REQUEST_ID_WIDTH] if value else None


#: policy hashes by active version object (see :func:`_policy_hash`), with the object kept so
#: that its id cannot be reused while listed
_hash_by_active: dict[int, tuple[Any, str]] = {}
HASHES_KEPT = 4096


def _policy_hash(session, tenant, version) -> str:
    """The compiled policy's hash (``Policy.hash``: its merged data, parents included), the
    value a stored order's ``decision.ruleset.policy_hash`` carries.

    The evaluate endpoint's version is an :class:`~.versions.ActiveVersion` from the
    per-process cache, a new object whenever the tenant's rules change; so its hash is
    remembered by the object's identity, and the lookup (a dozen microseconds through the
    caches) happens once per version and process.
    """
    if not isinstance(version, versions.ActiveVersion):
        return versions.policy_for(version, session).hash
    known = _hash_by_active.get(id(version))
    if known is not None and known[0] is version:
        return known[1]
    policy_hash = versions.cached_policy(session, version).hash
    if len(_hash_by_active) >= HASHES_KEPT:
        _hash_by_active.clear()
    _hash_by_active[id(version)] = (version, policy_hash)
    return policy_hash


# -- the sinks ------------------------------------------------------------------------------


class LogSink:
    """``approvalrules.decision_log = log``: one JSON object per decision, logged at INFO."""

    def put(self, record: DecisionRecord) -> None:
        if decisions_log.isEnabledFor(logging.INFO):
            decisions_log.info(
                "%s", json.dumps(record.as_json(), separators=(",", ":"), ensure_ascii=False)
            )

    def flush(self, timeout: float = 10.0) -> bool:
        return True

    def close(self, timeout: float = 10.0) -> None:
        pass


#: writers alive in this process: a forked child starts its own thread (see ``_after_fork``)
_writers: weakref.WeakSet[TableWriter] = weakref.WeakSet()


class _Flush:
    """A marker on the queue: set once everything put before it is written."""

    def __init__(self, stop: bool = False):
        self.done = threading.Event()
        self.stop = stop


class TableWriter:
    """``approvalrules.decision_log = table``: a background thread writing records in batches.

    :meth:`put` never blocks: a full queue drops the record, counts it in :attr:`dropped`
    and warns at most once a minute.  The thread inserts up to ``batch_size`` records at a
    time, at the latest ``flush_ms`` after the first of them arrived, in its own
    transaction on its own connection of ``engine``; a failed insert is logged and its
    records counted in :attr:`failed` (the log never stops the service).  Every hour, and
    at start, it deletes rows older than ``retention_days``.  Started on first use (after a
    fork too); :meth:`close` runs at interpreter exit.
    """

    #: seconds between warnings about dropped or failed records
    WARN_EVERY = 60.0
    #: seconds between retention passes
    PRUNE_EVERY = 3600.0

    def __init__(
        self, engine: Engine, config: DecisionLogSettings | None = None, *, owns_engine=False
    ):
        config = config or DecisionLogSettings(sink="table")
        self.engine = engine
        #: the engine is the writer's own (closed with it), not the application's
        self.owns_engine = owns_engine
        self.config = config
        self.dropped = 0
        self.written = 0
        self.failed = 0
        self.pruned = 0
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._last_warning = 0.0
        _writers.add(self)
        atexit.register(_close_at_exit, weakref.ref(self))

    # the request side: one attribute read and a put_nowait
    def put(self, record: DecisionRecord) -> None:
        """Queue ``record`` for writing; drop it (counted) when the queue is full."""
        pending = self._queue or self._start()
        try:
            pending.put_nowait(record)
        except queue.Full:
            self._dropped()

    def _dropped(self) -> None:
        with self._count_lock:  # request threads drop concurrently; the count stays exact
            self.dropped += 1
        now = time.monotonic()
        if now - self._last_warning >= self.WARN_EVERY:
            self._last_warning = now
            log.warning(
                "decision log: the queue of %d records is full, %d dropped so far; the "
                "database is slower than the decisions (raise %s.queue_size, or look at the "
                "database)",
                self.config.queue_size,
                self.dropped,
                SETTING,
            )

    def _start(self) -> queue.Queue:
        with self._start_lock:
            if self._queue is None:
                pending: queue.Queue = queue.Queue(self.config.queue_size)
                self._thread = threading.Thread(
                    target=self._run, args=(pending,), name="decision-log", daemon=True
                )
                self._thread.start()
                self._queue = pending
            return self._queue

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record put so far is written (tests, shutdown); False on timeout."""
        return self._mark(_Flush(), timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread (a later :meth:`put` starts it again)."""
        if self._queue is not None and self._thread is not None and self._thread.is_alive():
            self._mark(_Flush(stop=True), timeout)
        self._queue = None
        if self.owns_engine:
            self.engine.dispose()  # a later put connects again

    def _mark(self, marker: _Flush, timeout: float) -> bool:
        pending = self._queue
        if pending is None:
            return True
        try:
            pending.put(marker, timeout=timeout)
        except queue.Full:
            return False
        return marker.done.wait(timeout)

    # the thread
    def _run(self, pending: queue.Queue) -> None:
        wait = self.config.flush_ms / 1000
        next_prune = time.monotonic()
        while True:
            if self.config.retention_days and time.monotonic() >= next_prune:
                next_prune = time.monotonic() + self.PRUNE_EVERY
                self._prune()
            try:
                first = pending.get(timeout=min(wait * 5, 1.0))
            except queue.Empty:
                continue
            batch: list[DecisionRecord] = []
            markers: list[_Flush] = []
            item = first
            deadline = time.monotonic() + wait
            while True:
                if isinstance(item, _Flush):
                    markers.append(item)
                    break  # a flush writes now
                batch.append(item)
                if len(batch) >= self.config.batch_size:
                    break
                remaining = deadline - time.monotonic()
                try:
                    item = pending.get(timeout=remaining) if remaining > 0 else pending.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._write(batch)
            for marker in markers:
                marker.done.set()
                if marker.stop:
                    return

    def _write(self, batch: list[DecisionRecord]) -> None:
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(_table), [record.as_row() for record in batch])
        except Exception as exc:  # the log must never take the service down
            self.failed += len(batch)
            now = time.monotonic()
            if now - self._last_warning >= self.WARN_EVERY:
                self._last_warning = now
                log.warning(
                    "decision log: %d records not written (%d so far): %s: %s",
                    len(batch),
                    self.failed,
                    type(exc).__name__,
                    str(exc).splitlines()[0] if str(exc) else "",
                )
        else:
            self.written += len(batch)

    def _prune(self) -> None:
        try:
            self.pruned += prune(self.engine, self.config.retention_days)
        except Exception as exc:  # retried at the next pass
            log.warning(
                "decision log: deleting old records failed: %s: %s", type(exc).__name__, exc
            )


def _close_at_exit(ref: weakref.ref) -> None:
    writer = ref()
    if writer is not None:
        writer.close(timeout=5.0)


def _after_fork() -> None:
    # the parent's thread does not exist in a forked child: start afresh on first put
    for writer in list(_writers):
        writer._queue = None
        writer._thread = None
        writer._start_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


#: rows deleted per statement: short transactions, no long lock on the table
PRUNE_BATCH = 5_000


def prune(
    engine: Engine, retention_days: int, *, now: datetime | None = None, batch: int = PRUNE_BATCH
) -> int:
    """Delete decision-log rows older than ``retention_days`` (0: none), ``batch`` rows per
    transaction; how many were deleted."""
    if retention_days <= 0:
        return 0
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    total = 0
    while True:
        with engine.begin() as connection:
            oldest = (
                select(_table.c.id).where(_table.c.decided_at < cutoff).limit(batch)
            ).scalar_subquery()
            deleted = connection.execute(delete(_table).where(_table.c.id.in_(oldest))).rowcount
        total += deleted
        if deleted < batch:
            return total


def sink_for(settings: Mapping[str, Any], engine: Engine | None):
    """The sink ``settings`` name: None (off), a :class:`LogSink` or a :class:`TableWriter`."""
    config = DecisionLogSettings.from_settings(settings)
    if config.sink == "log":
        return LogSink()
    if config.sink == "table":
        if engine is None:
            raise ValueError(f"{SETTING} = table needs the application's database engine")
        own = _writer_engine(settings, engine)
        return TableWriter(own, config, owns_engine=own is not engine)
    return None


def _writer_engine(settings: Mapping[str, Any], app_engine: Engine) -> Engine:
    """The writer's own engine, one connection, to the application's database: the writer
    never waits for (or holds) a connection of the requests' pool.  An in-memory SQLite
    database exists only in its engine, so there the writer shares the application's."""
    url = settings.get("sqlalchemy.url") or app_engine.url.render_as_string(hide_password=False)
    if app_engine.dialect.name == "sqlite" and app_engine.url.database in (None, "", ":memory:"):
        return app_engine
    return get_engine({**settings, "sqlalchemy.url": url}, pool_size=1, max_overflow=0)


def includeme(config) -> None:
    """Set up the application's decision log from its settings (after ``store.db``)."""
    registry = config.registry
    registry[REGISTRY_KEY] = sink_for(registry.settings, registry.get("dbengine"))
