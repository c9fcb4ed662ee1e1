"""Bulk directory sync and export (store/directory_sync.py), below HTTP: dry runs change
nothing, a bad row refuses the batch naming its line, the version moves once, per-company
atomicity keeps the good companies, and an export imports back to the same directory."""

from __future__ import annotations

import json
import time

import pytest

from approvalrules.store.directory_records import DirectoryListings
from approvalrules.store.directory_sync import (
    SyncRefused,
    export_directory,
    sync_directory,
)
from approvalrules.store.models import Tenant
from approvalrules.store.services import ensure_tenant

HEADER = "type,id,company,account,name,role,group,email,ruleset\n"


def _csv(rows: list[str]) -> str:
    return HEADER + "".join(row + "\n" for row in rows)


def _big_csv(buyers: int, company: str = "erp-co") -> str:
    rows = [f"company,{company},,,ERP Co,,,", f"group,g1,{company},,Group one,,,"]
    for n in range(buyers // 2):
        rows.append(f"account,erp-{n},,,Buyer {n},,,erp-{n}@erp.test")
        rows.append(f"membership,,{company},erp-{n},,buyer,g1,")
    return _csv(rows)


def _version(session, tenant) -> int:
    session.expire(tenant)
    return session.get(Tenant, tenant.id).directory_version


def _snapshot(session, tenant) -> dict:
    return json.loads(export_directory(session, tenant, "json"))


def test_a_dry_run_reports_the_changes_and_keeps_nothing(session, tenant, shop):
    before, version = _snapshot(session, tenant), _version(session, tenant)
    text = _csv(
        [
            "company,new-co,,,New Co,,,",
            "account,bea,,,Bea Renamed,,,bea@shop.test",
            "account,nia,,,Nia,,,nia@new.test",
            "membership,,new-co,nia,,buyer,,",
        ]
    )
    # rule set of new-co: none yet, so it is governed by nothing; the directory accepts it
    report = sync_directory(session, tenant, text, "csv", dry_run=True)
    actions = {(r["line"], r["action"]) for r in report.rows}
    assert actions == {(2, "created"), (3, "updated"), (4, "created"), (5, "created")}
    assert next(r for r in report.rows if r["line"] == 3)["changes"] == ["name"]
    assert not report.applied
    assert _snapshot(session, tenant) == before
    assert _version(session, tenant) == version


def test_a_bad_row_refuses_the_batch_and_names_its_line(session, tenant, shop):
    before, version = _snapshot(session, tenant), _version(session, tenant)
    text = _csv(
        [
            "account,ok-1,,,Fine,,,ok-1@shop.test",
            "account,bad-mail,,,Bad,,,not-an-address",
            "membership,,shop-co,ok-1,,emperor,,",
        ]
    )
    with pytest.raises(SyncRefused) as refused:
        sync_directory(session, tenant, text, "csv")
    errors = [r for r in refused.value.details["rows"] if r["action"] == "error"]
    assert [e["line"] for e in errors] == [3, 4]
    assert errors[0]["error"]["message"].startswith("line 3:")
    assert "emperor" in errors[1]["error"]["message"]  # a role the rule set does not define
    assert refused.value.details["counts"]["rolled_back"] == 1  # ok-1: not kept
    assert _snapshot(session, tenant) == before
    assert _version(session, tenant) == version


def test_per_company_atomicity_keeps_the_good_companies(session, tenant, shop):
    text = _csv(
        [
            "company,good-co,,,Good,,,,shop",
            "company,bad-co,,,Bad,,,,shop",
            "group,g,good-co,,G,,,",
            "membership,,bad-co,bea,,emperor,,",
        ]
    )
    report = sync_directory(session, tenant, text, "csv", atomic="company")
    assert report.applied
    by_line = {r["line"]: r["action"] for r in report.rows}
    assert by_line == {2: "created", 3: "rolled_back", 4: "created", 5: "error"}
    companies = {c["id"] for c in _snapshot(session, tenant)["companies"]}
    assert "good-co" in companies and "bad-co" not in companies


def test_a_pending_order_rule_holds_in_a_sync(session, tenant, shop):
    """Deactivating an approver who must still decide a pending order is refused, as a single
    write is (the order: bea's 800 waits for max, tests/workflow/conftest.py)."""
    from approvalrules.workflow import actions

    actions.submit(session, tenant, {"id": "sync-800", "buyer": "bea", "total": 800})
    text = '{"accounts": [\n {"id": "max", "name": "Max", "active": false}\n]}'
    with pytest.raises(SyncRefused) as refused:
        sync_directory(session, tenant, text, "json")
    (error,) = [r for r in refused.value.details["rows"] if r["action"] == "error"]
    assert error["line"] == 2 and error["error"]["code"] == "approver_has_pending"


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_an_export_imports_back_to_the_same_directory(session, tenant, shop, fmt):
    exported = export_directory(session, tenant, fmt)
    again = sync_directory(session, tenant, exported, fmt, dry_run=True)
    assert again.counts()["created"] == again.counts()["updated"] == 0
    assert again.counts()["error"] == 0 and again.counts()["unchanged"] == len(again.rows)
    # into an empty tenant: the same directory (rule sets published there first)
    from approvalrules.store import versions

    twin = ensure_tenant(session, f"sync-twin-{fmt}", "Twin")
    for name in ("shop", "escalating", "grouped"):
        text = versions.active_version(session, tenant.id, name).text
        versions.publish(session, twin.id, name, "tests", text=text)
    report = sync_directory(session, twin, exported, fmt)
    assert report.applied and report.counts()["error"] == 0
    assert export_directory(session, twin, fmt) == exported


def _import_buyers(session, tenant, buyers: int) -> float:
    text = _big_csv(buyers)
    version = _version(session, tenant)
    started = time.perf_counter()
    report = sync_directory(session, tenant, text, "csv")
    elapsed = time.perf_counter() - started
    assert report.applied and report.counts()["created"] == buyers + 2
    assert _version(session, tenant) == version + 1  # one batch, one directory version
    listed = DirectoryListings(session, tenant).page("memberships", {"company": "erp-co"}, None, 5)
    assert listed.items and listed.next_cursor
    return elapsed


def test_a_200_row_csv_imports_in_one_transaction_with_one_version(session, tenant, shop):
    _import_buyers(session, tenant, 200)


@pytest.mark.slow
def test_a_5000_row_csv_imports_in_one_transaction_with_one_version(session, tenant, shop):
    elapsed = _import_buyers(session, tenant, 5000)
    print(f"5,000 rows imported in {elapsed:.1f} s")
