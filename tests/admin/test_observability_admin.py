"""The admin's requests carry a request id, and their log lines the admin's tenant."""

from __future__ import annotations

from approvalrules import observability


def test_an_admin_page_names_its_tenant_in_the_log_context(owner, monkeypatch):
    noted = []
    note_tenant = observability.note_tenant

    def noting(slug):
        noted.append((slug, observability.current_request_id()))
        note_tenant(slug)

    monkeypatch.setattr(observability, "note_tenant", noting)
    page = owner.get("/admin/rulesets", headers={"X-Request-Id": "admin-page-1"})
    assert page.headers["X-Request-Id"] == "admin-page-1"
    assert ("demo", "admin-page-1") in noted
