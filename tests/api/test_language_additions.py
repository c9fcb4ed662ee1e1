"""The language's calendar expiry and per-recipient e-mail flags, through the HTTP API and the
workflow's jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from approvalrules.store import versions
from approvalrules.store.models import ApprovalRequest, AuditEvent, BudgetLedger, Order, Tenant
from approvalrules.store.services import resolve_tenant
from approvalrules.workflow import actions, events, jobs

from .conftest import ROOT
from .test_acceptance_a import submit


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _publish_globex(world, text: str) -> tuple[int, int]:
    """Publish ``text`` as rule set globex; returns (the version active before, the new one)."""
    original = None

    def publish(session):
        nonlocal original
        original = versions.active_version(
            session, resolve_tenant(session, "demo").id, "globex"
        ).number
        versions.save_draft(session, "demo", "globex", text, author="qa")
        return versions.publish(session, "demo", "globex", author="qa").number

    new = world.run(publish)
    return original, new


def _rollback_globex(world, number: int) -> None:
    world.run(lambda session: versions.rollback(session, "demo", "globex", number, author="qa"))


def test_calendar_expiry_date_is_final_for_the_expire_job(api, order_id, world, dispatch):
    # a fixed expiry date two days ahead, in Berlin; the step would approve on timeout
    day = (datetime.now(UTC) + timedelta(days=2)).date()
    text = (
        (ROOT / "rules" / "globex.yaml")
        .read_text()
        .replace(
            "  expiry: {after: P14D, then: cancel}",
            f'  expiry: {{after: P14D, date: "{day.isoformat()}", then: cancel}}',
        )
        .replace(
            "    - name: approval-group\n",
            "    - name: approval-group\n      on_timeout: approve\n",
        )
        .replace("ruleset: globex\n", "ruleset: globex\ntime_zone: Europe/Berlin\n")
    )
    assert f'date: "{day.isoformat()}"' in text and "on_timeout: approve" in text
    original, _ = _publish_globex(world, text)
    try:
        oid = order_id("D3date")
        response = submit(api, oid, "rita", 100).json
        assert response["status"] == "pending"
        expires = _instant(response["approval"]["expires_at"])
        # the end of that day in Berlin: the next midnight there, 22:00 or 23:00 UTC
        berlin_midnight = datetime.combine(
            day + timedelta(days=1), datetime.min.time(), tzinfo=ZoneInfo("Europe/Berlin")
        )
        assert expires == berlin_midnight.astimezone(UTC)
        assert response["decision"]["expires_at"] == response["approval"]["expires_at"]

        world.run(lambda s: jobs.expire_due(s, now=expires - timedelta(minutes=1)))
        assert api.get(f"/api/v1/orders/{oid}").json["status"] == "pending"
        assert world.run(lambda s: jobs.expire_due(s, now=expires + timedelta(seconds=1))) >= 1
        # expired, not approved on timeout: the calendar date is final
        assert api.get(f"/api/v1/orders/{oid}").json["status"] == "expired"

        def expiry_audit(session):
            entry = (
                session.query(AuditEvent).filter_by(action="order.expired", subject_id=oid).one()
            )
            return entry.data

        assert world.run(expiry_audit) == {"expiry_date": response["approval"]["expires_at"]}
        dispatch()
        subjects = [
            m["Subject"] for m in world.mailbox.to("rita@globex.test") if oid in m["Subject"]
        ]
        assert f"[demo] Order {oid} expired" in subjects
    finally:
        _rollback_globex(world, original)


def test_relative_expiry_still_times_out_into_the_step_action(api, order_id, world):
    # without a date, the same on_timeout: approve approves the step at the expiry
    text = (
        (ROOT / "rules" / "globex.yaml")
        .read_text()
        .replace(
            "    - name: approval-group\n",
            "    - name: approval-group\n      on_timeout: approve\n",
        )
    )
    original, _ = _publish_globex(world, text)
    try:
        oid = order_id("D3after")
        response = submit(api, oid, "rita", 100).json
        expires = _instant(response["approval"]["expires_at"])
        # the tenant default's reminders: the approvers hear once first, the next run acts
        world.run(lambda s: jobs.expire_due(s, now=expires + timedelta(seconds=1)))
        assert api.get(f"/api/v1/orders/{oid}").json["status"] == "pending"
        world.run(lambda s: jobs.expire_due(s, now=expires + timedelta(seconds=2)))
        assert api.get(f"/api/v1/orders/{oid}").json["status"] == "approved"
    finally:
        _rollback_globex(world, original)


def test_shoppers_email_approver_flag_stops_only_the_approvers_email(
    api, order_id, world, dispatch
):
    oid = order_id("E3kathy")
    response = submit(api, oid, "kathy", 300, lines=[{"sku": "PAPER-A4", "quantity": 10}]).json
    assert response["status"] == "pending"
    assert response["decision"]["buyer"]["email_to_approvers"] is False
    dispatch()
    # Kathy's own e-mail still reaches her (the old `email: false` stopped it too)
    assert any(
        oid in m["Subject"] and "submitted" in m["Subject"]
        for m in world.mailbox.to("kathy@abc1234.test")
    )
    # Joe, whose own flag is on, is not e-mailed: the cart is only in his list
    assert not any(oid in m["Subject"] for m in world.mailbox.to("joe@abc1234.test"))
    inbox = api.get("/api/v1/approvals", {"approver": "joe", "q": oid}).json
    assert [i["order"] for i in inbox["items"]] == [oid]


def test_reminders_follow_the_buyers_flag_too(api, order_id, world, dispatch):
    mary, kathy = order_id("E3rm"), order_id("E3rk")
    submit(api, mary, "mary", 300)
    submit(api, kathy, "kathy", 300, lines=[{"sku": "PAPER-A4", "quantity": 10}])

    def recipients(session, oid):
        order = session.query(Order).filter_by(external_id=oid).one()
        request = session.query(ApprovalRequest).filter_by(order_id=order.id).one()
        tenant = session.get(Tenant, order.tenant_id)
        return {
            r["account"]: r["channel"] for r in events.step_recipients(session, tenant, request, 0)
        }

    assert world.run(lambda s: recipients(s, mary)) == {"joe": "email", "jane": "inbox"}
    assert world.run(lambda s: recipients(s, kathy)) == {"joe": "inbox", "jane": "inbox"}


def test_an_edit_days_later_keeps_the_orders_submission_date(api, order_id, world):
    # a step for orders dated today or before: an approver's edit tomorrow decides again,
    # and the order is still dated today
    today = datetime.now(UTC).date()
    text = (
        (ROOT / "rules" / "globex.yaml")
        .read_text()
        .replace(
            "      when:\n        any:\n          - {buyer_role: requester}\n",
            '      when:\n        order_date: {lte: "' + today.isoformat() + '"}\n'
            "        any:\n          - {buyer_role: requester}\n",
        )
    )
    assert f'order_date: {{lte: "{today.isoformat()}"}}' in text
    original, _ = _publish_globex(world, text)
    try:
        oid = order_id("Dedit")
        lines = [{"sku": "A", "quantity": 4, "price": 25}, {"sku": "B", "quantity": 1, "price": 50}]
        response = submit(api, oid, "rita", 150, lines=lines).json
        assert response["status"] == "pending"
        request_id = response["approval"]["id"]

        def edit_tomorrow(session):
            tenant = resolve_tenant(session, "demo")
            later = datetime.combine(today + timedelta(days=2), datetime.min.time(), tzinfo=UTC)
            actions.edit(
                session, tenant, request_id, "gia", [{"sku": "A", "quantity": 4}], now=later
            )

        world.run(edit_tomorrow)
        order = api.get(f"/api/v1/orders/{oid}").json
        # still pending under the dated step: evaluated at its submission date, total 100
        assert order["status"] == "pending"
        assert order["total"] == "100"
        assert [s["name"] for s in order["decision"]["steps"]] == ["approval-group"]
    finally:
        _rollback_globex(world, original)


def test_a_budget_outside_its_validity_is_not_drawn(api, order_id, world):
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    text = (
        (ROOT / "rules" / "globex.yaml")
        .read_text()
        .replace(
            "on_exceed: require_approval}\napproval:",
            "on_exceed: require_approval}\n"
            "    - {name: ended, scope: company, period: month, amount: 50, "
            f'valid_until: "{yesterday}"}}\n'
            "approval:",
        )
    )
    assert "name: ended" in text
    original, _ = _publish_globex(world, text)
    try:
        oid = order_id("Dbudget")
        response = submit(api, oid, "ben", 100).json
        # the ended budget (50) would ask for approval: it is not in force any more
        assert response["status"] == "approved"

        def drawn(session):
            order = session.query(Order).filter_by(external_id=oid).one()
            return sorted(
                row.scope_key for row in session.query(BudgetLedger).filter_by(order_id=order.id)
            )

        assert world.run(drawn) == ["monthly/company"]
    finally:
        _rollback_globex(world, original)


def test_recorded_orders_replay_at_their_submission_instant(api, order_id, world):
    oid = order_id("Dreplay")
    before = datetime.now(UTC).replace(microsecond=0)
    submit(api, oid, "ben", 120)
    after = datetime.now(UTC)

    def recorded(session):
        _, items = versions.VersionLookup(session).recorded_orders("demo", "globex")
        return [item for item in items if item["order"]["id"] == oid]

    (item,) = world.run(recorded)
    assert item["order"]["total"] == 120
    assert before <= _instant(item["now"]) <= after
