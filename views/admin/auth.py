"""Log in, log out, and the admin's error pages (401 -> login, 403, 404, bad CSRF token)."""

from __future__ import annotations

from pyramid.csrf import new_csrf_token
from pyramid.exceptions import BadCSRFToken, PredicateMismatch
from pyramid.httpexceptions import HTTPBadRequest, HTTPFound, HTTPNotFound, HTTPSeeOther
from pyramid.security import forget, remember
from pyramid.view import (
    exception_view_config,
    forbidden_view_config,
    notfound_view_config,
    view_config,
)

from approvalrules import errors
from approvalrules.store.services import audit

from .common import template
from .security import authenticate

ADMIN_PATHS = r"^/admin(/|$)"


def safe_next(url: str | None) -> str | None:
    """Only a path inside the admin may be the target after login (no open redirect)."""
    if url and url.startswith("/admin") and not url.startswith("//") and "\\" not in url:
        return url
    return None


@view_config(route_name="admin_login", request_method="GET", renderer=template("login"))
def login_page(request):
    return {
        # ?tenant= (the link dev-credentials prints), else the .ini's approvalrules.login_tenant
        "tenant": request.params.get("tenant")
        or request.registry.settings.get("approvalrules.login_tenant", ""),
        "login": "",
        "error": None,
        "next": safe_next(request.params.get("next")) or "",
    }


@view_config(route_name="admin_login", request_method="POST", renderer=template("login"))
def login(request):
    tenant = request.POST.get("tenant", "").strip()
    login_name = request.POST.get("login", "").strip()
    page = {
        "tenant": tenant,
        "login": login_name,
        "next": safe_next(request.POST.get("next")) or "",
    }
    per_login, per_address = request.registry.admin_login_limits
    keys = (f"{tenant}\n{login_name}"[:300], request.client_addr or "unknown")
    wait = max(per_login.exhausted(keys[0]), per_address.exhausted(keys[1]))
    if wait:
        request.response.status_int = 429
        request.response.headers["Retry-After"] = str(wait)
        return {**page, "error": f"Too many failed logins. Try again in {wait} seconds."}
    user = (
        authenticate(request.dbsession, tenant, login_name, request.POST.get("password", ""))
        if tenant and login_name
        else None
    )
    if user is None:
        per_login.hit(keys[0])
        per_address.hit(keys[1])
        request.response.status_int = 400
        return {**page, "error": "Unknown tenant, login or password."}
    # a fresh session (new cookie content, new CSRF token) so that a session
    # planted before login is worth nothing afterwards
    request.session.invalidate()
    headers = remember(request, user.id)
    new_csrf_token(request)
    audit(
        request.dbsession,
        user.tenant_id,
        f"admin:{user.login}",
        "admin.logged_in",
        "admin_user",
        user.login,
    )
    return HTTPSeeOther(
        safe_next(request.POST.get("next")) or request.route_url("admin_rulesets"), headers=headers
    )


@view_config(route_name="admin_logout", request_method="POST")
def logout(request):
    headers = forget(request)  # first: it needs the identity this session still names
    request.session.invalidate()
    return HTTPSeeOther(request.route_url("admin_login"), headers=headers)


@view_config(route_name="admin_home", permission="view")
def home(request):
    return HTTPFound(request.route_url("admin_rulesets"))


# -- error pages ------------------------------------------------------------------------------


def _error_page(request, status: int, title: str, message: str):
    request.response.status_int = status
    return {"title": title, "message": message}


@forbidden_view_config(path_info=ADMIN_PATHS, renderer=template("error"))
def forbidden(exc, request):
    if request.identity is None:
        return HTTPFound(request.route_url("admin_login", _query={"next": request.path_qs}))
    return _error_page(
        request, 403, "Not allowed", f"Your admin role ({request.identity.role}) may not do this."
    )


@exception_view_config(BadCSRFToken, path_info=ADMIN_PATHS, renderer=template("error"))
def bad_csrf(exc, request):
    return _error_page(
        request,
        400,
        "Form expired",
        "The form was missing its security token or it had expired. "
        "Go back, reload the page and try again.",
    )


@exception_view_config(HTTPBadRequest, path_info=ADMIN_PATHS, renderer=template("error"))
def bad_request(exc, request):
    # e.g. a filter with a NUL in it (views/admin/common.py: check_admin_input)
    return _error_page(request, 400, "Bad request", exc.detail or "The request was not understood.")


def allowed_methods(request) -> list[str]:
    """The methods the matched admin route's views answer (empty when no route matched)."""
    route = request.matched_route
    if route is None:
        return []
    introspector = request.registry.introspector
    methods: set[str] = set()
    for view in introspector.related(introspector.get("routes", route.name)):
        if view.category_name == "views":
            declared = view["request_methods"]
            methods.update((declared,) if isinstance(declared, str) else declared or ())
    return sorted(methods)


@notfound_view_config(path_info=ADMIN_PATHS, renderer=template("error"))
def not_found(exc, request):
    allowed = allowed_methods(request) if isinstance(exc, PredicateMismatch) else []
    if allowed and request.method not in allowed:
        # the page exists, the method does not: say which ones do
        request.response.headers["Allow"] = ", ".join(allowed)
        return _error_page(
            request,
            405,
            "Method not allowed",
            f"This page answers {', '.join(allowed)}, not {request.method}.",
        )
    return _error_page(
        request,
        404,
        "Not found",
        exc.detail if isinstance(exc, HTTPNotFound) and exc.detail else "There is nothing here.",
    )


@exception_view_config(errors.ApprovalRulesError, path_info=ADMIN_PATHS, renderer=template("error"))
def domain_error(exc, request):
    # an error a view did not turn into a message on its own page
    status = (
        404
        if isinstance(exc, errors.NotFound)
        else 403
        if isinstance(exc, errors.Forbidden)
        else 409
        if isinstance(exc, errors.Conflict)
        else 400
    )
    return _error_page(request, status, exc.code.replace("_", " ").capitalize(), str(exc))
