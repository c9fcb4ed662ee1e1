"""Fixtures of the admin tests: one migrated, loaded SQLite database per test session.

The database (``rules/`` loaded into tenant ``demo``, admin users of every
role, a second tenant ``other``, a pending approval) is built once; each test
gets a fresh copy of the file, so tests are isolated and real transactions
(pyramid_tm) commit as in production.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import webtest
from pyramid.paster import get_appsettings
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from approvalrules.app import main
from approvalrules.store import migrate
from approvalrules.store.db import create_engine_for_url
from approvalrules.store.importer import load_folder
from approvalrules.store.services import create_admin_user, ensure_tenant
from approvalrules.store.versions import publish

ROOT = Path(__file__).resolve().parents[2]
TESTING_INI = ROOT / "testing.ini"

#: (tenant, login, password, role) of the admin users every test can log in as
USERS = {
    "owner": ("demo", "olive", "owner-password", "owner"),
    "editor": ("demo", "eddie", "editor-password", "editor"),
    "viewer": ("demo", "vera", "viewer-password", "viewer"),
    "other": ("other", "oscar", "other-password", "owner"),
}

OTHER_RULES = """\
ruleset: other-rules
description: The second tenant's own rules.
approval:
  steps:
    - name: everything
      approvers: {any_of: [{role: boss}]}
roles:
  boss: {label: Boss, permissions: [place_orders, approve_orders]}
"""


def build_database(path: Path) -> None:
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    engine = create_engine_for_url(url)
    with Session(engine) as session:
        load_folder(session, ROOT / "rules")
        demo = ensure_tenant(session, "demo")
        for tenant_slug, login, password, role in USERS.values():
            tenant = ensure_tenant(session, tenant_slug, tenant_slug.capitalize())
            create_admin_user(session, tenant, login, password, role)
        other = ensure_tenant(session, "other")
        publish(session, other.id, "other-rules", "setup", text=OTHER_RULES)
        from approvalrules.store.directory_service import DirectoryService

        DirectoryService(session, other).upsert_company(
            "otherco", name="Other Co", ruleset="other-rules"
        )
        from approvalrules.workflow import actions

        actions.submit(session, demo, {"id": "PO-800", "buyer": "bob", "total": 800})
        session.commit()
    engine.dispose()


@pytest.fixture(scope="session")
def template_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("admin-template") / "template.sqlite"
    build_database(path)
    return path


@pytest.fixture(scope="session")
def admin_db_path(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("admin-db") / "admin.sqlite"


@pytest.fixture(scope="session")
def admin_settings(admin_db_path) -> dict:
    settings = dict(get_appsettings(str(TESTING_INI), name="main"))
    settings["sqlalchemy.url"] = f"sqlite:///{admin_db_path}"
    settings["approvalrules.rules_dir"] = str(ROOT / "rules")
    return settings


@pytest.fixture(scope="session")
def admin_app(admin_settings, template_db, admin_db_path):
    shutil.copyfile(template_db, admin_db_path)
    return main({}, **admin_settings)


@pytest.fixture
def fresh_db(admin_app, template_db, admin_db_path):
    """Reset the app's database to the template; returns the app's engine."""
    engine = admin_app.registry["dbengine"]
    engine.dispose()  # no pooled connection may outlive the file it points at
    shutil.copyfile(template_db, admin_db_path)
    yield engine
    engine.dispose()


@pytest.fixture
def app(admin_app, fresh_db):
    for limiter in admin_app.registry.admin_login_limits:
        limiter.clear()  # each test starts with no failed logins counted
    return webtest.TestApp(admin_app)


@pytest.fixture
def db(admin_db_path, fresh_db):
    """A session on the test's database, for assertions (commit nothing through it).

    A plain pysqlite engine: it opens no transaction for a SELECT, so the
    reads of a test never hold a lock that the app's next write would wait on.
    """
    engine = create_engine(f"sqlite:///{admin_db_path}")
    with Session(engine, autoflush=False) as session:
        yield session
    engine.dispose()


def login(app: webtest.TestApp, who: str = "owner") -> webtest.TestApp:
    """Log ``app`` in as one of USERS through the login form."""
    tenant, login_name, password, _ = USERS[who]
    form = app.get("/admin/login").forms[0]
    form["tenant"], form["login"], form["password"] = tenant, login_name, password
    response = form.submit()
    assert response.status_int == 303, response.text[:500]
    return app


@pytest.fixture
def owner(app):
    return login(app, "owner")


@pytest.fixture
def editor(app):
    return login(app, "editor")


@pytest.fixture
def viewer(app):
    return login(app, "viewer")


@pytest.fixture
def other(app):
    return login(app, "other")


def csrf(app: webtest.TestApp) -> str:
    """The session's CSRF token, read from any admin page."""
    page = app.get("/admin/rulesets")
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Mark a failed test's node, so the browser fixture knows to keep a screenshot."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        item.failed = True
