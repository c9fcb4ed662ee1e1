"""Production mail: STARTTLS or implicit TLS with a verified certificate, a login whose
password comes from the environment or a file (never the .ini), no plain-text fallback,
and no password in any message or log record.

A real SMTP server (aiosmtpd) on 127.0.0.1 with a self-signed certificate made by
``openssl`` for the test.
"""

from __future__ import annotations

import base64
import logging
import shutil
import socket
import ssl
import subprocess
import threading
from email import message_from_bytes
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
from approvalrules.workflow import actions, outbox
from approvalrules.workflow.outbox import MailConfigurationError, MailSettings

ROOT = Path(__file__).resolve().parent.parent
USER = "approvals@shop.test"
PASSWORD = "s3cret-Pa55-for-the-test"  # noqa: S105 (a test server's)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificate for the test SMTP server")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class Mailbox:
    """What the server received, and every login it was offered."""

    def __init__(self):
        self.messages = []
        self.logins: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def authenticator(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((mechanism, login, password))
        # handled=False: the server answers a refusal itself (535)
        return AuthResult(success=login == USER and password == PASSWORD, handled=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _server_context(certificate) -> ssl.SSLContext:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
def smtp_server(certificate):
    """``smtp_server(mode, exclude=())``: a running server; mode ``starttls`` (offers
    STARTTLS, AUTH only after it), ``tls`` (implicit TLS) or ``plain`` (no TLS at all)."""
    from aiosmtpd.controller import Controller

    started = []

    def start(mode: str, exclude: tuple[str, ...] = ()):
        mailbox = Mailbox()
        options = {
            "authenticator": mailbox.authenticator,
            "auth_exclude_mechanism": list(exclude),
        }
        if mode == "starttls":
            options["tls_context"] = _server_context(certificate)
        elif mode == "tls":
            options["ssl_context"] = _server_context(certificate)
            options["auth_require_tls"] = False  # the whole connection is TLS
        controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), **options)
        controller.start()
        started.append(controller)
        return mailbox, controller.port

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture
def queued(tmp_path):
    """rules/ loaded (no webhook), one order submitted: its e-mails wait in the outbox."""
    url = f"sqlite:///{tmp_path / 'mail.sqlite'}"
    engine = create_engine_for_url(url)
    migrate.upgrade(engine)
    with Session(engine) as session, session.begin():
        load_folder(session, ROOT / "rules")
        actions.submit(
            session, resolve_tenant(session, "demo"), {"id": "TLS-1", "buyer": "bob", "total": 800}
        )
    yield url, engine
    engine.dispose()


def _ini(tmp_path, url, port, *lines) -> str:
    ini = tmp_path / "mail.ini"
    ini.write_text(
        "[app:main]\nuse = egg:approvalrules\n"
        f"sqlalchemy.url = {url}\n"
        "approvalrules.smtp_host = 127.0.0.1\n"
        f"approvalrules.smtp_port = {port}\n"
        "approvalrules.smtp_timeout = 5\n" + "".join(f"{line}\n" for line in lines)
    )
    return str(ini)


def _errors(engine) -> list[str]:
    with Session(engine) as session:
        return [e.last_error for e in session.scalars(select(OutboxEvent)) if e.last_error]


def _no_password_in(caplog, capsys_text: str = "") -> None:
    encoded = base64.b64encode(PASSWORD.encode()).decode()
    for record in caplog.records:
        text = record.getMessage()
        assert PASSWORD not in text, record.name
        if record.name.startswith("approvalrules"):
            assert encoded not in text
    assert PASSWORD not in capsys_text


def test_starttls_and_auth_login_with_the_password_from_the_environment(
    tmp_path, queued, smtp_server, certificate, monkeypatch, capsys, caplog
):
    url, engine = queued
    mailbox, port = smtp_server("starttls", exclude=("PLAIN",))
    monkeypatch.setenv("SHOP_SMTP_PASSWORD", PASSWORD)
    ini = _ini(
        tmp_path,
        url,
        port,
        "approvalrules.smtp_security = starttls",
        f"approvalrules.smtp_user = {USER}",
        "approvalrules.smtp_password_env = SHOP_SMTP_PASSWORD",
        f"approvalrules.smtp_ca_file = {certificate[0]}",
    )
    with caplog.at_level(logging.DEBUG):
        assert main(["dispatch", ini]) == 0
    out = capsys.readouterr()
    assert "0 failed" in out.out
    assert {m["To"] for m in mailbox.messages} >= {"bob@acme.test"}
    assert {m["Message-ID"].split(".")[0] for m in mailbox.messages}  # delivered, with ids
    assert mailbox.logins and all(login == ("LOGIN", USER, PASSWORD) for login in mailbox.logins)
    _no_password_in(caplog, out.out + out.err)


def test_starttls_and_auth_plain_with_the_password_from_a_file(
    tmp_path, queued, smtp_server, certificate, monkeypatch, caplog
):
    url, engine = queued
    mailbox, port = smtp_server("starttls", exclude=("LOGIN",))
    secret = tmp_path / "smtp-password"
    secret.write_text(f"  {PASSWORD}\n")  # a file's spaces and newline are not the password
    monkeypatch.setenv("APPROVALRULES_SMTP_PASSWORD", "not-this-one")
    settings = {
        "approvalrules.smtp_host": "127.0.0.1",
        "approvalrules.smtp_port": str(port),
        "approvalrules.smtp_security": "starttls",
        "approvalrules.smtp_user": USER,
        "approvalrules.smtp_password_file": str(secret),
        "approvalrules.smtp_ca_file": str(certificate[0]),
    }
    with caplog.at_level(logging.DEBUG), Session(engine) as session, session.begin():
        report = outbox.dispatch(session, settings)
    assert report.failed == 0 and report.emails >= 2
    assert report.mail_where == f"SMTP 127.0.0.1:{port} (STARTTLS, user {USER})"
    assert mailbox.logins and all(login == ("PLAIN", USER, PASSWORD) for login in mailbox.logins)
    _no_password_in(caplog)


def test_implicit_tls(tmp_path, queued, smtp_server, certificate, monkeypatch, caplog):
    url, engine = queued
    mailbox, port = smtp_server("tls")
    monkeypatch.setenv("APPROVALRULES_SMTP_PASSWORD", PASSWORD)
    ini = _ini(
        tmp_path,
        url,
        port,
        "approvalrules.smtp_security = tls",
        f"approvalrules.smtp_user = {USER}",
        f"approvalrules.smtp_ca_file = {certificate[0]}",
    )
    with caplog.at_level(logging.DEBUG):
        assert main(["dispatch", ini]) == 0
    assert {m["To"] for m in mailbox.messages} >= {"bob@acme.test"}
    assert mailbox.logins and mailbox.logins[0][1:] == (USER, PASSWORD)
    _no_password_in(caplog)


def test_a_wrong_password_is_a_clear_failure_on_the_event(
    tmp_path, queued, smtp_server, certificate, monkeypatch, capsys, caplog
):
    url, engine = queued
    mailbox, port = smtp_server("starttls")
    wrong = "wrong-Pa55word-xyz"
    monkeypatch.setenv("APPROVALRULES_SMTP_PASSWORD", wrong)
    ini = _ini(
        tmp_path,
        url,
        port,
        "approvalrules.smtp_security = starttls",
        f"approvalrules.smtp_user = {USER}",
        f"approvalrules.smtp_ca_file = {certificate[0]}",
    )
    with caplog.at_level(logging.DEBUG):
        assert main(["dispatch", ini]) == 1  # failed deliveries: cron notices
    out = capsys.readouterr()
    assert mailbox.messages == []
    errors = _errors(engine)
    assert errors
    for error in errors:
        assert f"refused the login of {USER}" in error
        assert "535" in error
        assert "APPROVALRULES_SMTP_PASSWORD" in error
        assert wrong not in error
    assert "refused the login" in out.err and "retry at" in out.err
    assert wrong not in out.out + out.err
    assert all(wrong not in r.getMessage() for r in caplog.records)


def test_a_server_without_starttls_is_refused_when_starttls_is_required(
    tmp_path, queued, smtp_server, monkeypatch, capsys
):
    url, engine = queued
    mailbox, port = smtp_server("plain")
    monkeypatch.setenv("APPROVALRULES_SMTP_PASSWORD", PASSWORD)
    ini = _ini(
        tmp_path,
        url,
        port,
        "approvalrules.smtp_security = starttls",
        f"approvalrules.smtp_user = {USER}",
    )
    assert main(["dispatch", ini]) == 1
    assert mailbox.messages == [] and mailbox.logins == []
    errors = _errors(engine)
    assert errors and all("does not offer STARTTLS" in e for e in errors)
    assert all("nothing was sent in plain text" in e for e in errors)


def test_the_certificate_is_verified_by_default(tmp_path, queued, smtp_server, monkeypatch):
    url, engine = queued
    mailbox, port = smtp_server("starttls")
    monkeypatch.setenv("APPROVALRULES_SMTP_PASSWORD", PASSWORD)
    ini = _ini(
        tmp_path,
        url,
        port,
        "approvalrules.smtp_security = starttls",
        f"approvalrules.smtp_user = {USER}",
    )
    assert main(["dispatch", ini]) == 1
    assert mailbox.messages == [] and mailbox.logins == []
    assert all("CERTIFICATE_VERIFY_FAILED" in e for e in _errors(engine))


def test_a_missing_password_stops_the_run_before_any_attempt(tmp_path, queued, monkeypatch, capsys):
    url, engine = queued
    monkeypatch.delenv("APPROVALRULES_SMTP_PASSWORD", raising=False)
    ini = _ini(
        tmp_path,
        url,
        1,
        "approvalrules.smtp_security = starttls",
        f"approvalrules.smtp_user = {USER}",
    )
    assert main(["dispatch", ini]) == 2
    err = capsys.readouterr().err
    assert "the environment variable APPROVALRULES_SMTP_PASSWORD is empty or unset" in err
    with Session(engine) as session:
        assert all(e.attempts == 0 for e in session.scalars(select(OutboxEvent)))
    missing = tmp_path / "nowhere"
    with pytest.raises(MailConfigurationError, match="smtp_password_file = .*cannot read it"):
        MailSettings.from_settings(
            {"approvalrules.smtp_user": USER, "approvalrules.smtp_password_file": str(missing)}
        ).password()


def test_settings_show_security_and_user_and_refuse_what_cannot_be_safe(monkeypatch):
    monkeypatch.setenv("APPROVALRULES_SMTP_PASSWORD", PASSWORD)
    mail = MailSettings.from_settings(
        {
            "approvalrules.smtp_host": "smtp.example.com",
            "approvalrules.smtp_security": "tls",
            "approvalrules.smtp_user": USER,
        }
    )
    assert mail.port == 465
    assert mail.where() == f"SMTP smtp.example.com:465 (TLS, user {USER})"
    assert PASSWORD not in repr(mail) + mail.where()
    assert mail.password() == PASSWORD
    starttls = MailSettings.from_settings({"approvalrules.smtp_security": "starttls"})
    assert starttls.port == 587 and starttls.where() == "SMTP 127.0.0.1:587 (STARTTLS)"
    with pytest.raises(ValueError, match="use one of none, starttls, tls"):
        MailSettings.from_settings({"approvalrules.smtp_security": "ssl3"})
    with pytest.raises(ValueError, match="in plain text; set approvalrules.smtp_security"):
        MailSettings.from_settings(
            {"approvalrules.smtp_host": "smtp.example.com", "approvalrules.smtp_user": USER}
        )
    with pytest.raises(MailConfigurationError, match="smtp_ca_file = /nowhere/ca.pem"):
        MailSettings.from_settings(
            {"approvalrules.smtp_security": "tls", "approvalrules.smtp_ca_file": "/nowhere/ca.pem"}
        ).tls_context()


def test_a_login_the_server_does_not_offer_says_so(tmp_path, queued, smtp_server, monkeypatch):
    url, engine = queued
    mailbox, port = smtp_server("plain")  # AUTH only over TLS: not offered here
    monkeypatch.setenv("APPROVALRULES_SMTP_PASSWORD", PASSWORD)
    ini = _ini(tmp_path, url, port, f"approvalrules.smtp_user = {USER}")  # loopback: allowed
    assert main(["dispatch", ini]) == 1
    assert mailbox.messages == []
    errors = _errors(engine)
    assert errors and all(
        "offers no login (AUTH) on this connection; many offer it only after STARTTLS" in e
        for e in errors
    )
