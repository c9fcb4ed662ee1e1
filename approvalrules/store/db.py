"""Engine, sessions and the per-request session joined to the transaction manager.

Cookiecutter-style: ``get_engine`` -> ``get_session_factory`` ->
``get_tm_session``; ``includeme`` exposes ``request.dbsession``.  Tests may
inject their own session as ``request.environ["app.dbsession"]``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import zope.sqlalchemy
from pyramid.paster import get_appsettings
from sqlalchemy import bindparam, engine_from_config, event, exc, func, insert, text
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, make_transient_to_detached, sessionmaker
from sqlalchemy.pool import NullPool

from .. import errors, observability
from . import models  # noqa: F401  (registers every mapper before first use)

try:  # PostgreSQL's driver is an optional dependency (the ``postgres`` extra)
    import psycopg
except ImportError:  # pragma: no cover - SQLite-only installs
    psycopg = None

log = logging.getLogger(__name__)


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


def settings_from_ini(ini_path: str | Path) -> dict[str, Any]:
    """The ``[app:main]`` settings of a PasteDeploy .ini file (``sqlalchemy.url`` and the rest)."""
    return dict(get_appsettings(str(ini_path), name="main"))


#: prefix of the fail-fast settings in ``[app:main]``, e.g. ``approvalrules.db.lock_timeout``
TIMEOUT_PREFIX = "approvalrules.db."


@dataclass(frozen=True)
class DatabaseTimeouts:
    """How long the application waits on the database, in seconds; 0 turns one off.

    Read from ``approvalrules.db.*`` (docs/deployment.md, "Failing fast").  On
    PostgreSQL they become libpq connection parameters and session settings; on
    SQLite only ``lock_timeout`` applies (as the busy timeout).
    """

    #: a new connection, from TCP connect to the end of authentication (libpq connect_timeout)
    connect_timeout: float = 5
    #: one statement, server side; its lock waits included (PostgreSQL statement_timeout)
    statement_timeout: float = 10
    #: one wait for a row or table lock, server side (PostgreSQL lock_timeout)
    lock_timeout: float = 3
    #: silence while an answer (statement, commit, pool ping) is awaited, client side: the only
    #: deadline that holds when the server's kernel still acknowledges packets but no answer
    #: ever comes.
    #: None: statement_timeout + 2 (the server's own cancel normally comes first).
    reply_timeout: float | None = None
    #: data sent but not acknowledged by the peer's kernel (Linux TCP_USER_TIMEOUT)
    tcp_user_timeout: float = 10
    #: TCP keepalive probes on an idle connection: first after ``keepalives_idle`` seconds,
    #: then every ``keepalives_interval``, dead after ``keepalives_count`` unanswered ones
    keepalives_idle: float = 10
    keepalives_interval: float = 5
    keepalives_count: int = 3
    #: the readiness probe (``/ready``): its connect, statement and reply deadline
    ready_timeout: float = 2

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> DatabaseTimeouts:
        """The timeouts given in ``settings``, defaults for the rest; a bad value names its key."""
        values: dict[str, Any] = {}
        for name, field in cls.__dataclass_fields__.items():
            raw = settings.get(TIMEOUT_PREFIX + name)
            if raw is None or str(raw).strip() == "":
                continue
            try:
                number = float(str(raw).strip())
            except ValueError:
                number = math.nan
            if not math.isfinite(number) or number < 0:
                raise ValueError(
                    f"{TIMEOUT_PREFIX}{name} = {raw!r}: expected a number of seconds "
                    "(0 turns it off)"
                )
            values[name] = int(number) if field.type in (int, "int") else number
        return cls(**values)

    @property
    def effective_reply_timeout(self) -> float:
        """The client-side deadline per answer; 0 when it is off."""
        if self.reply_timeout is not None:
            return self.reply_timeout
        return self.statement_timeout + 2 if self.statement_timeout else 0

    def for_probe(self) -> DatabaseTimeouts:
        """The same, with every deadline of one connection and one query at ``ready_timeout``."""
        short = self.ready_timeout
        return replace(
            self,
            connect_timeout=short,
            statement_timeout=short,
            lock_timeout=short,
            reply_timeout=short,
        )


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


#: ``approvalrules.db.pooler``: how connections reach PostgreSQL
POOLERS = ("none", "transaction")


def pooler_mode(settings: Mapping[str, Any]) -> str:
    """``approvalrules.db.pooler``: ``none`` (direct, or a session-mode pooler) or
    ``transaction`` (PgBouncer and the like in transaction pooling)."""
    mode = str(settings.get(TIMEOUT_PREFIX + "pooler") or "none").strip()
    if mode not in POOLERS:
        raise ValueError(
            f"{TIMEOUT_PREFIX}pooler = {mode!r}: expected one of {', '.join(POOLERS)} "
            "(transaction: behind a pooler in transaction mode)"
        )
    return mode


def _session_settings(timeouts: DatabaseTimeouts) -> dict[str, int]:
    """PostgreSQL settings (name: milliseconds) that carry ``timeouts`` server side."""
    settings = {}
    if timeouts.statement_timeout:
        settings["statement_timeout"] = _milliseconds(timeouts.statement_timeout)
    if timeouts.lock_timeout:
        settings["lock_timeout"] = _milliseconds(timeouts.lock_timeout)
    return settings


def postgres_connect_args(
    timeouts: DatabaseTimeouts, url_options: str = "", pooler: str = "none"
) -> dict[str, Any]:
    """libpq parameters for ``timeouts`` (``options`` keeps what the URL already sets).

    Behind a pooler in transaction mode (``pooler="transaction"``) a server connection
    serves many clients in turn: settings made at connection start would leak to other
    clients or be refused, and a statement prepared on one server connection is missing on
    the next.  So the session settings go into each transaction instead (``SET LOCAL``, see
    :func:`get_engine`) and psycopg prepares nothing.
    """
    args: dict[str, Any] = {}
    if timeouts.connect_timeout:
        # libpq takes whole seconds and treats anything under 2 as 2
        args["connect_timeout"] = max(2, math.ceil(timeouts.connect_timeout))
    if pooler == "transaction":
        args["prepare_threshold"] = None
        session_settings = []
    else:
        session_settings = [url_options] if url_options else []
        session_settings += [
            f"-c {name}={value}" for name, value in _session_settings(timeouts).items()
        ]
    if session_settings:
        args["options"] = " ".join(session_settings)
    if timeouts.tcp_user_timeout:
        args["tcp_user_timeout"] = _milliseconds(timeouts.tcp_user_timeout)
    if timeouts.keepalives_idle:
        args["keepalives"] = 1
        args["keepalives_idle"] = max(1, math.ceil(timeouts.keepalives_idle))
        if timeouts.keepalives_interval:
            args["keepalives_interval"] = max(1, math.ceil(timeouts.keepalives_interval))
        if timeouts.keepalives_count:
            args["keepalives_count"] = timeouts.keepalives_count
    return args


class DatabaseNoAnswer(psycopg.OperationalError if psycopg else Exception):
    """The server accepted the request but sent no answer within the reply timeout."""


def _psycopg_waits_with_timeout() -> bool:
    # Connection.wait(gen, interval, timeout) and errors._WaitTimeout: psycopg >= 3.2
    # (3.1's wait(gen, timeout) meant the polling interval by "timeout")
    if psycopg is None or not hasattr(psycopg.errors, "_WaitTimeout"):
        return False
    parameters = inspect.signature(psycopg.Connection.wait).parameters
    return "interval" in parameters and "timeout" in parameters


def _noting_progress(gen, last_heard: list[float]):
    """``gen`` (a psycopg wait generator), noting in ``last_heard[0]`` when the socket was last
    ready; a wait started again over it (``next()``, i.e. ``send(None)``) gets the state again."""
    try:
        state = next(gen)
        while True:
            ready = yield state
            if ready is None:
                continue
            if ready:
                last_heard[0] = time.monotonic()
            state = gen.send(ready)
    except StopIteration as finished:  # gen is done (perhaps without ever waiting)
        return finished.value


if psycopg is not None and _psycopg_waits_with_timeout():

    class DeadlineConnection(psycopg.Connection):
        """A psycopg connection that gives up once the server is silent for ``reply_timeout`` s.

        psycopg waits on the socket with no limit of its own; PostgreSQL's timeouts
        are enforced by the server, and TCP's (keepalives, ``tcp_user_timeout``) by
        the kernels, so a server process that is frozen (SIGSTOP, a hung storage
        device) while its kernel still acknowledges packets would hold the thread
        forever.  Every wait (a statement, a commit, the pool's ping) goes through
        ``wait``.  The deadline counts silence, not the whole call: a long COPY or
        ``executemany`` that keeps exchanging data goes on.  Past it the connection is
        closed, since the protocol is now out of step, and SQLAlchemy discards it as
        disconnected.
        """

        reply_timeout: float = 0

        def wait(self, gen, interval=0.1, timeout=None):
            if timeout is not None or not self.reply_timeout:
                return super().wait(gen, interval=interval, timeout=timeout)
            last_heard = [time.monotonic()]
            watched = _noting_progress(gen, last_heard)
            remaining = self.reply_timeout
            while True:
                try:
                    return super().wait(watched, interval=interval, timeout=remaining)
                except psycopg.errors._WaitTimeout:
                    remaining = last_heard[0] + self.reply_timeout - time.monotonic()
                    if remaining <= 0:
                        self.close()
                        raise DatabaseNoAnswer(
                            f"the database sent no answer within {self.reply_timeout:g} s"
                        ) from None

else:  # pragma: no cover - psycopg missing or older than 3.2
    DeadlineConnection = None


#: what :func:`_let_psycopg_cache_long_statements` raises psycopg's limits to
PSYCOPG_CACHED_STATEMENT_PARAMS = 300
PSYCOPG_CACHED_STATEMENT_LENGTH = 16384


def _let_psycopg_cache_long_statements() -> None:
    """psycopg keeps the parsed form of a statement (its placeholders found by a regex) for
    the next execution only while the statement is at most 4,096 bytes with at most 50
    parameters: longer ones are mostly an ORM's one-off multi-row INSERTs.  The statements
    of :func:`rows_written_together` are longer, and few (one per shape of an action's
    rows): a submit's has 67 parameters, and parsing it again at every execution cost 7% of
    a submit + approve's instructions.  The limits are constants of psycopg's
    (``psycopg._queries``), raised here when it has them; psycopg's cache stays an LRU of
    128 statements.
    """
    from psycopg import _queries

    for name, value in (
        ("MAX_CACHED_STATEMENT_PARAMS", PSYCOPG_CACHED_STATEMENT_PARAMS),
        ("MAX_CACHED_STATEMENT_LENGTH", PSYCOPG_CACHED_STATEMENT_LENGTH),
    ):
        if isinstance(getattr(_queries, name, None), int):
            setattr(_queries, name, max(getattr(_queries, name), value))


def _configure_postgres(engine: Engine, timeouts: DatabaseTimeouts) -> None:
    reply_timeout = timeouts.effective_reply_timeout
    if not reply_timeout:
        return
    if DeadlineConnection is None:  # pragma: no cover - psycopg older than 3.2
        log.warning("psycopg < 3.2: no client-side reply timeout (approvalrules.db.reply_timeout)")
        return

    @event.listens_for(engine, "do_connect")
    def _connect(dialect, connection_record, cargs, cparams):
        connection = DeadlineConnection.connect(*cargs, **cparams)
        connection.reply_timeout = reply_timeout
        return connection


#: seconds a request waits for a free connection of its process's pool (SQLAlchemy's: 30)
DEFAULT_POOL_TIMEOUT = 5


#: engine options that are yes or no: SQLAlchemy's ``engine_from_config`` passes them on as
#: the .ini's text, so ``pool_pre_ping = false`` would be the string "false", which is true
BOOLEAN_ENGINE_OPTIONS = ("pool_pre_ping", "pool_use_lifo")
_TRUE = frozenset(("true", "yes", "on", "1"))
_FALSE = frozenset(("false", "no", "off", "0"))


def ini_boolean(name: str, value: Any) -> bool:
    """``value`` of the .ini option ``name`` as a bool; ValueError naming the option and what
    it takes for any other text (a typo must not turn an option on)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{name} = {value!r}: expected true or false")


def get_engine(
    settings: Mapping[str, Any],
    prefix: str = "sqlalchemy.",
    timeouts: DatabaseTimeouts | None = None,
    **engine_options: Any,
) -> Engine:
    """The engine of ``settings[prefix + "url"]``, failing fast as ``approvalrules.db.*`` says.

    PostgreSQL gets ``connect_timeout``, ``statement_timeout``, ``lock_timeout``, TCP
    keepalives and ``tcp_user_timeout`` as connection parameters, a client-side reply
    timeout, and a pool checkout timeout (``sqlalchemy.pool_timeout``, 5 s by default).
    SQLite gets ``lock_timeout`` as its busy timeout; nothing else applies to a file.
    """
    timeouts = timeouts or DatabaseTimeouts.from_settings(settings)
    pooler = pooler_mode(settings)
    url = make_url(settings[prefix + "url"])
    options = dict(engine_options)
    if url.get_backend_name() == "postgresql" and url.get_driver_name() == "psycopg":
        options["connect_args"] = {
            **postgres_connect_args(timeouts, str(url.query.get("options") or ""), pooler),
            **options.get("connect_args", {}),
        }
        if prefix + "pool_timeout" not in settings and options.get("poolclass") is not NullPool:
            options.setdefault("pool_timeout", DEFAULT_POOL_TIMEOUT)
    elif url.get_backend_name() == "sqlite" and timeouts.lock_timeout:
        options["connect_args"] = {
            "timeout": timeouts.lock_timeout,
            **options.get("connect_args", {}),
        }
    for name in BOOLEAN_ENGINE_OPTIONS:
        if prefix + name in settings and name not in options:
            options[name] = ini_boolean(prefix + name, settings[prefix + name])
    engine = engine_from_config(dict(settings), prefix, **options)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    elif engine.dialect.driver == "psycopg":
        _let_psycopg_cache_long_statements()
        _configure_postgres(engine, timeouts)
        if pooler == "transaction":
            _set_local_on_begin(engine, timeouts)
    return engine


def _set_local_on_begin(engine: Engine, timeouts: DatabaseTimeouts) -> None:
    """Each transaction starts by setting the deadlines for itself alone (``SET LOCAL``)."""
    settings = _session_settings(timeouts)
    if not settings:
        return
    # set_config(..., true) is SET LOCAL as one statement with bound values
    statement = text(
        "SELECT " + ", ".join(f"set_config('{name}', :{name}, true)" for name in settings)
    ).bindparams(**{name: f"{value}ms" for name, value in settings.items()})

    @event.listens_for(engine, "begin")
    def _deadlines_for_this_transaction(connection):
        connection.execute(statement)


def create_engine_for_url(url: str, **kwargs: Any) -> Engine:
    """An engine for a bare URL, configured like ``get_engine`` (default timeouts)."""
    settings = {"sqlalchemy.url": url}
    settings.update({f"sqlalchemy.{k}": v for k, v in kwargs.items()})
    return get_engine(settings)


def get_probe_engine(settings: Mapping[str, Any], prefix: str = "sqlalchemy.") -> Engine:
    """A pool-less engine for the readiness probe: every deadline at ``ready_timeout``.

    Its own connection each time, so a probe neither waits for this process's busy pool
    nor reports ready on a connection that only the pool still holds.
    """
    timeouts = DatabaseTimeouts.from_settings(settings).for_probe()
    probe_settings = {
        key: value
        for key, value in settings.items()
        if key.startswith(prefix)
        and not key.startswith(prefix + "pool_")
        and key != prefix + "max_overflow"
    }
    probe_settings[TIMEOUT_PREFIX + "pooler"] = pooler_mode(settings)
    return get_engine(probe_settings, prefix, timeouts=timeouts, poolclass=NullPool)


def check_database(engine: Engine) -> None:
    """Raise :class:`~approvalrules.errors.DatabaseUnavailable` unless ``SELECT 1`` answers."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (exc.OperationalError, exc.TimeoutError, exc.InterfaceError) as failure:
        raise database_unavailable(failure) from failure


#: SQLSTATEs of PostgreSQL's own deadlines
_LOCK_NOT_AVAILABLE = "55P03"
_QUERY_CANCELED = "57014"


def database_unavailable(failure: BaseException) -> errors.DatabaseUnavailable:
    """The typed error for a database that did not serve a request, saying which deadline hit."""
    original = getattr(failure, "orig", None) or failure
    sqlstate = getattr(original, "sqlstate", None)
    if isinstance(failure, exc.TimeoutError):
        reason, message = (
            "pool_exhausted",
            "every database connection of this process is in use; try again shortly",
        )
    elif sqlstate == _LOCK_NOT_AVAILABLE or "database is locked" in str(original):
        # PostgreSQL's lock_timeout, or SQLite's busy timeout
        reason, message = (
            "lock_timeout",
            "another transaction holds a lock this request needs; try again shortly",
        )
    elif sqlstate == _QUERY_CANCELED:
        reason, message = (
            "statement_timeout",
            "a database statement took longer than allowed; try again shortly",
        )
    elif isinstance(original, DatabaseNoAnswer):
        reason, message = (
            "no_answer",
            "the database did not answer in time; try again shortly",
        )
    else:
        reason, message = "unreachable", "the database is unavailable; try again shortly"
    return errors.DatabaseUnavailable(message=message, details={"reason": reason})


def get_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine)


def get_tm_session(
    session_factory: sessionmaker[Session], transaction_manager, request=None
) -> Session:
    """A session whose lifecycle (commit/abort) belongs to ``transaction_manager``.

    zope.sqlalchemy's own hooks (``ZopeTransactionEvents``) join it to the transaction, as
    ``zope.sqlalchemy.register(session)`` would; but that listens on the session itself,
    and building a session's own listeners took about 180 us, more than the rest of a
    short request's session handling: the factory's sessions share listeners instead
    (:func:`_forward_transaction_events`), which hand each event to the hooks the session
    holds.

    Nothing in it is expired at commit: zope.sqlalchemy closes the session right after
    (its objects are let go, not read again), and expiring each one cost as much as a
    statement.
    """
    _forward_transaction_events(session_factory)
    dbsession = session_factory(info={"request": request}, expire_on_commit=False)
    dbsession.info[_TRANSACTION_EVENTS] = zope.sqlalchemy.ZopeTransactionEvents(
        transaction_manager=transaction_manager
    )
    return dbsession


#: the session events ``zope.sqlalchemy.register`` listens to
_ZOPE_EVENTS = (
    "after_begin",
    "after_attach",
    "after_flush",
    "after_bulk_update",
    "after_bulk_delete",
    "before_commit",
    "do_orm_execute",
)
#: session factories whose sessions' events reach their ``ZopeTransactionEvents``
_FORWARDING: weakref.WeakSet = weakref.WeakSet()
_FORWARDING_LOCK = threading.Lock()


def _forward_transaction_events(session_factory: sessionmaker[Session]) -> None:
    """Listen once on ``session_factory`` for the events zope.sqlalchemy handles, and hand
    each to the ``ZopeTransactionEvents`` of the session it concerns (none: a session
    without a transaction manager, such as a read-only request's)."""
    if session_factory in _FORWARDING:
        return
    with _FORWARDING_LOCK:
        if session_factory in _FORWARDING:
            return
        for name in _ZOPE_EVENTS:
            event.listen(session_factory, name, _forwarder(name))
        _FORWARDING.add(session_factory)


def _forwarder(name: str) -> Callable:
    def forward(target, *args):
        # most events name the session first; the bulk ones and do_orm_execute a context
        session = target if isinstance(target, Session) else target.session
        hooks = session.info.get(_TRANSACTION_EVENTS)
        if hooks is not None:
            getattr(hooks, name)(target, *args)

    return forward


#: ``session.info`` flag: the transaction wrote with :func:`core_write`
_CORE_WRITES = "approvalrules.core_writes"


@event.listens_for(Session, "after_soft_rollback")
def _expire_after_core_writes(session, previous_transaction) -> None:
    # whoever writes with core_write sets the new values on its objects as committed, and
    # puts inserted rows' objects in the session as loaded: the ORM does not know they were
    # written, so a rolled-back savepoint (bulk actions run each request in one) would leave
    # them as if it had committed.  Every object is read again instead.  (A rollback of the
    # whole transaction expires everything anyway.)
    if previous_transaction.nested and session.info.get(_CORE_WRITES):
        session.expire_all()


@event.listens_for(Session, "after_transaction_end")
def _forget_core_writes(session, transaction) -> None:
    if transaction.parent is None:
        session.info.pop(_CORE_WRITES, None)


#: ``session.info`` key of the session's transaction-manager hooks (:func:`core_write`)
_TRANSACTION_EVENTS = "approvalrules.transaction_events"


#: ``session.info`` flag of a read-only request's session
_READ_ONLY = "approvalrules.read_only"


def read_only_session(session_factory: sessionmaker[Session], request) -> Session:
    """A session for a request that runs without a transaction manager (``tm.activate_hook``
    said it only reads): closed when the request ends, which ends its transaction, and
    refusing to flush anything, so a write on a read-only path fails loudly instead of
    being dropped with the session.

    Its ``info`` does not name the request (nothing reads it there): the request holds
    the session, and a session naming the request would make a reference cycle of every
    read-only request, left to the garbage collector's passes."""
    session = session_factory(info={_READ_ONLY: True})
    request.add_finished_callback(lambda _request: session.close())
    return session


class DeferredSession:
    """A read-only request's session, made on first use beyond ``info`` and ``get_bind()``.

    The evaluate endpoint with warm caches asks its session only those two: which
    database (the per-process caches are keyed by it, :func:`database_key`) and whether
    its transaction changed a directory.  Making and closing a ``Session`` that is never
    queried was a twentieth of that endpoint's time.  Anything else (a query, ``add``,
    ``identity_map``, ``in``) makes the read-only session (:func:`read_only_session`,
    closed when the request ends) and goes to it.
    """

    def __init__(self, session_factory: sessionmaker[Session], request):
        self._factory = session_factory
        # weakly: the request holds this as ``request.dbsession``, and a cycle would leave
        # the request and all it holds to the garbage collector's passes
        self._request = weakref.ref(request)
        self._session: Session | None = None
        self._info = {_READ_ONLY: True}

    @property
    def info(self) -> dict:
        return self._info if self._session is None else self._session.info

    def get_bind(self, *args, **kwargs):
        """The session factory's engine, as ``Session.get_bind()`` answers it, while no
        session was made; else the session's own answer."""
        bind = self._factory.kw.get("bind")
        if self._session is None and bind is not None and not args and not kwargs:
            return bind
        return self.session.get_bind(*args, **kwargs)

    @property
    def session(self) -> Session:
        """The request's read-only session, made now if it was not yet."""
        if self._session is None:
            session = read_only_session(self._factory, self._request())
            session.info.update(self._info)  # what was noted before it existed
            self._session = session
        return self._session

    def __getattr__(self, name: str):
        return getattr(self.session, name)

    def __contains__(self, instance) -> bool:
        return instance in self.session

    def __iter__(self):
        return iter(self.session)


@event.listens_for(Session, "before_flush")
def _refuse_writes_when_read_only(session, flush_context, instances) -> None:
    if session.info.get(_READ_ONLY) and (session.new or session.dirty or session.deleted):
        _refuse_write("to the database")


def _refuse_write(what: str) -> None:
    # a programming error, not a client's: the request was routed as read-only by mistake
    raise RuntimeError(
        "a read-only request (no transaction, see views/observability.py "
        f"READ_ONLY_REQUESTS) tried to write {what}"
    )


def insert_rows(session: Session, mapped: type, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` (dicts with the same keys) into ``mapped``'s table in one Core
    statement: now, or at the end of a :func:`rows_written_together` block that keeps the
    table (with the block's other rows).

    For the rows a state change appends and never reads back in its transaction (audit,
    outbox, eligibility): no objects, no unit of work, no ``RETURNING``; the columns'
    Python defaults (ids, timestamps) are filled as for an object.
    """
    if not rows:
        return
    kept = session.info.get(_KEPT_ROWS)
    if kept is not None and mapped.__table__ in kept.tables:
        kept.rows.append((mapped.__table__, rows))
    else:
        core_write(session, _insert_without_ids(mapped.__table__), rows)


#: session.info key of the rows :func:`rows_written_together` keeps
_KEPT_ROWS = "approvalrules.kept_rows"


@dataclass
class _KeptRows:
    tables: frozenset
    rows: list


@contextmanager
def rows_written_together(session: Session, *mapped: type):
    """Within the block, on PostgreSQL, :func:`insert_rows` keeps the rows of ``mapped``'s
    tables, and the block's end writes them all in one statement: one round trip instead of
    one a call.  Elsewhere every call writes at once; a block within another adds nothing
    (the outer block's tables are kept, until its end).

    For the append-only rows an action writes and nothing in the block reads, updates or
    deletes (audit, outbox, a new request's eligibility): no statement within the block sees
    them.  Nothing is written when the block raises (its transaction is undone anyway).
    """
    if session.info.get(_KEPT_ROWS) is not None or session.get_bind().dialect.name != "postgresql":
        yield
        return
    kept = session.info[_KEPT_ROWS] = _KeptRows(frozenset(m.__table__ for m in mapped), [])
    # on the connection too, for whoever watches its statements (tables_kept_by)
    connection_info = session.connection().info
    connection_info[_KEPT_ROWS] = kept
    try:
        yield
    finally:
        del session.info[_KEPT_ROWS]
        connection_info.pop(_KEPT_ROWS, None)
    _write_kept(session, kept.rows)


def tables_kept_by(connection) -> frozenset:
    """The tables whose rows a :func:`rows_written_together` block on ``connection`` keeps
    right now (empty outside one): a statement that reads them there would miss rows.  The
    test suite checks every statement against it."""
    kept = connection.info.get(_KEPT_ROWS)
    return kept.tables if kept is not None else frozenset()


def _write_kept(session: Session, kept: list) -> None:
    by_table: dict[Any, list] = {}  # in the order the tables were first written
    for table, rows in kept:
        by_table.setdefault(table, []).extend(rows)
    if not by_table:  # the block wrote none of its tables' rows
        return
    if len(by_table) == 1:
        [(table, rows)] = by_table.items()
        core_write(session, _insert_without_ids(table), rows)
        return
    parts, params = [], {}
    for part, (table, rows) in enumerate(by_table.items()):
        # the columns' Python defaults (timestamps, event ids) filled here: SQLAlchemy fills
        # them only for the statement's own table, not for the INSERTs in its WITH
        full = [_with_python_defaults(table, row) for row in rows]
        for number, row in enumerate(full):
            params.update((f"w{part}_{number}_{key}", value) for key, value in row.items())
        parts.append((table, len(full), tuple(full[0])))
    core_write(session, _inserts_in_one_statement(tuple(parts)), params)


def _with_python_defaults(table, row: dict[str, Any]) -> dict[str, Any]:
    full = dict(row)
    for column in table.columns:
        default = column.default
        if column.key in full or default is None or column.primary_key:
            continue
        if default.is_callable:  # SQLAlchemy's wrapper of a function of no argument
            full[column.key] = default.arg(None)
        elif default.is_scalar:
            full[column.key] = default.arg
        # a SQL expression is written into the statement as it is, as for any INSERT
    return full


#: renders the text of :func:`_inserts_in_one_statement` (":name" parameters, no casts)
_NAMED_PARAMETERS = postgresql_dialect.base.PGDialect(paramstyle="named")


@functools.lru_cache(maxsize=256)
def _inserts_in_one_statement(parts: tuple) -> Any:
    """One ``INSERT`` a table, of ``parts`` ((table, rows, column keys), ...), as one
    statement: the last with the others in its ``WITH`` (PostgreSQL runs each
    data-modifying part once).

    A table's rows are one ``INSERT`` of several ``VALUES``, so its ids follow the order the
    rows were written in (the parts of a ``WITH`` run in no set order; the outbox delivers
    by id).  Kept as text with typed parameters: SQLAlchemy compiles a multi-row
    ``VALUES`` again at every execution, and a text once.
    """
    binds, inserts = [], []
    for part, (table, count, keys) in enumerate(parts):
        rows = []
        for number in range(count):
            row = {
                key: bindparam(f"w{part}_{number}_{key}", type_=table.c[key].type) for key in keys
            }
            binds.extend(row.values())
            rows.append(row)
        inserts.append(insert(table).values(rows))
    *others, last = inserts
    statement = last.add_cte(*(other.cte(f"written_{n}") for n, other in enumerate(others)))
    # a cast (":w0_0_data::JSONB") escaped, or text() would not see the parameter before it
    sql = str(statement.compile(dialect=_NAMED_PARAMETERS)).replace("::", "\\:\\:")
    return text(sql).bindparams(*binds).execution_options(**{_KEPT_PARTS: parts})


#: the execution option naming what a statement of :func:`_inserts_in_one_statement` writes
_KEPT_PARTS = "approvalrules_kept_parts"


def rows_written_together_by(statement, parameters: Mapping[str, Any]) -> list | None:
    """``[(table, row), ...]`` that a statement of :func:`rows_written_together` writes, read
    from its executed ``parameters``; None for any other statement (a watcher of writes,
    such as the test suite's check of every outbox row, reads them this way)."""
    parts = statement.get_execution_options().get(_KEPT_PARTS)
    if parts is None:
        return None
    return [
        (table, {key: parameters[f"w{part}_{number}_{key}"] for key in keys})
        for part, (table, count, keys) in enumerate(parts)
        for number in range(count)
    ]


def insert_object(session: Session, mapped: type, values: dict[str, Any]) -> Any:
    """A new row of ``mapped`` written with one Core ``INSERT``, and its object in the
    session as if it had been loaded: no unit of work.

    Its id is one the transaction drew beforehand for ``mapped`` (:func:`hold_drawn_ids`)
    when it holds one: the row is then written as :func:`insert_rows` writes, with the other
    rows of a :func:`rows_written_together` block that keeps its table (no statement of
    the block may read it), else now.  Otherwise it is written now, ``RETURNING`` its id.

    ``values`` names every column but the id (a column left out would be read back on first
    access); relationships are the caller's to set (``set_committed_value``).
    """
    table = mapped.__table__
    missing = {c.key for c in table.columns if not c.primary_key} - values.keys()
    assert not missing, f"{table.name}: no value for {sorted(missing)}"
    row_id = session.info.get(_DRAWN_IDS, {}).pop(mapped, None)
    if row_id is None:
        row_id = core_write(session, _insert_returning_id(table), values).scalar_one()
    else:
        insert_rows(session, mapped, [{"id": row_id, **values}])
    return _add_as_loaded(session, mapped(id=row_id, **values))


def next_id(mapped: type):
    """PostgreSQL: an expression that draws the next id of ``mapped``'s table from its
    sequence, to select with a statement the caller runs anyway and hand to
    :func:`hold_drawn_ids`.  An id drawn and never used is a gap, as a rolled-back insert
    leaves."""
    return func.nextval(func.pg_get_serial_sequence(mapped.__tablename__, "id"))


def hold_drawn_ids(session: Session, ids: Mapping[type, int]) -> None:
    """Keep ids drawn by :func:`next_id` (mapped class -> id) for the session's next
    :func:`insert_object` of each class, which then needs no ``RETURNING`` and can join the
    other rows of its statement."""
    session.info.setdefault(_DRAWN_IDS, {}).update(ids)


#: session.info key of the ids :func:`hold_drawn_ids` keeps
_DRAWN_IDS = "approvalrules.drawn_ids"


# Each table's two INSERTs, built on first use and kept: building one cost a third as much
# as running it (and tables live as long as the process).


@functools.cache
def _insert_without_ids(table):
    # inline: the new ids are not fetched (nobody reads them here)
    return insert(table).inline()


@functools.cache
def _insert_returning_id(table):
    return insert(table).returning(table.c.id)


def known_row(session: Session, mapped: type, values: dict[str, Any]) -> Any:
    """The session's instance of ``mapped`` with id ``values["id"]`` when it has one;
    otherwise one made of ``values`` and put in the session as if loaded, without a query
    (what the process knows of a row: the columns left out load on first access)."""
    found = session.identity_map.get(session.identity_key(mapped, values["id"]))
    if found is not None:
        return found
    return _add_as_loaded(session, mapped(**values))


def _add_as_loaded(session: Session, instance: Any) -> Any:
    make_transient_to_detached(instance)
    session.add(instance)
    return instance


def core_write(session: Session, statement, params=None):
    """Execute a Core INSERT, UPDATE or DELETE on a table in the session's transaction.

    Refused, as a flush is, in a read-only request's session.  The transaction manager
    is told that the session wrote (it sees the unit of work's flushes and ORM statements,
    not Core ones on a table, and would end a transaction with no other write without
    committing it).  No autoflush: whoever writes this way writes rows that refer to nothing
    the session still holds unwritten.
    """
    if session.info.get(_READ_ONLY):
        _refuse_write(f"with {str(statement).split('(')[0].strip()}")
    result = session.connection().execute(statement, params)
    session.info[_CORE_WRITES] = True
    manager = session.info.get(_TRANSACTION_EVENTS)
    if manager is not None:
        manager.mark_changed(session)
    return result


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
    # a test may inject an engine without a URL in the settings: probe the same database
    url = settings.get("sqlalchemy.url") or engine.url.render_as_string(hide_password=False)
    config.registry["dbprobe"] = get_probe_engine({**settings, "sqlalchemy.url": url})

    def dbsession(request) -> Session:
        # a test, or a tween that needs the session early, may inject one
        session = request.environ.get("app.dbsession")
        if session is None:
            if request.environ.get("tm.active"):
                session = get_tm_session(session_factory, request.tm, request=request)
            else:  # tm.activate_hook said the request only reads
                session = DeferredSession(session_factory, request)
        return session

    config.add_request_method(dbsession, reify=True)


class TenantCache:
    """Per-process entries keyed by (database, tenant, a version counter of that tenant).

    A counter (``Tenant.directory_version``, ``Tenant.rules_version``) is bumped
    in the transaction of every change it covers, so an entry is exactly what
    its key names and never needs invalidating; storing a tenant's new entry
    drops its older ones, and the least recently used tenants go past ``kept``.
    """

    def __init__(self, kept: int, name: str = "other"):
        self.kept = kept
        #: hits and misses, counted per cache ``name`` (approvalrules_cache_*_total)
        self._hits, self._misses = observability.cache_counters(name)
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, session: Session, tenant_id: int, counter: int | None, build: Callable[[], Any]
    ) -> Any:
        """The entry for the tenant at ``counter``; ``build()`` makes it on a miss.

        ``build`` runs outside the lock.
        """
        key = (database_key(session), tenant_id, counter or 0)
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self._hits.inc()
                return found
        self._misses.inc()
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


#: attribute of an engine holding its :func:`database_key`
_DATABASE_KEY = "_approvalrules_database_key"


def database_key(session: Session) -> str:
    """Which database a session talks to (its URL as text), for per-process caches keyed by
    tenant: tenant ids and version counters repeat across databases (tests and tools open
    several).  A session bound to a connection (as tests bind theirs) counts as its engine.

    The text is made once per engine: hashing SQLAlchemy's ``URL`` renders it anew each
    time, which cost the evaluate endpoint more than its directory lookup."""
    engine = session.get_bind().engine
    key = getattr(engine, _DATABASE_KEY, None)
    if key is None:
        key = engine.url.render_as_string(hide_password=False)
        setattr(engine, _DATABASE_KEY, key)
    return key
