"""Directory, approvals, evaluate playground and audit log pages."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from approvalrules.store.models import ApprovalRequest, AuditEvent

from .conftest import csrf

# -- directory --------------------------------------------------------------------------------


def test_companies_tree_shows_subsidiaries(viewer):
    page = viewer.get("/admin/directory/companies")
    assert '<ul class="tree"' in page.text
    assert "/admin/directory/companies/acme" in page.text


def test_companies_search(viewer):
    page = viewer.get("/admin/directory/companies?q=acm")
    assert "acme" in page.text and "globex" not in page.text
    assert "0 found" in viewer.get("/admin/directory/companies?q=zzz").text


def test_company_page(viewer):
    page = viewer.get("/admin/directory/companies/acme")
    # roles by their rule set's labels, groups by their names (issue 17)
    for text in ("Company Acme", "Marketing", "Bob", "Requisitioner", "Members", "Assignments"):
        assert text in page.text
    viewer.get("/admin/directory/companies/nope", status=404)


@pytest.mark.parametrize(
    ("path", "current"),
    [
        ("/admin/directory/companies", "Companies"),
        ("/admin/directory/companies/acme", "Companies"),
        ("/admin/directory/accounts", "Accounts"),
        ("/admin/directory/accounts/bob", "Accounts"),
        ("/admin/directory/memberships", "Memberships"),
        ("/admin/directory/groups", "Groups"),
        ("/admin/directory/assignments", "Assignments"),
        ("/admin/directory/delegations", "Delegations"),
        ("/admin/directory/sync", "Bulk sync"),
        ("/admin/rulesets/acme", "Overview"),
        ("/admin/rulesets/acme/form", "Form"),
        ("/admin/rulesets/acme/yaml", "YAML"),
        ("/admin/rulesets/acme/versions", "Versions"),
        ("/admin/rulesets/acme/versions/1", "Versions"),
        ("/admin/rulesets/acme/diff", "Diff"),
    ],
)
def test_the_tab_of_the_page_shown_is_marked_current(viewer, path, current):
    tabs = viewer.get(path).html.find("nav", class_="tabs").find_all("a")
    assert [tab.text for tab in tabs if tab.get("aria-current") == "page"] == [current]


def test_accounts_search_and_pagination(viewer):
    first = viewer.get("/admin/directory/accounts")
    pages = int(re.search(r"page 1 of (\d+)", first.text).group(1))
    assert pages >= 2 and 'rel="next"' in first.text and 'rel="prev"' not in first.text
    last = viewer.get(f"/admin/directory/accounts?page={pages}")
    assert (
        f"page {pages} of {pages}" in last.text
        and 'rel="prev"' in last.text
        and 'rel="next"' not in last.text
    )
    found = viewer.get("/admin/directory/accounts?q=bob%40acme")
    assert "/admin/directory/accounts/bob" in found.text and "1 found" in found.text
    # LIKE wildcards are literal characters in a search
    assert "0 found" in viewer.get("/admin/directory/accounts?q=%25").text


def test_account_page(viewer):
    page = viewer.get("/admin/directory/accounts/bob")
    assert "Account Bob" in page.text and "Acme" in page.text
    viewer.get("/admin/directory/accounts/nobody", status=404)


def test_memberships_groups_assignments(viewer):
    assert "Requisitioner" in viewer.get("/admin/directory/memberships?q=bob").text
    assert "0 found" in viewer.get("/admin/directory/memberships?status=declined&role=nobody").text
    assert "marketing" in viewer.get("/admin/directory/groups?q=acme").text
    page = viewer.get("/admin/directory/assignments")
    assert "<table" in page.text and "found" in page.text


# -- approvals --------------------------------------------------------------------------------


def test_pending_approvals_are_listed_by_default(viewer):
    page = viewer.get("/admin/approvals")
    assert "PO-800" in page.text and "marketing" in page.text


def test_approval_filters(viewer):
    assert "PO-800" not in viewer.get("/admin/approvals?status=approved").text
    assert "PO-800" in viewer.get("/admin/approvals?status=&approver=ann").text
    assert "PO-800" not in viewer.get("/admin/approvals?status=&approver=eve").text
    assert "PO-800" in viewer.get("/admin/approvals?q=po-8").text
    page = viewer.get("/admin/approvals?from=yesterday")
    assert "from: give an ISO 8601 date-time" in page.text


def test_approval_page(viewer):
    page = viewer.get("/admin/approvals/1")
    assert "order PO-800" in page.text and "acme-master" in page.text
    assert "Decide on behalf" not in page.text  # viewers do not decide
    viewer.get("/admin/approvals/999", status=404)
    viewer.get("/admin/approvals/abc", status=404)


def test_owner_approves_on_behalf_of_an_approver_and_is_audited(owner, db):
    page = owner.get("/admin/approvals/1")
    form = page.forms[1]
    form["approver"] = "ann"
    form["comment"] = "approved by phone"
    response = form.submit("action", value="approve")
    assert "Approved for ann." in response.follow().text
    assert db.scalar(select(ApprovalRequest.status).where(ApprovalRequest.id == 1)) == "approved"
    entry = db.scalar(
        select(AuditEvent).where(AuditEvent.action == "admin.approval.approved_on_behalf")
    )
    assert entry.actor == "admin:olive" and entry.data["approver"] == "ann"


def test_owner_rejects_on_behalf(owner, db):
    owner.post(
        "/admin/approvals/1",
        {"action": "reject", "approver": "acme-master", "comment": "no", "csrf_token": csrf(owner)},
        status=303,
    )
    assert db.scalar(select(ApprovalRequest.status).where(ApprovalRequest.id == 1)) == "rejected"
    assert (
        db.scalar(
            select(AuditEvent.actor).where(AuditEvent.action == "admin.approval.rejected_on_behalf")
        )
        == "admin:olive"
    )


def test_deciding_error_paths(owner, db):
    token = csrf(owner)
    page = owner.post(
        "/admin/approvals/1",
        {"action": "approve", "approver": "eve", "csrf_token": token},
        status=422,
    )
    assert "not an eligible approver" in page.text
    assert (
        "Choose approve or reject"
        in owner.post(
            "/admin/approvals/1",
            {"action": "delete", "approver": "ann", "csrf_token": token},
            status=422,
        ).text
    )
    assert (
        "Choose the approver"
        in owner.post(
            "/admin/approvals/1",
            {"action": "approve", "approver": "", "csrf_token": token},
            status=422,
        ).text
    )
    owner.post(
        "/admin/approvals/1",
        {"action": "approve", "approver": "ann", "csrf_token": token},
        status=303,
    )
    page = owner.post(
        "/admin/approvals/1",
        {"action": "approve", "approver": "ann", "csrf_token": token},
        status=422,
    )
    assert "already approved" in page.text
    assert (
        db.scalar(
            select(AuditEvent).where(AuditEvent.action == "admin.approval.approved_on_behalf")
        )
        is not None
    )


# -- evaluate ---------------------------------------------------------------------------------


def evaluate_form(app):
    return app.get("/admin/evaluate").forms["order-form"]


def test_evaluate_shows_the_decision_and_its_trace(viewer, db):
    form = evaluate_form(viewer)
    form["buyer"], form["total"] = "bob", "800"
    page = form.submit("evaluate")
    assert page.status_int == 200
    assert 'class="outcome">pending' in page.text and "acme, version 1 (active)" in page.text
    assert "Trace" in page.text and "marketing" in page.text
    assert db.scalar(select(ApprovalRequest.id).where(ApprovalRequest.id == 2)) is None  # a dry run


def test_evaluate_error_paths(viewer):
    form = evaluate_form(viewer)
    form["buyer"].force_value("nobody")  # an account deleted since the page was drawn
    form["total"] = "10"
    page = form.submit("evaluate", status=422)
    assert "not an account of this tenant" in page.text
    form = evaluate_form(viewer)
    form["buyer"], form["total"] = "bob", "ten"
    page = form.submit("evaluate", status=422)
    assert "Fix the highlighted fields" in page.text and "an amount" in page.text


# -- audit ------------------------------------------------------------------------------------


def test_audit_log_lists_and_filters(owner):
    page = owner.get("/admin/audit")
    assert "admin.logged_in" in page.text and "admin:olive" in page.text
    filtered = owner.get("/admin/audit?action=ruleset.published&subject=acme")
    assert "ruleset.published" in filtered.text and "admin.logged_in" not in filtered.text
    assert "0 found" in owner.get("/admin/audit?actor=nobody-at-all").text
