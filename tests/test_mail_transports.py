"""E-mail in development: to files (development.ini) or the console, no mail server needed;
SMTP stays the default for production."""

from __future__ import annotations

import email
from pathlib import Path

import pytest
from pyramid.paster import get_appsettings
from sqlalchemy.orm import Session

from approvalrules.cli import main
from approvalrules.store import migrate
from approvalrules.store.db import create_engine_for_url
from approvalrules.store.importer import load_folder
from approvalrules.store.services import resolve_tenant
from approvalrules.workflow import actions
from approvalrules.workflow.outbox import MailSettings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def queued(tmp_path):
    """rules/ loaded (no webhook), one order submitted: its e-mails wait in the outbox."""
    url = f"sqlite:///{tmp_path / 'mail.sqlite'}"
    engine = create_engine_for_url(url)
    migrate.upgrade(engine)
    with Session(engine) as session, session.begin():
        load_folder(session, ROOT / "rules")
        actions.submit(
            session, resolve_tenant(session, "demo"), {"id": "M-1", "buyer": "bob", "total": 800}
        )
    engine.dispose()
    return url


def _ini(tmp_path, url, *lines) -> str:
    ini = tmp_path / "mail.ini"
    ini.write_text(
        "[app:main]\nuse = egg:approvalrules\n"
        f"sqlalchemy.url = {url}\n" + "".join(f"{line}\n" for line in lines)
    )
    return str(ini)


def test_the_file_transport_writes_one_eml_per_message(tmp_path, queued, capsys):
    mail_dir = tmp_path / "mail"
    ini = _ini(
        tmp_path,
        queued,
        "approvalrules.mail_transport = file",
        f"approvalrules.mail_dir = {mail_dir}",
    )
    assert main(["dispatch", ini]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out and f"e-mail went to files in {mail_dir}" in out
    files = sorted(mail_dir.glob("*.eml"))
    assert files
    messages = [email.message_from_bytes(f.read_bytes()) for f in files]
    subjects = {m["Subject"] for m in messages}
    assert {
        "[demo] Order M-1 submitted for approval",
        "[demo] Approval requested: order M-1",
    } <= subjects
    assert {m["To"] for m in messages} >= {"bob@acme.test"}
    # nothing is due any more: a second run delivers nothing and fails nothing
    assert main(["dispatch", ini]) == 0
    assert "0 events delivered" in capsys.readouterr().out


def test_the_console_transport_prints_the_messages(tmp_path, queued, capsys):
    ini = _ini(tmp_path, queued, "approvalrules.mail_transport = console")
    assert main(["dispatch", ini]) == 0
    out = capsys.readouterr().out
    assert "To: bob@acme.test" in out and "M-1" in out and "e-mail went to the console" in out


def test_development_ini_sends_mail_to_files_and_smtp_stays_the_default():
    development = MailSettings.from_settings(get_appsettings(str(ROOT / "development.ini"), "main"))
    assert development.transport == "file"
    assert development.where() == f"files in {ROOT / 'var' / 'mail'}"
    assert MailSettings.from_settings({}).transport == "smtp"
    assert MailSettings.from_settings({}).where() == "SMTP 127.0.0.1:25"
    with pytest.raises(ValueError, match="use one of smtp, file, console"):
        MailSettings.from_settings({"approvalrules.mail_transport": "pigeon"})
