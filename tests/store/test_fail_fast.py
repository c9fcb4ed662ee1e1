"""Fail fast on a stalled database (issue 15, defect 7): the engine's deadlines.

Every deadline of ``approvalrules.db.*`` is set where the engine is made (``store/db.py``) and
turns a wait on the database into an error within the configured time; the HTTP side (503 with
``Retry-After``, ``/health`` answering meanwhile) is tests/api/test_fail_fast.py.  PostgreSQL
tests skip without ``APPROVALRULES_TEST_DATABASE_URL``.
"""

from __future__ import annotations

import sqlite3
import time

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session

# tests/ is on sys.path (tests/conftest.py is a rootdir conftest)
from stall import BlackholeProxy

from approvalrules import errors
from approvalrules.store import migrate
from approvalrules.store.db import (
    DatabaseNoAnswer,
    DatabaseTimeouts,
    DeadlineConnection,
    create_engine_for_url,
    database_unavailable,
    get_engine,
    get_probe_engine,
    postgres_connect_args,
)
from approvalrules.store.services import ensure_tenant
from approvalrules.store.testing import create_postgres_database, drop_postgres_database

#: the assertions' margin over a configured deadline: the deadline must fire, not be fast
MARGIN = 10


def test_defaults_and_settings_are_read_from_the_ini_keys():
    defaults = DatabaseTimeouts.from_settings({})
    assert (defaults.statement_timeout, defaults.lock_timeout, defaults.connect_timeout) == (
        10,
        3,
        5,
    )
    assert defaults.effective_reply_timeout == 12  # statement_timeout + 2
    configured = DatabaseTimeouts.from_settings(
        {"approvalrules.db.lock_timeout": "0.5", "approvalrules.db.keepalives_count": "4"}
    )
    assert configured.lock_timeout == 0.5 and configured.keepalives_count == 4
    off = DatabaseTimeouts.from_settings({"approvalrules.db.statement_timeout": "0"})
    assert off.effective_reply_timeout == 0


@pytest.mark.parametrize("value", ["soon", "-1", "inf"])
def test_a_bad_timeout_names_its_key(value):
    with pytest.raises(ValueError, match=r"approvalrules\.db\.lock_timeout"):
        DatabaseTimeouts.from_settings({"approvalrules.db.lock_timeout": value})


def test_postgres_connect_args_carry_every_deadline_and_keep_the_urls_options():
    args = postgres_connect_args(DatabaseTimeouts(), url_options="-c search_path=app")
    assert args["connect_timeout"] == 5
    assert args["options"] == "-c search_path=app -c statement_timeout=10000 -c lock_timeout=3000"
    assert args["tcp_user_timeout"] == 10000
    assert (args["keepalives"], args["keepalives_idle"], args["keepalives_interval"]) == (1, 10, 5)
    assert args["keepalives_count"] == 3
    assert "options" not in postgres_connect_args(
        DatabaseTimeouts(statement_timeout=0, lock_timeout=0)
    )


def test_sqlite_gets_the_lock_timeout_as_its_busy_timeout(tmp_path):
    url = f"sqlite:///{tmp_path / 'busy.sqlite'}"
    holder = sqlite3.connect(tmp_path / "busy.sqlite", isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the database's write lock
    engine = get_engine({"sqlalchemy.url": url, "approvalrules.db.lock_timeout": "0.5"})
    try:
        started = time.monotonic()
        with pytest.raises(OperationalError) as raised, engine.begin() as connection:
            connection.execute(text("INSERT INTO t VALUES (1)"))
        assert time.monotonic() - started < 0.5 + MARGIN
        assert database_unavailable(raised.value).details == {"reason": "lock_timeout"}
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        engine.dispose()


def test_a_pool_that_stays_busy_gives_up_after_pool_timeout(tmp_path):
    engine = get_engine(
        {
            "sqlalchemy.url": f"sqlite:///{tmp_path / 'pool.sqlite'}",
            "sqlalchemy.pool_size": "1",
            "sqlalchemy.max_overflow": "0",
            "sqlalchemy.pool_timeout": "1",
        }
    )
    try:
        with engine.connect(), pytest.raises(PoolTimeoutError) as raised:
            engine.connect()
        error = database_unavailable(raised.value)
        assert isinstance(error, errors.DatabaseUnavailable)
        assert error.details == {"reason": "pool_exhausted"}
    finally:
        engine.dispose()


# --- PostgreSQL -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_url(postgres_url):
    url = create_postgres_database(postgres_url, prefix="ar_failfast")
    migrate.upgrade(url)
    yield url
    drop_postgres_database(url)


@pytest.fixture(scope="module")
def postgres_url():
    import os

    url = os.environ.get("APPROVALRULES_TEST_DATABASE_URL")
    if not url:
        pytest.skip("PostgreSQL not configured: set APPROVALRULES_TEST_DATABASE_URL")
    return url


def _engine(url: str, **timeouts: str):
    return get_engine(
        {"sqlalchemy.url": url, **{f"approvalrules.db.{k}": v for k, v in timeouts.items()}}
    )


def test_every_connection_carries_the_configured_deadlines(pg_url):
    engine = _engine(pg_url, statement_timeout="7", lock_timeout="2", tcp_user_timeout="9")
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "7s"
            assert connection.execute(text("SHOW lock_timeout")).scalar() == "2s"
            raw = connection.connection.dbapi_connection
            parameters = raw.info.get_parameters()
            assert raw.reply_timeout == 9  # statement_timeout + 2
        assert parameters["tcp_user_timeout"] == "9000" and parameters["keepalives"] == "1"
        assert parameters["connect_timeout"] == "5"
    finally:
        engine.dispose()


def test_a_statement_that_runs_too_long_is_cancelled_at_statement_timeout(pg_url):
    engine = _engine(pg_url, statement_timeout="1")
    try:
        started = time.monotonic()
        with pytest.raises(OperationalError) as raised, engine.connect() as connection:
            connection.execute(text("SELECT pg_sleep(30)"))
        assert time.monotonic() - started < 1 + MARGIN
        assert database_unavailable(raised.value).details == {"reason": "statement_timeout"}
    finally:
        engine.dispose()


def test_a_row_lock_held_elsewhere_fails_at_lock_timeout(pg_url):
    holder = create_engine_for_url(pg_url)
    engine = _engine(pg_url, lock_timeout="1")
    try:
        with Session(holder) as session, session.begin():
            ensure_tenant(session, "locked", "Locked merchant")
        with holder.begin() as held:
            held.execute(text("SELECT id FROM tenants WHERE slug = 'locked' FOR UPDATE"))
            started = time.monotonic()
            with pytest.raises(OperationalError) as raised, engine.begin() as connection:
                connection.execute(text("UPDATE tenants SET name = 'x' WHERE slug = 'locked'"))
            assert time.monotonic() - started < 1 + MARGIN
        assert database_unavailable(raised.value).details == {"reason": "lock_timeout"}
    finally:
        engine.dispose()
        holder.dispose()


def _through(proxy: BlackholeProxy, url: str) -> str:
    return (
        make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    )


def test_a_server_that_never_answers_is_given_up_at_reply_timeout(pg_url):
    target = make_url(pg_url)
    proxy = BlackholeProxy(target.host or "127.0.0.1", target.port or 5432)
    engine = _engine(_through(proxy, pg_url), reply_timeout="1", connect_timeout="2")
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
            proxy.blackhole()
            started = time.monotonic()
            with pytest.raises(OperationalError) as raised:
                connection.execute(text("SELECT 2"))
            assert time.monotonic() - started < 1 + MARGIN
            assert isinstance(raised.value.orig, DatabaseNoAnswer)
            assert raised.value.connection_invalidated  # the pool drops it
        assert database_unavailable(raised.value).details == {"reason": "no_answer"}

        # a new connection: the handshake completes, the startup packet is never answered
        started = time.monotonic()
        with pytest.raises(OperationalError), engine.connect():
            pass
        assert time.monotonic() - started < 2 + MARGIN

        proxy.restore()
        with engine.connect() as connection:  # and back once the database answers again
            assert connection.execute(text("SELECT 3")).scalar() == 3
    finally:
        proxy.close()
        engine.dispose()


def test_a_commit_that_gets_no_answer_is_given_up_too(pg_url):
    target = make_url(pg_url)
    proxy = BlackholeProxy(target.host or "127.0.0.1", target.port or 5432)
    engine = _engine(_through(proxy, pg_url), reply_timeout="1")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))  # a transaction is open
            proxy.blackhole()
            started = time.monotonic()
            with pytest.raises(OperationalError) as raised:
                connection.commit()
            assert time.monotonic() - started < 1 + MARGIN
        assert database_unavailable(raised.value).details == {"reason": "no_answer"}
    finally:
        proxy.close()
        engine.dispose()


def test_the_reply_timeout_counts_silence_not_the_whole_call(pg_url):
    from psycopg.waiting import Wait

    def writing_for(seconds):  # a long call that keeps exchanging data (a COPY, say)
        ends = time.monotonic() + seconds
        while time.monotonic() < ends:
            yield Wait.W  # the socket is writable at once: progress
            time.sleep(0.02)
        return "done"

    def reading_forever():  # a call whose answer never comes
        while True:
            yield Wait.R

    conninfo = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = DeadlineConnection.connect(conninfo)
    connection.reply_timeout = 1
    try:
        assert connection.wait(writing_for(2.5)) == "done"  # longer than 1 s, never silent
        started = time.monotonic()
        with pytest.raises(DatabaseNoAnswer):
            connection.wait(reading_forever())
        assert time.monotonic() - started < 1 + MARGIN
        assert connection.closed  # out of step with the server: never reused
    finally:
        connection.close()


def test_the_pools_ping_is_bounded_too(pg_url):
    target = make_url(pg_url)
    proxy = BlackholeProxy(target.host or "127.0.0.1", target.port or 5432)
    engine = get_engine(
        {
            "sqlalchemy.url": _through(proxy, pg_url),
            "sqlalchemy.pool_pre_ping": "true",
            "approvalrules.db.reply_timeout": "1",
            "approvalrules.db.connect_timeout": "2",
        }
    )
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        proxy.blackhole()  # the pooled connection's next ping gets no answer
        started = time.monotonic()
        with pytest.raises(OperationalError), engine.connect():
            pass
        assert time.monotonic() - started < 1 + 2 + MARGIN
    finally:
        proxy.close()
        engine.dispose()


def test_the_readiness_probe_has_its_own_short_deadlines(pg_url):
    probe = get_probe_engine({"sqlalchemy.url": pg_url, "approvalrules.db.ready_timeout": "1.5"})
    try:
        with probe.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "1500ms"
            assert connection.connection.dbapi_connection.reply_timeout == 1.5
    finally:
        probe.dispose()


def test_behind_a_transaction_pooler_the_deadlines_are_set_per_transaction(pg_url):
    """``approvalrules.db.pooler = transaction``: no startup options (a pooler in transaction
    mode refuses them or lets them leak to other clients), no prepared statements, and each
    transaction sets its own deadlines with SET LOCAL, gone when it ends."""
    engine = _engine(pg_url, statement_timeout="7", lock_timeout="2", pooler="transaction")
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "7s"
            assert connection.execute(text("SHOW lock_timeout")).scalar() == "2s"
            raw = connection.connection.dbapi_connection
            assert raw.prepare_threshold is None
            assert "options" not in raw.info.get_parameters()
            connection.rollback()
            # between transactions the server connection has the server's defaults again
            raw.autocommit = True
            try:
                assert raw.execute("SHOW lock_timeout").fetchone()[0] == "0"
            finally:
                raw.autocommit = False
        with engine.connect() as connection:  # a later transaction sets them again
            assert connection.execute(text("SHOW lock_timeout")).scalar() == "2s"
        with engine.begin() as connection:
            holder = connection.execute(text("SELECT pg_sleep(0.01)"))
            assert holder is not None
    finally:
        engine.dispose()


def test_an_unknown_pooler_mode_names_the_key():
    with pytest.raises(ValueError, match="approvalrules.db.pooler = 'session-ish'"):
        get_engine({"sqlalchemy.url": "sqlite://", "approvalrules.db.pooler": "session-ish"})


def test_the_readiness_probe_follows_the_pooler_mode(pg_url):
    probe = get_probe_engine({"sqlalchemy.url": pg_url, "approvalrules.db.pooler": "transaction"})
    try:
        with probe.connect() as connection:
            raw = connection.connection.dbapi_connection
            assert raw.prepare_threshold is None
            assert "options" not in raw.info.get_parameters()
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "2s"
    finally:
        probe.dispose()


@pytest.mark.parametrize(
    ("text", "pings"), [("false", False), ("off", False), ("true", True), (" Yes ", True)]
)
def test_the_pools_ping_follows_the_ini_text(tmp_path, text, pings):
    """engine_from_config passes ``pool_pre_ping`` on as text, so ``false`` was the truthy
    string "false" and every checkout pinged."""
    engine = get_engine(
        {
            "sqlalchemy.url": f"sqlite:///{tmp_path / 'ping.sqlite'}",
            "sqlalchemy.pool_pre_ping": text,
        }
    )
    try:
        assert engine.pool._pre_ping is pings  # SQLAlchemy keeps the option there
    finally:
        engine.dispose()


def test_a_yes_or_no_engine_option_that_is_neither_names_the_key():
    with pytest.raises(ValueError, match="sqlalchemy.pool_pre_ping = 'flase': expected true or"):
        get_engine({"sqlalchemy.url": "sqlite://", "sqlalchemy.pool_pre_ping": "flase"})
