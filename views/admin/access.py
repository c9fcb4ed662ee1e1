"""API keys and admin users: owners only (permission ``manage``).

Keys: create (of a scope), list, revoke, rotate; a new key's secret is shown once, on the
page that answers the form, and never again (only its SHA-256 is kept; the response is not
cached).  Users: create (owner, editor, viewer), change role, remove; the tenant's last owner
stays.  Everything goes through :mod:`approvalrules.store.services`, audited as
``admin:<login>``; CSRF is checked on every form (``views/admin/__init__.py``).
"""

from __future__ import annotations

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.view import view_config
from sqlalchemy import select

from approvalrules.errors import ApprovalRulesError
from approvalrules.store.models import ADMIN_ROLES, API_KEY_SCOPES, AdminUser, ApiKey
from approvalrules.store.services import (
    SCOPE_DESCRIPTIONS,
    check_new_admin,
    create_admin_user,
    create_api_key,
    remove_admin_user,
    revoke_api_key,
    rotate_api_key,
    set_admin_role,
    set_api_key_rate,
)

from ..limits import default_rate
from .common import flash, template

#: what each admin role may do, in the words of the users page
ROLE_DESCRIPTIONS = {
    "owner": "everything, and manages users and API keys, reads the audit log",
    "editor": "edits and publishes rule sets, edits the directory, decides held orders",
    "viewer": "reads everything, changes nothing",
}


def _no_store(request) -> None:
    # a page that may carry a secret, or the forms that make one, stays out of every cache
    request.response.headers["Cache-Control"] = "no-store"


# -- API keys --------------------------------------------------------------------------------


def _keys_page(request, error=None, new_key=None, new_secret=None, form=None) -> dict:
    _no_store(request)
    keys = request.dbsession.scalars(
        select(ApiKey)
        .where(ApiKey.tenant_id == request.admin_tenant.id)
        .order_by(ApiKey.revoked_at.is_not(None), ApiKey.created_at.desc(), ApiKey.id.desc())
    ).all()
    return {
        "keys": keys,
        "default_rate": default_rate(request.registry.settings),
        "scopes": API_KEY_SCOPES,
        "scope_descriptions": SCOPE_DESCRIPTIONS,
        "error": error,
        "new_key": new_key,
        "new_secret": new_secret,
        "form": form or {"name": "", "scope": "storefront", "rate": ""},
    }


def _key_or_none(request, prefix: str) -> ApiKey | None:
    return request.dbsession.scalar(
        select(ApiKey).where(ApiKey.tenant_id == request.admin_tenant.id, ApiKey.prefix == prefix)
    )


@view_config(
    route_name="admin_keys", request_method="GET", permission="manage", renderer=template("keys")
)
def keys(request):
    return _keys_page(request)


@view_config(
    route_name="admin_keys", request_method="POST", permission="manage", renderer=template("keys")
)
def keys_action(request):
    """``action``: create (name, scope, rate), revoke, rotate or rate (key: its prefix)."""
    session, actor = request.dbsession, request.admin_actor
    action = request.POST.get("action")
    if action == "create":
        form = {
            "name": request.POST.get("name", "").strip(),
            "scope": request.POST.get("scope"),
            "rate": request.POST.get("rate", "").strip(),
        }
        if not form["name"] or len(form["name"]) > 200:
            request.response.status_int = 422
            return _keys_page(
                request, "Name the key (1 to 200 characters), e.g. the shop's name.", form=form
            )
        try:
            key, secret = create_api_key(
                session,
                request.admin_tenant,
                form["name"],
                actor=actor,
                scope=form["scope"],
                rate_per_minute=form["rate"],
            )
        except ApprovalRulesError as exc:
            request.response.status_int = 422
            return _keys_page(request, exc.message, form=form)
        return _keys_page(request, new_key=key, new_secret=secret)
    key = _key_or_none(request, request.POST.get("key", ""))
    if key is None or action not in ("revoke", "rotate", "rate"):
        request.response.status_int = 422
        return _keys_page(request, "Choose a key of this list and revoke or rotate it.")
    if action == "rate":
        try:
            set_api_key_rate(session, key, request.POST.get("rate", ""), actor=actor)
        except ApprovalRulesError as exc:
            request.response.status_int = 422
            return _keys_page(request, f"Key {key.prefix} ({key.name}): {exc.message}")
        rate = key.rate_per_minute or default_rate(request.registry.settings)
        flash(
            request,
            f"Key {key.prefix} ({key.name}) may make {rate:,} requests a minute.",
            "success",
        )
        return HTTPSeeOther(request.route_url("admin_keys"))
    if action == "revoke":
        revoke_api_key(session, key, actor=actor)
        flash(request, f"Key {key.prefix} ({key.name}) is revoked: it no longer works.", "success")
        return HTTPSeeOther(request.route_url("admin_keys"))
    try:
        new, secret = rotate_api_key(session, key, actor=actor)
    except ApprovalRulesError as exc:
        request.response.status_int = 409
        return _keys_page(request, str(exc))
    return _keys_page(request, new_key=new, new_secret=secret)


# -- admin users -----------------------------------------------------------------------------


def _users_page(request, error=None, form=None, status: int | None = None) -> dict:
    if status:
        request.response.status_int = status
    _no_store(request)
    users = request.dbsession.scalars(
        select(AdminUser)
        .where(AdminUser.tenant_id == request.admin_tenant.id)
        .order_by(AdminUser.login)
    ).all()
    return {
        "users": users,
        "roles": ADMIN_ROLES,
        "role_descriptions": ROLE_DESCRIPTIONS,
        "error": error,
        "form": form or {"login": "", "role": "viewer"},
    }


@view_config(
    route_name="admin_users", request_method="GET", permission="manage", renderer=template("users")
)
def users(request):
    return _users_page(request)


@view_config(
    route_name="admin_users", request_method="POST", permission="manage", renderer=template("users")
)
def users_action(request):
    """``action``: create (login, password, role), role (user, role) or remove (user)."""
    session, tenant, actor = request.dbsession, request.admin_tenant, request.admin_actor
    action = request.POST.get("action")
    role = request.POST.get("role", "")
    if action == "create":
        login = request.POST.get("login", "")
        form = {"login": login, "role": role}
        try:
            check_new_admin(session, tenant, login, request.POST.get("password", ""))
            create_admin_user(session, tenant, login, request.POST["password"], role, actor=actor)
        except ApprovalRulesError as exc:
            return _users_page(request, str(exc), form, status=422)
        flash(request, f"Admin user {login} ({role}) can now log in.", "success")
        return HTTPSeeOther(request.route_url("admin_users"))
    user = session.scalar(
        select(AdminUser).where(
            AdminUser.tenant_id == tenant.id, AdminUser.login == request.POST.get("user", "")
        )
    )
    if user is None or action not in ("role", "remove"):
        return _users_page(request, "Choose a user of this list.", status=422)
    login = user.login
    try:
        if action == "role":
            set_admin_role(session, user, role, actor=actor)
            message = f"{login} is now {role}."
        else:
            remove_admin_user(session, user, actor=actor)
            message = f"{login} is removed and logged out."
    except ApprovalRulesError as exc:
        return _users_page(request, str(exc), status=409 if exc.code == "last_owner" else 422)
    flash(request, message, "success")
    return HTTPSeeOther(request.route_url("admin_users"))
