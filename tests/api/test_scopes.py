"""API key scopes: storefront, merchant, read_only (docs/security.md "API key scopes").

A key reaches only the endpoints its scope grants; another scope's endpoint answers 403
``insufficient_scope`` with text naming the key's scope and the scopes that would do.
"""

from __future__ import annotations

import pytest
import webtest
from pyramid.interfaces import IRoutesMapper

from approvalrules.store.services import GRANT_SCOPES

from .test_inputs import _FakeRequest


def client(world, which: str) -> webtest.TestApp:
    return webtest.TestApp(
        world.app, extra_environ={"HTTP_AUTHORIZATION": f"Bearer {world.keys[which]}"}
    )


def refused(response, scope: str, allowed: list[str]) -> None:
    assert response.status_int == 403
    error = response.json["error"]
    assert error["code"] == "insufficient_scope"
    assert error["details"] == {"scope": scope, "allowed_scopes": allowed}
    assert f"has the {scope} scope" in error["message"]
    assert "needs a key of scope" in error["message"]
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge and " ".join(allowed) in challenge


def test_a_storefront_key_evaluates_and_orders_but_changes_no_rules_or_directory(world, order_id):
    shop = client(world, "storefront")
    order = {"buyer": "bob", "total": 200}
    assert shop.post_json("/api/v1/evaluate", order).json["outcome"] == "approved"
    oid = order_id("scope")
    assert shop.post_json("/api/v1/orders", {"id": oid, **order}).status_int == 201
    assert shop.get(f"/api/v1/orders/{oid}").json["status"] == "approved"
    assert shop.get("/api/v1/approvals?approver=ann").status_int == 200

    refused(shop.post("/api/v1/rulesets/acme/publish", status=403), "storefront", ["merchant"])
    refused(
        shop.put_json("/api/v1/directory/accounts/zed", {"name": "Zed"}, status=403),
        "storefront",
        ["merchant"],
    )
    refused(shop.get("/api/v1/rulesets", status=403), "storefront", ["read_only", "merchant"])
    refused(shop.get("/api/v1/held-orders", status=403), "storefront", ["merchant"])


def test_a_read_only_key_reads_rule_sets_and_the_directory_and_nothing_else(world):
    qa = client(world, "read_only")
    assert "acme" in {r["name"] for r in qa.get("/api/v1/rulesets").json["rulesets"]}
    assert qa.get("/api/v1/rulesets/acme/versions").json["versions"]
    assert "bob" in qa.get("/api/v1/directory").json["accounts"]

    for response in (
        qa.post_json("/api/v1/evaluate", {"buyer": "bob", "total": 1}, status=403),
        qa.post_json("/api/v1/orders", {"id": "qa-1", "buyer": "bob", "total": 1}, status=403),
        qa.get("/api/v1/approvals", status=403),
    ):
        refused(response, "read_only", ["storefront", "merchant"])
    refused(qa.put("/api/v1/rulesets/acme/draft", b"x", status=403), "read_only", ["merchant"])


def test_a_merchant_key_does_everything(api):
    assert api.get("/api/v1/rulesets").status_int == 200
    assert api.get("/api/v1/held-orders").status_int == 200
    assert api.post_json("/api/v1/evaluate", {"buyer": "bob", "total": 1}).status_int == 200


def test_a_missing_or_revoked_key_is_401_before_any_scope(world):
    anonymous = webtest.TestApp(world.app)
    response = anonymous.get("/api/v1/rulesets", status=401)
    assert response.json["error"]["code"] == "missing_api_key"


def test_the_key_endpoint_says_whose_key_it_is_to_every_scope(world):
    for which, scope in (("storefront", "storefront"), ("read_only", "read_only")):
        me = client(world, which).get("/api/v1/key").json
        assert me["tenant"] == "demo" and me["scope"] == scope
        assert me["prefix"] and "hash" not in me


def _views_by_route(world) -> dict[tuple[str, str], str | None]:
    introspector = world.app.registry.introspector
    grants = {}
    for route in world.app.registry.getUtility(IRoutesMapper).get_routes():
        if not route.pattern.startswith("/api/v1/") or route.name == "api_openapi":
            continue
        for view in introspector.related(introspector.get("routes", route.name)):
            if view.category_name == "views":
                methods = view["request_methods"]
                for method in (methods,) if isinstance(methods, str) else methods:
                    grants[(route.name, method)] = view.get("api_grant")
    return grants


#: the API's public pages: the document and its reference page need no key
PUBLIC = {"api_openapi", "api_docs"}


def test_every_api_view_names_its_grant(world):
    grants = {k: v for k, v in _views_by_route(world).items() if k[0] not in PUBLIC}
    assert grants and None not in grants.values(), [k for k, v in grants.items() if v is None]


def test_the_openapi_document_lists_the_scopes_each_view_allows(world, api):
    """The document's per-operation security is what the views enforce."""
    document = api.get("/api/v1/openapi.json").json
    assert (
        "insufficient_scope" in document["components"]["securitySchemes"]["apiKey"]["description"]
    )
    grants = _views_by_route(world)
    mapper = world.app.registry.getUtility(IRoutesMapper)
    checked = 0
    for template, item in document["paths"].items():
        if not template.startswith("/api/v1/") or template == "/api/v1/openapi.json":
            continue
        for method, operation in item.items():
            sample = template.replace("{id}", "7").replace("{name}", "acme")
            sample = sample.replace("{company}", "acme").replace("{group}", "g")
            sample = sample.replace("{account}", "bob").replace("{number}", "1")
            route = mapper(_FakeRequest(sample, method.upper()))["route"]
            grant = grants[(route.name, method.upper())]
            if operation.get("security") == []:
                assert route.name in PUBLIC and grant is None, template
                continue
            scopes = sorted(s for r in operation["security"] for s in r["apiKey"])
            expected = sorted(GRANT_SCOPES[grant]) if grant != "any" else []
            assert scopes == expected, (template, method)
            checked += 1
    assert checked >= 25


@pytest.mark.parametrize("scope", ["admin", ""])
def test_an_unknown_scope_is_refused(world, scope):
    from approvalrules.errors import DirectoryValueError
    from approvalrules.store.services import create_api_key, resolve_tenant

    with pytest.raises(DirectoryValueError) as info:
        world.run(lambda s: create_api_key(s, resolve_tenant(s, "demo"), "x", scope=scope))
    assert info.value.code == "invalid_scope" and "storefront, merchant, read_only" in str(
        info.value
    )
