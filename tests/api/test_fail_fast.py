"""Fail fast (issue 15, defect 7): a stalled database answers 503 with ``Retry-After`` within
the configured deadline, the thread is freed, and ``/health`` (liveness) answers meanwhile;
``/ready`` (readiness) checks the database.

The stalls are served by a real waitress with 4 threads, as in production.ini, so a stuck
request really holds a thread.  The assertions give every deadline a generous margin: they
prove that it fires, not how fast.
"""

from __future__ import annotations

import time

import pytest
import webtest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

# tests/ is on sys.path (tests/conftest.py is a rootdir conftest)
from stall import Background, BlackholeProxy, serving

from approvalrules.app import main
from approvalrules.store.db import create_engine_for_url

#: the assertions' margin over a configured deadline
MARGIN = 10


def _app(world, **overrides: str):
    """A fresh app on the world's database with its own engine, built from these settings."""
    settings = {**world.settings, **overrides}
    settings.pop("approvalrules.dbengine", None)
    return main({}, **settings)


def _auth(world) -> dict:
    return {"Authorization": f"Bearer {world.keys['demo']}"}


def _assert_unavailable(status, headers, body, reason=None):
    assert status == 503, body
    assert int(headers["Retry-After"]) > 0
    assert body["error"]["code"] == "database_unavailable"
    assert body["error"]["message"]
    if reason:
        assert body["error"]["details"]["reason"] == reason


def test_health_is_liveness_and_ready_checks_the_database(world):
    api = webtest.TestApp(world.app)
    assert api.get("/health").json["status"] == "ok"
    ready = api.get("/ready").json
    assert ready["status"] == "ready" and ready["database"] == "ok"


def test_database_down_ready_says_503_while_health_stays_ok(world):
    app = _app(world, **{"sqlalchemy.url": "postgresql+psycopg://postgres@127.0.0.1:1/none"})
    client = webtest.TestApp(app)
    assert client.get("/health").json["status"] == "ok"  # liveness: the process is fine
    response = client.get("/ready", status=503)
    _assert_unavailable(503, response.headers, response.json, "unreachable")


def test_ready_is_in_the_openapi_document(world):
    doc = webtest.TestApp(world.app).get("/api/v1/openapi.json").json
    ready = doc["paths"]["/ready"]["get"]
    assert ready["security"] == [] and {"200", "503"} <= set(ready["responses"])


@pytest.fixture
def postgres_world(world):
    if not world.url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: the SQLite run has no lock, statement or network timeouts")
    return world


@pytest.fixture
def tenant_row_locked(postgres_world):
    """Another connection holds ``SELECT ... FOR UPDATE`` on tenant demo's row."""
    engine = create_engine_for_url(postgres_world.url)
    connection = engine.connect()
    transaction = connection.begin()
    connection.execute(text("SELECT id FROM tenants WHERE slug = 'demo' FOR UPDATE"))
    yield
    transaction.rollback()
    connection.close()
    engine.dispose()


def _directory_write(client, world, account: str):
    # every directory change bumps the tenant row's directory_version: it needs that row
    return client.request(
        "PUT", f"/api/v1/directory/accounts/{account}", {"name": "Stalled"}, _auth(world)
    )


def test_a_lock_held_on_the_tenant_row_gives_503_at_lock_timeout(postgres_world, tenant_row_locked):
    app = _app(postgres_world, **{"approvalrules.db.lock_timeout": "3"})
    try:
        with serving(app) as client:
            stalled = Background(
                client,
                "PUT",
                "/api/v1/directory/accounts/stall-lock",
                {"name": "S"},
                _auth(postgres_world),
            )
            time.sleep(0.5)  # the request is now waiting for the lock
            status, _, body, _ = client.request("GET", "/health")
            assert status == 200 and body["status"] == "ok"
            assert not stalled.done(), "/health answered while the request still waited"
            status, headers, body, elapsed = stalled.result(timeout=3 + MARGIN)
            _assert_unavailable(status, headers, body, "lock_timeout")
            assert elapsed < 3 + MARGIN
            # the thread is free again and the database itself is fine
            assert client.request("GET", "/ready")[0] == 200
    finally:
        app.registry["dbengine"].dispose()


def test_a_statement_that_runs_too_long_gives_503_at_statement_timeout(
    postgres_world, tenant_row_locked
):
    # no lock_timeout: the wait for the lock is one long statement, cut by statement_timeout
    app = _app(
        postgres_world,
        **{"approvalrules.db.lock_timeout": "0", "approvalrules.db.statement_timeout": "2"},
    )
    try:
        with serving(app) as client:
            status, headers, body, elapsed = _directory_write(client, postgres_world, "stall-st")
            _assert_unavailable(status, headers, body, "statement_timeout")
            assert elapsed < 2 + MARGIN
    finally:
        app.registry["dbengine"].dispose()


def test_a_network_partition_gives_503_at_the_deadline_and_frees_the_threads(postgres_world):
    target = make_url(postgres_world.url)
    proxy = BlackholeProxy(target.host or "127.0.0.1", target.port or 5432)
    through_proxy = target.set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False
    )
    app = _app(
        postgres_world,
        **{
            "sqlalchemy.url": through_proxy,
            "sqlalchemy.pool_pre_ping": "true",
            "approvalrules.db.reply_timeout": "2",
            "approvalrules.db.connect_timeout": "2",
            "approvalrules.db.ready_timeout": "1",
        },
    )
    deadline = 2 + 2 + MARGIN  # a pooled connection's ping, then one new connection's attempt
    try:
        with serving(app, threads=4) as client:
            assert (
                client.request("GET", "/api/v1/rulesets", headers=_auth(postgres_world))[0] == 200
            )
            proxy.blackhole()
            stalled = [
                Background(client, "GET", "/api/v1/rulesets", headers=_auth(postgres_world))
                for _ in range(3)
            ]
            time.sleep(0.5)
            status, _, body, _ = client.request("GET", "/health")
            assert status == 200 and body["status"] == "ok"
            assert not any(request.done() for request in stalled)
            for request in stalled:
                status, headers, body, elapsed = request.result(timeout=deadline)
                _assert_unavailable(status, headers, body)
                assert body["error"]["details"]["reason"] in ("no_answer", "unreachable")
                assert elapsed < deadline
            status, headers, body, elapsed = client.request("GET", "/ready")
            _assert_unavailable(status, headers, body)
            # every thread is free again: four more at once all get their answer
            again = [Background(client, "GET", "/health") for _ in range(4)]
            assert all(request.result(timeout=MARGIN)[0] == 200 for request in again)

            proxy.restore()
            assert client.request("GET", "/ready")[0] == 200
            assert (
                client.request("GET", "/api/v1/rulesets", headers=_auth(postgres_world))[0] == 200
            )
    finally:
        proxy.close()
        app.registry["dbengine"].dispose()


def test_a_commit_that_gets_no_answer_gives_503_too(postgres_world):
    # the transaction manager commits after the view: its failure must become our JSON 503
    target = make_url(postgres_world.url)
    proxy = BlackholeProxy(target.host or "127.0.0.1", target.port or 5432)
    through_proxy = target.set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False
    )
    app = _app(
        postgres_world,
        **{"sqlalchemy.url": through_proxy, "approvalrules.db.reply_timeout": "2"},
    )
    # the partition starts exactly when the request commits
    event.listen(app.registry["dbengine"], "commit", lambda connection: proxy.blackhole())
    try:
        with serving(app) as client:
            status, headers, body, elapsed = _directory_write(client, postgres_world, "stall-c")
            _assert_unavailable(status, headers, body, "no_answer")
            assert elapsed < 2 + MARGIN
    finally:
        proxy.close()
        app.registry["dbengine"].dispose()
