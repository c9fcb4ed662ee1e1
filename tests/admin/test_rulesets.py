"""Rule-set pages: list, view with the chain diagram, YAML editor, publish, tests, roll back."""

from __future__ import annotations

from sqlalchemy import select

from approvalrules.store import versions
from approvalrules.store.models import AuditEvent, RuleSet

from .conftest import csrf

ACME_STEP = "when: {buyer_group: marketing, total: {gt: 500}}"


def ruleset(db, name="acme") -> RuleSet:
    return db.scalar(select(RuleSet).where(RuleSet.name == name, RuleSet.tenant_id == 1))


def active_text(db, name="acme") -> str:
    return versions.active_version(db, "demo", name).text


def test_list_shows_every_rule_set_with_its_version(viewer):
    page = viewer.get("/admin/rulesets")
    for name in ("acme", "globex", "initech", "tenant-default"):
        assert f'/admin/rulesets/{name}"' in page.text


def test_create_a_rule_set(editor, db):
    page = editor.get("/admin/rulesets")
    form = page.forms[1]
    form["name"] = "brand-new"
    assert form.submit().status_int == 303
    assert ruleset(db, "brand-new").draft_text.startswith("ruleset: brand-new")


def test_create_refuses_bad_and_taken_names(editor):
    token = csrf(editor)
    assert (
        "1 to 64 letters"
        in editor.post(
            "/admin/rulesets", {"name": "no spaces", "csrf_token": token}, status=422
        ).text
    )
    assert (
        "exists already"
        in editor.post("/admin/rulesets", {"name": "acme", "csrf_token": token}, status=422).text
    )


def test_view_shows_the_chain_as_svg(viewer):
    page = viewer.get("/admin/rulesets/acme")
    assert "<svg" in page.text and 'role="img"' in page.text
    for text in (
        "1. marketing",
        "2. ops",
        'class="branches" data-steps="marketing ops"',
        "2 approvals from: a master of the",
        "Approver",
    ):
        assert text in page.text, text
    assert "YAML of version" in page.text


def test_chain_svg_alone(viewer):
    response = viewer.get("/admin/rulesets/globex/chain.svg")
    assert response.content_type == "image/svg+xml"
    assert response.text.startswith("<svg") and "approval-group" in response.text
    assert viewer.get("/admin/rulesets/acme/chain.svg?version=1").status_int == 200
    viewer.get("/admin/rulesets/acme/chain.svg?version=99", status=404)


def test_unknown_rule_set_is_404(viewer):
    viewer.get("/admin/rulesets/nope", status=404)
    viewer.get("/admin/rulesets/nope/yaml", status=404)


def yaml_post(app, name, text, action):
    return app.post(
        f"/admin/rulesets/{name}/yaml",
        {"text": text, "action": action, "csrf_token": csrf(app)},
        status="*",
    )


def test_save_draft_keeps_invalid_text_and_shows_the_problem_on_its_line(editor, db):
    bad = active_text(db).replace("required: 2", "required: 0")
    assert yaml_post(editor, "acme", bad, "save").status_int == 303
    assert ruleset(db).draft_text == bad
    page = editor.get("/admin/rulesets/acme/yaml")
    line = bad.splitlines().index("      required: 0") + 1
    assert f'data-line="{line}"' in page.text
    assert "approval.steps[1].required" in page.text and "less than the minimum of 1" in page.text
    assert f'id="L{line}" class="line bad"' in page.text


def test_publish_invalid_saves_nothing(editor, db):
    before = len(versions.list_versions(db, "demo", "acme"))
    bad = active_text(db).replace("{gt: 500}", "{gt: lots}")
    page = yaml_post(editor, "acme", bad, "publish")
    assert page.status_int == 422
    assert "Nothing was saved" in page.text and "approval.steps[0].when.total.gt" in page.text
    db.expire_all()
    assert len(versions.list_versions(db, "demo", "acme")) == before
    assert ruleset(db).draft_text is None


def test_publish_valid_text_makes_a_new_active_version(editor, db):
    text = active_text(db).replace("{gt: 500}", "{gt: 600}")
    response = yaml_post(editor, "acme", text, "publish")
    assert response.status_int == 303
    assert "Published version 2 of acme" in response.follow().text
    db.expire_all()
    active = versions.active_version(db, "demo", "acme")
    assert active.number == 2 and active.text == text and active.author == "admin:eddie"
    assert db.scalar(
        select(AuditEvent).where(
            AuditEvent.action == "ruleset.published", AuditEvent.actor == "admin:eddie"
        )
    )


def test_publish_under_another_name_is_refused(editor):
    page = yaml_post(editor, "acme", "ruleset: globex\n", "publish")
    assert (
        page.status_int == 422
        and "name_mismatch" not in page.text
        and "this is rule set 'acme'" in page.text
    )


def test_run_tests_reports_each_test_and_saves_nothing(editor, db):
    page = yaml_post(editor, "acme", active_text(db), "test")
    assert page.status_int == 200 and "All tests pass" in page.text
    assert ruleset(db).draft_text is None


def test_failing_tests_are_shown_and_block_publishing(editor, db):
    text = active_text(db).replace(
        "{gt: 500}", "{gt: 900}"
    )  # "Bob orders 800 -> pending" now fails
    page = yaml_post(editor, "acme", text, "test")
    assert "FAIL" in page.text and "expected pending" in page.text
    page = yaml_post(editor, "acme", text, "publish")
    assert page.status_int == 422 and "Not published" in page.text
    db.expire_all()
    assert versions.active_version(db, "demo", "acme").number == 1


def test_unparsable_yaml_is_reported_not_crashing(editor):
    page = yaml_post(editor, "acme", "ruleset: acme\nroles: [unclosed\n", "publish")
    assert page.status_int == 422 and "problem" in page.text


def test_rollback_publishes_the_old_text_as_a_new_version(owner, db):
    original = active_text(db)
    yaml_post(owner, "acme", original.replace("{gt: 500}", "{gt: 600}"), "publish")
    response = owner.post(
        "/admin/rulesets/acme/rollback", {"number": "1", "csrf_token": csrf(owner)}
    )
    assert "Version 1 is active again, published as version 3" in response.follow().text
    db.expire_all()
    active = versions.active_version(db, "demo", "acme")
    assert (active.number, active.text) == (3, original)


def test_rollback_error_paths(owner):
    token = csrf(owner)
    assert (
        "Nothing rolled back"
        in owner.post("/admin/rulesets/acme/rollback", {"number": "99", "csrf_token": token})
        .follow()
        .text
    )
    assert (
        "Nothing rolled back"
        in owner.post("/admin/rulesets/acme/rollback", {"number": "x", "csrf_token": token})
        .follow()
        .text
    )


def test_hostile_documents_through_the_admin_editor_are_refused_whole(editor, db):
    """The admin's YAML upload meets the same loader limits as the API.

    422 with the line, nothing saved.
    """
    hostile = {
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
        "python tag": "ruleset: !!python/object/apply:os.system [echo hi]\n",
        "duplicate keys": (
            "ruleset: acme\napproval:\n  self_approval: false\n  self_approval: true\n"
        ),
        "yaml 1.1 no": "ruleset: acme\napproval: {self_approval: no}\n",
    }
    before = len(versions.list_versions(db, "demo", "acme"))
    for name, text in hostile.items():
        page = yaml_post(editor, "acme", text, "publish")
        assert page.status_int == 422, name
        assert "Nothing was saved" in page.text and "line" in page.text.lower(), name
    db.expire_all()
    assert len(versions.list_versions(db, "demo", "acme")) == before


def test_a_draft_failing_the_loaders_guards_is_not_saved(editor, db):
    """Issue 15: the YAML editor's save meets the loader's guards (a draft may be invalid,
    but never an alias bomb, too deep, or over the size cap); 422 / 413, nothing saved."""
    bomb = (
        "ruleset: acme\n"
        'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
        + "".join(f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]\n" for n in range(1, 9))
    )
    page = yaml_post(editor, "acme", bomb, "save")
    assert page.status_int == 422 and "Not saved" in page.text and "200,000 values" in page.text
    page = yaml_post(editor, "acme", "ruleset: acme\ndescription: " + "x" * 1_000_000, "save")
    assert page.status_int == 413 and "the limit is 1,000,000 bytes" in page.text
    assert "x" * 10_000 not in page.text  # the oversized text is not echoed back
    db.expire_all()
    assert ruleset(db).draft_text is None


def test_a_chain_longer_than_the_picture_says_how_many_steps_it_left_out(viewer):
    from approvalrules.views.admin.diagram import MAX_STEPS_DRAWN, chain_svg

    steps = [{"name": f"s{n}", "approvers": {"any_of": [{"role": "r"}]}} for n in range(250)]
    svg = chain_svg({"approval": {"steps": steps}})
    assert f"{MAX_STEPS_DRAWN}. s{MAX_STEPS_DRAWN - 1}<" in svg
    assert "... and 150 more steps" in svg and "s150<" not in svg
