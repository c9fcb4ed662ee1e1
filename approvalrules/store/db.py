"""Engine, sessions and the per-request session joined to the transaction manager.

Cookiecutter-style: ``get_engine`` -> ``get_session_factory`` ->
``get_tm_session``; ``includeme`` exposes ``request.dbsession``.  Tests may
inject their own session as ``request.environ["app.dbsession"]``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import zope.sqlalchemy
from sqlalchemy import engine_from_config, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from . import models  # noqa: F401  (registers every mapper before first use)


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT;
    # take over (the SQLAlchemy-documented recipe) and turn foreign keys on.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, connection_record):  # pragma: no cover - trivial
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN")


def get_engine(settings: Mapping[str, Any], prefix: str = "sqlalchemy.") -> Engine:
    engine = engine_from_config(dict(settings), prefix)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def create_engine_for_url(url: str, **kwargs: Any) -> Engine:
    """An engine for a bare URL, configured like ``get_engine``."""
    settings = {"sqlalchemy.url": url}
    settings.update({f"sqlalchemy.{k}": v for k, v in kwargs.items()})
    return get_engine(settings)


def get_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine)


def get_tm_session(
    session_factory: sessionmaker[Session], transaction_manager, request=None
) -> Session:
    """A session whose lifecycle (commit/abort) belongs to ``transaction_manager``."""
    dbsession = session_factory(info={"request": request})
    zope.sqlalchemy.register(dbsession, transaction_manager=transaction_manager)
    return dbsession


def includeme(config) -> None:
    """Pyramid wiring: pyramid_tm (explicit manager), pyramid_retry and ``request.dbsession``."""
    settings = config.get_settings()
    settings["tm.manager_hook"] = "pyramid_tm.explicit_manager"
    config.include("pyramid_tm")
    config.include("pyramid_retry")

    engine = settings.get("approvalrules.dbengine") or get_engine(settings)
    session_factory = get_session_factory(engine)
    config.registry["dbsession_factory"] = session_factory
    config.registry["dbengine"] = engine

    def dbsession(request) -> Session:
        # a test, or a tween that needs the session early, may inject one
        session = request.environ.get("app.dbsession")
        if session is None:
            session = get_tm_session(session_factory, request.tm, request=request)
        return session

    config.add_request_method(dbsession, reify=True)


class TenantCache:
    """Per-process entries keyed by (database, tenant, a version counter of that tenant).

    A counter (``Tenant.directory_version``, ``Tenant.rules_version``) is bumped
    in the transaction of every change it covers, so an entry is exactly what
    its key names and never needs invalidating; storing a tenant's new entry
    drops its older ones, and the least recently used tenants go past ``kept``.
    """

    def __init__(self, kept: int):
        self.kept = kept
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, session: Session, tenant_id: int, counter: int | None, build: Callable[[], Any]
    ) -> Any:
        """The entry for the tenant at ``counter``; ``build()`` makes it on a miss (outside the lock)."""
        key = (database_key(session), tenant_id, counter or 0)
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                return found
        built = build()
        with self._lock:
            self._entries[key] = built
            for old in [k for k in self._entries if k[:2] == key[:2] and k != key]:
                del self._entries[old]
            while len(self._entries) > self.kept:
                self._entries.popitem(last=False)
        return built


#: ``session.info`` key of what the current transaction remembers (:func:`transaction_memo`)
_TRANSACTION_MEMO = "approvalrules.transaction"


@event.listens_for(Session, "after_transaction_end")
def _forget_transaction_memo(session, transaction) -> None:
    # a savepoint's end counts too: what it read or wrote may have been rolled back
    session.info.pop(_TRANSACTION_MEMO, None)


def transaction_memo(session: Session) -> dict:
    """A dict that lives until the session's current transaction (or savepoint) ends."""
    return session.info.setdefault(_TRANSACTION_MEMO, {})


def database_key(session: Session):
    """Which database a session talks to (its URL, hashable), for per-process caches keyed by
    tenant: tenant ids and version counters repeat across databases (tests and tools open several)."""
    bind = session.get_bind()
    # a session bound to one connection (a test's rolled-back transaction) names its engine's URL
    return bind.engine.url
