"""Optimistic concurrency: rule sets and directory records answer an ``ETag``; a write with
``If-Match`` naming a tag the resource no longer has is refused with 412 and changes nothing;
a write without ``If-Match`` goes ahead as before."""

from __future__ import annotations

import uuid

import pytest

RULES = """\
ruleset: {name}
description: {description}
roles:
  buyer: {{label: Buyer, permissions: [place_orders]}}
"""


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _put_yaml(api, path, text, **kwargs):
    return api.put(path, text.encode(), content_type="application/yaml", **kwargs)


def test_a_stale_if_match_on_a_draft_is_refused_and_keeps_the_draft(api):
    name = _name("etag")
    path = f"/api/v1/rulesets/{name}"
    first = _put_yaml(api, f"{path}/draft", RULES.format(name=name, description="one"))
    tag = api.get(path).headers["ETag"]
    assert first.headers["ETag"] == tag

    # Alice saves on top of what she read: accepted, new tag
    alice = _put_yaml(
        api,
        f"{path}/draft",
        RULES.format(name=name, description="alice"),
        headers={"If-Match": tag},
    )
    assert alice.headers["ETag"] != tag
    # Bob read the same tag before Alice saved: refused, naming the current tag
    refused = _put_yaml(
        api,
        f"{path}/draft",
        RULES.format(name=name, description="bob"),
        headers={"If-Match": tag},
        status=412,
    ).json["error"]
    assert refused["code"] == "precondition_failed"
    assert refused["details"]["etag"] == alice.headers["ETag"]
    assert "description: alice" in api.get(path).json["draft"]

    # publishing the draft Bob never saw is refused the same way; with the fresh tag it goes
    api.post(f"{path}/publish", headers={"If-Match": tag}, status=412)
    assert api.get(path).json["active"] is None
    published = api.post(f"{path}/publish", headers={"If-Match": alice.headers["ETag"]})
    assert published.status_int == 201 and published.headers["ETag"] != alice.headers["ETag"]
    # and the draft's old tag is stale once published
    _put_yaml(
        api,
        f"{path}/draft",
        RULES.format(name=name, description="late"),
        headers={"If-Match": alice.headers["ETag"]},
        status=412,
    )
    # without If-Match, as before: last write wins
    _put_yaml(api, f"{path}/draft", RULES.format(name=name, description="free"))


def test_if_match_on_a_rule_set_that_does_not_exist_is_refused(api):
    name = _name("nothing")
    text = RULES.format(name=name, description="x")
    _put_yaml(api, f"/api/v1/rulesets/{name}/draft", text, headers={"If-Match": "*"}, status=412)
    assert api.get(f"/api/v1/rulesets/{name}", status=404)


def _company_name(world, company: str) -> str:
    from approvalrules.store.models import Company

    with world.session() as session:
        return session.query(Company.name).filter(Company.external_id == company).scalar()


def test_directory_writes_answer_etags_and_refuse_a_stale_if_match(api, world):
    company = _name("etagco")
    path = f"/api/v1/directory/companies/{company}"
    tag = api.put_json(path, {"name": "One", "ruleset": "acme"}).headers["ETag"]
    same = api.put_json(path, {"name": "One"}).headers["ETag"]
    assert same == tag  # nothing changed, same tag
    two = api.put_json(path, {"name": "Two"}, headers={"If-Match": tag}).headers["ETag"]
    assert two != tag
    error = api.put_json(path, {"name": "Three"}, headers={"If-Match": tag}, status=412).json
    assert error["error"]["code"] == "precondition_failed"
    assert error["error"]["details"] == {"etag": two}
    assert _company_name(world, company) == "Two"
    # several tags, '*', a weak tag (never matches: If-Match compares strongly)
    api.put_json(path, {"name": "Four"}, headers={"If-Match": f'"nope", {two}'})
    api.put_json(path, {"name": "Five"}, headers={"If-Match": "*"})
    current = api.put_json(path, {"name": "Five"}).headers["ETag"]
    api.put_json(path, {"name": "Six"}, headers={"If-Match": f"W/{current}"}, status=412)
    # If-Match on a record that does not exist yet: 412, nothing created
    missing = _name("ghost")
    api.put_json(
        f"/api/v1/directory/companies/{missing}",
        {"name": "G"},
        headers={"If-Match": "*"},
        status=412,
    )
    assert _company_name(world, missing) is None


@pytest.mark.parametrize("kind", ["account", "group", "membership", "assignment", "delegation"])
def test_each_directory_write_refuses_a_stale_if_match(api, kind):
    company, person, boss = _name("c"), _name("p"), _name("b")
    api.put_json(f"/api/v1/directory/companies/{company}", {"name": "C", "ruleset": "acme"})
    api.put_json(f"/api/v1/directory/companies/{company}/groups/g1", {"name": "G"})
    for account in (person, boss):
        api.put_json(f"/api/v1/directory/accounts/{account}", {"name": account})
    member = {"role": "requisitioner"}
    writes = {
        "account": (f"/api/v1/directory/accounts/{person}", {"name": "A"}, {"name": "B"}),
        "group": (f"/api/v1/directory/companies/{company}/groups/g1", {"name": "A"}, {"name": "B"}),
        "membership": (
            f"/api/v1/directory/accounts/{person}/memberships/{company}",
            member,
            {**member, "group": "g1"},
        ),
        "assignment": (
            "/api/v1/directory/assignments",
            {"approver": boss, "account": person, "company": company, "limit": "100"},
            {"approver": boss, "account": person, "company": company, "limit": "200"},
        ),
        "delegation": (
            "/api/v1/directory/delegations",
            {
                "delegator": boss,
                "delegate": person,
                "valid_from": "2026-12-01",
                "valid_until": "2026-12-10",
            },
            {
                "delegator": boss,
                "delegate": person,
                "valid_from": "2026-12-01",
                "valid_until": "2026-12-20",
            },
        ),
    }
    path, first, second = writes[kind]
    tag = api.put_json(path, first).headers["ETag"]
    newer = api.put_json(path, second, headers={"If-Match": tag}).headers["ETag"]
    assert newer != tag
    refused = api.put_json(path, first, headers={"If-Match": tag}, status=412).json["error"]
    assert refused["details"]["etag"] == newer
    # the refused write changed nothing: the current tag still matches
    assert api.put_json(path, second, headers={"If-Match": newer}).headers["ETag"] == newer
