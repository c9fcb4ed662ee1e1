"""Drafts in the admin: discarding one, saving nothing when nothing changed, and updating the
expected outcomes of embedded tests that a deliberate change breaks (after a review)."""

from __future__ import annotations

import re

from sqlalchemy import select

from approvalrules.store import versions
from approvalrules.store.models import AuditEvent

from .conftest import csrf
from .test_form import draft, field, save_yaml


def audit_actions(db, action):
    db.expire_all()
    return db.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


def raise_threshold(editor):
    """Publish acme's Marketing threshold at 1000 from the form: refused by its own tests."""
    form = editor.get("/admin/rulesets/acme/form").forms["ruleset-form"]
    field(form, "when_amount", 0).value = "1000"
    return form.submit("publish", status=422)


def test_discarding_a_draft_is_audited_and_leaves_the_active_version(editor, db):
    save_yaml(editor, versions.active_version(db, "demo", "acme").text + "# edited\n")
    page = editor.get("/admin/rulesets/acme")
    assert "There is an unpublished draft" in page.text
    discard = [f for f in page.forms.values() if "draft/discard" in f.action][0]
    assert "Discard the draft of acme?" in page.text  # the browser asks before posting
    shown = discard.submit().follow()
    assert "Draft discarded: the form and the YAML editor show version 1 again." in shown.text
    assert draft(db) is None
    events = audit_actions(db, "ruleset.draft_discarded")
    assert [(e.actor, e.subject_id) for e in events] == [("admin:eddie", "acme")]
    assert "There is an unpublished draft" not in shown.text


def test_a_viewer_cannot_discard(viewer):
    viewer.post("/admin/rulesets/acme/draft/discard", {"csrf_token": csrf(viewer)}, status=403)
    assert "Discard draft" not in viewer.get("/admin/rulesets/acme").text


def test_failing_tests_are_named_and_an_update_is_offered(editor, db):
    page = raise_threshold(editor)
    failing = re.findall(r"<li><strong>([^<]+)</strong>", page.text)
    assert len(failing) == 7 and all(name.startswith("A") for name in failing), failing
    assert "Update the expected outcomes of 7 test(s) from the current decisions" in page.text
    assert draft(db) is None and versions.active_version(db, "demo", "acme").number == 1


def test_updated_expectations_are_reviewed_as_a_diff_then_saved_and_audited(editor, db):
    page = raise_threshold(editor)
    offer = [f for f in page.forms.values() if "tests/update" in f.action][0]
    review = offer.submit("action")
    assert review.status_int == 200
    assert len(review.html.select("ul.updated-tests li")) == 7
    diff = review.html.select_one("table.diff").text
    assert "approved" in diff and "1000" not in diff  # only the expectations change
    assert draft(db) is None  # nothing saved by looking
    saved = review.forms[[k for k, f in review.forms.items() if "tests/update" in f.action][0]]
    saved.submit("action").follow()
    text = draft(db)
    assert "total: {gt: 1000}" in text
    events = audit_actions(db, "ruleset.tests_updated")
    assert len(events) == 1 and len(events[0].data["tests"]) == 7
    # the draft now publishes: every test passes against today's decisions
    form = editor.get("/admin/rulesets/acme/form").forms["ruleset-form"]
    assert form.submit("publish").status_int == 303
    db.expire_all()
    assert versions.active_version(db, "demo", "acme").number == 2
    # and the lines of the rule set outside the updated tests did not move
    original = versions.get_version(db, "demo", "acme", 1).text.splitlines()
    published = versions.active_version(db, "demo", "acme").text.splitlines()
    assert published[: original.index("tests:")] == [
        line.replace("total: {gt: 500}", "total: {gt: 1000}")
        for line in original[: original.index("tests:")]
    ]


def test_rollback_asks_for_confirmation(owner, db):
    text = versions.active_version(db, "demo", "acme").text + "# version 2\n"
    owner.post(
        "/admin/rulesets/acme/yaml",
        {"text": text, "action": "publish", "csrf_token": csrf(owner)},
        status=303,
    )
    page = owner.get("/admin/rulesets/acme/versions")
    rollback = page.html.select_one("form[action$='/rollback']")
    assert rollback["data-confirm"].startswith("Make version 1 active again?")
