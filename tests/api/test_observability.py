"""Request ids, structured logs and /metrics (docs/deployment.md, "Observability").

Counters are per process and the suite shares one, so every test compares a scrape
before with one after.
"""

from __future__ import annotations

import json
import logging
import re
import time

import pytest
import webtest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from approvalrules import observability
from approvalrules.app import main
from approvalrules.workflow import commands, deciding

HEX_ID = re.compile(r"[0-9a-f]{32}")


def scrape(app, **headers) -> dict[tuple[str, frozenset], float]:
    """``/metrics`` as {(sample name, labels): value}, parsed by prometheus_client."""
    text = webtest.TestApp(app).get("/metrics", headers=headers).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def families(app) -> set[str]:
    text = webtest.TestApp(app).get("/metrics").text
    return {family.name for family in text_string_to_metric_families(text)}


def job_ini(tmp_path, world) -> str:
    ini = tmp_path / "jobs.ini"
    ini.write_text(f"[app:main]\nuse = egg:approvalrules\nsqlalchemy.url = {world.url}\n")
    return str(ini)


def test_metrics_move_with_evaluate_submit_a_404_and_a_job(world, api, order_id, tmp_path):
    before = scrape(world.app)
    evaluated = api.post_json("/api/v1/evaluate", {"buyer": "bob", "total": 200}).json
    submitted = api.post_json(
        "/api/v1/orders", {"id": order_id("obs"), "buyer": "bob", "total": 800}
    ).json
    assert submitted["status"] == "pending"
    api.get("/api/v1/no-such-thing", status=404)
    api.get("/health")
    assert commands.expire(job_ini(tmp_path, world)) >= 0
    after = scrape(world.app)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    outcome = evaluated["outcome"]
    assert moved("approvalrules_decisions_total", kind="evaluate", outcome=outcome) == 1
    assert moved("approvalrules_decisions_total", kind="submit", outcome="pending") == 1
    duration = "approvalrules_request_duration_seconds_count"
    assert moved(duration, route="api_evaluate", method="POST", status="2xx") == 1
    assert moved(duration, route="api_orders", method="POST", status="2xx") == 1
    assert moved(duration, route="notfound", method="GET", status="4xx") == 1
    assert moved(duration, route="health", method="GET", status="2xx") == 1
    assert moved("approvalrules_job_runs_total", job="expire", result="ok") == 1
    assert moved("approvalrules_job_duration_seconds_count", job="expire") == 1
    lookups = sum(
        moved(f"approvalrules_cache_{kind}_total", cache=cache)
        for kind in ("hits", "misses")
        for cache in ("active", "directory_snapshots", "company_slices", "buyer_companies")
    )
    assert lookups >= 2  # evaluate and submit each read the active version and the directory
    assert value(after, "approvalrules_database_metrics_ok") == 1
    assert value(after, "approvalrules_approval_requests", status="pending") >= 1
    for status in ("approved", "rejected", "expired", "withdrawn"):
        assert ("approvalrules_approval_requests", frozenset({("status", status)})) in after
    for gauge in (
        "approvalrules_outbox_undelivered_events",
        "approvalrules_outbox_oldest_undelivered_age_seconds",
        "approvalrules_outbox_failing_events",
    ):
        assert (gauge, frozenset()) in after, gauge
    # the submit queued e-mails and webhooks that nothing has delivered yet
    assert value(after, "approvalrules_outbox_undelivered_events") >= 1
    assert {
        "approvalrules_request_duration_seconds",
        "approvalrules_decisions",
        "approvalrules_job_runs",
        "approvalrules_job_duration_seconds",
        "approvalrules_cache_hits",
        "approvalrules_cache_misses",
        "approvalrules_outbox_delivery_failures",
        "approvalrules_approval_requests",
        "process_cpu_seconds",
    } <= families(world.app)


def test_an_idempotent_submit_answered_again_is_not_a_new_decision(world, api, order_id):
    order = {"id": order_id("obs"), "buyer": "bob", "total": 200}
    api.post_json("/api/v1/orders", order, status=201)
    before = scrape(world.app)
    api.post_json("/api/v1/orders", order, status=200)
    after = scrape(world.app)
    assert value(after, "approvalrules_decisions_total", kind="submit", outcome="approved") == (
        value(before, "approvalrules_decisions_total", kind="submit", outcome="approved")
    )


def test_the_metrics_token_is_required_when_set(world):
    app = main({}, **{**world.settings, "approvalrules.metrics.token": "scrape-secret"})
    client = webtest.TestApp(app)
    missing = client.get("/metrics", status=401)
    assert missing.json["error"]["code"] == "missing_metrics_token"
    assert missing.json["error"]["request_id"] == missing.headers["X-Request-Id"]
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"}, status=401)
    assert wrong.json["error"]["code"] == "invalid_metrics_token"
    good = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert good.content_type == "text/plain"
    assert "approvalrules_request_duration_seconds" in good.text


def test_metrics_can_be_turned_off(world):
    app = main({}, **{**world.settings, "approvalrules.metrics.enabled": "false"})
    webtest.TestApp(app).get("/metrics", status=404)


def test_metrics_and_health_run_without_a_transaction(world):
    from approvalrules.views.observability import transaction_needed

    hook = world.app.registry.settings["tm.activate_hook"]
    assert hook == "approvalrules.views.observability.transaction_needed"

    class Request:
        def __init__(self, path, method="GET"):
            self.environ = {"PATH_INFO": path, "REQUEST_METHOD": method}

    assert not transaction_needed(Request("/health"))
    assert not transaction_needed(Request("/metrics"))
    assert not transaction_needed(Request("/api/v1/evaluate", "POST"))
    assert transaction_needed(Request("/api/v1/orders", "POST"))
    assert transaction_needed(Request("/api/v1/rulesets/acme/publish", "POST"))


def test_evaluate_commits_nothing_and_submit_commits(world, api, order_id):
    """Evaluate runs without a transaction manager: its session is closed (rolled back) at the
    end of the request, so the database sees no COMMIT; a submit commits once."""
    from sqlalchemy import event

    commits = []
    listener = lambda connection: commits.append(connection)  # noqa: E731
    event.listen(world.engine, "commit", listener)
    try:
        body = {"buyer": "sam", "total": 2000}
        api.post_json("/api/v1/evaluate", body)
        api.post_json("/api/v1/evaluate", body)
        assert commits == []
        api.post_json("/api/v1/orders", {"id": order_id("ro"), **body}, status=201)
        assert len(commits) == 1
    finally:
        event.remove(world.engine, "commit", listener)


def test_a_write_on_a_read_only_request_fails_loudly(world):
    from sqlalchemy.orm import sessionmaker

    from approvalrules.store.db import read_only_session
    from approvalrules.store.models import Tenant

    class Request:
        finished = []

        def add_finished_callback(self, callback):
            self.finished.append(callback)

    request = Request()
    session = read_only_session(sessionmaker(bind=world.engine), request)
    assert session.scalar(select(Tenant.slug).where(Tenant.slug == "demo")) == "demo"
    session.add(Tenant(slug="never-stored", name="Never stored", settings={}))
    with pytest.raises(RuntimeError, match="read-only request"):
        session.flush()
    for callback in request.finished:
        callback(request)
    assert session.scalar(select(Tenant.id).where(Tenant.slug == "never-stored")) is None


def test_a_read_only_request_makes_its_session_on_first_real_use(world):
    from sqlalchemy.orm import sessionmaker

    from approvalrules.store.db import DeferredSession, database_key
    from approvalrules.store.models import Tenant

    class Request:
        finished = []

        def add_finished_callback(self, callback):
            self.finished.append(callback)

    made = []

    class CountingFactory(sessionmaker):
        def __call__(self, **kwargs):
            made.append(super().__call__(**kwargs))
            return made[-1]

    request = Request()
    deferred = DeferredSession(CountingFactory(bind=world.engine), request)
    deferred.info.setdefault("noted", set()).add(1)
    assert deferred.get_bind() is world.engine
    assert database_key(deferred) == world.engine.url.render_as_string(hide_password=False)
    assert made == [] and request.finished == []
    assert deferred.scalar(select(Tenant.slug).where(Tenant.slug == "demo")) == "demo"
    assert len(made) == 1 and deferred.session is made[0]
    assert deferred.info["noted"] == {1}
    assert deferred.get_bind() is world.engine
    deferred.add(Tenant(slug="never-stored", name="Never stored", settings={}))
    with pytest.raises(RuntimeError, match="read-only request"):
        deferred.flush()
    for callback in request.finished:
        callback(request)
    assert len(made) == 1
    assert made[0].scalar(select(Tenant.id).where(Tenant.slug == "never-stored")) is None


def test_evaluate_makes_no_session_when_its_key_and_caches_are_warm(world, api, monkeypatch):
    """With the key cache trusted (PostgreSQL's listener) a warm evaluate asks the database
    nothing, so it makes no session at all; without it (SQLite) the key is read with one."""
    from sqlalchemy.orm import sessionmaker

    body = {"buyer": "sam", "total": 2000}
    api.post_json("/api/v1/evaluate", body)
    made = []
    original = sessionmaker.__call__
    monkeypatch.setattr(
        sessionmaker, "__call__", lambda self, **kw: made.append(1) or original(self, **kw)
    )
    for _ in range(3):
        assert api.post_json("/api/v1/evaluate", body).json["outcome"]
    expected = 0 if world.app.registry["key_cache"].active else 3
    assert len(made) == expected


def _cyclic_garbage(call) -> list[str]:
    """The type names of what ``call()`` left in reference cycles (freed only by the
    collector's passes)."""
    import gc

    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        call()
        gc.collect()
        return sorted(type(item).__name__ for item in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


#: what a request and its decision are made of; in a reference cycle, each kept the whole
#: request (its environ, its body) and its evaluation until the collector's next pass
REQUEST_AND_DECISION = frozenset(
    ("Request", "GetDict", "StorefrontApi", "DeferredSession", "Session")
    + ("Evaluation", "Facts", "Order", "Line", "Decision", "StepMatched", "StepNotMatched")
)


def test_evaluate_leaves_its_request_and_decision_to_reference_counting(world, api):
    """Freed as soon as the answer is sent, not by the garbage collector: its passes over
    every evaluate's leftovers were the endpoint's slowest answers.  (Other threads, such as
    a cache listener, may leave garbage of their own meanwhile: only these types count.)"""
    body = {"buyer": "sam", "total": 2000}
    api.post_json("/api/v1/evaluate", body)
    for url in ("/api/v1/evaluate", "/api/v1/evaluate?trace=0"):
        left = _cyclic_garbage(lambda url=url: api.post_json(url, body))
        assert REQUEST_AND_DECISION.isdisjoint(left), (url, sorted(set(left)))


@pytest.mark.parametrize(
    "query, traced",
    [
        ("", True),
        ("?trace=0", False),
        ("?trace=1", True),
        ("?trace=1&trace=0", False),
        ("?trace=0&trace=1", True),
        ("?trace=", True),
        ("?other=0", True),
    ],  # fmt: skip
)
def test_trace_0_leaves_the_trace_out(api, query, traced):
    answer = api.post_json(f"/api/v1/evaluate{query}", {"buyer": "sam", "total": 2000}).json
    assert ("trace" in answer) is traced


def test_metrics_is_in_the_openapi_document(api):
    operation = api.get("/api/v1/openapi.json").json["paths"]["/metrics"]["get"]
    assert "text/plain" in operation["responses"]["200"]["content"]
    assert "401" in operation["responses"]


# ---------------------------------------------------------------- request ids


def test_a_given_request_id_is_echoed_and_one_is_made_when_absent(api):
    given = api.get("/health", headers={"X-Request-Id": "lb-7f3a:42.x_y"})
    assert given.headers["X-Request-Id"] == "lb-7f3a:42.x_y"
    assert HEX_ID.fullmatch(api.get("/health").headers["X-Request-Id"])
    for unusable in ("a" * 129, "two words", "semi;colon", "é"):
        made = api.get("/health", headers={"X-Request-Id": unusable}).headers["X-Request-Id"]
        assert HEX_ID.fullmatch(made), unusable


def test_every_kind_of_answer_carries_the_request_id(world, api):
    anonymous = webtest.TestApp(world.app)
    answers = {
        "api": api.get("/api/v1/approvals?approver=ann"),
        "admin": anonymous.get("/admin/login", status="*"),
        "static": anonymous.get("/static/app.css"),
        "page 404": anonymous.get("/no/such/page", status=404),
        "405": api.put_json("/api/v1/evaluate", {}, status=405),
    }
    for what, answer in answers.items():
        assert HEX_ID.fullmatch(answer.headers["X-Request-Id"]), what


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda api, anonymous: api.get("/api/v1/nothing/here", status=404), id="404"),
        pytest.param(
            lambda api, anonymous: anonymous.get("/api/v1/approvals", status=401), id="401"
        ),
        pytest.param(
            lambda api, anonymous: api.get("/api/v1/approvals/x", status=400), id="400-tween"
        ),
        pytest.param(
            lambda api, anonymous: api.post_json(
                "/api/v1/evaluate", {"buyer": "bob", "total": "-1"}, status=422
            ),
            id="422",
        ),
        pytest.param(
            lambda api, anonymous: api.post(
                "/api/v1/evaluate",
                b'{"x": "' + b"a" * 1_100_000 + b'"}',
                content_type="application/json",
                status=413,
            ),
            id="413-tween",
        ),
    ],
)
def test_json_errors_name_the_request_id(world, api, call):
    answer = call(api, webtest.TestApp(world.app))
    assert answer.json["error"]["request_id"] == answer.headers["X-Request-Id"]
    assert answer.json["error"]["code"]


def test_a_rate_limited_answer_names_the_request_id(world):
    app = main({}, **{**world.settings, "approvalrules.rate_limit_per_minute": "1"})
    client = webtest.TestApp(
        app, extra_environ={"HTTP_AUTHORIZATION": f"Bearer {world.keys['read_only']}"}
    )
    client.get("/api/v1/rulesets")
    limited = client.get("/api/v1/rulesets", headers={"X-Request-Id": "retry-me"}, status=429)
    assert limited.headers["X-Request-Id"] == "retry-me"
    assert limited.json["error"] == {**limited.json["error"], "request_id": "retry-me"}
    assert limited.json["error"]["code"] == "rate_limited"


# ---------------------------------------------------------------- log lines


@pytest.fixture
def logged_evaluate(monkeypatch, caplog):
    """The evaluate view logs a line (as a failure deep inside it would): the records."""
    original = deciding.evaluate

    def evaluate_and_log(*args, **kwargs):
        logging.getLogger("approvalrules.workflow.deciding").warning("evaluating a cart")
        return original(*args, **kwargs)

    monkeypatch.setattr(deciding, "evaluate", evaluate_and_log)
    caplog.handler.addFilter(observability.RequestContextFilter())
    caplog.set_level(logging.WARNING, logger="approvalrules")
    return caplog


def test_a_log_line_carries_request_id_tenant_and_route(api, logged_evaluate):
    answer = api.post_json(
        "/api/v1/evaluate", {"buyer": "bob", "total": 200}, headers={"X-Request-Id": "trace-1"}
    )
    assert answer.headers["X-Request-Id"] == "trace-1"
    (record,) = [r for r in logged_evaluate.records if r.getMessage() == "evaluating a cart"]
    assert (record.request_id, record.tenant, record.route) == ("trace-1", "demo", "api_evaluate")
    line = json.loads(observability.JsonFormatter().format(record))
    assert line["request_id"] == "trace-1"
    assert line["tenant"] == "demo"
    assert line["route"] == "api_evaluate"
    assert line["level"] == "WARNING"
    assert line["logger"] == "approvalrules.workflow.deciding"
    assert line["message"] == "evaluating a cart"
    assert line["time"].endswith("+00:00")


def test_an_unexpected_failure_is_a_500_naming_the_request_id(api, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(deciding, "evaluate", broken)
    caplog.handler.addFilter(observability.RequestContextFilter())
    failed = api.post_json(
        "/api/v1/evaluate",
        {"buyer": "bob", "total": 1},
        headers={"X-Request-Id": "bug-1"},
        status=500,
    )
    assert failed.json["error"] == {
        "code": "internal_error",
        "message": "the server failed to answer; quote the request id when reporting it",
        "request_id": "bug-1",
    }
    (record,) = [r for r in caplog.records if r.exc_info and r.request_id == "bug-1"]
    assert "RuntimeError: a bug" in logging.Formatter().formatException(record.exc_info)


def test_metrics_on_a_port_of_their_own(world):
    """``approvalrules.metrics.port``: prometheus_client's own server answers there too."""
    import urllib.request

    from .conftest import free_port

    port = free_port()
    main({}, **{**world.settings, "approvalrules.metrics.port": str(port)})
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    assert "approvalrules_request_duration_seconds" in text
    assert "approvalrules_database_metrics_ok 1.0" in text


def test_metrics_show_the_decision_log_writer_and_the_key_cache(world):
    """The table writer's records by result, and whether the key cache is trusted (on SQLite
    there is no invalidation listener, so it never is; on PostgreSQL it is once the
    listener hears its own ping)."""
    from approvalrules.store.decision_log import REGISTRY_KEY

    app = main({}, **{**world.settings, "approvalrules.decision_log": "table"})
    client = webtest.TestApp(
        app, extra_environ={"HTTP_AUTHORIZATION": f"Bearer {world.keys['demo']}"}
    )
    writer = app.registry[REGISTRY_KEY]
    try:
        before = scrape(app)
        for _ in range(3):
            client.post_json("/api/v1/evaluate", {"buyer": "sam", "total": 20})
        assert writer.flush()
        after = scrape(app)
        written = "approvalrules_decision_log_records_total"
        assert (
            value(after, written, result="written") - value(before, written, result="written") == 3
        )
        assert value(after, written, result="dropped") == 0
        trusted = value(after, "approvalrules_key_cache_trusted")
        if world.engine.dialect.name == "sqlite":
            assert trusted == 0
        else:
            deadline = time.monotonic() + 10
            while trusted != 1 and time.monotonic() < deadline:
                time.sleep(0.1)
                trusted = value(scrape(app), "approvalrules_key_cache_trusted")
            assert trusted == 1
    finally:
        writer.close()
