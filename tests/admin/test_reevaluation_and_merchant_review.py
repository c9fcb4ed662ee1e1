"""In the merchant admin: a publish or rollback made here re-evaluates pending requests
(``pending_on_new_version: reevaluate``) as the API's does, and owners and editors take the
merchant-review decision on the approval page."""

from __future__ import annotations

from sqlalchemy import select

from approvalrules.store import versions
from approvalrules.store.models import ApprovalRequest, AuditEvent, Order

from .conftest import csrf, login


def acme_text(db) -> str:
    return versions.active_version(db, "demo", "acme").text


def variant(text: str, *, merchant_review: bool = False, description: str | None = None) -> str:
    """acme with ``pending_on_new_version: reevaluate`` (decisions unchanged, so its tests pass)."""
    text = text.replace(
        "\napproval:\n",
        "\npending_on_new_version: reevaluate\napproval:\n"
        + ("  merchant_review: true\n" if merchant_review else ""),
        1,
    )
    if description:
        text = text.replace(
            "description: Nexternal-style purchasing groups for Acme (acceptance A).",
            f"description: {description}",
            1,
        )
    return text


def switch(app, who):
    """Log out, then in as ``who`` (USERS in conftest)."""
    app.post("/admin/logout", {"csrf_token": csrf(app)}, status=303)
    return login(app, who)


def yaml_publish(app, text):
    return app.post(
        "/admin/rulesets/acme/yaml",
        {"text": text, "action": "publish", "csrf_token": csrf(app)},
        status="*",
    )


def order(db, external_id="PO-800") -> Order:
    db.expire_all()
    return db.scalar(select(Order).where(Order.external_id == external_id))


def test_admin_publish_and_rollback_reevaluate_pending_requests(editor, db):
    assert order(db).previous_decisions is None
    first = variant(acme_text(db))
    assert first != acme_text(db)
    response = yaml_publish(editor, first)
    assert response.status_int == 303, response.text[:2000]
    page = response.follow()
    assert "1 re-evaluated" in page.text
    po = order(db)
    assert po.status == "pending" and [d["reason"] for d in po.previous_decisions] == [
        "new_version"
    ]
    assert po.previous_decisions[0]["ruleset_version"] == 1
    assert (
        db.scalar(
            select(AuditEvent.actor).where(AuditEvent.action == "ruleset.pending_reevaluated")
        )
        == "admin:eddie"
    )

    assert (
        yaml_publish(
            editor, variant(versions.get_version(db, "demo", "acme", 1).text, merchant_review=True)
        ).status_int
        == 303
    )
    assert len(order(db).previous_decisions) == 2
    # rolling back to version 2 (reevaluate) publishes it again: decided once more
    editor.post(
        "/admin/rulesets/acme/rollback", {"number": "2", "csrf_token": csrf(editor)}, status=303
    )
    assert versions.active_version(db, "demo", "acme").number == 4
    po = order(db)
    assert len(po.previous_decisions) == 3 and po.previous_decisions[-1]["ruleset_version"] == 3
    db.expire_all()
    request = db.scalar(select(ApprovalRequest).where(ApprovalRequest.id == 1))
    assert request.status == "pending" and request.generation == 3
    # a new description changes no rule: nothing is decided again, approvals would stand
    page = yaml_publish(
        editor, variant(versions.get_version(db, "demo", "acme", 1).text, description="Acme, v5.")
    ).follow()
    assert "re-evaluated" not in page.text  # no message: nothing was decided again
    assert versions.active_version(db, "demo", "acme").number == 5
    assert len(order(db).previous_decisions) == 3
    db.expire_all()
    assert db.scalar(select(ApprovalRequest.generation).where(ApprovalRequest.id == 1)) == 3


def _into_merchant_review(app, db):
    """Publish acme with merchant review (PO-800 is re-evaluated into it).

    Then approve the marketing step.
    """
    assert yaml_publish(app, variant(acme_text(db), merchant_review=True)).status_int == 303
    db.expire_all()
    request = db.scalar(select(ApprovalRequest).where(ApprovalRequest.id == 1))
    assert [s["name"] for s in request.steps] == ["marketing", "merchant-review"]
    switch(app, "owner")
    app.post(
        "/admin/approvals/1",
        {"action": "approve", "approver": "ann", "csrf_token": csrf(app)},
        status=303,
    )
    db.expire_all()
    assert db.scalar(select(ApprovalRequest.current_step).where(ApprovalRequest.id == 1)) == 1


def test_editor_releases_an_order_after_merchant_review(editor, db):
    _into_merchant_review(editor, db)
    switch(editor, "editor")
    page = editor.get("/admin/approvals/1")
    assert "Merchant review" in page.text and "Decide on behalf" not in page.text
    form = page.forms["merchant-review-form"]
    form["comment"] = "checked the supplier"
    done = form.submit("decision", value="approve").follow()
    assert "released as approved" in done.text and "approved by admin:eddie" in done.text
    db.expire_all()
    assert db.scalar(select(ApprovalRequest.status).where(ApprovalRequest.id == 1)) == "approved"
    assert order(db).status == "approved"
    entry = db.scalar(select(AuditEvent).where(AuditEvent.action == "approval.merchant_approved"))
    assert (
        entry.actor == "admin:eddie"
        and entry.subject_id == "PO-800"
        and entry.data["comment"] == "checked the supplier"
    )
    # decided: no review form any more
    assert "merchant-review-form" not in editor.get("/admin/approvals/1").text


def test_owner_rejects_in_merchant_review(owner, db):
    _into_merchant_review(owner, db)
    owner.post(
        "/admin/approvals/1/merchant-review",
        {"decision": "reject", "comment": "not this supplier", "csrf_token": csrf(owner)},
        status=303,
    )
    db.expire_all()
    assert order(db).status == "rejected"
    assert (
        db.scalar(select(AuditEvent.actor).where(AuditEvent.action == "approval.merchant_rejected"))
        == "admin:olive"
    )


def test_merchant_review_is_refused_to_viewers_without_csrf_and_outside_the_step(owner, db):
    # not yet in merchant review (PO-800 waits for marketing): refused, nothing changes
    page = owner.post(
        "/admin/approvals/1/merchant-review",
        {"decision": "approve", "csrf_token": csrf(owner)},
        status=422,
    )
    assert (
        "not in the merchant&#39;s review" in page.text
        or "not in the merchant's review" in page.text
    )
    assert "merchant-review-form" not in owner.get("/admin/approvals/1").text
    _into_merchant_review(owner, db)
    # no CSRF token: refused
    owner.post("/admin/approvals/1/merchant-review", {"decision": "approve"}, status=400)
    assert (
        "Choose approve or reject"
        in owner.post(
            "/admin/approvals/1/merchant-review",
            {"decision": "maybe", "csrf_token": csrf(owner)},
            status=422,
        ).text
    )
    # viewers see the step but get no form, and may not post
    switch(owner, "viewer")
    page = owner.get("/admin/approvals/1")
    assert "Merchant review" in page.text and "merchant-review-form" not in page.text
    owner.post(
        "/admin/approvals/1/merchant-review",
        {"decision": "approve", "csrf_token": csrf(owner)},
        status=403,
    )
    db.expire_all()
    assert db.scalar(select(ApprovalRequest.status).where(ApprovalRequest.id == 1)) == "pending"
