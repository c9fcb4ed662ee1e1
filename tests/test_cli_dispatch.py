"""``approvalrules dispatch`` reports like a cron job should (issue 15, defect 10).

A human summary, one line per failed delivery with its reason (event id, channel, recipient,
error), and a non-zero exit when any delivery failed.  Before: a Python dict repr and exit 0.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from approvalrules.cli import main
from approvalrules.store import migrate
from approvalrules.store.db import create_engine_for_url
from approvalrules.store.importer import load_folder
from approvalrules.store.models import OutboxEvent
from approvalrules.store.services import resolve_tenant
from approvalrules.workflow import actions

ROOT = Path(__file__).resolve().parent.parent


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the probe is closed


def _ini(tmp_path: Path, url: str, smtp_port: int) -> str:
    ini = tmp_path / "dispatch.ini"
    ini.write_text(
        "[app:main]\nuse = egg:approvalrules\n"
        f"sqlalchemy.url = {url}\n"
        "approvalrules.smtp_host = 127.0.0.1\n"
        f"approvalrules.smtp_port = {smtp_port}\n"
        "approvalrules.smtp_timeout = 2\n"
        "approvalrules.webhook_timeout = 2\n"
    )
    return str(ini)


@pytest.fixture
def queued(tmp_path):
    """A database with rules/ loaded, tenant demo's webhook pointing nowhere, and one
    submitted order's events queued; returns the database URL."""
    url = f"sqlite:///{tmp_path / 'dispatch.sqlite'}"
    engine = create_engine_for_url(url)
    migrate.upgrade(engine)
    with Session(engine) as session, session.begin():
        load_folder(session, ROOT / "rules")
        demo = resolve_tenant(session, "demo")
        demo.settings = {
            **(demo.settings or {}),
            "webhook": {
                "url": f"http://127.0.0.1:{_closed_port()}/hooks?token=hush",
                "secret": "s",
            },
        }
        actions.submit(session, demo, {"id": "cli-1", "buyer": "bob", "total": 200})
    engine.dispose()
    return url


def test_failed_deliveries_are_listed_with_reasons_and_exit_non_zero(tmp_path, queued, capsys):
    engine = create_engine_for_url(queued)
    with Session(engine) as session:
        queued_ids = {str(e.event_id) for e in session.scalars(select(OutboxEvent))}
    engine.dispose()
    assert queued_ids

    status = main(["dispatch", _ini(tmp_path, queued, _closed_port())])

    out, err = capsys.readouterr()
    assert status == 1
    assert "{" not in out, "a summary for people, not a Python dict"
    assert re.fullmatch(
        r"dispatch: 0 events delivered \(0 e-mails, 0 webhooks\), \d+ failed\n", out
    ), out
    failed = int(re.search(r"(\d+) failed", out).group(1))
    lines = err.splitlines()
    assert failed == len(queued_ids) == len(lines)
    for line in lines:
        event_id = re.match(r"failed: event (\S+) \(\w+\) (email|webhook) to ", line)
        assert event_id and event_id.group(1) in queued_ids, line
        assert "ConnectionRefusedError" in line and "retry at" in line, line
    assert any(" email to " in line and "@" in line for line in lines)
    assert "token=hush" not in err, "a webhook URL's query (a token, perhaps) is not shown"


def test_nothing_failed_exits_zero(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    engine = create_engine_for_url(url)
    migrate.upgrade(engine)
    engine.dispose()

    status = main(["dispatch", _ini(tmp_path, url, _closed_port())])

    out, err = capsys.readouterr()
    assert status == 0
    assert out == "dispatch: 0 events delivered (0 e-mails, 0 webhooks), 0 failed\n"
    assert err == ""
