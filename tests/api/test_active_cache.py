"""The evaluate endpoint's per-process cache of active versions: no query for them while
nothing is published, and every publish, rollback or retire seen by the next request."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event

from approvalrules.store import versions


@contextmanager
def statements(world):
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    engine = world.app.registry["dbengine"]
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def evaluate(api):
    return api.post_json("/api/v1/evaluate", {"buyer": "bob", "total": 800}).json


def test_active_versions_are_read_once_then_served_from_the_cache(api, world):
    evaluate(api)  # warm
    with statements(world) as seen:
        evaluate(api)
    assert not [s for s in seen if "rule_set" in s], seen
    key_cache = world.app.registry["key_cache"]
    if key_cache.listener is None:  # SQLite: the key (and its tenant) is read each time
        assert any("api_keys" in s for s in seen)
    else:  # PostgreSQL: the verified key and its tenant come from the process's key cache
        assert key_cache.listener.wait_healthy(5)
        evaluate(api)
        with statements(world) as seen:
            evaluate(api)
        assert not [s for s in seen if "api_keys" in s or "tenants" in s], seen
        assert seen == [], seen


def test_a_publish_rollback_and_retire_are_seen_by_the_next_evaluation(api, world):
    start = evaluate(api)
    number = start["ruleset"]["version"]
    assert start["outcome"] == "pending"
    text = world.run(lambda s: versions.get_version(s, "demo", "acme", number).text)
    higher = text.replace("total: {gt: 500}", "total: {gt: 1000}")
    assert higher != text
    try:
        published = world.run(
            lambda s: versions.publish(s, "demo", "acme", author="cache-test", text=higher).number
        )
        after = evaluate(api)
        assert (after["ruleset"]["version"], after["outcome"]) == (published, "approved")
        world.run(lambda s: versions.retire(s, "demo", "acme", author="cache-test"))
        retired = api.post_json(
            "/api/v1/evaluate", {"buyer": "bob", "total": 800}, status=422
        ).json["error"]
        assert retired["code"] == "no_active_version"
    finally:
        rolled = world.run(
            lambda s: versions.rollback(s, "demo", "acme", number, author="cache-test").number
        )
    back = evaluate(api)
    assert (back["ruleset"]["version"], back["outcome"]) == (rolled, "pending")


def submit(api, order_id):
    return api.post_json("/api/v1/orders", {"id": order_id, "buyer": "bob", "total": 800}).json


def test_a_submit_reads_the_rules_version_alone_and_records_what_is_published(api, world, order_id):
    submit(api, order_id("active-cache"))  # warm
    with statements(world) as seen:
        first = submit(api, order_id("active-cache"))
    assert not [s for s in seen if "rule_set" in s], seen
    assert len([s for s in seen if s.startswith("SELECT tenants.rules_version")]) == 1, seen
    number = first["ruleset_version"]
    assert first["status"] == "pending"
    text = world.run(lambda s: versions.get_version(s, "demo", "acme", number).text)
    higher = text.replace("total: {gt: 500}", "total: {gt: 1000}")
    try:
        published = world.run(
            lambda s: versions.publish(s, "demo", "acme", author="cache-test", text=higher).number
        )
        after = submit(api, order_id("active-cache"))
        assert (after["ruleset_version"], after["status"]) == (published, "approved")
    finally:
        rolled = world.run(
            lambda s: versions.rollback(s, "demo", "acme", number, author="cache-test").number
        )
    back = submit(api, order_id("active-cache"))
    assert (back["ruleset_version"], back["status"]) == (rolled, "pending")


def test_an_approval_reads_its_order_and_actions_in_one_statement_after_the_lock(
    api, world, order_id
):
    submitted = api.post_json(
        "/api/v1/orders", {"id": order_id("approve"), "buyer": "bob", "total": 800}
    ).json
    with statements(world) as seen:
        approved = api.post_json(
            f"/api/v1/approvals/{submitted['approval']['id']}/approve", {"approver": "ann"}
        ).json
    assert approved["status"] == "approved"
    reads = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    request_read, order_and_actions = [
        s for s in reads if "approval_requests" in s or "orders" in s
    ][:2]
    assert "FROM approval_requests" in request_read
    assert "FROM orders LEFT OUTER JOIN approval_actions" in order_and_actions
    assert not [s for s in reads if s.split("FROM", 1)[-1].lstrip().startswith("approval_actions")]
    assert len([s for s in reads if "FROM orders" in s]) == 1, reads


def test_a_pending_submit_writes_its_order_and_request_with_their_rows_in_one_statement(
    api, world, order_id
):
    """PostgreSQL: the submit's first read draws the new order's and request's ids, so the
    order, its request, its audit row, eligibility and events go in one statement; elsewhere
    each insert returns its id."""
    api.post_json("/api/v1/orders", {"id": order_id("warm"), "buyer": "bob", "total": 800})
    new = order_id("ids")
    with statements(world) as seen:
        submitted = api.post_json("/api/v1/orders", {"id": new, "buyer": "bob", "total": 800}).json
    assert submitted["status"] == "pending"
    writes = [s for s in seen if s.lstrip().upper().startswith(("INSERT", "WITH"))]
    if world.app.registry["dbengine"].dialect.name == "postgresql":
        [read] = [s for s in seen if "nextval" in s]
        assert "FROM tenants LEFT OUTER JOIN orders" in read
        [together] = writes
        for table in ("orders", "approval_requests", "audit_events", "outbox_events"):
            assert f"INSERT INTO {table} " in together, together
    else:
        assert any(s.startswith("INSERT INTO orders") and "RETURNING" in s for s in writes)
        assert not [s for s in seen if "nextval" in s]
    # the ids drawn are the rows' ids: the approval answers by its id, with its order
    shown = api.get(f"/api/v1/approvals/{submitted['approval']['id']}").json
    assert shown["order"] == new
    assert api.get(f"/api/v1/orders/{new}").json["approval"] == submitted["approval"]


@pytest.mark.parametrize(
    "action, status, shown_as",
    [("approve", "approved", "approved_by"), ("reject", "rejected", "rejected_by")],
)
def test_an_approvers_action_is_written_with_its_audit_row_and_events_in_one_statement(
    api, world, order_id, action, status, shown_as
):
    """PostgreSQL: the lock's statement draws the action's id, so the action joins the
    audit row and the events; elsewhere the action is written at once, returning its id."""
    submitted = api.post_json(
        "/api/v1/orders", {"id": order_id(action), "buyer": "bob", "total": 800}
    ).json
    approval = f"/api/v1/approvals/{submitted['approval']['id']}"
    with statements(world) as seen:
        decided = api.post_json(f"{approval}/{action}", {"approver": "ann"}).json
    assert decided["status"] == status
    writes = [s for s in seen if s.lstrip().upper().startswith(("INSERT", "WITH"))]
    inserts_of_actions = [s for s in writes if "INSERT INTO approval_actions" in s]
    if world.app.registry["dbengine"].dialect.name == "postgresql":
        [lock] = [s for s in seen if "FOR UPDATE" in s]
        assert "nextval" in lock
        [together] = inserts_of_actions
        assert "INSERT INTO audit_events" in together and "INSERT INTO outbox_events" in together
        assert len(writes) == 2  # the request's close, then the rows written together
    else:
        [alone] = inserts_of_actions
        assert "RETURNING" in alone and "audit_events" not in alone
    shown = api.get(approval).json
    assert [step[shown_as] for step in shown["steps"] if step[shown_as]] == [["ann"]]
