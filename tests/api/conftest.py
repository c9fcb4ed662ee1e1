"""The storefront API end to end: a migrated database with rules/ loaded, a real SMTP
server (aiosmtpd) and a real webhook receiver on 127.0.0.1.

Session scope, once per dialect (SQLite always; PostgreSQL when
APPROVALRULES_TEST_DATABASE_URL is set).  Tests share the loaded world, so
each uses fresh order ids (``order_id`` fixture) and restores any rule-set
version it publishes.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import transaction
import webtest
from pyramid.paster import get_appsettings
from sqlalchemy.orm import Session, sessionmaker

from approvalrules.app import main
from approvalrules.store import migrate
from approvalrules.store.db import create_engine_for_url, get_tm_session
from approvalrules.store.importer import load_folder
from approvalrules.store.services import create_api_key, ensure_tenant, resolve_tenant
from approvalrules.store.testing import (
    DATABASE_ENV,
    create_postgres_database,
    drop_postgres_database,
)

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "test-webhook-secret"


class Mailbox:
    """Messages received by the test SMTP server."""

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes

        with self.lock:
            self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def to(self, address: str) -> list:
        return [m for m in self.messages if m["To"] == address]


@dataclass
class Webhooks:
    received: list = field(default_factory=list)
    fail: bool = False
    #: (headers, body) of the deliveries answered 503 while ``fail`` was set
    refused: list = field(default_factory=list)

    def events(self, order_id: str | None = None, kind: str | None = None) -> list[dict]:
        out = []
        for _headers, body in self.received:
            data = json.loads(body)
            if (order_id is None or data["data"]["order"]["id"] == order_id) and (
                kind is None or data["type"] == kind
            ):
                out.append(data)
        return out


def _webhook_server(hooks: Webhooks) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if hooks.fail:
                hooks.refused.append((dict(self.headers), body))
                self.send_response(503)
                self.end_headers()
                return
            hooks.received.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class World:
    app: object
    url: str
    engine: object
    settings: dict
    keys: dict
    mailbox: Mailbox
    webhooks: Webhooks

    def session(self) -> Session:
        return sessionmaker(bind=self.engine)()

    def run(self, job):
        """Run ``job(session)`` in its own committed transaction, as the CLI jobs do."""
        manager = transaction.TransactionManager(explicit=True)
        with manager:
            session = get_tm_session(sessionmaker(bind=self.engine), manager)
            return job(session)


TWIN_MARK = "(twin)"


def twin_folder(folder: Path) -> Path:
    """rules/ again for tenant ``twin``: the same company, account and rule-set ids,
    every account and company name marked, so a leak between tenants shows in a body."""
    import shutil

    import yaml

    shutil.copytree(ROOT / "rules", folder, dirs_exist_ok=True)
    for path in (folder / "directories").glob("*.yaml"):
        if path.is_symlink():
            path.unlink()
            continue
        data = yaml.safe_load(path.read_text())
        data.pop("tenant", None)
        for section in ("companies", "accounts"):
            for record in (data.get(section) or {}).values():
                record["name"] = f"{record.get('name', '')} {TWIN_MARK}"
                if record.get("email"):
                    record["email"] = "twin-" + record["email"]
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    (folder / "tenants.yaml").write_text("tenants:\n  twin: {name: Twin merchant}\n")
    return folder


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def world(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('api') / 'api.sqlite'}"
    else:
        base = os.environ.get(DATABASE_ENV)
        if not base:
            pytest.skip(f"PostgreSQL not configured: set {DATABASE_ENV}")
        url = create_postgres_database(base, prefix="ar_api")
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    hooks = Webhooks()
    hook_server = _webhook_server(hooks)
    engine = create_engine_for_url(url)
    try:
        migrate.upgrade(engine)
        keys = {}
        with Session(engine) as session, session.begin():
            load_folder(session, ROOT / "rules")
            load_folder(session, twin_folder(tmp_path_factory.mktemp("twin")))
            demo = resolve_tenant(session, "demo")
            demo.settings = {
                **(demo.settings or {}),
                "webhook": {
                    "url": f"http://127.0.0.1:{hook_server.server_port}/hooks",
                    "secret": WEBHOOK_SECRET,
                },
            }
            # merchant keys: the suite calls every endpoint; tests/api/test_scopes.py the others
            keys["demo"] = create_api_key(session, demo, "tests", scope="merchant")[1]
            keys["storefront"] = create_api_key(session, demo, "shop", scope="storefront")[1]
            keys["read_only"] = create_api_key(session, demo, "qa", scope="read_only")[1]
            other = ensure_tenant(session, "other", "Another merchant")
            keys["other"] = create_api_key(session, other, "tests", scope="merchant")[1]
            keys["twin"] = create_api_key(
                session, resolve_tenant(session, "twin"), "tests", scope="merchant"
            )[1]
        settings = dict(get_appsettings(str(ROOT / "testing.ini"), name="main"))
        settings.update(
            {
                "sqlalchemy.url": url,
                "approvalrules.dbengine": engine,
                "approvalrules.smtp_host": "127.0.0.1",
                "approvalrules.smtp_port": str(smtp.port),
                "approvalrules.rules_dir": str(ROOT / "rules"),
                # the suite sends thousands of requests a minute; test_limits turns it on
                "approvalrules.rate_limit_per_minute": "0",
            }
        )
        yield World(main({}, **settings), url, engine, settings, keys, mailbox, hooks)
    finally:
        smtp.stop()
        hook_server.shutdown()
        engine.dispose()
        if request.param == "postgresql":
            drop_postgres_database(url)


@pytest.fixture
def api(world):
    """The storefront API as tenant ``demo``."""
    return webtest.TestApp(
        world.app, extra_environ={"HTTP_AUTHORIZATION": f"Bearer {world.keys['demo']}"}
    )


@pytest.fixture
def other_api(world):
    """The same app as another tenant."""
    return webtest.TestApp(
        world.app, extra_environ={"HTTP_AUTHORIZATION": f"Bearer {world.keys['other']}"}
    )


@pytest.fixture
def twin_api(world):
    """Tenant ``twin``: identical ids, marked names."""
    return webtest.TestApp(
        world.app, extra_environ={"HTTP_AUTHORIZATION": f"Bearer {world.keys['twin']}"}
    )


@pytest.fixture
def order_id():
    """Fresh storefront order ids: ``order_id('bob')`` -> ``bob-1a2b3c4d``."""
    return lambda prefix="o": f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def dispatch(world):
    """Deliver the outbox now (as ``approvalrules dispatch`` would)."""
    from approvalrules.workflow import outbox

    return lambda: world.run(lambda session: outbox.dispatch(session, world.settings))


@pytest.fixture(scope="session")
def beyond(world):
    """The app as tenant ``beyond``, loaded from tests/api/beyond/ (once per database), with the
    merchant admins ``boss`` (editor) and ``peek`` (viewer).  The escalation, review and
    re-evaluation tests' own rule sets and directory, so the shared sample data of tenant ``demo``
    is never changed."""

    def setup(session):
        from approvalrules.store.services import create_admin_user

        load_folder(session, ROOT / "tests" / "api" / "beyond")
        tenant = resolve_tenant(session, "beyond")
        create_admin_user(session, tenant, "boss", "correct horse battery", role="editor")
        create_admin_user(session, tenant, "peek", "correct horse battery", role="viewer")
        return create_api_key(session, tenant, "tests", scope="merchant")[1]

    key = world.run(setup)
    return webtest.TestApp(world.app, extra_environ={"HTTP_AUTHORIZATION": f"Bearer {key}"})
