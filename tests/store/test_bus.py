"""Cache invalidation over LISTEN/NOTIFY (store/bus.py), PostgreSQL only: what is sent,
when (at commit, never on rollback), and how the listener recovers from a lost connection."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from approvalrules.store import bus
from approvalrules.store.services import create_api_key, ensure_tenant, revoke_api_key


class Heard:
    """What a subscriber was told, with a wait."""

    def __init__(self):
        self.messages: list[tuple[str, int | None]] = []
        self.event = threading.Event()

    def invalidate(self, topic, tenant_id):
        self.messages.append((topic, tenant_id))
        self.event.set()

    def wait_for(self, message, timeout=5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if message in self.messages:
                return True
            self.event.wait(0.05)
            self.event.clear()
        return message in self.messages


@pytest.fixture
def listener(postgres_only, db_url):
    found = bus.Listener(db_url).start()  # its own, not the process's shared one
    heard = Heard()
    found.subscribe(heard)
    assert found.wait_healthy(10), "the listener did not connect"
    yield found, heard
    found.stop()


def test_a_revocation_and_a_tenant_bump_notify_at_commit_and_a_rollback_never(listener, db_engine):
    found, heard = listener
    with Session(db_engine) as session, session.begin():
        tenant = ensure_tenant(session, "bus-tenant", "Bus")
        key, _ = create_api_key(session, tenant)
        tenant_id, key_id = tenant.id, key.id
    assert heard.wait_for(("tenant", tenant_id))
    heard.messages.clear()
    with Session(db_engine) as session:
        with session.begin():
            revoke_api_key(session, session.get(type(key), key_id))
            session.flush()
            time.sleep(0.3)
            assert ("tenant", tenant_id) not in heard.messages  # not before the commit
        assert heard.wait_for(("tenant", tenant_id))
    heard.messages.clear()
    with Session(db_engine) as session:
        session.begin()
        tenant = session.get(type(tenant), tenant_id)
        tenant.rules_version = type(tenant).rules_version + 1
        session.flush()
        session.rollback()
    time.sleep(0.5)
    assert ("tenant", tenant_id) not in heard.messages  # a rollback tells nobody


def _terminate_listeners(db_engine) -> None:
    with db_engine.connect() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = :name AND datname = current_database()"
            ),
            {"name": bus.APPLICATION_NAME},
        )
        connection.commit()


def test_a_lost_connection_makes_the_listener_unhealthy_then_it_reconnects(listener, db_engine):
    found, heard = listener
    heard.messages.clear()
    _terminate_listeners(db_engine)
    # what may have been missed is dropped: "*" when it fell, and again when it is back
    assert heard.wait_for(("*", None))
    assert found.wait_healthy(10)
    assert heard.messages.count(("*", None)) >= 2


@pytest.mark.parametrize("stopped", [False, True], ids=["running", "stopped"])
def test_a_listener_warns_of_a_lost_connection_unless_it_was_asked_to_stop(
    postgres_only, db_url, db_engine, caplog, stopped
):
    found = bus.Listener(db_url).start()
    assert found.wait_healthy(10), "the listener did not connect"
    if stopped:
        found.stop()  # as a program does before it drops its database

    def warned():
        return [r.getMessage() for r in caplog.records if "disconnected" in r.getMessage()]

    with caplog.at_level("WARNING", logger=bus.log.name):
        _terminate_listeners(db_engine)
        if stopped:
            found._thread.join(timeout=2 * bus.PING_EVERY + 5)
            assert not found._thread.is_alive() and not found.healthy
        else:
            deadline = time.monotonic() + 10
            while not warned() and time.monotonic() < deadline:
                time.sleep(0.05)
    found.stop()
    assert bool(warned()) is not stopped, warned()


def test_every_writer_registers_the_notifying_hook_with_the_store():
    # the CLI and the jobs never import the web layer: the store itself must bring the hook
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import approvalrules.store.db\n"
        "print('approvalrules.store.bus' in sys.modules)\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert found.stdout.strip() == "True"


def test_a_connection_that_never_delivers_notifications_is_never_healthy(postgres_only, db_url):
    # what a pooler in transaction mode does: queries answer, notifications never arrive
    deaf = bus.Listener(db_url)
    deaf._handle = lambda payload: None
    deaf.start()
    try:
        deadline = time.monotonic() + 10
        while not deaf._connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert deaf._connected
        assert not deaf.wait_healthy(2 * bus.STALE_AFTER)
    finally:
        deaf.stop()
