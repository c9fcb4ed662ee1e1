"""The admin's held-order queue (let proceed, cancel) and its keys and users pages (owners only)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from approvalrules.store.models import AdminUser, ApiKey, AuditEvent, Order, OutboxEvent
from approvalrules.store.services import find_api_key, resolve_tenant
from approvalrules.workflow import actions

from .conftest import csrf, login


def hold(admin_db_path, order_id: str, total: int = 100) -> None:
    """Submit a held order (XYZ on DEF5678 holds every order) straight into the test database."""
    engine = create_engine(f"sqlite:///{admin_db_path}")
    with Session(engine) as session:
        body = {"id": order_id, "buyer": "xyz", "company": "def5678", "total": total}
        order, _ = actions.submit(
            session, resolve_tenant(session, "demo"), {**body, "cost_centre": "CC-100"}
        )
        assert order.status == "held"
        session.commit()
    engine.dispose()


def decide(app, order_id: str, decision: str, comment: str = "", status=303):
    return app.post(
        "/admin/held-orders",
        {"csrf_token": csrf(app), "order": order_id, "decision": decision, "comment": comment},
        status=status,
    )


# -- held orders ----------------------------------------------------------------------------


def test_the_queue_lists_held_orders_with_their_amount_in_minor_units(editor, admin_db_path):
    hold(admin_db_path, "E4b")
    page = editor.get("/admin/held-orders")
    row = page.html.select_one("#held-orders tbody tr")
    text = " ".join(row.get_text(" ").split())
    assert "E4b" in text and "XYZ" in text and "DEF5678" in text and "100.00 USD" in text
    assert "held until the merchant lets them proceed" in text
    assert row.select_one("textarea[name=comment]") is not None
    # the nav leads here
    assert 'href="http://localhost/admin/held-orders"' in editor.get("/admin/rulesets").text


def test_let_proceed_approves_audits_and_tells_the_buyer(editor, admin_db_path, db):
    hold(admin_db_path, "E4b")
    done = decide(editor, "E4b", "lift", "Checked by phone.").follow()
    assert "Order E4b may proceed: it is now approved." in done.text
    assert "No order is on hold." in done.text
    order = db.scalar(select(Order).where(Order.external_id == "E4b"))
    assert order.status == "approved"
    audit = db.scalar(select(AuditEvent).where(AuditEvent.action == "order.hold_lifted"))
    assert audit.actor == "admin:eddie" and audit.data["comment"] == "Checked by phone."
    event = db.scalar(select(OutboxEvent).where(OutboxEvent.event_type == "order_hold_lifted"))
    assert (
        event.payload["comment"] == "Checked by phone." and event.recipients[0]["account"] == "xyz"
    )


def test_cancel_cancels_and_a_second_decision_is_refused(editor, admin_db_path, db):
    hold(admin_db_path, "E4c")
    decide(editor, "E4c", "cancel", "Duplicate order.")
    assert db.scalar(select(Order.status).where(Order.external_id == "E4c")) == "cancelled"
    again = decide(editor, "E4c", "lift", status=409)
    assert "is cancelled, not held" in again.html.select_one("#held-error").text


def test_viewers_see_the_queue_but_cannot_decide(viewer, admin_db_path, db):
    hold(admin_db_path, "E4v")
    page = viewer.get("/admin/held-orders")
    assert "E4v" in page.text and not page.html.select("form.held-decision")
    assert "Only owners and editors decide held orders." in page.text
    decide(viewer, "E4v", "lift", status=403)
    assert db.scalar(select(Order.status).where(Order.external_id == "E4v")) == "held"


def test_a_decision_without_the_csrf_token_is_refused(editor, admin_db_path, db):
    hold(admin_db_path, "E4f")
    editor.post("/admin/held-orders", {"order": "E4f", "decision": "cancel"}, status=400)
    assert db.scalar(select(Order.status).where(Order.external_id == "E4f")) == "held"


def test_another_tenants_admin_cannot_decide_our_held_orders(other, admin_db_path, db):
    hold(admin_db_path, "E4o")
    assert "E4o" not in other.get("/admin/held-orders").text
    decide(other, "E4o", "cancel", status=422)
    assert db.scalar(select(Order.status).where(Order.external_id == "E4o")) == "held"


# -- API keys --------------------------------------------------------------------------------


def create_key(app, name: str, scope: str):
    page = app.post(
        "/admin/keys", {"csrf_token": csrf(app), "action": "create", "name": name, "scope": scope}
    )
    secret = page.html.select_one("#secret")["value"]
    return page, secret


def test_an_owner_creates_a_key_whose_secret_is_shown_once(owner, db):
    page, secret = create_key(owner, "web shop", "storefront")
    assert page.headers["Cache-Control"] == "no-store"
    assert re.fullmatch(r"ar_[0-9a-f]{8}_[\w-]{40,}", secret)
    key = find_api_key(db, secret)
    assert (key.name, key.scope) == ("web shop", "storefront")
    listing = owner.get("/admin/keys")
    assert secret not in listing.text and f"ar_{key.prefix}_" in listing.text
    assert db.scalar(select(AuditEvent).where(AuditEvent.action == "api_key.created")).data == {
        "name": "web shop",
        "scope": "storefront",
    }


def test_rotate_replaces_the_key_and_revoke_stops_it(owner, db):
    _, first = create_key(owner, "qa", "read_only")
    prefix = first.split("_")[1]
    page = owner.post("/admin/keys", {"csrf_token": csrf(owner), "action": "rotate", "key": prefix})
    second = page.html.select_one("#secret")["value"]
    assert second != first
    db.expire_all()
    assert find_api_key(db, first) is None
    assert find_api_key(db, second).scope == "read_only"
    new_prefix = second.split("_")[1]
    owner.post("/admin/keys", {"csrf_token": csrf(owner), "action": "revoke", "key": new_prefix})
    db.expire_all()
    assert find_api_key(db, second) is None
    assert "revoked" in owner.get("/admin/keys").html.select_one(f"#key-{new_prefix}").text
    assert {"api_key.rotated", "api_key.revoked"} <= set(db.scalars(select(AuditEvent.action)))


def test_a_key_of_an_unknown_scope_is_refused(owner, db):
    page = owner.post(
        "/admin/keys",
        {"csrf_token": csrf(owner), "action": "create", "name": "x", "scope": "root"},
        status=422,
    )
    assert "storefront, merchant, read_only" in page.html.select_one("#keys-error").text
    assert db.scalar(select(ApiKey).where(ApiKey.name == "x")) is None


@pytest.mark.parametrize("who", ["editor", "viewer"])
@pytest.mark.parametrize("path", ["/admin/keys", "/admin/users"])
def test_editors_and_viewers_cannot_manage_keys_or_users(app, who, path):
    login(app, who)
    app.get(path, status=403)
    app.post(path, {"csrf_token": csrf(app), "action": "create", "name": "x"}, status=403)
    assert "/admin/keys" not in app.get("/admin/rulesets").text


def test_keys_of_another_tenant_are_not_listed_nor_revocable(owner, db):
    _, secret = create_key(owner, "ours", "merchant")
    owner.post("/admin/logout", {"csrf_token": csrf(owner)})
    other = login(owner, "other")
    prefix = secret.split("_")[1]
    assert prefix not in other.get("/admin/keys").text
    other.post(
        "/admin/keys", {"csrf_token": csrf(other), "action": "revoke", "key": prefix}, status=422
    )
    db.expire_all()
    assert find_api_key(db, secret) is not None


# -- admin users -----------------------------------------------------------------------------


def users_form(app, **fields):
    return app.post("/admin/users", {"csrf_token": csrf(app), **fields}, status="*")


def test_an_owner_adds_a_user_who_can_log_in_then_changes_the_role_and_removes_them(owner, db, app):
    assert (
        users_form(
            owner, action="create", login="nina", password="a long password", role="editor"
        ).status_int
        == 303
    )
    assert "nina" in owner.get("/admin/users").text
    assert users_form(owner, action="role", user="nina", role="viewer").status_int == 303
    assert db.scalar(select(AdminUser.role).where(AdminUser.login == "nina")) == "viewer"
    assert users_form(owner, action="remove", user="nina").status_int == 303
    db.expire_all()
    assert db.scalar(select(AdminUser).where(AdminUser.login == "nina")) is None
    actions_ = set(db.scalars(select(AuditEvent.action).where(AuditEvent.subject_id == "nina")))
    assert actions_ == {"admin_user.created", "admin_user.role_changed", "admin_user.removed"}


def test_bad_new_users_are_refused_with_the_field_named(owner, db):
    weak = users_form(owner, action="create", login="pia", password="short", role="viewer")
    assert weak.status_int == 422 and "at least 10 characters" in weak.text
    taken = users_form(owner, action="create", login="eddie", password="x" * 12, role="viewer")
    assert taken.status_int == 422 and "already" in taken.text
    bad_role = users_form(owner, action="create", login="pia", password="x" * 12, role="god")
    assert bad_role.status_int == 422 and "owner, editor, viewer" in bad_role.text
    assert db.scalar(select(AdminUser).where(AdminUser.login == "pia")) is None


def test_the_last_owner_stays_an_owner(owner, db):
    refused = users_form(owner, action="role", user="olive", role="viewer")
    assert refused.status_int == 409 and "last owner" in refused.text
    assert users_form(owner, action="remove", user="olive").status_int == 409
    assert db.scalar(select(AdminUser.role).where(AdminUser.login == "olive")) == "owner"


def test_key_and_user_forms_without_the_csrf_token_change_nothing(owner, db):
    owner.post(
        "/admin/keys", {"action": "create", "name": "forged", "scope": "merchant"}, status=400
    )
    owner.post(
        "/admin/users",
        {"action": "create", "login": "mallory", "password": "x" * 12, "role": "owner"},
        status=400,
    )
    assert db.scalar(select(ApiKey).where(ApiKey.name == "forged")) is None
    assert db.scalar(select(AdminUser).where(AdminUser.login == "mallory")) is None


def test_an_owner_gives_a_key_its_own_rate_and_takes_it_back(owner, db):
    page, secret = create_key(owner, "busy shop", "storefront")
    prefix = secret.split("_")[1]
    form = {"csrf_token": csrf(owner), "action": "rate", "key": prefix}
    owner.post("/admin/keys", {**form, "rate": "20"}).follow()
    db.expire_all()
    assert find_api_key(db, secret).rate_per_minute == 20
    row = owner.get("/admin/keys").html.select_one(f"#key-{prefix}")
    assert row.select_one("input[name=rate]")["value"] == "20"
    refused = owner.post("/admin/keys", {**form, "rate": "-1"}, status=422)
    assert "from 1 to 1,000,000" in refused.html.select_one("#keys-error").text
    owner.post("/admin/keys", {**form, "rate": ""}).follow()
    db.expire_all()
    assert find_api_key(db, secret).rate_per_minute is None
    changes = db.scalars(select(AuditEvent.data).where(AuditEvent.action == "api_key.rate_changed"))
    assert list(changes) == [{"from": None, "to": 20}, {"from": 20, "to": None}]


def test_a_key_created_with_a_rate_keeps_it_when_rotated(owner, db):
    page = owner.post(
        "/admin/keys",
        {
            "csrf_token": csrf(owner),
            "action": "create",
            "name": "n",
            "scope": "storefront",
            "rate": "90",
        },
    )
    prefix = page.html.select_one("#secret")["value"].split("_")[1]
    page = owner.post("/admin/keys", {"csrf_token": csrf(owner), "action": "rotate", "key": prefix})
    rotated = page.html.select_one("#secret")["value"]
    db.expire_all()
    assert find_api_key(db, rotated).rate_per_minute == 90
