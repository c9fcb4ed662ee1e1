"""Versions: list with who published what when, view any, diff any two (text and behaviour)."""

from __future__ import annotations

from approvalrules.store import versions

from .conftest import csrf


def publish_change(app, db, old="{gt: 500}", new="{gt: 600}"):
    text = versions.active_version(db, "demo", "acme").text.replace(old, new)
    app.post(
        "/admin/rulesets/acme/yaml",
        {"text": text, "action": "publish", "csrf_token": csrf(app)},
        status=303,
    )
    return text


def test_list_says_who_published_what_when(editor, db):
    publish_change(editor, db)
    page = editor.get("/admin/rulesets/acme/versions")
    assert "admin:eddie" in page.text and "importer" in page.text
    assert (
        "ruleset.published &rarr; version 2" in page.text
        or "ruleset.published → version 2" in page.text
    )
    assert "Roll back to 1" in page.text


def test_view_any_version(viewer):
    page = viewer.get("/admin/rulesets/acme/versions/1")
    assert (
        "Rule set acme, version 1" in page.text and "<svg" in page.text and 'id="L1"' in page.text
    )
    viewer.get("/admin/rulesets/acme/versions/9", status=404)
    viewer.get("/admin/rulesets/acme/versions/x", status=404)


def test_diff_two_versions_side_by_side_with_behaviour(editor, db):
    publish_change(editor, db)
    page = editor.get("/admin/rulesets/acme/diff?old=1&new=2")
    assert 'class="diff"' in page.text and "600" in page.text
    assert "What changes in decisions" in page.text
    assert page.text.count("<svg") == 2


def test_diff_defaults_to_the_draft_against_the_active_version(editor, db):
    text = versions.active_version(db, "demo", "acme").text.replace("{gt: 500}", "{gt: 650}")
    editor.post(
        "/admin/rulesets/acme/yaml",
        {"text": text, "action": "save", "csrf_token": csrf(editor)},
        status=303,
    )
    page = editor.get("/admin/rulesets/acme/diff")
    assert "version 1 &rarr; draft" in page.text or "version 1 → draft" in page.text
    assert "650" in page.text


def test_diff_of_identical_texts(viewer):
    assert "The texts are identical" in viewer.get("/admin/rulesets/acme/diff?old=1&new=1").text


def test_diff_error_paths(viewer):
    viewer.get("/admin/rulesets/acme/diff?old=1&new=draft", status=404)  # no draft
    viewer.get("/admin/rulesets/acme/diff?old=1&new=7", status=404)
    viewer.get("/admin/rulesets/acme/diff?old=abc", status=404)


def test_diff_of_an_invalid_draft_still_shows_the_text(editor, db):
    editor.post(
        "/admin/rulesets/acme/yaml",
        {"text": "ruleset: acme\nroles: 3\n", "action": "save", "csrf_token": csrf(editor)},
        status=303,
    )
    page = editor.get("/admin/rulesets/acme/diff?old=1&new=draft")
    assert "cannot compare behaviour" in page.text and 'class="diff"' in page.text
