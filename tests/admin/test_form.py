"""The rule-set form generated from the JSON Schema, and saving it back into the YAML."""

from __future__ import annotations

import difflib

from sqlalchemy import select

from approvalrules.store import versions
from approvalrules.store.models import RuleSet

from .conftest import csrf

COMMENTED = """\
# yaml-language-server: $schema=../schemas/ruleset.schema.json
# Heading comment: who owns this file.
ruleset: acme   # the name, end-of-line comment
extends: tenant-default  # inherits the tenant's limits
description: Commented copy of acme.

# -- roles -----------------------------------------------------------
roles:
  # masters approve everything in their company
  master:        {label: Master,        permissions: [place_orders, approve_orders, \
view_group_orders]}  # aligned
  approver:      {label: Approver,      permissions: [place_orders, approve_orders]}
  requisitioner: {label: Requisitioner, permissions: [place_orders]}   # orders only
  viewer:        {label: Group Viewer,  permissions: [view_group_orders]}
groups:
  marketing: {label: Marketing, settings: {payer: company}}  # Acme pays
  ops:       {label: Ops,       settings: {payer: buyer}}
approval:
  scope: own_group     # own_group, not universal
  expiry: {after: P7D, then: cancel}
  # the steps, in order
  steps:
    - name: marketing  # first step
      description: Marketing orders over 500 need one approval.
      # the threshold below is what the merchant tunes
      when: {buyer_group: marketing, total: {gt: 500}}   # strictly greater
      approvers: {any_of: [{relation: group_master}, {role: approver}]}
      required: 1
    - name: ops
      when: {buyer_group: ops}
      approvers: {any_of: [{relation: group_master}, {role: approver}]}
      required: 2   # two people
# bulk orders follow the group
bulk_orders: group_settings
tests:
  # one test is enough here
  - name: small order
    order: {buyer: bob, total: 200}   # under the threshold
    expect: {outcome: approved}
# trailing comment at the end of the file
"""


def draft(db, name="acme") -> str | None:
    db.expire_all()
    return db.scalar(select(RuleSet.draft_text).where(RuleSet.name == name, RuleSet.tenant_id == 1))


def save_yaml(app, text, name="acme"):
    app.post(
        f"/admin/rulesets/{name}/yaml",
        {"text": text, "action": "save", "csrf_token": csrf(app)},
        status=303,
    )


def approver_boxes(form):
    """The approver checkboxes of every step (and of the step template), in page order."""
    return [f for f in form.fields["checkbox"] if ":" in (f._value or "")]


def field(form, name, index=0):
    return form.fields[name][index]


def test_the_form_is_generated_from_the_schema(viewer):
    page = viewer.get("/admin/rulesets/acme/form")
    text = page.text
    # a select for enums, checkboxes for booleans with a default and for permission sets,
    # sequences with add buttons for roles, groups, steps and tests
    assert '<select name="bulk_orders"' in text
    assert 'name="master_confirmation"' in text and 'type="checkbox"' in text
    assert 'value="approve_orders"' in text
    for item in ("Add an empty step", "Add test", "Add role", "Add group", "Add bypass rule"):
        assert item in text, item
    assert "Add bypas<" not in text
    # labels and help are words from the schema's titles, not keys
    for label in ("Approvals needed", "Buyer's group", "Purchasing groups", "Embedded tests"):
        assert label in text, label
    assert "(YAML, e.g." not in text and ">no approval below<" not in text
    # conditions through the builder; YAML only as the escape hatch
    form = page.forms["ruleset-form"]
    assert form["ruleset"].value == "acme"
    assert [f.value for f in form.fields["when_group"]] == ["marketing", "ops"]
    assert [f.value for f in form.fields["when_amount"]][:2] == ["500", ""]
    assert all(f.value == "" for f in form.fields["when_yaml"])
    # approvers picked from the rule set's roles, the relations and the directory's accounts
    picks = approver_boxes(form)
    offered = {f._value for f in picks}
    assert {"relation:group_master", "role:approver", "account:ann"} <= offered
    marketing = picks[: len(offered)]
    assert {f._value for f in marketing if f.checked} == {"relation:group_master", "role:approver"}
    assert "Role: Approver" in text and "Ann (ann)" in text
    # amounts carry their currency
    assert '<span class="input-group-text">USD</span>' in text


def test_a_viewer_gets_no_buttons(viewer):
    page = viewer.get("/admin/rulesets/acme/form")
    assert 'name="save"' not in page.text and 'name="publish"' not in page.text


def test_saving_an_unchanged_form_leaves_no_draft(editor, db):
    form = editor.get("/admin/rulesets/acme/form").forms["ruleset-form"]
    assert form.submit("save").status_int == 303
    assert draft(db) is None
    assert "No change from the published version" in editor.get("/admin/rulesets/acme/form")


def test_saving_an_unchanged_draft_changes_no_byte(editor, db):
    save_yaml(editor, COMMENTED)
    form = editor.get("/admin/rulesets/acme/form").forms["ruleset-form"]
    assert form.submit("save").status_int == 303
    assert draft(db) == COMMENTED


def test_saving_the_published_text_again_discards_the_draft(editor, db):
    save_yaml(editor, COMMENTED)
    save_yaml(editor, versions.active_version(db, "demo", "acme").text)
    assert draft(db) is None


def test_a_form_save_keeps_every_comment(editor, db):
    save_yaml(editor, COMMENTED)
    form = editor.get("/admin/rulesets/acme/form").forms["ruleset-form"]
    assert field(form, "when_amount", 0).value == "500"
    field(form, "when_amount", 0).value = "750"
    field(form, "scope", 0).value = "universal"
    assert form.submit("save").status_int == 303
    saved = draft(db)
    for line in COMMENTED.splitlines():
        if "#" in line and "scope:" not in line and "when:" not in line:
            assert line in saved.splitlines(), f"lost: {line!r}"
    changed = [
        line
        for line in difflib.ndiff(COMMENTED.splitlines(), saved.splitlines())
        if line[:1] in "+-"
    ]
    assert changed == [
        "-   scope: own_group     # own_group, not universal",
        "+   scope: universal     # own_group, not universal",
        "-       when: {buyer_group: marketing, total: {gt: 500}}   # strictly greater",
        "+       when: {buyer_group: marketing, total: {gt: 750}}   # strictly greater",
    ]


def test_a_money_field_is_saved_as_a_number_in_place(editor, db):
    original = versions.active_version(db, "demo", "tenant-default").text
    form = editor.get("/admin/rulesets/tenant-default/form").forms["ruleset-form"]
    money = [f for f in form.fields["max_order_total"] if f.value == "999999.99"][0]
    money.value = "500000"
    assert form.submit("save").status_int == 303
    changed = [
        line
        for line in difflib.ndiff(original.splitlines(), draft(db, "tenant-default").splitlines())
        if line[:1] in "+-"
    ]
    assert changed == ['-   max_order_total: "999999.99"', "+   max_order_total: 500000"]


def test_an_amount_per_currency_is_saved_as_a_map(editor, db):
    original = versions.active_version(db, "demo", "tenant-default").text
    form = editor.get("/admin/rulesets/tenant-default/form").forms["ruleset-form"]
    money = [f for f in form.fields["max_order_total"] if f.value == "999999.99"][0]
    money.value = "{USD: 500000}"
    assert form.submit("save").status_int == 303
    changed = [
        line
        for line in difflib.ndiff(original.splitlines(), draft(db, "tenant-default").splitlines())
        if line[:1] in "+-"
    ]
    assert changed == ['-   max_order_total: "999999.99"', "+   max_order_total: {USD: 500000}"]
    # and it is shown as written when the form is opened again
    form = editor.get("/admin/rulesets/tenant-default/form").forms["ruleset-form"]
    assert "{USD: 500000}" in [f.value for f in form.fields["max_order_total"]]


def test_a_bad_value_is_shown_on_its_field_and_nothing_is_saved(editor, db):
    form = editor.get("/admin/rulesets/tenant-default/form").forms["ruleset-form"]
    money = [f for f in form.fields["max_order_total"] if f.value == "999999.99"][0]
    money.value = "lots"
    page = form.submit("save", status=422)
    assert "an amount (e.g. 500 or 1250.50) or one per currency" in page.text
    assert draft(db, "tenant-default") is None


def test_a_bad_yaml_snippet_is_shown_on_its_field(editor, db):
    form = editor.get("/admin/rulesets/acme/form").forms["ruleset-form"]
    field(form, "when_group", 0).value = ""
    field(form, "when_amount", 0).value = ""
    field(form, "when_yaml", 0).value = "{total: {gt: 5"
    page = form.submit("save", status=422)
    assert "There was a problem" in page.text or "error" in page.text
    assert draft(db) is None


def test_engine_problems_are_shown_on_the_field_and_block_publishing(editor, db):
    form = editor.get("/admin/rulesets/acme/form").forms["ruleset-form"]
    for pick in approver_boxes(form):
        pick.checked = False
    field(form, "approvers_yaml", 0).value = "{any_of: [{role: nosuch}]}"
    page = form.submit("publish", status=422)
    assert (
        "role &#39;nosuch&#39; is not defined" in page.text
        or "role 'nosuch' is not defined" in page.text
    )
    assert "nothing was published or saved" in page.text
    assert draft(db) is None
    assert versions.active_version(db, "demo", "acme").number == 1


def test_publish_from_the_form(editor, db):
    form = editor.get("/admin/rulesets/acme/form").forms["ruleset-form"]
    field(form, "when_amount", 0).value = "600"
    response = form.submit("publish")
    assert response.status_int == 303
    db.expire_all()
    active = versions.active_version(db, "demo", "acme")
    assert active.number == 2 and "total: {gt: 600}}" in active.text
    assert draft(db) is None


def test_a_draft_that_is_not_yaml_sends_you_to_the_yaml_editor(editor):
    save_yaml(editor, "ruleset: acme\nroles: [unclosed\n")
    page = editor.get("/admin/rulesets/acme/form")
    assert "not valid YAML" in page.text


def test_removing_a_step_keeps_the_other_steps_comments(editor, db):
    save_yaml(editor, COMMENTED)
    form = editor.get("/admin/rulesets/acme/form").forms["ruleset-form"]
    fields = form.submit_fields("save")
    # drop the first step's mapping (what deform's remove button does in the browser)
    start = next(i for i, (k, v) in enumerate(fields) if (k, v) == ("__start__", "step:mapping"))
    end = next(i for i in range(start, len(fields)) if fields[i] == ("__end__", "step:mapping"))
    del fields[start : end + 1]
    fields = [(k, v) for k, v in fields]
    editor.post("/admin/rulesets/acme/form", fields, status=303)
    saved = draft(db)
    assert "- name: marketing" not in saved and "- name: ops" in saved
    assert (
        "required: 2   # two people" in saved
        and "# trailing comment at the end of the file" in saved
    )
