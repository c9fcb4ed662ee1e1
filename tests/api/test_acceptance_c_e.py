"""ACCEPTANCE.md B, C, D and E lines that involve the workflow, through the HTTP API."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from approvalrules.errors import DirectoryError
from approvalrules.store.directory_service import DirectoryService
from approvalrules.store.models import ApprovalRequest, Order
from approvalrules.workflow import jobs

from .test_acceptance_a import approve, submit


def test_b_blocked_company_account_records_the_order_but_creates_no_request(api, order_id):
    response = submit(api, order_id("B1"), "initech-hq", 100)
    assert response.status_int == 201
    assert response.json["status"] == "blocked"
    assert response.json["decision"]["reasons"][0]["code"] == "may_not_order"
    assert "approval" not in response.json


def test_b2_wrong_manager_refused(api, order_id):
    request_id = submit(api, order_id("B2"), "uma", 600).json["approval"]["id"]
    refused = approve(api, request_id, "mona", status=403)
    assert refused.json["error"]["code"] == "not_eligible"
    assert approve(api, request_id, "mike").json["status"] == "approved"


def test_c2_tom_approves_then_tia_cannot_approve_but_may_reverse(api, order_id):
    oid = order_id("C2")
    request_id = submit(api, oid, "sam", 3000).json["approval"]["id"]
    assert approve(api, request_id, "tom").json["status"] == "approved"
    detail = api.get(f"/api/v1/approvals/{request_id}").json
    assert detail["steps"][0]["approved_by"] == ["tom"]
    again = approve(api, request_id, "tia", status=409).json["error"]
    assert again["code"] == "already_decided" and "by tom" in again["message"]
    reversed_ = api.post_json(
        f"/api/v1/approvals/{request_id}/reverse", {"approver": "tia", "comment": "I disagree"}
    ).json
    assert reversed_["status"] == "pending"
    assert api.get(f"/api/v1/orders/{oid}").json["status"] == "pending"
    assert (
        api.post_json(
            f"/api/v1/approvals/{request_id}/reject", {"approver": "tia", "comment": "too much"}
        ).json["status"]
        == "rejected"
    )
    history = api.get(f"/api/v1/approvals/{request_id}").json["history"]
    assert [(h["action"], h["by"]) for h in history] == [
        ("approve", "tom"),
        ("reverse", "tia"),
        ("reject", "tia"),
    ]


def test_c3_two_levels_in_order(api, order_id):
    request = submit(api, order_id("C3"), "sam", 6000).json["approval"]
    assert [s["name"] for s in request["steps"]] == ["authorizers@1000", "authorizers@5000"]
    approve(api, request["id"], "max", status=403)  # not yet: level 1 first
    assert approve(api, request["id"], "tia").json["current_step"] == 1
    assert approve(api, request["id"], "max").json["status"] == "approved"


def test_c4_decline_feedback_visible_to_the_buyer(api, order_id):
    oid = order_id("C4")
    request_id = submit(api, oid, "sam", 2000).json["approval"]["id"]
    api.post_json(
        f"/api/v1/approvals/{request_id}/reject",
        {"approver": "tom", "comment": "Use the framework contract"},
    )
    history = api.get(f"/api/v1/approvals/{request_id}").json["history"]
    assert history[-1]["comment"] == "Use the framework contract"


def test_c5_reversal_refused_after_release_and_c9_only_approved_released(
    api, order_id, world, dispatch
):
    oid = order_id("C5")
    request_id = submit(api, oid, "sam", 2500).json["approval"]["id"]
    refused = api.post(f"/api/v1/orders/{oid}/released", status=409).json["error"]
    assert refused["code"] == "not_releasable"  # pending orders are never released (C9)
    approve(api, request_id, "tom")
    assert api.post(f"/api/v1/orders/{oid}/released").json["released_at"]
    late = api.post_json(
        f"/api/v1/approvals/{request_id}/reverse", {"approver": "tia"}, status=409
    ).json["error"]
    assert late["code"] == "already_released"
    dispatch()
    kinds = [e["type"] for e in world.webhooks.events(oid)]
    assert "order_approved" in kinds and "order_released" in kinds


def test_c6_authorizer_history_filters_and_pending_count(api, order_id):
    first, second = order_id("C6"), order_id("C6")
    r1 = submit(api, first, "sam", 1500).json["approval"]["id"]
    submit(api, second, "sam", 1600)
    approve(api, r1, "tia")
    pending = api.get(
        "/api/v1/approvals", {"approver": "tia", "status": "pending", "q": second}
    ).json
    assert [i["order"] for i in pending["items"]] == [second]
    approved = api.get(
        "/api/v1/approvals", {"approver": "tia", "status": "approved", "q": first}
    ).json
    assert [i["order"] for i in approved["items"]] == [first]
    assert pending["counts"]["pending"] >= 1 and pending["counts"]["approved"] >= 1
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert api.get("/api/v1/approvals", {"approver": "tia", "from": future}).json["items"] == []
    page = api.get("/api/v1/approvals", {"approver": "tia", "per_page": 1}).json
    assert len(page["items"]) == 1 and page["total"] >= 2


def test_c6_reminders_go_out_by_the_scheduled_job(api, order_id, world):
    oid = order_id("C6r")
    submit(api, oid, "sam", 1700)
    later = datetime.now(UTC) + timedelta(days=1, minutes=1)
    assert world.run(lambda s: jobs.remind_due(s, now=later)) >= 1
    from sqlalchemy import select

    from approvalrules.store.models import OutboxEvent

    with world.session() as session:
        reminders = [
            e
            for e in session.scalars(
                select(OutboxEvent).where(OutboxEvent.event_type == "approval_reminder")
            )
            if e.payload["order"]["id"] == oid
        ]
    assert len(reminders) == 1
    assert sorted(r["account"] for r in reminders[0].recipients) == ["tia", "tom"]
    world.run(lambda s: jobs.remind_due(s, now=later))  # the same day again: nothing new
    with world.session() as session:
        again = [
            e
            for e in session.scalars(
                select(OutboxEvent).where(OutboxEvent.event_type == "approval_reminder")
            )
            if e.payload["order"]["id"] == oid
        ]
    assert len(again) == 1


def test_c7_quote_cannot_be_approved_until_converted(api, order_id):
    oid = order_id("C7")
    quote = submit(api, oid, "sam", 3000, type="quote").json
    assert quote["status"] == "blocked"
    assert quote["decision"]["reasons"][0]["code"] == "quote_not_approvable"
    converted = api.post(f"/api/v1/orders/{oid}/convert").json
    assert converted["status"] == "pending" and converted["type"] == "regular"
    assert approve(api, converted["approval"]["id"], "tom").json["status"] == "approved"


def test_c8_removing_an_authorizer_with_pending_orders_is_refused(api, order_id, world):
    oid = order_id("C8")
    submit(api, oid, "sam", 1200)

    def deactivate(session):
        DirectoryService(session, "demo").deactivate_account("tia")

    try:
        world.run(deactivate)
    except DirectoryError as exc:
        assert exc.code == "approver_has_pending"
        assert oid in exc.message or "pending order" in exc.message
    else:
        raise AssertionError("deactivating an authorizer with pending orders must be refused")


def test_d2_approved_orders_draw_the_budget_rejected_do_not(api, order_id):
    # Globex: 50,000 a month; orders past the remaining budget need the approval group
    for _ in range(4):
        assert submit(api, order_id("D2"), "ben", 10000).json["status"] == "approved"
    assert submit(api, order_id("D2"), "ben", 9000).json["status"] == "approved"  # 49,000 drawn
    over = submit(api, order_id("D2"), "ben", 2000).json
    assert over["status"] == "pending"
    assert "budget_exceeded" in [r["code"] for r in over["decision"]["reasons"]]
    api.post_json(
        f"/api/v1/approvals/{over['approval']['id']}/reject",
        {"approver": "gia", "comment": "not this month"},
    )
    # the rejected order drew nothing: 1,000 still fits, 1,001 does not
    assert (
        api.post_json("/api/v1/evaluate", {"buyer": "ben", "total": 1000}).json["outcome"]
        == "approved"
    )
    assert (
        api.post_json("/api/v1/evaluate", {"buyer": "ben", "total": 1001}).json["outcome"]
        == "pending"
    )


def test_d3_expiry_date_from_validity_and_d4_subsidiary_inherits(api, order_id):
    pending = submit(api, order_id("D3"), "rita", 100).json
    created = datetime.fromisoformat(pending["approval"]["created_at"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(pending["approval"]["expires_at"].replace("Z", "+00:00"))
    assert timedelta(days=14) - timedelta(seconds=2) <= expires - created <= timedelta(days=14)
    labs = api.post_json("/api/v1/evaluate", {"buyer": "leon", "total": 12000}).json
    assert labs["ruleset"]["name"] == "globex" and labs["outcome"] == "pending"


def test_e2_too_high_blocked_and_nothing_created(api, order_id, world):
    oid = order_id("E2")
    response = submit(api, oid, "bill", 6000).json
    assert response["status"] == "blocked"
    assert response["decision"]["reasons"][0]["code"] == "max_order_total_exceeded"
    assert "cart value too high" in response["decision"]["reasons"][0]["message"]
    assert "approval" not in response


def test_e3_email_only_when_both_flags_are_on(api, order_id, world, dispatch):
    oid = order_id("E3")
    submit(api, oid, "mary", 300)
    dispatch()
    assert any(oid in m["Subject"] for m in world.mailbox.to("joe@abc1234.test"))
    assert not any(oid in m["Subject"] for m in world.mailbox.to("jane@abc1234.test"))
    inbox = api.get("/api/v1/approvals", {"approver": "jane", "q": oid}).json
    assert [i["order"] for i in inbox["items"]] == [oid]


def test_e4_hold_and_e7_second_account(api, order_id):
    held = submit(api, order_id("E4"), "xyz", 150, company="def5678", cost_centre="CC-100").json
    assert held["status"] == "held"
    default = submit(api, order_id("E7"), "xyz", 150).json
    assert default["decision"]["buyer"]["company"] == "abc1234"


def test_idempotent_submit_same_body_same_response_other_body_409(api, order_id, world):
    oid = order_id("idem")
    body = {"id": oid, "buyer": "sam", "total": 2100}
    first = api.post_json("/api/v1/orders", body, headers={"Idempotency-Key": f"key-{oid}"})
    second = api.post_json("/api/v1/orders", body, headers={"Idempotency-Key": f"key-{oid}"})
    assert first.status_int == 201 and second.status_int == 200
    assert first.json == second.json
    conflict = api.post_json(
        "/api/v1/orders",
        {**body, "total": 2200},
        headers={"Idempotency-Key": f"key-{oid}"},
        status=409,
    )
    assert conflict.json["error"]["code"] == "idempotency_conflict"
    other_id = api.post_json(
        "/api/v1/orders",
        {**body, "id": oid + "-x"},
        headers={"Idempotency-Key": f"key-{oid}"},
        status=409,
    )
    assert other_id.json["error"]["code"] == "idempotency_conflict"


def test_thousand_retries_make_one_order_and_one_request(api, order_id, world):
    oid = order_id("retry")
    body = {"id": oid, "buyer": "sam", "total": 4000}
    statuses = [
        api.post_json("/api/v1/orders", body, headers={"Idempotency-Key": oid}).status_int
        for _ in range(1000)
    ]
    assert statuses.count(201) == 1 and statuses.count(200) == 999
    from sqlalchemy import func, select

    with world.session() as session:
        orders = session.scalar(
            select(func.count()).select_from(Order).where(Order.external_id == oid)
        )
        requests = session.scalar(
            select(func.count())
            .select_from(ApprovalRequest)
            .join(Order)
            .where(Order.external_id == oid)
        )
    assert (orders, requests) == (1, 1)


def test_tenant_isolation_other_key_sees_404(api, other_api, order_id):
    oid = order_id("iso")
    request_id = submit(api, oid, "sam", 2000).json["approval"]["id"]
    assert (
        other_api.get(f"/api/v1/orders/{oid}", status=404).json["error"]["code"] == "unknown_order"
    )
    assert (
        other_api.get(f"/api/v1/approvals/{request_id}", status=404).json["error"]["code"]
        == "unknown_approval"
    )
    other_api.post_json(f"/api/v1/approvals/{request_id}/approve", {"approver": "tom"}, status=404)
    listing = other_api.get("/api/v1/approvals", {"q": oid}).json
    assert listing["items"] == [] and listing["total"] == 0
    evaluated = other_api.post_json(
        "/api/v1/evaluate", {"buyer": "sam", "total": 10}, status=422
    ).json
    assert evaluated["error"]["code"] == "unknown_buyer"


def test_authentication_missing_wrong_key_401(world):
    import webtest

    app = webtest.TestApp(world.app)
    assert app.get("/api/v1/orders/x", status=401).json["error"]["code"] == "missing_api_key"
    wrong = app.get("/api/v1/orders/x", headers={"Authorization": "Bearer nope"}, status=401)
    assert wrong.json["error"]["code"] == "invalid_api_key"
    assert "Bearer" in wrong.headers["WWW-Authenticate"]


def test_bad_input_gets_clear_errors(api):
    bad_json = api.post(
        "/api/v1/evaluate", "{not json", content_type="application/json", status=400
    ).json
    assert bad_json["error"]["code"] == "invalid_json"
    negative = api.post_json("/api/v1/evaluate", {"buyer": "sam", "total": -5}, status=422).json
    assert (
        negative["error"]["code"] == "negative_amount"
        and negative["error"]["details"]["path"] == "order.total"
    )
    unknown = api.post_json(
        "/api/v1/evaluate", {"buyer": "sam", "total": 5, "colour": "red"}, status=422
    ).json
    assert unknown["error"]["code"] == "unknown_key"
    no_id = api.post_json("/api/v1/orders", {"buyer": "sam", "total": 5}, status=422).json
    assert no_id["error"]["code"] == "missing_order_id"


def test_openapi_document_lists_every_route(api):
    doc = api.get("/api/v1/openapi.json").json
    assert doc["openapi"] == "3.1.0"
    for path in (
        "/api/v1/evaluate",
        "/api/v1/orders",
        "/api/v1/orders/{id}",
        "/api/v1/approvals",
        "/api/v1/approvals/{id}/approve",
        "/api/v1/orders/{id}/convert",
    ):
        assert path in doc["paths"], path
    assert doc["components"]["schemas"]["Order"]["properties"]["total"] == {
        "$ref": "#/components/schemas/money"
    }


def test_directory_sync_upserts_and_refuses_with_clear_errors(api, order_id):
    api.put_json("/api/v1/directory/companies/sync-co", {"name": "Sync Co", "ruleset": "acme"})
    api.put_json("/api/v1/directory/companies/sync-co/groups/buyers", {"name": "Buyers"})
    api.put_json("/api/v1/directory/companies/sync-co/groups/others", {"name": "Others"})
    api.put_json(
        "/api/v1/directory/accounts/sync-anna", {"name": "Anna", "email": "anna@sync.test"}
    )
    api.put_json(
        "/api/v1/directory/accounts/sync-anna/memberships/sync-co",
        {"role": "requisitioner", "group": "buyers"},
    )
    api.put_json("/api/v1/directory/accounts/sync-boss", {"name": "Boss"})
    api.put_json(
        "/api/v1/directory/accounts/sync-boss/memberships/sync-co",
        {"role": "master", "master": True},
    )
    decision = api.post_json("/api/v1/evaluate", {"buyer": "sync-anna", "total": 10}).json
    assert decision["buyer"]["company"] == "sync-co" and decision["buyer"]["group"] == "buyers"
    # a member is in one group at a time (A9): refused unless asked to move
    refused = api.put_json(
        "/api/v1/directory/accounts/sync-anna/memberships/sync-co", {"group": "others"}, status=409
    ).json["error"]
    assert refused["code"] == "already_in_group" and "buyers" in refused["message"]
    api.put_json(
        "/api/v1/directory/accounts/sync-anna/memberships/sync-co",
        {"group": "others", "move": True},
    )
    # master or member, never both
    both = api.put_json(
        "/api/v1/directory/accounts/sync-boss/memberships/sync-co", {"group": "buyers"}, status=409
    ).json["error"]
    assert both["code"] == "master_and_member"
    bad_type = api.put_json(
        "/api/v1/directory/accounts/sync-anna", {"active": "yes"}, status=422
    ).json["error"]
    assert (bad_type["code"], bad_type["details"]["path"]) == ("wrong_type", "active")
    unknown = api.put_json(
        "/api/v1/directory/accounts/sync-anna", {"colour": "red"}, status=422
    ).json["error"]
    assert unknown["code"] == "unknown_key"
    bad_settings = api.put_json(
        "/api/v1/directory/accounts/sync-anna/memberships/sync-co",
        {"settings": {"may_order": "no"}},
        status=422,
    ).json["error"]
    assert (
        bad_settings["code"] == "invalid_settings"
        and "settings.may_order" in bad_settings["message"]
    )
    api.put_json(
        "/api/v1/directory/assignments",
        {"approver": "sync-boss", "account": "sync-anna", "company": "sync-co", "limit": 500},
    )
    missing = api.put_json(
        "/api/v1/directory/assignments", {"approver": "sync-boss"}, status=422
    ).json["error"]
    assert missing["code"] == "missing_key"


def test_outbox_keeps_events_while_the_webhook_receiver_is_down(api, order_id, world, dispatch):
    from datetime import datetime, timedelta

    from approvalrules.workflow import outbox

    oid = order_id("hookdown")
    world.webhooks.fail = True
    try:
        submit(api, oid, "bob", 100)
        counts = dispatch()
        assert counts["failed"] >= 1
        assert world.webhooks.events(oid) == []
    finally:
        world.webhooks.fail = False
    later = datetime.now(UTC) + timedelta(hours=2)
    world.run(lambda session: outbox.dispatch(session, world.settings, now=later))
    delivered = world.webhooks.events(oid, "order_approved")
    assert len(delivered) == 1


HOSTILE = {
    "alias bomb": (
        "ruleset: acme\n"
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
        "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
        "f: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
    ),
    "self alias": "ruleset: acme\na: &x [*x]\n",
    "deep nesting": "ruleset: acme\ndescription: " + "[" * 10_000 + "]" * 10_000 + "\n",
    "huge integer": "ruleset: acme\nlimits: {max_order_total: " + "9" * 5000 + "}\n",
    "duplicate keys": "ruleset: acme\napproval:\n  self_approval: false\n  self_approval: true\n",
    "python tag": "ruleset: !!python/object/apply:os.system [echo hi]\n",
    "yaml 1.1 no": "ruleset: acme\napproval: {self_approval: no}\n",
    "ref to file": "ruleset: acme\n$ref: /etc/passwd\n",
    "date": "ruleset: acme\ndescription: 2026-01-01\napproval: {expiry: {after: 2026-01-01}}\n",
}


def test_hostile_rule_sets_are_refused_whole_and_nothing_changes(api):
    before = api.get("/api/v1/rulesets/acme").json["active"]
    for name, text in HOSTILE.items():
        response = api.post(
            "/api/v1/rulesets/acme/publish",
            text.encode(),
            content_type="application/yaml",
            status="*",
        )
        assert response.status_int == 422, (name, response.status_int, response.text[:200])
        error = response.json["error"]
        problems = error["details"]["problems"]
        assert problems and all(p["line"] for p in problems), (name, error)
    assert api.get("/api/v1/rulesets/acme").json["active"] == before
    too_big = api.post(
        "/api/v1/rulesets/acme/publish",
        b"ruleset: acme\ndescription: '" + b"x" * 1_000_100 + b"'\n",
        content_type="application/yaml",
        status=413,
    )
    assert too_big.json["error"]["code"] in ("document_too_large", "body_too_large")


def test_publish_versions_and_diff_over_the_api(api):
    text = api.get("/api/v1/rulesets/globex").json["text"]
    before = api.get("/api/v1/rulesets/globex/versions").json["versions"][-1]["number"]
    # the embedded tests' orders past the limit follow it (publishing runs them)
    changed = text.replace("order_limit: {amount: 10000", "order_limit: {amount: 20000").replace(
        "12000", "22000"
    )
    assert changed != text
    api.put("/api/v1/rulesets/globex/draft", changed.encode(), content_type="application/yaml")
    published = api.post("/api/v1/rulesets/globex/publish", status=201).json
    assert published["number"] == before + 1
    try:
        diff = api.get("/api/v1/rulesets/globex/diff", {"from": before, "to": before + 1}).json
        assert diff["changed"]["behaviour"] is True
        sentences = [c["text"] for c in diff["behavioural"]["changes"]]
        assert any(
            "over 10000 up to 20000" in s and "pending -> approved" in s for s in sentences
        ), sentences
    finally:
        api.post(f"/api/v1/rulesets/globex/rollback?to={before}")
    assert api.get("/api/v1/rulesets/globex").json["text"] == text


def test_twin_tenants_with_identical_ids_never_see_each_other(api, twin_api, order_id):
    from .conftest import TWIN_MARK

    oid = order_id("twin")
    mine = submit(api, oid, "sam", 3000).json
    theirs = submit(
        twin_api, oid, "sam", 3000
    ).json  # the same storefront order id in the other tenant
    assert mine["approval"]["id"] != theirs["approval"]["id"]
    assert TWIN_MARK not in json.dumps(mine) and TWIN_MARK in json.dumps(theirs)
    bodies = [
        api.get(f"/api/v1/orders/{oid}").text,
        api.get(f"/api/v1/approvals/{mine['approval']['id']}").text,
        api.get("/api/v1/approvals", {"approver": "tom", "per_page": 200}).text,
        api.post_json("/api/v1/evaluate", {"buyer": "bob", "total": 800}).text,
        api.get("/api/v1/rulesets/max/versions").text,
    ]
    assert all(TWIN_MARK not in body for body in bodies)
    assert (
        api.get(f"/api/v1/approvals/{theirs['approval']['id']}", status=404).json["error"]["code"]
        == "unknown_approval"
    )
    api.post_json(
        f"/api/v1/approvals/{theirs['approval']['id']}/approve", {"approver": "tom"}, status=404
    )
    twin_list = twin_api.get("/api/v1/approvals", {"q": oid}).json
    assert [i["id"] for i in twin_list["items"]] == [theirs["approval"]["id"]]
    approve(twin_api, theirs["approval"]["id"], "tom")
    assert api.get(f"/api/v1/orders/{oid}").json["status"] == "pending"


def test_bulk_approve_checks_each_request_on_its_own(api, order_id):
    mine = [submit(api, order_id("bulk"), "sam", 1500).json["approval"]["id"] for _ in range(2)]
    foreign = submit(api, order_id("bulk"), "bob", 900).json["approval"][
        "id"
    ]  # Tom may not approve Bob's
    results = api.post_json(
        "/api/v1/approvals/bulk",
        {"action": "approve", "approver": "tom", "requests": mine + [foreign, 999999999]},
    ).json["results"]
    assert [(r["id"], r["ok"]) for r in results] == [
        (mine[0], True),
        (mine[1], True),
        (foreign, False),
        (999999999, False),
    ]
    assert (
        results[2]["error"]["code"] == "not_eligible"
        and results[3]["error"]["code"] == "unknown_approval"
    )
    assert all(api.get(f"/api/v1/approvals/{i}").json["status"] == "approved" for i in mine)
    assert api.get(f"/api/v1/approvals/{foreign}").json["status"] == "pending"
