"""The decision log: one record per evaluate and per deciding submit, in a table written by a
background thread or as JSON log lines; retention; the ``approvalrules decisions`` command."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import webtest
from sqlalchemy import delete, func, insert, select

from approvalrules.app import main
from approvalrules.cli import main as cli
from approvalrules.store import decision_log
from approvalrules.store.decision_log import REGISTRY_KEY, DecisionRecord, TableWriter, prune
from approvalrules.store.models import DecisionLogEntry, Order, Tenant

TABLE = DecisionLogEntry.__table__


def _app(world, sink: str, **extra):
    settings = {**world.settings, "approvalrules.decision_log": sink, **extra}
    return main({}, **settings)


def _client(world, app):
    return webtest.TestApp(
        app, extra_environ={"HTTP_AUTHORIZATION": f"Bearer {world.keys['demo']}"}
    )


@pytest.fixture
def table_app(world):
    app = _app(world, "table")
    yield app
    app.registry[REGISTRY_KEY].close()


def _rows(world, prefix: str) -> list:
    with world.engine.connect() as connection:
        return connection.execute(
            select(TABLE).where(TABLE.c.request_id.like(f"{prefix}%")).order_by(TABLE.c.id)
        ).all()


def test_one_row_per_decision_with_its_fields(world, table_app, order_id):
    client = _client(world, table_app)
    tag = uuid.uuid4().hex[:12]
    bodies = [{"buyer": "bob", "total": total} for total in (200, 800, 300)]
    raw = [json.dumps(body).encode() for body in bodies]
    for number, body in enumerate(raw):
        client.post(
            "/api/v1/evaluate",
            body,
            headers={"Content-Type": "application/json", "X-Request-Id": f"{tag}-e{number}"},
        )
    submitted = [order_id("log") for _ in range(2)]
    for number, external in enumerate(submitted):
        client.post_json(
            "/api/v1/orders",
            {"id": external, "buyer": "bob", "total": 800},
            headers={"X-Request-Id": f"{tag}-s{number}"},
            status=201,
        )
    # the same submission again decides nothing anew: no record
    client.post_json(
        "/api/v1/orders",
        {"id": submitted[0], "buyer": "bob", "total": 800},
        headers={"X-Request-Id": f"{tag}-again"},
        status=200,
    )
    assert table_app.registry[REGISTRY_KEY].flush()

    rows = _rows(world, tag)
    assert len(rows) == 3 + 2
    evaluations = [r for r in rows if r.kind == "evaluate"]
    submits = [r for r in rows if r.kind == "submit"]
    assert [r.request_id for r in evaluations] == [f"{tag}-e{n}" for n in range(3)]
    with world.engine.connect() as connection:
        demo_id = connection.scalar(select(Tenant.id).where(Tenant.slug == "demo"))
        stored = {
            o.external_id: o
            for o in connection.execute(
                select(Order.external_id, Order.decision).where(Order.external_id.in_(submitted))
            )
        }
    for row, body in zip(evaluations, raw, strict=True):
        assert row.tenant_id == demo_id
        assert row.input_digest == hashlib.sha256(body).hexdigest()
        assert row.order_id is None
        assert row.ruleset and row.version >= 1 and len(row.policy_hash) == 64
        assert row.decided_at is not None
    assert [r.outcome for r in evaluations] == ["approved", "pending", "approved"]
    assert evaluations[1].steps and all(isinstance(s, str) for s in evaluations[1].steps)
    assert evaluations[0].steps == []
    assert [r.order_id for r in submits] == submitted
    for row in submits:
        decision = stored[row.order_id].decision
        assert row.outcome == decision["outcome"] == "pending"
        assert row.steps == [s["name"] for s in decision["steps"]]
        assert row.ruleset == decision["ruleset"]["name"]
        assert row.version == decision["ruleset"]["version"]
        # the compiled policy's hash, as the stored decision carries it; an evaluate under the
        # same version names the same policy
        assert row.policy_hash == decision["ruleset"]["policy_hash"] == evaluations[1].policy_hash


def test_the_request_id_attribute_wins_over_the_header(world):
    from types import SimpleNamespace

    sink = decision_log.LogSink()
    seen = []
    sink.put = seen.append
    request = SimpleNamespace(
        registry={REGISTRY_KEY: sink},
        request_id="from-the-tween",
        headers={"X-Request-Id": "from-the-client"},
        body=b"{}",
    )
    order = SimpleNamespace(
        external_id="X-1",
        decision={
            "outcome": "approved",
            "steps": [],
            "ruleset": {"name": "r", "version": 2, "hash": "h", "policy_hash": "p"},
        },
    )
    tenant = SimpleNamespace(id=1, slug="demo")
    decision_log.record_submit(request, tenant, order, created=True)
    request.request_id = None
    request.headers = {"X-Request-Id": "x" * 100}
    decision_log.record_submit(request, tenant, order, created=True)
    assert [r.request_id for r in seen] == ["from-the-tween", "x" * 64]
    assert seen[0].policy_hash == "p" and seen[0].version == 2


def test_a_submit_is_recorded_only_when_its_transaction_commits(world):
    from types import SimpleNamespace

    import transaction

    seen = []
    manager = transaction.TransactionManager(explicit=True)
    request = SimpleNamespace(
        registry={REGISTRY_KEY: SimpleNamespace(put=seen.append)},
        headers={},
        body=b"{}",
        tm=manager,
    )
    order = SimpleNamespace(
        external_id="X-2",
        decision={"outcome": "approved", "steps": [], "ruleset": {"name": "r", "version": 1}},
    )
    tenant = SimpleNamespace(id=1, slug="demo")
    manager.begin()
    decision_log.record_submit(request, tenant, order, created=True)
    assert seen == []  # not before the commit
    manager.abort()
    assert seen == []  # nor after an abort (the request is retried or answered 503)
    manager.begin()
    decision_log.record_submit(request, tenant, order, created=True)
    manager.commit()
    assert [r.order_id for r in seen] == ["X-2"]


def test_the_log_sink_writes_one_json_line_per_decision(world, order_id, caplog):
    client = _client(world, _app(world, "log"))
    tag = uuid.uuid4().hex[:12]
    with caplog.at_level(logging.INFO, logger=decision_log.DECISIONS_LOGGER):
        for number in range(3):
            client.post_json(
                "/api/v1/evaluate",
                {"buyer": "bob", "total": 100 + number},
                headers={"X-Request-Id": f"{tag}-{number}"},
            )
        external = order_id("logline")
        client.post_json(
            "/api/v1/orders",
            {"id": external, "buyer": "bob", "total": 800},
            headers={"X-Request-Id": f"{tag}-s"},
            status=201,
        )
    lines = [r.getMessage() for r in caplog.records if r.name == decision_log.DECISIONS_LOGGER]
    assert len(lines) == 4
    records = [json.loads(line) for line in lines]
    assert all("\n" not in line for line in lines)
    assert [r["kind"] for r in records] == ["evaluate"] * 3 + ["submit"]
    assert [r["request_id"] for r in records] == [f"{tag}-{n}" for n in range(3)] + [f"{tag}-s"]
    assert records[3]["order_id"] == external and records[3]["outcome"] == "pending"
    assert records[0]["tenant"] == "demo"
    assert datetime.fromisoformat(records[0]["decided_at"]).tzinfo is not None
    # no order body: neither the buyer nor the total is in the record
    assert "bob" not in lines[0] and "total" not in lines[0]


def test_off_records_nothing(world):
    app = _app(world, "off")
    assert app.registry[REGISTRY_KEY] is None


def test_a_bad_setting_names_its_key(world):
    with pytest.raises(ValueError, match="approvalrules.decision_log = 'tabel'"):
        _app(world, "tabel")
    with pytest.raises(ValueError, match="retention_days"):
        _app(world, "table", **{"approvalrules.decision_log.retention_days": "a month"})


def _record(tenant_id: int, tag: str, when: datetime, **fields) -> DecisionRecord:
    values = {
        "decided_at": when,
        "tenant_id": tenant_id,
        "tenant": "demo",
        "kind": "evaluate",
        "request_id": tag,
        "ruleset": "standard",
        "version": 1,
        "policy_hash": "0" * 64,
        "input_digest": "1" * 64,
        "order_id": None,
        "outcome": "approved",
        "steps": (),
    }
    values.update(fields)
    return DecisionRecord(**values)


def _demo_id(world) -> int:
    with world.engine.connect() as connection:
        return connection.scalar(select(Tenant.id).where(Tenant.slug == "demo"))


def test_a_full_queue_drops_and_counts_without_blocking(world, caplog):
    writer = TableWriter(
        world.engine,
        decision_log.DecisionLogSettings(sink="table", queue_size=3, retention_days=0),
    )
    # the queue exists, but no thread drains it: what does not fit is dropped at once
    import queue as queues

    writer._queue = queues.Queue(3)
    tag = uuid.uuid4().hex[:12]
    now = datetime.now(UTC)
    demo = _demo_id(world)
    with caplog.at_level(logging.WARNING, logger=decision_log.__name__):
        for number in range(10):
            writer.put(_record(demo, f"{tag}-{number}", now))
    assert writer.dropped == 7
    assert writer._queue.qsize() == 3
    # one warning, not one per record
    warnings = [r.getMessage() for r in caplog.records if r.name == decision_log.__name__]
    assert len(warnings) == 1 and "queue of 3 records is full" in warnings[0]


def test_retention_deletes_old_rows_only(world):
    demo = _demo_id(world)
    tag = uuid.uuid4().hex[:12]
    now = datetime.now(UTC)
    ages = [40, 31, 29, 1]
    with world.engine.begin() as connection:
        connection.execute(
            insert(TABLE),
            [_record(demo, f"{tag}-{age}", now - timedelta(days=age)).as_row() for age in ages],
        )
    try:
        # small batches: several delete statements, each its own transaction
        deleted = prune(world.engine, 30, now=now, batch=1)
        assert deleted >= 2
        kept = sorted(r.request_id for r in _rows(world, tag))
        assert kept == sorted([f"{tag}-29", f"{tag}-1"])
        assert prune(world.engine, 0, now=now) == 0
    finally:
        with world.engine.begin() as connection:
            connection.execute(delete(TABLE).where(TABLE.c.request_id.like(f"{tag}%")))


def test_the_writer_prunes_past_the_retention_when_it_starts(world):
    demo = _demo_id(world)
    tag = uuid.uuid4().hex[:12]
    now = datetime.now(UTC)
    with world.engine.begin() as connection:
        connection.execute(
            insert(TABLE), [_record(demo, f"{tag}-old", now - timedelta(days=31)).as_row()]
        )
    writer = TableWriter(
        world.engine, decision_log.DecisionLogSettings(sink="table", retention_days=30)
    )
    try:
        writer.put(_record(demo, f"{tag}-new", now))
        assert writer.flush()
        assert [r.request_id for r in _rows(world, tag)] == [f"{tag}-new"]
        assert writer.pruned >= 1 and writer.written == 1
    finally:
        writer.close()
        with world.engine.begin() as connection:
            connection.execute(delete(TABLE).where(TABLE.c.request_id.like(f"{tag}%")))


# -- approvalrules decisions INI ----------------------------------------------------------------


@pytest.fixture
def logged(world, tmp_path):
    """Six records of two tenants over three days, and an .ini naming the database."""
    tag = uuid.uuid4().hex[:12]
    demo = _demo_id(world)
    with world.engine.connect() as connection:
        other = connection.scalar(select(Tenant.id).where(Tenant.slug == "other"))
    base = datetime(2031, 3, 10, 12, 0, tzinfo=UTC)
    records = [
        _record(demo, f"{tag}-a", base - timedelta(days=2)),
        _record(demo, f"{tag}-b", base - timedelta(days=1), outcome="pending", steps=("m",)),
        _record(demo, f"{tag}-c", base, kind="submit", order_id=f"{tag}-order", outcome="pending"),
        _record(demo, f"{tag}-d", base + timedelta(hours=1), ruleset="other-rules"),
        _record(other, f"{tag}-e", base + timedelta(hours=2), tenant="other", outcome="blocked"),
        _record(demo, f"{tag}-f", base + timedelta(hours=3), outcome="held"),
    ]
    with world.engine.begin() as connection:
        connection.execute(insert(TABLE), [r.as_row() for r in records])
    ini = tmp_path / "decisions.ini"
    url = world.engine.url.render_as_string(hide_password=False)
    ini.write_text(f"[app:main]\nuse = egg:approvalrules\nsqlalchemy.url = {url}\n")
    yield str(ini), tag
    with world.engine.begin() as connection:
        connection.execute(delete(TABLE).where(TABLE.c.request_id.like(f"{tag}%")))


def _listed(capsys, ini, tag, *options) -> list[str]:
    # the since filter keeps other tests' rows (decided now, in 2026) out
    assert cli(["decisions", ini, "--json", "--since", "2031-01-01", *options]) == 0
    lines = capsys.readouterr().out.splitlines()
    return [json.loads(line)["request_id"].removeprefix(f"{tag}-") for line in lines]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ((), ["f", "e", "d", "c", "b", "a"]),
        (("--tenant", "other"), ["e"]),
        (("--outcome", "pending"), ["c", "b"]),
        (("--kind", "submit"), ["c"]),
        (("--ruleset", "other-rules"), ["d"]),
        (("--since", "2031-03-10T12:30"), ["f", "e", "d"]),
        (("--until", "2031-03-09"), ["b", "a"]),
        (("--until", "2031-03-10T13:00:00+00:00"), ["c", "b", "a"]),
        (("--order", "{tag}-order"), ["c"]),
        (("--request-id", "{tag}-b"), ["b"]),
        (("--limit", "2"), ["f", "e"]),
    ],
)
def test_the_decisions_command_filters(logged, capsys, options, expected):
    ini, tag = logged
    options = [o.format(tag=tag) for o in options]
    assert _listed(capsys, ini, tag, *options) == expected


def test_the_decisions_command_prints_a_table(logged, capsys):
    ini, tag = logged
    assert cli(["decisions", ini, "--request-id", f"{tag}-c"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["decided", "(UTC)", "tenant"]
    assert "2031-03-10 12:00:00  demo    submit  standard v1  pending" in out[2]
    assert f"{tag}-order" in out[2]
    assert cli(["decisions", ini, "--request-id", "nothing-has-this"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "no decisions match",
        f"({ini} has approvalrules.decision_log = off: the app writes decisions to this table "
        "only with table)",
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--tenant", "nobody"), "error: --tenant: no tenant 'nobody' in this database; tenants:"),
        (("--outcome", "ok"), "error: --outcome: 'ok' is not an outcome; use one of approved,"),
        (("--since", "yesterday"), "error: --since: 'yesterday' is not an ISO date or date-time"),
        (("--since", "2031-03-10", "--until", "2031-03-01"), "is not before --until"),
        (("--limit", "0"), "error: --limit: 0 is out of range; give 1 to"),
    ],
)
def test_a_bad_filter_says_what_where_and_how(logged, capsys, options, message):
    ini, _ = logged
    assert cli(["decisions", ini, *options]) == 2
    assert message in capsys.readouterr().err


def test_the_decisions_command_prunes_past_the_retention(world, logged, capsys, tmp_path):
    ini, tag = logged
    demo = _demo_id(world)
    with world.engine.begin() as connection:
        connection.execute(
            insert(TABLE),
            [_record(demo, f"{tag}-old", datetime.now(UTC) - timedelta(days=10)).as_row()],
        )
    with open(ini, "a") as file:
        file.write("approvalrules.decision_log.retention_days = 7\n")
    assert cli(["decisions", ini, "--prune"]) == 0
    assert "older than 7 days deleted" in capsys.readouterr().out
    with world.engine.connect() as connection:
        left = connection.scalar(select(func.count()).where(TABLE.c.request_id.like(f"{tag}%")))
    assert left == 6  # the future-dated fixtures stay; the 10-day-old one went
