"""Admin: the bulk sync page uploads a file, shows the report row by row, and downloads the
directory in the same formats."""

from __future__ import annotations

from webtest import Upload

from .conftest import csrf

CSV = (
    "type,id,company,account,name,role,group,email,ruleset\n"
    "company,upload-co,,,Upload Co,,,,acme\n"
    "account,upload-ann,,,Upload Ann,,,ann@upload.test,\n"
    "membership,,upload-co,upload-ann,,approver,,,\n"
)


def _upload(app, text: str, *, dry_run: bool, status=200):
    fields = {"csrf_token": csrf(app), "file": Upload("erp.csv", text.encode(), "text/csv")}
    if dry_run:
        fields["dry_run"] = "on"
    return app.post("/admin/directory/sync", fields, status=status)


def test_a_dry_run_then_an_import_from_the_upload_page(editor):
    page = editor.get("/admin/directory/sync")
    assert "Bulk sync" in page.text and "Dry run" in page.text
    dry = _upload(editor, CSV, dry_run=True)
    assert "dry run, nothing kept" in dry.text and "3 created" in dry.text
    editor.get("/admin/directory/companies/upload-co", status=404)
    done = _upload(editor, CSV, dry_run=False)
    assert "imported (directory version" in done.text
    assert "Upload Co" in editor.get("/admin/directory/companies/upload-co").text
    exported = editor.get("/admin/directory/sync/download?format=csv")
    assert exported.content_type == "text/csv"
    assert "membership,,upload-co,upload-ann," in exported.text


def test_a_bad_row_is_named_by_its_line_and_nothing_is_imported(editor):
    bad = CSV + "membership,,upload-co,upload-ann,,cardinal,,,\n"
    page = _upload(editor, bad, dry_run=False)
    assert "nothing was imported" in page.text and "line 5:" in page.text
    assert "cardinal" in page.text
    editor.get("/admin/directory/companies/upload-co", status=404)


def test_a_viewer_may_download_but_not_import(viewer):
    viewer.get("/admin/directory/sync")
    viewer.get("/admin/directory/sync/download?format=json")
    _upload(viewer, CSV, dry_run=True, status=403)
