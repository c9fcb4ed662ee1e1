"""Concurrent approvers on PostgreSQL.

Exactly one final outcome, one notification per event, an audit that agrees.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import webtest
from sqlalchemy import select

from approvalrules.store.models import AuditEvent, OutboxEvent

from .test_acceptance_a import submit


@pytest.fixture
def postgres_world(world):
    if world.engine.dialect.name != "postgresql":
        pytest.skip("concurrency is proven on PostgreSQL (SQLite serialises writers)")
    return world


def _race(world, request_id, actions):
    """Fire all actions at once from their own threads.

    Returns [(action, approver, status, body)].
    """
    barrier = threading.Barrier(len(actions))
    results = []
    lock = threading.Lock()

    def act(action, approver):
        app = webtest.TestApp(
            world.app, extra_environ={"HTTP_AUTHORIZATION": f"Bearer {world.keys['demo']}"}
        )
        barrier.wait()
        response = app.post_json(
            f"/api/v1/approvals/{request_id}/{action}",
            {"approver": approver, "comment": f"{action} by {approver}"},
            status="*",
        )
        with lock:
            results.append((action, approver, response.status_int, response.json))

    threads = [threading.Thread(target=act, args=a) for a in actions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


@pytest.mark.parametrize("threads", [20, 50])
def test_concurrent_approvers_and_rejecters_on_one_request(postgres_world, api, order_id, threads):
    world = postgres_world
    oid = order_id("race")
    request_id = submit(api, oid, "sam", 2000).json["approval"]["id"]  # one of Tom or Tia decides
    actions = [
        ("approve" if i % 2 else "reject", "tom" if i % 4 < 2 else "tia") for i in range(threads)
    ]
    results = _race(world, request_id, actions)
    assert len(results) == threads
    statuses = Counter(r[2] for r in results)
    assert set(statuses) <= {200, 409}, statuses
    final = api.get(f"/api/v1/approvals/{request_id}").json
    assert final["status"] in ("approved", "rejected")
    # exactly one decision took effect: the history holds one deciding action
    deciding = [h for h in final["history"] if h["action"] in ("approve", "reject")]
    assert len(deciding) == 1
    winners = [r for r in results if r[2] == 200 and r[3]["status"] == final["status"]]
    assert winners, "the decision that took effect was answered 200"
    losers = [r for r in results if r[2] == 409]
    assert all(
        r[3]["error"]["code"] in ("already_decided", "concurrent_update", "conflict")
        for r in losers
    )
    with world.session() as session:
        events = [
            e.event_type
            for e in session.scalars(select(OutboxEvent))
            if e.payload["order"]["id"] == oid
        ]
        audit = [
            a.action
            for a in session.scalars(select(AuditEvent).where(AuditEvent.subject_id == oid))
        ]
    counts = Counter(events)
    if final["status"] == "approved":
        assert (
            counts["order_approved"] == 1
            and counts["order_confirmation"] == 1
            and counts["order_rejected"] == 0
        )
        assert audit.count("approval.approved") == 1 and audit.count("approval.rejected") == 0
    else:
        assert (
            counts["order_rejected"] == 1
            and counts["order_cancelled"] == 1
            and counts["order_approved"] == 0
        )
        assert audit.count("approval.rejected") == 1 and audit.count("approval.approved") == 0


def test_two_of_three_under_contention_counts_each_approver_once(postgres_world, api, order_id):
    world = postgres_world
    oid = order_id("race2")
    request_id = submit(api, oid, "eve", 60).json["approval"]["id"]  # Ops: 2 of master, Cid, Dee
    results = _race(world, request_id, [("approve", "cid")] * 5 + [("approve", "dee")] * 5)
    final = api.get(f"/api/v1/approvals/{request_id}").json
    approvals = [h["by"] for h in final["history"] if h["action"] == "approve"]
    assert sorted(set(approvals)) == sorted(approvals), "an approver counted twice"
    assert all(r[2] in (200, 409) for r in results)
    # whatever the interleaving, retrying the losers finishes the job exactly once
    for approver in ("cid", "dee"):
        api.post_json(f"/api/v1/approvals/{request_id}/approve", {"approver": approver}, status="*")
    final = api.get(f"/api/v1/approvals/{request_id}").json
    assert final["status"] == "approved"
    assert sorted(h["by"] for h in final["history"] if h["action"] == "approve") == ["cid", "dee"]
    with world.session() as session:
        events = [
            e.event_type
            for e in session.scalars(select(OutboxEvent))
            if e.payload["order"]["id"] == oid
        ]
    assert events.count("order_approved") == 1


def _parallel_submits(world, body, key, count):
    """``count`` identical submits of ``body`` under ``key``, released at once.

    Returns [(status, json)].
    """
    barrier = threading.Barrier(count)
    results = []
    lock = threading.Lock()

    def post():
        app = webtest.TestApp(
            world.app, extra_environ={"HTTP_AUTHORIZATION": f"Bearer {world.keys['demo']}"}
        )
        barrier.wait()
        response = app.post_json(
            "/api/v1/orders", body, headers={"Idempotency-Key": key}, status="*"
        )
        with lock:
            results.append((response.status_int, response.json))

    threads = [threading.Thread(target=post) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


@pytest.mark.parametrize("count", [50])
def test_parallel_identical_submits_under_one_key_all_get_the_stored_order(world, order_id, count):
    """Issue 15, defect 9: in-flight duplicates wait for the first and get its answer (no 409)."""
    oid = order_id("idem")
    body = {"id": oid, "buyer": "bob", "total": 200}
    results = _parallel_submits(world, body, f"key-{oid}", count)
    assert len(results) == count
    statuses = Counter(status for status, _ in results)
    assert statuses == {201: 1, 200: count - 1}, statuses
    first = next(data for status, data in results if status == 201)
    assert all(data == first for _, data in results), "every duplicate gets the stored answer"
    with world.session() as session:
        from approvalrules.store.models import Order

        stored = session.scalars(select(Order).where(Order.external_id == oid)).all()
    assert len(stored) == 1


def test_another_body_under_a_key_in_use_stays_a_conflict(api, order_id):
    oid = order_id("idem")
    key = f"key-{oid}"
    first = api.post_json(
        "/api/v1/orders",
        {"id": oid, "buyer": "bob", "total": 200},
        headers={"Idempotency-Key": key},
    )
    assert first.status_int == 201
    other = api.post_json(
        "/api/v1/orders",
        {"id": order_id("idem"), "buyer": "bob", "total": 300},
        headers={"Idempotency-Key": key},
        status="*",
    )
    assert other.status_int == 409
    assert other.json["error"]["code"] == "idempotency_conflict"
    assert "Idempotency-Key" in other.json["error"]["message"]


def test_bulk_calls_in_opposite_orders_both_finish(postgres_world, api, order_id):
    """Two bulk rejections over the same requests, listed in opposite orders.

    Each locks the rows in id order, so they queue instead of deadlocking: every
    request ends rejected once, and each caller's results keep its own order.
    """
    world = postgres_world
    ids = [submit(api, order_id("bulkrace"), "sam", 1500).json["approval"]["id"] for _ in range(6)]
    barrier = threading.Barrier(2)
    answers = {}

    def bulk(name, order):
        app = webtest.TestApp(
            world.app, extra_environ={"HTTP_AUTHORIZATION": f"Bearer {world.keys['demo']}"}
        )
        barrier.wait()
        answers[name] = app.post_json(
            "/api/v1/approvals/bulk",
            {"action": "reject", "approver": "tom", "requests": order},
            status="*",
        )

    threads = [
        threading.Thread(target=bulk, args=("forward", ids)),
        threading.Thread(target=bulk, args=("backward", ids[::-1])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert {name: a.status_int for name, a in answers.items()} == {"forward": 200, "backward": 200}
    assert [r["id"] for r in answers["forward"].json["results"]] == ids
    assert [r["id"] for r in answers["backward"].json["results"]] == ids[::-1]
    for request_id in ids:
        wins = [a.json["results"] for a in answers.values()]
        oks = [r for results in wins for r in results if r["id"] == request_id and r["ok"]]
        assert len(oks) == 1, f"request {request_id} rejected {len(oks)} times"
        assert api.get(f"/api/v1/approvals/{request_id}").json["status"] == "rejected"
