"""A first run: the port can change and the printed addresses follow it, the login page says
what the tenant is (and fills it in), the home page links the admin."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from approvalrules.cli import main as cli
from approvalrules.store import migrate
from approvalrules.store.commands import served_url
from approvalrules.store.db import create_engine_for_url
from approvalrules.store.services import ensure_tenant

ROOT = Path(__file__).resolve().parents[2]


def test_the_served_address_follows_the_port_variable():
    ini = str(ROOT / "development.ini")
    assert served_url(ini) == "http://127.0.0.1:6543"
    assert served_url(ini, {"http_port": "8080"}, "port") == "http://127.0.0.1:8080"


def test_dev_credentials_prints_the_login_address_on_the_chosen_port(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'dev.sqlite'}"
    engine = create_engine_for_url(url)
    migrate.upgrade(engine)
    with Session(engine) as session, session.begin():
        ensure_tenant(session, "demo")
    engine.dispose()
    ini = tmp_path / "dev.ini"
    ini.write_text(
        "[app:main]\nuse = egg:approvalrules\n"
        f"sqlalchemy.url = {url}\n"
        "approvalrules.dev_api_key = ar_0000dev0_test-key-not-secret\n"
        "approvalrules.dev_admin = admin:admin\n\n"
        "[server:main]\nuse = egg:waitress#main\nlisten = 127.0.0.1:6543\n\n"
        "[server:port]\nuse = egg:waitress#main\nlisten = 127.0.0.1:%(http_port)s\n"
    )
    assert cli(["dev-credentials", "--server-name", "port", str(ini), "http_port=8181"]) == 0
    out = capsys.readouterr().out
    assert "admin: http://127.0.0.1:8181/admin/login?tenant=demo as admin" in out
    assert cli(["dev-credentials", str(ini)]) == 0
    assert "http://127.0.0.1:6543/admin/login?tenant=demo" in capsys.readouterr().out


def test_the_login_page_explains_and_fills_in_the_tenant(app, admin_app, monkeypatch):
    page = app.get("/admin/login?tenant=demo")
    assert page.forms[0]["tenant"].value == "demo"
    assert "short name" in page.html.select_one("#tenant-help").get_text()
    assert app.get("/admin/login").forms[0]["tenant"].value == ""
    monkeypatch.setitem(admin_app.registry.settings, "approvalrules.login_tenant", "demo")
    assert app.get("/admin/login").forms[0]["tenant"].value == "demo"


def test_the_home_page_links_the_admin(app):
    home = app.get("/")
    assert [a["href"] for a in home.html.select(".admin-link a")] == ["http://localhost/admin"]
