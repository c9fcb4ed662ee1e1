"""Directory writes name a defined role, a published rule set and a real e-mail address
(issue 15, defect 6): a 422 naming the field, what is wrong and how to fix it.

Before: all three were stored; an undefined role then blocked every order of that account.

The tests write to a tenant of their own, with the ``acme`` rule set published: the
companies and members they add never reach ``demo``, whose acme-governed members other
tests count (the behavioural diff of tests/api/test_acceptance_a.py).
"""

from __future__ import annotations

import pytest
import webtest
from sqlalchemy import select

from approvalrules.store.directory_export import export_directory
from approvalrules.store.models import Company
from approvalrules.store.services import create_api_key, ensure_tenant
from approvalrules.store.versions import active_version, publish

from .conftest import ROOT

TENANT = "directory-writes"


@pytest.fixture
def api(world):
    """The API as tenant ``directory-writes``, where ``acme`` (and the rule set it extends) is
    published as in ``demo``."""
    with world.session() as session, session.begin():
        tenant = ensure_tenant(session, TENANT, "Directory writes")
        for name in ("tenant-default", "acme"):
            if active_version(session, tenant, name) is None:
                text = (ROOT / "rules" / f"{name}.yaml").read_text("utf-8")
                publish(session, tenant, name, author="tests", text=text)
        key = create_api_key(session, tenant, "tests", scope="merchant")[1]
    return webtest.TestApp(world.app, extra_environ={"HTTP_AUTHORIZATION": f"Bearer {key}"})


def _company(api, company_id, status=200, **body):
    return api.put_json(
        f"/api/v1/directory/companies/{company_id}", {"name": company_id, **body}, status=status
    )


def test_an_undefined_role_is_a_422_listing_the_defined_roles(api, order_id):
    company, account = order_id("co"), order_id("acc")
    _company(api, company, ruleset="acme")
    api.put_json(f"/api/v1/directory/accounts/{account}", {"name": "Zed"})
    response = api.put_json(
        f"/api/v1/directory/accounts/{account}/memberships/{company}",
        {"role": "emperor"},
        status=422,
    )
    error = response.json["error"]
    assert error["code"] == "undefined_role"
    assert error["details"]["path"] == "role"
    assert "'emperor'" in error["message"] and "'acme'" in error["message"]
    assert {"approver", "requisitioner"} <= set(error["details"]["roles"])
    assert "approver" in error["message"], "the message lists the roles to choose from"
    # a defined role is accepted, and the account can order
    api.put_json(
        f"/api/v1/directory/accounts/{account}/memberships/{company}", {"role": "requisitioner"}
    )


def test_a_role_is_checked_against_the_parent_companys_rule_set(api, order_id):
    parent, child, account = order_id("parent"), order_id("child"), order_id("acc")
    _company(api, parent, ruleset="acme")
    _company(api, child, parent=parent)
    api.put_json(f"/api/v1/directory/accounts/{account}", {"name": "Zed"})
    response = api.put_json(
        f"/api/v1/directory/accounts/{account}/memberships/{child}", {"role": "nope"}, status=422
    )
    assert response.json["error"]["details"]["ruleset"] == "acme"


def test_an_unknown_rule_set_is_a_422_listing_the_published_ones(api, order_id):
    response = _company(api, order_id("co"), ruleset="no-such-rules", status=422)
    error = response.json["error"]
    assert error["code"] == "unknown_ruleset"
    assert error["details"]["path"] == "ruleset"
    assert "acme" in error["details"]["published"] and "acme" in error["message"]


def test_an_invalid_email_is_a_422_saying_how_to_write_one(api, order_id):
    for email in ("not-an-address", "two@@example.com", "a b@example.com", "x@localhost"):
        response = api.put_json(
            f"/api/v1/directory/accounts/{order_id('acc')}",
            {"name": "Zed", "email": email},
            status=422,
        )
        error = response.json["error"]
        assert error["code"] == "invalid_email", email
        assert error["details"]["path"] == "email"
        assert "name@example.com" in error["message"]
    # a valid address, and none at all, are fine
    api.put_json(f"/api/v1/directory/accounts/{order_id('acc')}", {"email": "zed@example.com"})
    api.put_json(f"/api/v1/directory/accounts/{order_id('acc')}", {"email": None})


def test_nothing_is_stored_when_a_write_is_refused(api, order_id, world):
    company = order_id("co")
    _company(api, company, ruleset="no-such-rules", status=422)
    with world.session() as session:
        stored = session.scalar(select(Company).where(Company.external_id == company))
    assert stored is None


def test_company_contacts_and_locations_are_written_through_the_api(api, order_id, world):
    """Issue 17: contacts and locations are stored, not silently dropped."""
    company, account = order_id("co"), order_id("acc")
    api.put_json(f"/api/v1/directory/accounts/{account}", {"name": "Zed"})
    _company(
        api,
        company,
        locations=[{"id": "hq", "name": "HQ", "address": "1 Main St"}],
        contacts=[{"account": account, "kind": "billing"}],
    )
    with world.session() as session:
        stored = export_directory(session, TENANT)["companies"][company]
    assert stored["locations"] == [{"id": "hq", "name": "HQ", "address": "1 Main St"}]
    assert stored["contacts"] == [{"account": account, "kind": "billing"}]
    error = _company(
        api, company, contacts=[{"account": account, "kind": "boss"}], status=422
    ).json["error"]
    assert error["details"]["path"] == "contacts.0.kind"
