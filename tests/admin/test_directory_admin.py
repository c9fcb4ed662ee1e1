"""Directory management in the admin: every form writes through the directory service, with
the API's rules, an audit row, CSRF and read-only viewers (issue 17)."""

from __future__ import annotations

import re

import pytest
import yaml
from sqlalchemy import select

from approvalrules.engine import check_directory
from approvalrules.store.models import (
    Account,
    Assignment,
    AuditEvent,
    Company,
    CompanyContact,
    Group,
    Location,
    Membership,
)

from .conftest import csrf

PAGES = (
    "/admin/directory/companies",
    "/admin/directory/companies/acme",
    "/admin/directory/companies/globex",
    "/admin/directory/accounts",
    "/admin/directory/accounts/ann",
    "/admin/directory/accounts/ann/memberships/acme",
    "/admin/directory/accounts/bill/memberships/abc1234",
    "/admin/directory/memberships",
    "/admin/directory/groups",
    "/admin/directory/companies/acme/groups/marketing",
    "/admin/directory/assignments",
)


def audit_actions(db, actor="admin:olive") -> list[str]:
    return list(
        db.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.actor == actor, AuditEvent.subject_type != "admin_user")
            .order_by(AuditEvent.id)
        )
    )


def field_error(page, field: str) -> str:
    """The error deform shows on the field named ``field`` (in the field's ``item-<oid>``)."""
    html = page.html
    node = html.find(attrs={"name": field})
    assert node is not None, f"no field {field}"
    item = node.find_parent(id=re.compile("^item-"))
    found = item.find(class_="invalid-feedback") or item.find(class_="error")
    return found.get_text(" ", strip=True) if found else ""


@pytest.mark.parametrize("path", PAGES)
def test_every_directory_page_has_its_forms_for_editors_and_none_for_viewers(app, path, owner):
    page = owner.get(path)
    assert page.status_int == 200
    assert 'name="csrf_token"' in page.text and "<form" in page.text
    assert "{'" not in page.text, "no Python repr on a page"
    owner.get("/admin/logout", status="*")
    owner.post("/admin/logout", {"csrf_token": csrf(owner)}, status="*")


@pytest.mark.parametrize("path", PAGES)
def test_viewers_read_without_forms(viewer, path):
    page = viewer.get(path)
    assert "deform" not in page.text or "directory-form" not in page.text
    assert "directory-form" not in page.text


def test_globex_contacts_and_locations_show_on_its_page(owner):
    page = owner.get("/admin/directory/companies/globex")
    contacts = page.html.find("table", attrs={"aria-labelledby": "contacts-title"}).get_text(" ")
    assert "Primary contact" in contacts and "Gia" in contacts
    assert "Billing contact" in contacts and "Bruno" in contacts
    assert "Logistics contact" in contacts and "Ben" in contacts
    locations = page.html.find("table", attrs={"aria-labelledby": "locations-title"}).get_text(" ")
    assert "Globex Warehouse" in locations and "9 Dock Road, Cypress Creek" in locations


def test_create_and_edit_a_company_with_parent_and_rule_set(owner, db):
    form = owner.get("/admin/directory/companies").forms["company-create"]
    form["id"], form["name"], form["parent"], form["ruleset"] = "hooli", "Hooli", "globex", ""
    page = form.submit("save").follow()
    assert "Company Hooli (hooli) created." in page.text
    assert "inherited from the parent: globex" in page.text
    form = page.forms["company-edit"]
    form["name"], form["ruleset"] = "Hooli Inc", "acme"
    page = form.submit("save").follow()
    company = db.scalar(select(Company).where(Company.external_id == "hooli"))
    assert (company.name, company.ruleset_name, company.parent.external_id) == (
        "Hooli Inc",
        "acme",
        "globex",
    )
    assert audit_actions(db) == ["company.created", "company.updated"]
    globex = owner.get("/admin/directory/companies/globex")
    assert "Hooli Inc" in globex.html.find("h2", string="Subsidiaries").find_next("ul").text


def test_a_company_id_taken_or_a_parent_loop_is_refused_on_its_field(owner, db):
    form = owner.get("/admin/directory/companies").forms["company-create"]
    form["id"], form["name"] = "acme", "Another Acme"
    page = form.submit("save", status=422)
    assert "exists already" in field_error(page, "id")
    form = owner.get("/admin/directory/companies/globex").forms["company-edit"]
    form["parent"] = "globex-labs"
    page = form.submit("save", status=422)
    assert "loop" in field_error(page, "parent")
    assert db.scalar(select(Company.parent_id).where(Company.external_id == "globex")) is None
    assert audit_actions(db) == []


def test_contacts_and_locations_are_added_and_removed(owner, db):
    page = owner.get("/admin/directory/companies/acme")
    form = page.forms["contact-add"]
    form["account"], form["kind"] = "ann", "billing"
    page = form.submit("save").follow()
    assert "ann is now the billing contact of acme." in page.text
    form = page.forms["location-save"]
    form["id"], form["name"], form["address"] = "acme-hq", "Acme HQ", "1 Road Runner Way"
    page = form.submit("save").follow()
    assert "1 Road Runner Way" in page.text
    acme = db.scalar(select(Company.id).where(Company.external_id == "acme"))
    assert db.scalar(select(Location.name).where(Location.company_id == acme)) == "Acme HQ"
    remove = next(f for f in page.forms.values() if f.action.endswith("/contacts/remove"))
    remove.submit().follow()
    assert db.scalar(select(CompanyContact).where(CompanyContact.company_id == acme)) is None
    assert audit_actions(db) == [
        "company.contact_added",
        "location.created",
        "company.contact_removed",
    ]


def test_create_account_edit_email_deactivate_and_activate(owner, db):
    form = owner.get("/admin/directory/accounts").forms["account-create"]
    form["id"], form["name"], form["email"] = "zoe", "Zoe", "zoe@acme.test"
    page = form.submit("save").follow()
    assert "Account Zoe (zoe) created" in page.text
    form = page.forms["account-edit"]
    form["email"] = "not an address"
    refused = form.submit("save", status=422)
    assert "name@example.com" in field_error(refused, "email")
    assert db.scalar(select(Account.email).where(Account.external_id == "zoe")) == "zoe@acme.test"
    form = refused.forms["account-edit"]
    form["email"], form["email_enabled"] = "zoe@hooli.test", False
    page = form.submit("save").follow()
    zoe = db.scalar(select(Account).where(Account.external_id == "zoe"))
    assert (zoe.email, zoe.email_enabled) == ("zoe@hooli.test", False)
    page = page.forms[2].submit().follow() if False else page
    deactivate = next(f for f in page.forms.values() if f.action.endswith("/active"))
    page = deactivate.submit().follow()
    assert "Account zoe is deactivated" in page.text
    db.expire_all()
    assert db.scalar(select(Account.active).where(Account.external_id == "zoe")) is False
    activate = next(f for f in page.forms.values() if f.action.endswith("/active"))
    activate.submit().follow()
    db.expire_all()
    assert db.scalar(select(Account.active).where(Account.external_id == "zoe")) is True


def test_an_approver_with_pending_orders_is_not_deactivated(owner, db):
    page = owner.get("/admin/directory/accounts/ann")
    deactivate = next(f for f in page.forms.values() if f.action.endswith("/active"))
    page = deactivate.submit().follow()
    assert "PO-800" in page.text and "Nothing was changed" in page.text
    assert db.scalar(select(Account.active).where(Account.external_id == "ann")) is True


def test_the_role_picker_lists_the_rule_sets_roles_by_label(owner):
    page = owner.get("/admin/directory/accounts/ann/memberships/acme")
    select_ = page.html.find("select", attrs={"name": "role"})
    options = {o["value"]: o.get_text() for o in select_.find_all("option") if o["value"]}
    assert options == {
        "master": "Master",
        "approver": "Approver",
        "requisitioner": "Requisitioner",
        "viewer": "Group Viewer (viewer)",
    }


def test_an_undefined_role_is_an_error_on_its_field_and_nothing_is_saved(owner, db):
    form = owner.get("/admin/directory/accounts/ann/memberships/acme").forms["membership-edit"]
    form["role"].force_value("emperor")
    page = form.submit("save", status=422)
    assert "'emperor' is not defined by rule set 'acme'" in field_error(page, "role")
    assert (
        db.scalar(select(Membership.role).join(Account).where(Account.external_id == "ann"))
        == "approver"
    )
    assert audit_actions(db) == []


def test_per_contact_approval_settings_are_saved_as_membership_settings(owner, db):
    page = owner.get("/admin/directory/accounts/bill/memberships/abc1234")
    assert "Maximum order value (USD)" in page.text
    form = page.forms["membership-edit"]
    assert form["max_order_total"].value == "5000"
    form["approve"] = "assigned"
    form["no_approval_below"] = "300"
    form["max_order_total"] = "4,500.50"
    form["hold_orders"] = "yes"
    form["email"] = "no"
    form["restricted_skus"] = "TNT-1\nTNT-2"
    form["cost_centres"] = "CC-100, CC-200"
    form.submit("save").follow()
    membership = db.scalar(select(Membership).join(Account).where(Account.external_id == "bill"))
    assert membership.settings == {
        "no_approval_below": 300,
        "max_order_total": "4500.5",
        "email": False,
        "hold_orders": True,
        "allow_future_ship_dates": True,
        "restricted_skus": ["TNT-1", "TNT-2"],
        "cost_centres": ["CC-100", "CC-200"],
    }
    assert membership.attributes == {"approve": "assigned"}
    assert audit_actions(db) == ["membership.updated"]


def test_a_bad_amount_is_an_error_on_its_field(owner, db):
    form = owner.get("/admin/directory/accounts/bill/memberships/abc1234").forms["membership-edit"]
    form["max_order_total"] = "lots"
    page = form.submit("save", status=422)
    assert "not an amount" in field_error(page, "max_order_total")
    assert audit_actions(db) == []


def test_groups_create_put_members_move_and_the_pending_rule(owner, db):
    form = owner.get("/admin/directory/groups").forms["group-create"]
    form["company"], form["id"], form["name"] = "acme", "sales", "Sales"
    page = form.submit("save").follow()
    assert "Group Sales created in acme" in page.text
    # bob is in marketing: refused without "move", on the field that offers it
    form = page.forms["group-member"]
    form["account"] = "bob"
    page = form.submit("save", status=422)
    assert "already in group 'marketing'" in field_error(page, "move")
    form = page.forms["group-member"]
    form["move"] = True
    page = form.submit("save").follow()
    assert "bob is in group sales" in page.text
    # ann must still decide PO-800: she stays in marketing, the reason on the field
    form = page.forms["group-member"]
    form["account"], form["move"] = "ann", True
    page = form.submit("save", status=422)
    message = field_error(page, "move")
    assert "PO-800" in message and "moving it out of group 'marketing'" in message
    ann = db.scalar(select(Membership).join(Account).where(Account.external_id == "ann"))
    assert ann.group.external_id == "marketing"
    # a new member of the company needs a role
    form = page.forms["group-member"]
    form["account"], form["move"] = "rita", False
    page = form.submit("save", status=422)
    assert "choose its role" in field_error(page, "role")
    assert audit_actions(db) == ["group.created", "membership.updated"]


def test_rename_and_delete_a_group(owner, db):
    page = owner.get("/admin/directory/companies/acme/groups/ops")
    form = page.forms["group-edit"]
    form["name"] = "Operations"
    page = form.submit("save").follow()
    assert "Group Operations" in page.text
    form = page.forms["group-delete"]
    page = form.submit("delete", status=422)
    assert "still has 3 member(s)" in field_error(page, "policy")
    form = page.forms["group-delete"]
    form["policy"] = "move_to_company"
    page = form.submit("delete").follow()
    assert "Group ops of acme deleted." in page.text
    assert db.scalar(select(Group).where(Group.external_id == "ops")) is None


def test_add_a_membership_or_invite_then_accept(owner, db):
    form = owner.get("/admin/directory/accounts/rita").forms["membership-add"]
    form["company"], form["role"], form["group"], form["invite"] = (
        "acme",
        "requisitioner",
        "ops",
        True,
    )
    page = form.submit("save").follow()
    assert "rita was invited to acme as requisitioner, group ops." in page.text
    assert "Invited (joins when accepted)" in page.text
    accept = next(f for f in page.forms.values() if f.action.endswith("/accept"))
    page = accept.submit().follow()
    assert "rita accepted" in page.text
    status = db.scalar(
        select(Membership.status)
        .join(Account)
        .join(Company, Membership.company_id == Company.id)
        .where(Account.external_id == "rita", Company.external_id == "acme")
    )
    assert status == "active"
    assert audit_actions(db) == ["membership.created", "membership.accepted"]


def test_master_and_member_is_refused_on_the_master_field(owner, db):
    form = owner.get("/admin/directory/accounts/bob/memberships/acme").forms["membership-edit"]
    form["master"] = True
    page = form.submit("save", status=422)
    assert "master or member, never both" in field_error(page, "master")


def test_assignments_create_change_and_remove(owner, db):
    form = owner.get("/admin/directory/assignments").forms["assignment-save"]
    form["company"], form["approver"], form["account"] = "abc1234", "jane", "mary"
    form["threshold"], form["limit"] = "250", "1,000"
    page = form.submit("save").follow()
    assert "jane approves for mary in abc1234." in page.text
    row = next(tr for tr in page.html.find_all("tr") if "jane" in tr.text and "mary" in tr.text)
    assert "250.00 USD" in row.text and "1,000.00 USD" in row.text
    change = row.find("a", string="Change")["href"]
    form = owner.get(change).forms["assignment-save"]
    assert form["limit"].value == "1000"
    form["limit"] = ""
    form.submit("save").follow()
    stored = db.scalar(
        select(Assignment)
        .join(Account, Assignment.approver_id == Account.id)
        .where(Account.external_id == "jane", Assignment.threshold.is_not(None))
    )
    assert stored.limit is None
    page = owner.get("/admin/directory/assignments?q=jane")
    remove = next(f for f in page.forms.values() if "/remove" in f.action)
    remove.submit().follow()
    assert audit_actions(db) == ["assignment.created", "assignment.updated", "assignment.removed"]


def test_an_unknown_approver_is_an_error_on_its_field(owner, db):
    form = owner.get("/admin/directory/assignments").forms["assignment-save"]
    form["company"], form["account"] = "abc1234", "mary"
    form["approver"].force_value("ghost")
    page = form.submit("save", status=422)
    assert "no account 'ghost'" in field_error(page, "approver")


def test_viewers_cannot_write_and_a_post_without_csrf_is_refused(app, viewer, db):
    token = csrf(viewer)
    viewer.post(
        "/admin/directory/companies",
        {"csrf_token": token, "id": "x", "name": "X", "save": "save"},
        status=403,
    )
    viewer.post(
        "/admin/directory/accounts/ann/active", {"csrf_token": token, "active": "no"}, status=403
    )
    app.post("/admin/logout", {"csrf_token": token})
    from .conftest import login

    login(app, "editor")
    app.post("/admin/directory/companies", {"id": "x", "name": "X", "save": "save"}, status=400)
    app.post("/admin/directory/accounts/ann/active", {"active": "no"}, status=400)
    assert db.scalar(select(Company).where(Company.external_id == "x")) is None
    assert audit_actions(db, "admin:eddie") == []


def test_another_tenants_directory_is_not_found(other):
    other.get("/admin/directory/companies/acme", status=404)
    other.get("/admin/directory/accounts/ann/memberships/acme", status=404)
    other.get("/admin/directory/companies/acme/groups/marketing", status=404)
    token = csrf(other)
    other.post(
        "/admin/directory/accounts/ann/active", {"csrf_token": token, "active": "no"}, status=404
    )


def test_the_export_download_is_a_fixture_load_accepts(viewer):
    response = viewer.get("/admin/directory/export.yaml")
    assert response.content_type == "application/yaml"
    assert 'filename="demo-directory.yaml"' in response.headers["Content-Disposition"]
    data = check_directory(response.text, "demo-directory.yaml").data
    assert data["companies"]["globex"]["contacts"][0] == {"account": "gia", "kind": "primary"}
    assert yaml.safe_load(response.text)["accounts"]["ann"]["memberships"][0]["group"] == (
        "marketing"
    )
    assert re.match(r"# yaml-language-server", response.text)
