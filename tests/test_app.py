"""The web app skeleton: health, the rule-folder page and its JSON twin."""

from importlib.metadata import version

from approvalrules.rulesfolder import list_rule_files

GOOD = """\
ruleset: initech-purchasing
description: Orders over <b>250</b> need a manager
currency: USD
"""
BROKEN = """\
ruleset: globex
description: [never closed
"""


def write_samples(folder):
    (folder / "initech.yaml").write_text(GOOD, encoding="utf-8")
    (folder / "globex.yaml").write_text(BROKEN, encoding="utf-8")
    (folder / "notes.txt").write_text("not a rule file", encoding="utf-8")


def test_health_reports_ok_and_version(testapp):
    res = testapp.get("/health")
    assert res.json == {"status": "ok", "version": version("approvalrules")}


def test_home_lists_rule_files_with_errors_per_file(testapp, rules_dir):
    write_samples(rules_dir)
    res = testapp.get("/")
    assert res.content_type == "text/html"
    assert "initech.yaml" in res.text
    assert "initech-purchasing" in res.text
    assert "Orders over &lt;b&gt;250&lt;/b&gt; need a manager" in res.text
    row = res.html.find("td", string="globex.yaml").find_parent("tr")
    assert "invalid" in row["class"]
    assert "line 3" in row.find("td", class_="error").text
    assert "notes.txt" not in res.text
    assert str(rules_dir) not in row.text


def test_home_links_local_stylesheet(testapp):
    res = testapp.get("/")
    href = res.html.find("link", rel="stylesheet")["href"]
    assert href.startswith("http://localhost/static/")
    css = testapp.get(href)
    assert css.content_type == "text/css"


def test_home_without_rules_folder(app_settings):
    import webtest

    from approvalrules.app import main

    app_settings["approvalrules.rules_dir"] = "/nonexistent/rules"
    res = webtest.TestApp(main({}, **app_settings)).get("/")
    assert "No rule files" in res.text


def test_api_rulesets_needs_an_api_key(testapp):
    # rule sets over the API are the tenant's stored ones (tests/api); without a key: 401
    assert testapp.get("/api/v1/rulesets", status=401).json["error"]["code"] == "missing_api_key"


def test_list_rule_files_odd_files(tmp_path):
    (tmp_path / "a-list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "b-empty.yaml").write_text("")
    (tmp_path / "c-latin1.yaml").write_bytes("description: caf\xe9\n".encode("latin-1"))
    (tmp_path / "d-date.yaml").write_text("ruleset: 2024-01-31\ndescription: 42\n")
    (tmp_path / "e-nested.yaml").write_text("ruleset: {a: 1}\n")
    (tmp_path / "f-dir.yaml").mkdir()
    entries = {e["file"]: e for e in list_rule_files(tmp_path)}
    assert sorted(entries) == [
        "a-list.yaml",
        "b-empty.yaml",
        "c-latin1.yaml",
        "d-date.yaml",
        "e-nested.yaml",
    ]
    assert entries["a-list.yaml"]["error"] == "top level is list, expected a mapping"
    assert entries["b-empty.yaml"]["error"] == "top level is NoneType, expected a mapping"
    assert "UTF-8" in entries["c-latin1.yaml"]["error"]
    assert entries["d-date.yaml"] == {
        "file": "d-date.yaml",
        "ruleset": "2024-01-31",
        "description": "42",
        "error": None,
    }
    assert entries["e-nested.yaml"]["error"] == "expected a text value, got dict"


def test_list_rule_files_missing_or_unset_folder(tmp_path):
    assert list_rule_files(tmp_path / "missing") == []
    assert list_rule_files("") == []
    assert list_rule_files(None) == []


def test_tune_gc_freezes_what_start_up_built_and_collects_less_often():
    import gc

    from approvalrules.app import tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == (10_000, 20, 50)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_every_request_is_made_by_one_class_holding_the_request_properties(app, testapp):
    """Pyramid made a class per request to add ``dbsession``, ``api_key``...; the app gives
    them to its request class once (``fold_request_extensions``)."""
    from pyramid.interfaces import INewRequest
    from pyramid.scripting import prepare

    seen = []
    app.registry.registerHandler(lambda event: seen.append(event.request), (INewRequest,))
    testapp.get("/health")
    testapp.get("/api/v1/rulesets", status=401)
    assert len(seen) == 2 and type(seen[0]) is type(seen[1])
    held = vars(type(seen[0]))
    for name in ("dbsession", "tm", "api_key", "tenant", "admin_tenant", "csp_nonce"):
        assert name in held, name

    scripted = prepare(registry=app.registry)
    try:
        assert type(scripted["request"]) is type(seen[0])
        assert scripted["request"].dbsession is scripted["request"].dbsession  # reified
    finally:
        scripted["closer"]()
