"""Login, sessions, CSRF, tenant isolation and admin roles."""

from __future__ import annotations

import shutil

import pytest
import webtest
from pyramid.interfaces import IRoutesMapper
from pyramid.paster import get_appsettings
from pyramid.settings import asbool
from sqlalchemy import select

from approvalrules.app import main
from approvalrules.store.models import AuditEvent

from .conftest import ROOT, csrf, login


def session_cookie(app):
    return app.cookies.get("approvalrules_admin")


def test_login_page_has_labels_and_a_csrf_token(app):
    page = app.get("/admin/login")
    for field in ("tenant", "login", "password"):
        assert f'<label for="{field}">' in page.text
    assert page.forms[0]["csrf_token"].value


@pytest.mark.parametrize(
    "tenant, login_name, password",
    [
        ("demo", "olive", "wrong"),
        ("demo", "nobody", "owner-password"),
        ("nowhere", "olive", "owner-password"),
        ("other", "olive", "owner-password"),
        ("", "", ""),
    ],
)
def test_bad_credentials_are_refused_with_one_message(app, tenant, login_name, password):
    form = app.get("/admin/login").forms[0]
    form["tenant"], form["login"], form["password"] = tenant, login_name, password
    page = form.submit(status=400)
    assert "Unknown tenant, login or password." in page.text
    assert app.get("/admin/rulesets").status_int == 302


def _try_login(app, login_name, password, status, address="192.0.2.1"):
    form = app.get("/admin/login").forms[0]
    form["tenant"], form["login"], form["password"] = "demo", login_name, password
    return form.submit(status=status, extra_environ={"REMOTE_ADDR": address})


@pytest.fixture
def login_limits(app):
    """The app's failed-login limiters on a clock that stands still: no minute ends mid-test."""
    from approvalrules.views.limits import RateLimiter

    registry = app.app.registry
    saved = registry.admin_login_limits
    registry.admin_login_limits = tuple(
        RateLimiter(limiter.per_minute, clock=lambda: 30.0) for limiter in saved
    )
    yield registry.admin_login_limits
    registry.admin_login_limits = saved


def test_failed_logins_are_limited_per_login_before_the_password_is_checked(app, db, login_limits):
    for _ in range(5):
        _try_login(app, "olive", "wrong", 400)
    # the sixth attempt is refused even with the right password, and says for how long
    page = _try_login(app, "olive", "owner-password", 429)
    assert "Too many failed logins" in page.text
    assert 1 <= int(page.headers["Retry-After"]) <= 60
    assert app.get("/admin/rulesets").status_int == 302  # not logged in
    # another admin from the same address is not locked out by olive's failures
    login(app, "editor")
    assert app.get("/admin/rulesets").status_int == 200


def test_failed_logins_are_limited_per_address(app, login_limits):
    for index in range(20):
        _try_login(app, f"guess{index}", "wrong", 400, address="198.51.100.7")
    assert (
        "Too many failed logins"
        in _try_login(app, "olive", "owner-password", 429, address="198.51.100.7").text
    )
    _try_login(app, "olive", "owner-password", 303, address="198.51.100.8")


def test_the_login_limit_window_ends():
    from approvalrules.views.limits import RateLimiter

    now = [120.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert limiter.exhausted("k") == 0
    limiter.hit("k")
    limiter.hit("k")
    assert limiter.exhausted("k") == 60 and limiter.exhausted("other") == 0
    now[0] = 180.0
    assert limiter.exhausted("k") == 0


def test_login_rotates_the_session_and_the_csrf_token(app):
    page = app.get("/admin/login")
    before_cookie, before_token = session_cookie(app), page.forms[0]["csrf_token"].value
    login(app, "owner")
    assert session_cookie(app) != before_cookie
    assert csrf(app) != before_token


def test_login_is_audited(app, db):
    login(app, "editor")
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.actor == "admin:eddie")).all()
    assert "admin.logged_in" in actions


def test_anonymous_is_sent_to_login_and_back(app):
    response = app.get("/admin/rulesets/acme/versions")
    assert response.status_int == 302 and "/admin/login?next=" in response.location
    form = response.follow().forms[0]
    form["tenant"], form["login"], form["password"] = "demo", "olive", "owner-password"
    assert form.submit().location.endswith("/admin/rulesets/acme/versions")


def test_login_never_redirects_outside_the_admin(app):
    form = app.get("/admin/login?next=//evil.example/x").forms[0]
    form["tenant"], form["login"], form["password"] = "demo", "olive", "owner-password"
    assert form.submit().location.endswith("/admin/rulesets")


def test_logout_ends_the_session(owner):
    owner.post("/admin/logout", {"csrf_token": csrf(owner)}, status=303)
    assert owner.get("/admin/rulesets").status_int == 302


def test_a_cookie_copied_before_logout_is_dead_after_it(owner, admin_app):
    captured = owner.cookies["approvalrules_admin"]
    owner.post("/admin/logout", {"csrf_token": csrf(owner)}, status=303)
    thief = webtest.TestApp(admin_app)
    thief.set_cookie("approvalrules_admin", captured)
    response = thief.get("/admin/rulesets")
    assert response.status_int == 302
    assert "/admin/login" in response.location


def test_logging_in_again_after_logout_works(owner):
    owner.post("/admin/logout", {"csrf_token": csrf(owner)}, status=303)
    login(owner, "owner")
    assert owner.get("/admin/rulesets").status_int == 200


def test_every_form_needs_the_csrf_token(owner):
    for url, data in [
        ("/admin/rulesets/acme/yaml", {"text": "ruleset: acme\n", "action": "save"}),
        ("/admin/rulesets", {"name": "new-one"}),
        ("/admin/rulesets/acme/rollback", {"number": "1"}),
        ("/admin/approvals/1", {"action": "approve", "approver": "ann"}),
        ("/admin/evaluate", {"buyer": "bob"}),
        ("/admin/logout", {}),
    ]:
        page = owner.post(url, data, status=400)
        assert "Form expired" in page.text


def test_login_form_needs_the_csrf_token(app):
    app.get("/admin/login")
    app.post(
        "/admin/login",
        {"tenant": "demo", "login": "olive", "password": "owner-password"},
        status=400,
    )


def test_the_storefront_api_is_not_subject_to_csrf(app):
    # bearer keys, no cookies: a missing key is 401, not a CSRF 400
    app.post_json("/api/v1/evaluate", {"buyer": "bob", "total": 1}, status=401)


OTHER_TENANTS_URLS = [
    "/admin/rulesets/acme",
    "/admin/rulesets/acme/yaml",
    "/admin/rulesets/acme/form",
    "/admin/rulesets/acme/chain.svg",
    "/admin/rulesets/acme/versions",
    "/admin/rulesets/acme/versions/1",
    "/admin/rulesets/acme/diff",
    "/admin/directory/companies/acme",
    "/admin/directory/accounts/bob",
    "/admin/approvals/1",
]


@pytest.mark.parametrize("url", OTHER_TENANTS_URLS)
def test_another_tenants_objects_are_not_found(other, url):
    other.get(url, status=404)


def test_another_tenants_objects_cannot_be_changed(other):
    token = csrf(other)
    other.post(
        "/admin/rulesets/acme/yaml",
        {"text": "ruleset: acme\n", "action": "save", "csrf_token": token},
        status=404,
    )
    other.post("/admin/rulesets/acme/rollback", {"number": "1", "csrf_token": token}, status=404)
    other.post(
        "/admin/approvals/1",
        {"action": "approve", "approver": "ann", "csrf_token": token},
        status=404,
    )


def test_lists_show_only_the_own_tenant(other):
    assert "other-rules" in other.get("/admin/rulesets").text
    assert "acme" not in other.get("/admin/rulesets").text
    assert "Acme" not in other.get("/admin/directory/companies").text
    assert "PO-800" not in other.get("/admin/approvals?status=").text


def test_viewer_reads_but_cannot_change(viewer):
    token = csrf(viewer)
    assert viewer.get("/admin/rulesets/acme/yaml").status_int == 200
    assert 'value="publish"' not in viewer.get("/admin/rulesets/acme/yaml").text
    viewer.post(
        "/admin/rulesets/acme/yaml",
        {"text": "ruleset: acme\n", "action": "save", "csrf_token": token},
        status=403,
    )
    viewer.post(
        "/admin/rulesets/acme/yaml",
        {"text": "ruleset: acme\n", "action": "publish", "csrf_token": token},
        status=403,
    )
    viewer.post("/admin/rulesets/acme/form", {"csrf_token": token, "save": "save"}, status=403)
    viewer.post("/admin/rulesets/acme/rollback", {"number": "1", "csrf_token": token}, status=403)
    viewer.post("/admin/rulesets", {"name": "mine", "csrf_token": token}, status=403)
    page = viewer.post(
        "/admin/approvals/1",
        {"action": "approve", "approver": "ann", "csrf_token": token},
        status=403,
    )
    assert "viewer" in page.text


def test_editor_edits_but_only_owners_decide_and_read_the_audit_log(editor):
    token = csrf(editor)
    editor.get("/admin/audit", status=403)
    editor.post(
        "/admin/approvals/1",
        {"action": "approve", "approver": "ann", "csrf_token": token},
        status=403,
    )
    editor.post(
        "/admin/rulesets/acme/yaml",
        {"text": "ruleset: acme\n", "action": "save", "csrf_token": token},
        status=303,
    )


def test_every_admin_view_requires_a_permission(admin_app):
    """No admin page is public by accident: only login and logout go without a permission."""
    introspector = admin_app.registry.introspector
    public = {"admin_login", "admin_logout"}
    checked = 0
    for item in introspector.get_category("views"):
        view = item["introspectable"]
        route = view["route_name"]
        if route and route.startswith("admin_") and route not in public:
            assert view["callable"] is not None
            permission = [r for r in item["related"] if r.category_name == "permissions"]
            assert permission, f"view of {route} has no permission"
            checked += 1
    assert checked >= 20
    mapper = admin_app.registry.getUtility(IRoutesMapper)
    assert all(r.factory is not None for r in mapper.get_routes() if r.name.startswith("admin_"))


def test_production_ini_sends_the_admin_cookie_over_https_only(
    admin_settings, template_db, tmp_path
):
    production = get_appsettings(str(ROOT / "production.ini"), name="main")
    assert asbool(production["approvalrules.session_secure"])
    db_path = tmp_path / "secure.sqlite"
    shutil.copyfile(template_db, db_path)
    settings = dict(admin_settings, **{"sqlalchemy.url": f"sqlite:///{db_path}"})
    settings["approvalrules.session_secure"] = production["approvalrules.session_secure"]
    https = {"wsgi.url_scheme": "https", "HTTP_HOST": "localhost", "SERVER_PORT": "443"}
    app = webtest.TestApp(main({}, **settings), extra_environ=https)
    form = app.get("/admin/login").forms[0]
    form["tenant"], form["login"], form["password"] = "demo", "olive", "owner-password"
    cookie = form.submit(status=303).headers["Set-Cookie"]
    assert "secure" in cookie.lower().split("; ")
