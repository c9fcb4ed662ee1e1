"""Bulk sync and export over HTTP: POST /api/v1/directory/sync and GET .../export."""

from __future__ import annotations

import uuid


def _company_csv(cid: str, buyers: int, extra: str = "") -> str:
    rows = ["type,id,company,account,name,role,group,email,ruleset"]
    rows.append(f"company,{cid},,,Synced Co,,,,acme")
    rows.append(f"group,team,{cid},,Team,,,,")
    for n in range(buyers):
        rows.append(f"account,{cid}-{n},,,Buyer {n},,,{cid}-{n}@sync.test,")
        rows.append(f"membership,,{cid},{cid}-{n},,requisitioner,team,,")
    return "\n".join(rows) + "\n" + extra


def _sync(api, text: str, query: str = "", status=200):
    return api.post(
        f"/api/v1/directory/sync{query}", text.encode(), content_type="text/csv", status=status
    ).json


def test_a_dry_run_over_http_reports_and_changes_nothing(api):
    cid = f"sync-{uuid.uuid4().hex[:8]}"
    report = _sync(api, _company_csv(cid, 3), "?dry_run=true")
    assert report["dry_run"] and not report["applied"]
    assert report["counts"]["created"] == 8
    assert [r["line"] for r in report["rows"]] == list(range(2, 10))
    api.get(f"/api/v1/directory/companies/{cid}", status=404)


def test_a_sync_applies_and_an_export_imports_back_unchanged(api):
    cid = f"sync-{uuid.uuid4().hex[:8]}"
    report = _sync(api, _company_csv(cid, 3))
    assert report["applied"] and report["counts"]["error"] == 0
    members = api.get(f"/api/v1/directory/memberships?company={cid}").json["items"]
    assert [m["account"] for m in members] == [f"{cid}-{n}" for n in range(3)]
    for fmt in ("csv", "json"):
        exported = api.get(f"/api/v1/directory/export?format={fmt}&company={cid}")
        assert exported.content_type == ("text/csv" if fmt == "csv" else "application/json")
        again = api.post(
            f"/api/v1/directory/sync?format={fmt}&dry_run=true&company={cid}",
            exported.body,
            content_type=exported.content_type,
        ).json
        assert again["counts"]["unchanged"] == len(again["rows"]) == 8, again["counts"]


def test_a_bad_row_refuses_the_batch_naming_the_line(api):
    cid = f"sync-{uuid.uuid4().hex[:8]}"
    text = _company_csv(cid, 2, extra=f"membership,,{cid},{cid}-0,,pope,team,,\n")
    error = _sync(api, text, status=422)["error"]
    assert error["code"] == "sync_refused"
    assert "line 8" in error["message"] and "pope" in error["message"]
    (bad,) = [r for r in error["details"]["rows"] if r["action"] == "error"]
    assert bad["line"] == 8
    api.get(f"/api/v1/directory/companies/{cid}", status=404)
