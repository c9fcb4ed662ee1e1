"""URL routes of the web app."""

import swagger_ui_bundle

#: where the storefront's and the merchant's JSON API lives
API_PREFIX = "/api/"


def under_api(request) -> bool:
    """Whether ``request.path`` starts with :data:`API_PREFIX`, read from the WSGI environ:
    ``request.path`` quotes the whole path anew at each use, and quoting changes nothing in
    ``/api/`` (each of its characters is quoted as itself, any other is not)."""
    environ = request.environ
    return (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).startswith(API_PREFIX)


def includeme(config):
    config.add_static_view("static", "approvalrules.templates:static", cache_max_age=3600)
    # Swagger UI's built assets, from its package: the API reference page works offline
    config.add_static_view(
        "swagger-ui", str(swagger_ui_bundle.swagger_ui_path), cache_max_age=86400
    )
    config.add_route("home", "/")
    config.add_route("health", "/health")
    config.add_route("ready", "/ready")
    # the storefront's hot path early: routes are tried in order, one regular expression each
    config.add_route("api_evaluate", "/api/v1/evaluate")
    config.add_route("api_rulesets", "/api/v1/rulesets")
    config.add_route("api_openapi", "/api/v1/openapi.json")
    config.add_route("api_docs", "/api/v1/docs")
    config.add_route("api_ruleset", "/api/v1/rulesets/{name}")
    config.add_route("api_ruleset_draft", "/api/v1/rulesets/{name}/draft")
    config.add_route("api_ruleset_publish", "/api/v1/rulesets/{name}/publish")
    config.add_route("api_ruleset_rollback", "/api/v1/rulesets/{name}/rollback")
    config.add_route("api_ruleset_versions", "/api/v1/rulesets/{name}/versions")
    config.add_route("api_ruleset_version", "/api/v1/rulesets/{name}/versions/{number}")
    config.add_route("api_ruleset_diff", "/api/v1/rulesets/{name}/diff")
    config.add_route("api_orders", "/api/v1/orders")
    # order ids may contain '/' (ERP numbers like 2026/PO/17): the action route, POST only,
    # takes the last segment; every other method reads the whole rest as the id
    config.add_route(
        "api_order_action",
        "/api/v1/orders/{id:.+}/{action:withdraw|released|convert}",
        request_method="POST",
    )
    config.add_route("api_order", "/api/v1/orders/{id:.+}")
    config.add_route("api_approvals", "/api/v1/approvals")
    config.add_route("api_approvals_bulk", "/api/v1/approvals/bulk")
    config.add_route("api_approval", "/api/v1/approvals/{id}")
    config.add_route("api_approval_edit", "/api/v1/approvals/{id}/edit")
    config.add_route("api_approval_action", "/api/v1/approvals/{id}/{action}")
    config.add_route("api_directory_companies", "/api/v1/directory/companies")
    config.add_route("api_directory_accounts", "/api/v1/directory/accounts")
    config.add_route("api_directory_groups", "/api/v1/directory/groups")
    config.add_route("api_directory_memberships", "/api/v1/directory/memberships")
    config.add_route("api_directory_sync", "/api/v1/directory/sync")
    config.add_route("api_directory_export", "/api/v1/directory/export")
    config.add_route("api_directory_summary", "/api/v1/directory/accounts/{account}/summary")
    config.add_route("api_directory_company", "/api/v1/directory/companies/{company}")
    config.add_route("api_directory_group", "/api/v1/directory/companies/{company}/groups/{group}")
    config.add_route("api_directory_account", "/api/v1/directory/accounts/{account}")
    config.add_route(
        "api_directory_membership", "/api/v1/directory/accounts/{account}/memberships/{company}"
    )
    config.add_route("api_directory_assignments", "/api/v1/directory/assignments")
    config.add_route("api_directory_delegations", "/api/v1/directory/delegations")
    # the merchant's own API (views/api_merchant.py): the key, the directory read, held orders
    config.add_route("api_key", "/api/v1/key")
    config.add_route("api_directory", "/api/v1/directory")
    config.add_route("api_held_orders", "/api/v1/held-orders")
    config.add_route(
        "api_held_order_action",
        "/api/v1/held-orders/{id:.+}/{action:lift|cancel}",
        request_method="POST",
    )
