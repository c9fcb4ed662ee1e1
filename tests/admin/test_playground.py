"""The evaluate playground: buyer and company picked from the directory, any version or the
draft, and the decision in words."""

from __future__ import annotations

from sqlalchemy import select

from approvalrules.store.models import RuleSet

from .test_rulesets import yaml_post


def evaluate_form(app):
    return app.get("/admin/evaluate").forms["order-form"]


def options(field) -> list[str]:
    return [value for value, _, _ in field.options]


def evaluate(app, buyer, total, rules="", status=200, **fields):
    form = evaluate_form(app)
    form["buyer"], form["total"], form["rules"] = buyer, total, rules
    for name, value in fields.items():
        form[name] = value
    return form.submit("evaluate", status=status)


def test_buyer_company_and_rules_are_picked_from_lists(viewer):
    form = evaluate_form(viewer)
    assert {"bob", "ann", "acme-master"} <= set(options(form["buyer"]))
    assert {"", "acme", "globex"} <= set(options(form["company"]))
    rules = options(form["rules"])
    assert rules[0] == "" and "acme@1" in rules
    page = viewer.get("/admin/evaluate")
    assert "Bob (bob)" in page.text and "the active rule set of the buyer" in page.text


def test_the_decision_reads_in_words(viewer):
    page = evaluate(viewer, "bob", "800")
    decision = page.html.select_one("#decision")
    text = " ".join(decision.get_text(" ").split())
    assert "Pending: the order waits for approval." in text
    assert "800.00 USD" in text and "800.0000" not in text
    assert "Payer the company acme (its billing account)" in text
    assert "{" not in text and "'kind'" not in text
    assert "approval required" in text.lower()


def test_a_blocked_order_never_says_no_approval_needed(viewer):
    page = evaluate(viewer, "val", "10")  # a Group Viewer may not order
    decision = page.html.select_one("#decision")
    text = " ".join(decision.get_text(" ").split())
    assert 'class="outcome">blocked' in page.text
    assert "Blocked: the order cannot be placed." in text
    assert "Group Viewer may not place orders" in text
    assert "No approval needed" not in text
    assert "nobody: the order is not placed" in text


def test_an_order_is_tried_against_the_draft_or_a_version(editor, db):
    text = db.scalar(select(RuleSet).where(RuleSet.name == "acme")).active_version.text
    draft = text.replace("total: {gt: 500}", "total: {gt: 1000}")
    assert yaml_post(editor, "acme", draft, "save").status_int == 303
    form = evaluate_form(editor)
    assert "acme@draft" in options(form["rules"])

    under_draft = evaluate(editor, "bob", "800", rules="acme@draft")
    assert 'class="outcome">approved' in under_draft.text
    assert "acme, draft" in under_draft.text and "No approval needed." in under_draft.text

    under_version = evaluate(editor, "bob", "800", rules="acme@1")
    assert 'class="outcome">pending' in under_version.text
    assert "acme, version 1" in under_version.text

    active = evaluate(editor, "bob", "800")
    assert 'class="outcome">pending' in active.text  # the draft decides nothing until published


def test_rules_that_are_not_offered_are_refused(viewer):
    form = evaluate_form(viewer)
    form["buyer"], form["total"] = "bob", "800"
    form["rules"].force_value("acme@99")
    page = form.submit("evaluate", status=422)
    assert "Fix the highlighted fields" in page.text
