"""``approvalrules create-tenant`` (a new merchant with its first owner) and
``approvalrules api-key --scope``: from an empty database to a working admin login and key."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import webtest
from pyramid.paster import get_appsettings
from sqlalchemy import select
from sqlalchemy.orm import Session

from approvalrules.app import main as make_app
from approvalrules.cli import main
from approvalrules.store.db import create_engine_for_url
from approvalrules.store.models import AdminUser, AuditEvent, Tenant
from approvalrules.store.services import find_api_key

TESTING_INI = Path(__file__).resolve().parent.parent / "testing.ini"


@pytest.fixture
def ini(tmp_path):
    path = tmp_path / "cli.ini"
    path.write_text(
        "[app:main]\nuse = egg:approvalrules\n"
        f"sqlalchemy.url = sqlite:///{tmp_path / 'db.sqlite'}\n"
    )
    return str(path)


def create_tenant(monkeypatch, ini, *args, password="a long password\n"):
    monkeypatch.setattr("sys.stdin", io.StringIO(password))
    return main(["create-tenant", ini, *args, "--password-stdin"])


def test_a_new_tenant_and_its_owner_can_log_in_to_the_admin(monkeypatch, ini, tmp_path, capsys):
    assert create_tenant(monkeypatch, ini, "initrode", "--name", "Initrode", "--owner", "ines") == 0
    assert "tenant initrode: created with owner ines" in capsys.readouterr().out
    engine = create_engine_for_url(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with Session(engine) as session:
        tenant = session.scalar(select(Tenant).where(Tenant.slug == "initrode"))
        assert tenant.name == "Initrode"
        user = session.scalar(select(AdminUser).where(AdminUser.tenant_id == tenant.id))
        assert (user.login, user.role) == ("ines", "owner")
        assert "a long password" not in user.password_hash
        assert {"tenant.created", "admin_user.created"} <= set(
            session.scalars(select(AuditEvent.action).where(AuditEvent.actor == "cli"))
        )
    engine.dispose()

    settings = dict(get_appsettings(str(TESTING_INI), name="main"))
    settings["sqlalchemy.url"] = f"sqlite:///{tmp_path / 'db.sqlite'}"
    app = webtest.TestApp(make_app({}, **settings))
    form = app.get("/admin/login").forms[0]
    form["tenant"], form["login"], form["password"] = "initrode", "ines", "a long password"
    assert form.submit().status_int == 303
    assert app.get("/admin/users").status_int == 200  # an owner: manages users and keys


def test_an_existing_slug_a_bad_slug_or_a_weak_password_creates_nothing(
    monkeypatch, ini, tmp_path, capsys
):
    assert create_tenant(monkeypatch, ini, "initrode", "--owner", "ines") == 0
    assert create_tenant(monkeypatch, ini, "initrode", "--owner", "ivan") == 2
    assert "tenant 'initrode' exists already" in capsys.readouterr().err
    assert create_tenant(monkeypatch, ini, "Bad Slug", "--owner", "x") == 2
    assert "a tenant slug is 1 to 64 lower-case letters" in capsys.readouterr().err
    assert create_tenant(monkeypatch, ini, "weak", "--owner", "w", password="short\n") == 2
    assert "at least 10 characters" in capsys.readouterr().err
    engine = create_engine_for_url(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with Session(engine) as session:
        assert list(session.scalars(select(Tenant.slug))) == ["initrode"]
        assert list(session.scalars(select(AdminUser.login))) == ["ines"]
    engine.dispose()


@pytest.mark.parametrize("scope", ["storefront", "merchant", "read_only"])
def test_api_key_takes_a_scope(monkeypatch, ini, tmp_path, capsys, scope):
    create_tenant(monkeypatch, ini, "initrode", "--owner", "ines")
    capsys.readouterr()
    assert main(["api-key", ini, "initrode", "--name", "shop", "--scope", scope]) == 0
    plain = capsys.readouterr().out.strip()
    engine = create_engine_for_url(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with Session(engine) as session:
        assert find_api_key(session, plain).scope == scope
    engine.dispose()


def test_api_key_defaults_to_the_storefront_scope(monkeypatch, ini, tmp_path, capsys):
    create_tenant(monkeypatch, ini, "initrode", "--owner", "ines")
    capsys.readouterr()
    main(["api-key", ini, "initrode"])
    plain = capsys.readouterr().out.strip()
    engine = create_engine_for_url(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with Session(engine) as session:
        assert find_api_key(session, plain).scope == "storefront"
    engine.dispose()


def test_api_key_takes_a_rate_and_an_existing_key_gets_a_new_one(
    monkeypatch, ini, tmp_path, capsys
):
    create_tenant(monkeypatch, ini, "initrode", "--owner", "ines")
    capsys.readouterr()
    assert main(["api-key", ini, "initrode", "--rate", "20"]) == 0
    plain = capsys.readouterr().out.strip()
    prefix = plain.split("_")[1]
    engine = create_engine_for_url(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with Session(engine) as session:
        assert find_api_key(session, plain).rate_per_minute == 20
    assert main(["api-key", ini, "initrode", "--key", prefix, "--rate", "7"]) == 0
    assert "7 requests a minute (its own)" in capsys.readouterr().out
    assert main(["api-key", ini, "initrode", "--key", prefix, "--rate", "0"]) == 0
    assert "(the service's default)" in capsys.readouterr().out
    with Session(engine) as session:
        assert find_api_key(session, plain).rate_per_minute is None
    assert main(["api-key", ini, "initrode", "--key", prefix, "--rate", "-3"]) != 0
    assert "from 1 to 1,000,000" in capsys.readouterr().err
    assert main(["api-key", ini, "initrode", "--key", "00000000", "--rate", "3"]) != 0
    assert "has no API key 00000000" in capsys.readouterr().err
    engine.dispose()
