"""``request.dbsession`` is joined to pyramid_tm: committed on success, rolled back on error."""

import pytest
import webtest
from pyramid.config import Configurator
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from approvalrules.store import migrate
from approvalrules.store.db import create_engine_for_url
from approvalrules.store.models import Account, Tenant


@pytest.fixture
def app_and_engine(tmp_path):
    url = f"sqlite:///{tmp_path / 'app.sqlite'}"
    migrate.upgrade(url)
    with Configurator(settings={"sqlalchemy.url": url}) as config:
        config.include("approvalrules.store.db")

        def create(request):
            request.dbsession.add(Tenant(slug=request.matchdict["slug"], name="x"))
            if request.params.get("fail"):
                request.dbsession.flush()
                raise RuntimeError("boom")
            return {"ok": True}

        config.add_route("create", "/create/{slug}")
        config.add_view(create, route_name="create", renderer="json")
        app = config.make_wsgi_app()
    return webtest.TestApp(app), config.registry["dbengine"]


def slugs(engine):
    with Session(engine) as session:
        return session.scalars(select(Tenant.slug).order_by(Tenant.slug)).all()


def test_request_session_commits(app_and_engine):
    app, engine = app_and_engine
    app.get("/create/one")
    assert slugs(engine) == ["one"]


def test_request_session_rolls_back_on_error(app_and_engine):
    app, engine = app_and_engine
    with pytest.raises(RuntimeError):
        app.get("/create/two", params={"fail": "1"})
    assert slugs(engine) == []


def test_sqlite_enforces_foreign_keys(tmp_path):
    url = f"sqlite:///{tmp_path / 'fk.sqlite'}"
    migrate.upgrade(url)
    engine = create_engine_for_url(url)
    try:
        with Session(engine) as session:
            assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1
            session.add(Account(tenant_id=999, external_id="a", name="a"))
            with pytest.raises(IntegrityError):
                session.flush()
    finally:
        engine.dispose()
