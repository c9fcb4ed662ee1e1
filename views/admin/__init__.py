"""The merchant admin.

Deform forms, YAML editor, versions, diff, directory, delegations, approvals.

``includeme`` wires sessions, the security policy, CSRF, the admin routes and
deform's static assets; the views themselves are found by the app's
``config.scan("approvalrules.views")``.
"""

from __future__ import annotations

import logging
import secrets

from pyramid.events import ContextFound
from pyramid.session import SignedCookieSessionFactory
from pyramid.settings import asbool

from ..limits import rate_limiter
from ..routes import under_api
from .common import check_admin_input
from .security import AdminRoot, AdminSecurityPolicy, actor, admin_tenant

log = logging.getLogger(__name__)

SESSION_SECRET = "approvalrules.session_secret"

#: (route name, pattern) of every admin page; all share the AdminRoot ACL
ROUTES = (
    ("admin_login", "/admin/login"),
    ("admin_logout", "/admin/logout"),
    ("admin_home", "/admin"),
    ("admin_rulesets", "/admin/rulesets"),
    ("admin_ruleset", "/admin/rulesets/{name}"),
    ("admin_ruleset_chain", "/admin/rulesets/{name}/chain.svg"),
    ("admin_ruleset_yaml", "/admin/rulesets/{name}/yaml"),
    ("admin_ruleset_form", "/admin/rulesets/{name}/form"),
    ("admin_ruleset_rollback", "/admin/rulesets/{name}/rollback"),
    ("admin_ruleset_discard", "/admin/rulesets/{name}/draft/discard"),
    ("admin_ruleset_update_tests", "/admin/rulesets/{name}/tests/update"),
    ("admin_versions", "/admin/rulesets/{name}/versions"),
    ("admin_version", "/admin/rulesets/{name}/versions/{number}"),
    ("admin_diff", "/admin/rulesets/{name}/diff"),
    ("admin_companies", "/admin/directory/companies"),
    ("admin_company", "/admin/directory/companies/{id}"),
    ("admin_accounts", "/admin/directory/accounts"),
    ("admin_account", "/admin/directory/accounts/{id}"),
    ("admin_memberships", "/admin/directory/memberships"),
    ("admin_groups", "/admin/directory/groups"),
    ("admin_assignments", "/admin/directory/assignments"),
    # directory management (views/admin/directory_edit.py)
    ("admin_directory_export", "/admin/directory/export.yaml"),
    ("admin_company_contacts", "/admin/directory/companies/{id}/contacts"),
    ("admin_company_contact_remove", "/admin/directory/companies/{id}/contacts/remove"),
    ("admin_company_locations", "/admin/directory/companies/{id}/locations"),
    (
        "admin_company_location_remove",
        "/admin/directory/companies/{id}/locations/{location}/remove",
    ),
    ("admin_company_members", "/admin/directory/companies/{id}/members"),
    ("admin_company_groups", "/admin/directory/companies/{id}/groups"),
    ("admin_group", "/admin/directory/companies/{id}/groups/{group}"),
    ("admin_group_members", "/admin/directory/companies/{id}/groups/{group}/members"),
    (
        "admin_group_member_remove",
        "/admin/directory/companies/{id}/groups/{group}/members/{account}/remove",
    ),
    ("admin_group_delete", "/admin/directory/companies/{id}/groups/{group}/delete"),
    ("admin_account_active", "/admin/directory/accounts/{id}/active"),
    ("admin_account_memberships", "/admin/directory/accounts/{id}/memberships"),
    ("admin_membership", "/admin/directory/accounts/{id}/memberships/{company}"),
    ("admin_membership_action", "/admin/directory/accounts/{id}/memberships/{company}/{action}"),
    ("admin_assignment_remove", "/admin/directory/assignments/{aid}/remove"),
    ("admin_delegations", "/admin/directory/delegations"),
    ("admin_delegation_revoke", "/admin/directory/delegations/{id}/revoke"),
    ("admin_directory_sync", "/admin/directory/sync"),
    ("admin_directory_download", "/admin/directory/sync/download"),
    ("admin_approvals", "/admin/approvals"),
    ("admin_approval", "/admin/approvals/{id}"),
    ("admin_approval_review", "/admin/approvals/{id}/merchant-review"),
    ("admin_evaluate", "/admin/evaluate"),
    ("admin_audit", "/admin/audit"),
    ("admin_held_orders", "/admin/held-orders"),
    ("admin_keys", "/admin/keys"),
    ("admin_users", "/admin/users"),
    ("admin_outbox", "/admin/outbox"),
    ("admin_outbox_retry", "/admin/outbox/{id}/retry"),
)


def session_secret(settings) -> str:
    """The session signing secret; a random one (with a warning) when none is configured."""
    secret = settings.get(SESSION_SECRET)
    if secret:
        return secret
    # Tests and tools that build the app from bare settings still work, but
    # sessions then die with the process and differ between processes.
    log.warning(
        "%s is not set: using a random secret, admin sessions end when the process does",
        SESSION_SECRET,
    )
    return secrets.token_urlsafe(32)


def csrf_applies(request) -> bool:
    """CSRF is checked on every unsafe request except the storefront API.

    The API authenticates with a bearer key, never with a cookie, so a forged
    cross-site request carries no credentials there.
    """
    return not under_api(request)


def includeme(config):
    """Admin routes and security."""
    settings = config.get_settings()
    config.set_session_factory(
        SignedCookieSessionFactory(
            session_secret(settings),
            cookie_name="approvalrules_admin",
            httponly=True,
            samesite="Lax",
            secure=asbool(settings.get("approvalrules.session_secure", False)),
            timeout=int(settings.get("approvalrules.session_timeout", 8 * 3600)),
            reissue_time=600,
        )
    )
    # failed logins per minute, per (tenant, login) and per client address (in Redis for
    # every process with approvalrules.redis_url, else per process): guessing passwords
    # costs the guesser time and the server no argon2 work
    config.registry.admin_login_limits = (
        rate_limiter(
            settings,
            "login",
            int(settings.get("approvalrules.admin_login_failures_per_minute", 5)),
        ),
        rate_limiter(
            settings,
            "login_address",
            int(settings.get("approvalrules.admin_login_failures_per_address", 20)),
        ),
    )
    config.set_security_policy(AdminSecurityPolicy())
    config.set_default_csrf_options(require_csrf=True, callback=csrf_applies)
    config.add_request_method(admin_tenant, "admin_tenant", reify=True)
    config.add_request_method(actor, "admin_actor", reify=True)
    config.add_static_view("deform_static", "deform:static", cache_max_age=3600)
    config.include(".headers")
    config.include(".words")
    config.add_subscriber(check_admin_input, ContextFound)
    for name, pattern in ROUTES:
        config.add_route(name, pattern, factory=AdminRoot)
