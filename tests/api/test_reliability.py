"""Nothing lost: determinism, database outages, killed dispatchers and killed publishers."""

from __future__ import annotations

import queue
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg.errors
import pytest
import webtest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from approvalrules.app import main
from approvalrules.engine import check_ruleset, text_hash
from approvalrules.store import versions
from approvalrules.store.db import create_engine_for_url
from approvalrules.store.models import OutboxEvent, RuleSet, RuleSetVersion
from approvalrules.workflow import deciding, outbox

from .conftest import ROOT, free_port

BIN = Path(sys.executable).parent


def test_same_order_same_version_byte_identical_decisions(api):
    # Sam's 3000 is pending without expiry: nothing in the decision depends on the clock
    body = {"buyer": "sam", "total": 3000, "lines": [{"sku": "PAPER-A4", "quantity": 10}]}
    first = api.post_json("/api/v1/evaluate", body).body
    for _ in range(999):
        assert api.post_json("/api/v1/evaluate", body).body == first


def test_decisions_identical_after_a_restart(tmp_path):
    order = tmp_path / "order.json"
    order.write_text('{"buyer": "bob", "total": 800, "id": "r-1"}')
    command = [
        str(BIN / "approvalrules"),
        "evaluate",
        str(ROOT / "rules" / "acme.yaml"),
        "--directory",
        str(ROOT / "rules" / "directories" / "acme.yaml"),
        "--order",
        str(order),
        "--now",
        "2026-03-01T10:00:00Z",
    ]
    outputs = [subprocess.run(command, capture_output=True, check=True).stdout for _ in range(2)]
    assert outputs[0] == outputs[1] and b'"outcome": "pending"' in outputs[0]


def test_database_down_answers_503_quickly(world):
    settings = {
        **world.settings,
        "sqlalchemy.url": "postgresql+psycopg://postgres@127.0.0.1:1/none",
    }
    settings.pop("approvalrules.dbengine")
    app = webtest.TestApp(
        main({}, **settings), extra_environ={"HTTP_AUTHORIZATION": f"Bearer {world.keys['demo']}"}
    )
    started = time.monotonic()
    response = app.post_json("/api/v1/evaluate", {"buyer": "sam", "total": 10}, status=503)
    assert time.monotonic() - started < 5
    assert response.json["error"]["code"] == "database_unavailable"
    assert response.headers["Retry-After"]


def test_dispatcher_killed_mid_delivery_redelivers_with_the_same_event_id(
    api, order_id, world, dispatch
):
    dispatch()  # start from an empty queue
    oid = order_id("killed")
    api.post_json("/api/v1/orders", {"id": oid, "buyer": "bob", "total": 100})

    class Killed(BaseException):
        pass

    def deliver_then_die(session):
        outbox.dispatch(session, world.settings)
        raise Killed  # the process dies before its transaction commits

    with pytest.raises(Killed):
        world.run(deliver_then_die)
    first = world.webhooks.events(oid, "order_approved")
    assert len(first) == 1
    dispatch()
    again = world.webhooks.events(oid, "order_approved")
    assert (
        len(again) == 2 and again[0]["id"] == again[1]["id"]
    )  # at least once, de-duplicable by id
    dispatch()
    assert len(world.webhooks.events(oid, "order_approved")) == 2  # delivered: never again


#: publishes new versions of "acme" in a loop, printing ``n`` after the n-th commit; each run
#: gets its own range of thresholds, so every publish is a new text (never the active one)
PUBLISHER = textwrap.dedent(
    """
    import sys
    from sqlalchemy.orm import Session
    from approvalrules.store.db import create_engine_for_url
    from approvalrules.store import versions
    engine = create_engine_for_url(sys.argv[1])
    base = open(sys.argv[2]).read()
    offset = int(sys.argv[3])
    n = 0
    while True:
        n += 1
        text = base.replace("total: {gt: 500}", "total: {gt: %d}" % (offset + n))
        with Session(engine) as session, session.begin():
            versions.publish(session, "demo", "acme", author="killer", text=text)
        print(n, flush=True)
    """
)
#: how long a publisher may take to report its first publishes before the test gives up
PUBLISH_TIMEOUT = 60


def _threshold_of(text: str) -> int:
    found = re.search(r"buyer_group: marketing, total: \{gt: (\d+)\}", text)
    assert found, "the active text lost the rule the publisher rewrites"
    return int(found.group(1))


def _kill_after_publishes(command: list[str], publishes: int, extra_delay: float) -> int:
    """Run the publisher until it has committed ``publishes`` versions (plus ``extra_delay``
    seconds, to land the kill at another point of a publish), SIGKILL it; the number of
    publishes it reported committed."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put(None)  # end of output

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reported = 0
    try:
        while reported < publishes:
            try:
                line = lines.get(timeout=PUBLISH_TIMEOUT)
            except queue.Empty:
                pytest.fail(f"the publisher reported {reported} publishes in {PUBLISH_TIMEOUT}s")
            if line is None:
                pytest.fail(f"the publisher died: {process.stderr.read()[-2000:]}")
            reported = int(line)
        time.sleep(extra_delay)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    reader.join(timeout=PUBLISH_TIMEOUT)
    while (line := lines.get_nowait()) is not None:  # what it printed before dying
        reported = int(line)
    return reported


def test_process_killed_during_publish_leaves_old_or_new_version_whole(world, tmp_path):
    """A publisher killed at any point leaves every version it committed, and the active one
    whole: the last it reported, or the one it committed but was killed before reporting."""
    if world.engine.dialect.name != "sqlite":
        pytest.skip(
            "one database file is enough to prove it; "
            "PostgreSQL publishes are covered by the store's concurrency test"
        )
    db = tmp_path / "copy.sqlite"
    shutil.copy(world.url.removeprefix("sqlite:///"), db)
    script = tmp_path / "publisher.py"
    script.write_text(PUBLISHER)
    engine = create_engine_for_url(f"sqlite:///{db}")

    def stored_versions(session) -> tuple[RuleSet, list[int]]:
        ruleset = session.scalar(select(RuleSet).where(RuleSet.name == "acme"))
        numbers = session.scalars(
            select(RuleSetVersion.number)
            .where(RuleSetVersion.ruleset_id == ruleset.id)
            .order_by(RuleSetVersion.number)
        )
        return ruleset, list(numbers)

    with Session(engine) as session:
        before = len(stored_versions(session)[1])
    runs = [(1, 0.0), (2, 0.05), (3, 0.2)]  # (publishes to wait for, then seconds before the kill)
    reported, offset = [], 0
    for publishes, extra_delay in runs:
        offset += 10_000
        command = [
            sys.executable,
            str(script),
            f"sqlite:///{db}",
            str(ROOT / "rules" / "acme.yaml"),
        ]
        reported.append(_kill_after_publishes(command + [str(offset)], publishes, extra_delay))
    last_offset = offset

    with Session(engine) as session:
        ruleset, numbers = stored_versions(session)
        active = session.get(RuleSetVersion, ruleset.active_version_id)
        published = session.scalar(
            select(func.count())
            .select_from(RuleSetVersion)
            .where(RuleSetVersion.ruleset_id == ruleset.id, RuleSetVersion.status == "published")
        )
        check_ruleset(active.text, "active", versions.resolver(session, ruleset.tenant_id))
    engine.dispose()

    assert all(count >= publishes for count, (publishes, _) in zip(reported, runs, strict=True))
    # every reported publish was committed; at most one more per run committed unreported
    assert before + sum(reported) <= len(numbers) <= before + sum(reported) + len(runs)
    assert numbers == list(range(1, len(numbers) + 1))  # no gap, no half-numbered version
    assert published == 1 and active.status == "published"
    assert text_hash(active.text) == active.content_hash
    assert _threshold_of(active.text) - last_offset in (reported[-1], reported[-1] + 1)


@pytest.mark.parametrize("failure", ["SerializationFailure", "DeadlockDetected"])
def test_serialization_failures_and_deadlocks_are_retried(api, monkeypatch, failure):
    """pyramid_retry runs the request again on PostgreSQL's transient errors.

    SQLSTATE 40001 (serialization failure) and 40P01 (deadlock detected).
    """
    real = deciding.evaluate
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("SELECT ...", {}, getattr(psycopg.errors, failure)("transient"))
        return real(*args, **kwargs)

    monkeypatch.setattr(deciding, "evaluate", flaky)
    response = api.post_json("/api/v1/evaluate", {"buyer": "sam", "total": 10})
    assert response.json["outcome"] == "approved"
    assert len(calls) == 2


def test_publish_while_evaluating_always_sees_a_whole_version(world, api):
    """Evaluations racing a stream of publishes each see one whole version.

    Outcome and version agree.
    """
    if world.engine.dialect.name != "postgresql":
        pytest.skip(
            "concurrent publish and evaluate is proven on PostgreSQL (SQLite serialises writers)"
        )
    # acme has no budget, so Bob's 800 depends on the Marketing threshold alone
    base = (ROOT / "rules" / "acme.yaml").read_text()
    high = base.replace("total: {gt: 500}", "total: {gt: 1000}")
    assert high != base
    start = api.get("/api/v1/rulesets/acme/versions").json["versions"][-1]["number"]
    stop = threading.Event()
    seen = []

    def evaluate():
        client = webtest.TestApp(
            world.app, extra_environ={"HTTP_AUTHORIZATION": f"Bearer {world.keys['demo']}"}
        )
        while not stop.is_set():
            decision = client.post_json("/api/v1/evaluate", {"buyer": "bob", "total": 800}).json
            seen.append((decision["ruleset"]["version"], decision["outcome"]))

    threads = [threading.Thread(target=evaluate) for _ in range(3)]
    for t in threads:
        t.start()
    published = {}
    try:
        for i in range(6):
            text = high if i % 2 == 0 else base
            number = world.run(
                lambda s, text=text: (
                    versions.publish(s, "demo", "acme", author="race", text=text).number
                )
            )
            published[number] = "approved" if text is high else "pending"
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        world.run(lambda s: versions.rollback(s, "demo", "acme", start, author="race"))
    published[start] = "pending"
    checked = [(v, o) for v, o in seen if v in published]
    assert len(checked) >= 10
    assert all(published[v] == o for v, o in checked), [
        (v, o, published[v]) for v, o in checked if published[v] != o
    ][:5]


def test_smtp_server_down_keeps_the_events_and_retries(api, order_id, world):
    """With the mail server unreachable nothing is lost.

    The events wait, then go out once it is back.
    """
    world.run(lambda session: outbox.dispatch(session, world.settings))  # empty the queue first
    oid = order_id("smtpdown")
    api.post_json("/api/v1/orders", {"id": oid, "buyer": "bob", "total": 900})
    down = {
        **world.settings,
        "approvalrules.smtp_port": str(free_port()),
        "approvalrules.smtp_timeout": "2",
    }
    counts = world.run(lambda session: outbox.dispatch(session, down))
    assert counts["failed"] >= 1 and counts["delivered"] == 0
    with world.session() as session:
        waiting = [
            e
            for e in session.scalars(select(OutboxEvent).where(OutboxEvent.delivered_at.is_(None)))
            if e.payload["order"]["id"] == oid
        ]
    assert waiting and all(e.attempts == 1 and e.last_error and e.next_attempt_at for e in waiting)
    later = datetime.now(UTC) + timedelta(hours=2)
    world.run(lambda session: outbox.dispatch(session, world.settings, now=later))
    assert any(
        oid in m["Subject"] and "Approval requested" in m["Subject"]
        for m in world.mailbox.to("ann@acme.test")
    )
