"""Directory reads: each kind listed with filters and a cursor across pages, one record by
key with the ETag its PUT honours, 304 on a current If-None-Match, and the buyer summary."""

from __future__ import annotations

import uuid

import pytest


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def company(api):
    """A fresh company of rule set acme: group g1, accounts a0..a4 (members of g1), boss b
    (approver, assigned to a0 with a limit, delegating to a1)."""
    cid = _id("rd")
    api.put_json(f"/api/v1/directory/companies/{cid}", {"name": "Reads Co", "ruleset": "acme"})
    api.put_json(f"/api/v1/directory/companies/{cid}/groups/g1", {"name": "Group one"})
    people = [f"{cid}-a{n}" for n in range(5)]
    boss = f"{cid}-b"
    for person in [*people, boss]:
        api.put_json(
            f"/api/v1/directory/accounts/{person}", {"name": person, "email": f"{person}@x.test"}
        )
    for person in people:
        api.put_json(
            f"/api/v1/directory/accounts/{person}/memberships/{cid}",
            {"role": "requisitioner", "group": "g1"},
        )
    api.put_json(
        f"/api/v1/directory/accounts/{boss}/memberships/{cid}", {"role": "approver", "group": "g1"}
    )
    api.put_json(
        "/api/v1/directory/assignments",
        {"approver": boss, "account": people[0], "company": cid, "limit": "1000"},
    )
    api.put_json(
        "/api/v1/directory/delegations",
        {
            "delegator": boss,
            "delegate": people[1],
            "valid_from": "2026-12-01",
            "valid_until": "2026-12-24",
            "company": cid,
        },
    )
    return cid, people, boss


def _all_pages(api, path: str, limit: int) -> tuple[list, int]:
    items, pages, cursor = [], 0, None
    while True:
        query = f"{path}{'&' if '?' in path else '?'}limit={limit}" + (
            f"&cursor={cursor}" if cursor else ""
        )
        page = api.get(query).json
        items += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return items, pages


def test_accounts_paginate_across_pages_by_cursor(api, company):
    cid, people, boss = company
    items, pages = _all_pages(api, f"/api/v1/directory/accounts?company={cid}", limit=2)
    assert [a["id"] for a in items] == [*people, boss]  # creation order, none twice, none lost
    assert pages == 3
    assert items[0]["email"] == f"{people[0]}@x.test" and items[0]["etag"].startswith('"')


@pytest.mark.parametrize(
    "kind, query, expected",
    [
        ("companies", "ruleset=acme", lambda cid, people, boss: [cid]),
        ("groups", "company={cid}", lambda cid, people, boss: [f"{cid}/g1"]),
        (
            "memberships",
            "company={cid}&role=approver",
            lambda cid, people, boss: [f"{boss}@{cid}"],
        ),
        ("assignments", "company={cid}", lambda cid, people, boss: [f"{boss}>{people[0]}"]),
        ("delegations", "company={cid}", lambda cid, people, boss: [f"{boss}>{people[1]}"]),
    ],
)
def test_each_listing_filters(api, company, kind, query, expected):
    cid, people, boss = company
    items, _ = _all_pages(api, f"/api/v1/directory/{kind}?{query.format(cid=cid)}", limit=200)
    keys = {
        "companies": lambda r: r["id"],
        "groups": lambda r: f"{r['company']}/{r['id']}",
        "memberships": lambda r: f"{r['account']}@{r['company']}",
        "assignments": lambda r: f"{r['approver']}>{r['account']}",
        "delegations": lambda r: f"{r['delegator']}>{r['delegate']}",
    }[kind]
    found = [keys(r) for r in items]
    if kind == "companies":
        assert cid in found and all(r["ruleset"] == "acme" for r in items)
    else:
        assert found == expected(cid, people, boss)


def test_a_record_read_carries_the_etag_its_put_honours(api, company):
    cid, people, _ = company
    path = f"/api/v1/directory/accounts/{people[2]}/memberships/{cid}"
    read = api.get(path)
    assert read.json["group"] == "g1" and read.json["role"] == "requisitioner"
    listed = api.get(f"/api/v1/directory/memberships?account={people[2]}").json["items"]
    assert listed[0]["etag"] == read.headers["ETag"]
    assert api.get(path, headers={"If-None-Match": read.headers["ETag"]}, status=304).body == b""
    api.put_json(
        path, {"role": "requisitioner", "group": None}, headers={"If-Match": read.headers["ETag"]}
    )
    again = api.get(path, headers={"If-None-Match": read.headers["ETag"]})
    assert again.status_int == 200 and again.json["group"] is None
    api.put_json(
        path, {"role": "requisitioner"}, headers={"If-Match": read.headers["ETag"]}, status=412
    )


def test_unknown_records_cursors_and_filters_are_refused(api, company):
    api.get("/api/v1/directory/companies/no-such-company", status=404)
    assert (
        api.get("/api/v1/directory/accounts?cursor=garbage", status=400).json["error"]["code"]
        == "invalid_cursor"
    )
    assert (
        api.get("/api/v1/directory/groups?colour=red", status=400).json["error"]["code"]
        == "unknown_filter"
    )


def test_another_tenant_sees_none_of_it(other_api, company):
    cid, people, _ = company
    other_api.get(f"/api/v1/directory/companies/{cid}", status=404)
    assert other_api.get(f"/api/v1/directory/accounts?company={cid}").json["items"] == []
    other_api.get(f"/api/v1/directory/accounts/{people[0]}/summary", status=404)


def test_the_buyer_summary_shows_role_group_approvers_limits_and_budgets(api, order_id):
    summary = api.get("/api/v1/directory/accounts/bob/summary").json
    assert summary["account"]["id"] == "bob"
    (acme,) = summary["companies"]
    assert acme["company"] == {"id": "acme", "name": "Acme"}
    assert acme["group"] == "marketing"
    assert acme["role"]["name"] == "requisitioner"
    assert acme["ruleset"]["name"] == "acme"
    marketing = next(s for s in acme["approval_steps"] if s["name"] == "marketing")
    assert {a["account"] for a in marketing["approvers"]} == {"acme-master", "ann"}
    assert "max_order_total" in acme["limits"]


def test_the_summary_shows_budget_spent_and_left(api, order_id):
    """Globex has a monthly company budget of 50,000 (rules/globex.yaml): Ben's approved order
    draws on it, and the summary shows it spent."""
    from decimal import Decimal

    def monthly():
        (globex,) = api.get("/api/v1/directory/accounts/ben/summary").json["companies"]
        (budget,) = globex["budgets"]
        return budget

    before = monthly()
    assert before["amount"] == "50000" and before["period"] == "month"
    submitted = api.post_json(
        "/api/v1/orders", {"id": order_id("budget"), "buyer": "ben", "total": "120"}
    ).json
    assert submitted["status"] == "approved"
    after = monthly()
    assert Decimal(after["spent"]) - Decimal(before["spent"]) == 120
    assert Decimal(after["left"]) == Decimal("50000") - Decimal(after["spent"])
