"""Deliver outbox events: e-mail (over SMTP; to files or the console in development) and signed
webhooks, at least once.

Each due event is claimed with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL; SQLite
has one writer anyway), delivered, and marked delivered in the same
transaction.  A failure keeps the event and schedules a retry with
exponential backoff; a dispatcher killed mid-delivery leaves the row
unmarked, so the next run delivers it again -- receivers de-duplicate by the
event id (the ``X-Approvalrules-Event-Id`` header; the e-mail's Message-ID).

Webhook signature: ``X-Approvalrules-Signature: sha256=<hex>``, the
HMAC-SHA256 of the raw body with the tenant's webhook secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import smtplib
import ssl
import string
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import observability
from ..errors import ApprovalRulesError, NotFound
from ..store.models import OutboxEvent, Tenant
from ..store.services import audit

MAX_ATTEMPTS = 10
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)


#: how e-mail leaves: an SMTP server (production), or, in development, files or the console
MAIL_TRANSPORTS = ("smtp", "file", "console")
#: how the SMTP connection is protected: not at all, upgraded with STARTTLS, or TLS from the
#: first byte (implicit TLS, "SMTPS")
SMTP_SECURITY = ("none", "starttls", "tls")
#: the port each ``smtp_security`` uses when ``smtp_port`` is not set
SMTP_DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
#: the environment variable holding the SMTP password unless ``smtp_password_env`` names another
SMTP_PASSWORD_ENV = "APPROVALRULES_SMTP_PASSWORD"
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


class MailConfigurationError(ApprovalRulesError):
    """The mail settings cannot work (a password that cannot be found, a CA file that cannot
    be read): nothing is attempted, so no event spends a delivery attempt on it."""

    def __init__(self, message: str):
        super().__init__("mail_configuration", message)


class SmtpLoginRefused(smtplib.SMTPException):
    """The SMTP server refused the user and password (the password is never in the text)."""


class StartTlsUnavailable(smtplib.SMTPException):
    """``smtp_security = starttls`` and the server does not offer STARTTLS: nothing is sent
    in plain text."""


@dataclass(frozen=True)
class MailSettings:
    """Where e-mail goes (``approvalrules.mail_transport``, default ``smtp``).

    ``smtp`` sends through ``smtp_host``:``smtp_port``, protected as ``smtp_security`` says
    (``none``, ``starttls`` or ``tls``; the server's certificate is verified against the
    system's CAs, or ``smtp_ca_file``), logging in as ``smtp_user`` when set.  The password is
    never a setting: it is read, at each dispatch, from the file ``smtp_password_file`` or
    from the environment variable ``smtp_password_env`` (default
    ``APPROVALRULES_SMTP_PASSWORD``).  ``file`` writes each message as an ``.eml`` file into
    ``mail_dir`` (development.ini: ``var/mail/``), ``console`` prints it on standard output:
    a development machine needs no mail server, and every notification can still be read.
    """

    host: str = "127.0.0.1"
    port: int = 25
    sender: str = "approvals@approvalrules.invalid"
    timeout: float = 10.0
    transport: str = "smtp"
    directory: str = "var/mail"
    security: str = "none"
    user: str | None = None
    password_env: str = SMTP_PASSWORD_ENV
    password_file: str | None = None
    ca_file: str | None = None

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> MailSettings:
        transport = settings.get("approvalrules.mail_transport", cls.transport).strip()
        if transport not in MAIL_TRANSPORTS:
            raise ValueError(
                f"approvalrules.mail_transport is {transport!r}; use one of "
                + ", ".join(MAIL_TRANSPORTS)
            )
        security = (settings.get("approvalrules.smtp_security") or cls.security).strip().lower()
        if security not in SMTP_SECURITY:
            raise ValueError(
                f"approvalrules.smtp_security is {security!r}; use one of "
                + ", ".join(SMTP_SECURITY)
                + " (starttls: port 587, tls: implicit TLS on port 465)"
            )
        host = settings.get("approvalrules.smtp_host", cls.host)
        user = (settings.get("approvalrules.smtp_user") or "").strip() or None
        if user and security == "none" and host not in _LOOPBACK:
            raise ValueError(
                f"approvalrules.smtp_user is set and approvalrules.smtp_security is none: the "
                f"password would cross the network to {host} in plain text; set "
                "approvalrules.smtp_security = starttls (port 587) or tls (port 465)"
            )
        port = settings.get("approvalrules.smtp_port")
        return cls(
            host=host,
            port=int(port) if port not in (None, "") else SMTP_DEFAULT_PORTS[security],
            sender=settings.get("approvalrules.mail_from", cls.sender),
            timeout=float(settings.get("approvalrules.smtp_timeout", cls.timeout)),
            transport=transport,
            directory=settings.get("approvalrules.mail_dir", cls.directory),
            security=security,
            user=user,
            password_env=(settings.get("approvalrules.smtp_password_env") or "").strip()
            or SMTP_PASSWORD_ENV,
            password_file=(settings.get("approvalrules.smtp_password_file") or "").strip() or None,
            ca_file=(settings.get("approvalrules.smtp_ca_file") or "").strip() or None,
        )

    def where(self) -> str:
        """Where e-mail goes, for people: ``SMTP 127.0.0.1:25``, ``files in var/mail``,
        ``SMTP smtp.example.com:587 (STARTTLS, user approvals)``; never the password."""
        if self.transport == "file":
            return f"files in {self.directory}"
        if self.transport == "console":
            return "the console"
        details = []
        if self.security != "none":
            details.append("STARTTLS" if self.security == "starttls" else "TLS")
        if self.user:
            details.append(f"user {self.user}")
        suffix = f" ({', '.join(details)})" if details else ""
        return f"SMTP {self.host}:{self.port}{suffix}"

    def password(self) -> str | None:
        """The SMTP password (None without ``smtp_user``): the file's content stripped, or the
        environment variable's value.  Raises :class:`MailConfigurationError` naming where it
        looked (never showing what it found)."""
        if self.transport != "smtp" or not self.user:
            return None
        if self.password_file:
            try:
                secret = Path(self.password_file).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise MailConfigurationError(
                    f"approvalrules.smtp_password_file = {self.password_file}: cannot read it "
                    f"({reason}); the SMTP password of {self.user} is read from there"
                ) from None
            if not secret:
                raise MailConfigurationError(
                    f"approvalrules.smtp_password_file = {self.password_file} is empty; put the "
                    f"SMTP password of {self.user} in it"
                )
            return secret
        secret = os.environ.get(self.password_env, "")
        if not secret:
            raise MailConfigurationError(
                f"approvalrules.smtp_user is {self.user} but the environment variable "
                f"{self.password_env} is empty or unset; set it to the SMTP password (or name "
                "a file holding it in approvalrules.smtp_password_file)"
            )
        return secret

    def tls_context(self) -> ssl.SSLContext | None:
        """The client's TLS context: certificates and host names verified, against the
        system's CAs or ``smtp_ca_file`` (a private CA); None for ``smtp_security = none``."""
        if self.transport != "smtp" or self.security == "none":
            return None
        try:
            return ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise MailConfigurationError(
                f"approvalrules.smtp_ca_file = {self.ca_file}: not a readable PEM file of CA "
                f"certificates ({reason})"
            ) from None


@dataclass(frozen=True)
class DeliveryFailure:
    """One event that could not be delivered: where it was going and why."""

    event_id: str
    event_type: str
    channel: str  # "email" or "webhook"
    recipient: str  # the e-mail address, or the webhook URL without its query
    error: str
    next_attempt_at: datetime | None  # None: given up after MAX_ATTEMPTS

    def describe(self) -> str:
        """One line for an operator: which event, to whom, what went wrong, what happens next."""
        retry = (
            f"retry at {self.next_attempt_at.isoformat(timespec='seconds')}"
            if self.next_attempt_at
            else f"given up after {MAX_ATTEMPTS} attempts"
        )
        return (
            f"event {self.event_id} ({self.event_type}) {self.channel} to {self.recipient}: "
            f"{self.error}; {retry}"
        )


@dataclass
class DispatchReport:
    """What one dispatch run did.  ``report["failed"]`` reads a count by name, as callers of
    the earlier dict did."""

    delivered: int = 0
    failed: int = 0
    emails: int = 0
    webhooks: int = 0
    failures: list[DeliveryFailure] = field(default_factory=list)
    #: where e-mail went (``MailSettings.where``), e.g. ``files in var/mail``
    mail_where: str = ""

    def __getitem__(self, name: str) -> int:
        if name not in ("delivered", "failed", "emails", "webhooks"):
            raise KeyError(name)
        return getattr(self, name)

    def summary(self) -> str:
        """``dispatch: 1 event delivered (1 e-mail, 0 webhooks), 32 failed``."""
        return (
            f"dispatch: {_plural(self.delivered, 'event')} delivered "
            f"({_plural(self.emails, 'e-mail')}, {_plural(self.webhooks, 'webhook')}), "
            f"{self.failed} failed"
        )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


class _DeliveryError(Exception):
    """A delivery that failed, with the channel and recipient it was for."""

    def __init__(self, channel: str, recipient: str, cause: BaseException):
        if isinstance(cause, urllib.error.URLError) and isinstance(cause.reason, BaseException):
            cause = cause.reason  # "ConnectionRefusedError: ..." rather than "<urlopen error>"
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.channel = channel
        self.recipient = recipient


def _without_query(url: str) -> str:
    # a receiver's URL may carry a token in its query; reports and logs never show it
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def sign(secret: str, body: bytes) -> str:
    """The webhook signature header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _template(tenant: Tenant, event_type: str) -> tuple[str, str]:
    override = ((tenant.settings or {}).get("email_templates") or {}).get(event_type)
    if override:
        return override.get("subject", event_type), override.get("body", "")
    text = (
        resources.files("approvalrules.templates")
        .joinpath("email", f"{event_type}.txt")
        .read_text("utf-8")
    )
    subject, _, body = text.partition("\n\n")
    return subject.removeprefix("Subject: ").strip(), body


def render_email(
    tenant: Tenant, event: OutboxEvent, recipient: Mapping[str, Any]
) -> tuple[str, str]:
    """Subject and body of one event's e-mail.

    ``$names`` are substituted, unknown ones left as they are.
    """
    subject, body = _template(tenant, event.event_type)
    order = event.payload.get("order", {})
    values = {
        "tenant": tenant.name,
        "order_id": order.get("id", ""),
        "total": order.get("total", ""),
        "currency": order.get("currency", ""),
        "status": order.get("status", ""),
        "recipient": recipient.get("account", ""),
        "comment": event.payload.get("comment") or "",
        "step": event.payload.get("step", ""),
        "reason": event.payload.get("reason", ""),
    }
    return string.Template(subject).safe_substitute(values), string.Template(body).safe_substitute(
        values
    )


def _smtp_connection(
    mail: MailSettings, password: str | None, context: ssl.SSLContext | None
) -> smtplib.SMTP:
    """An open SMTP connection, protected as ``mail.security`` says and logged in when
    ``mail.user`` is set.  STARTTLS required but not offered is refused, never a fallback to
    plain text; a refused login is :class:`SmtpLoginRefused`, without the password."""
    where = f"{mail.host}:{mail.port}"
    if mail.security == "tls":
        smtp = smtplib.SMTP_SSL(mail.host, mail.port, timeout=mail.timeout, context=context)
    else:
        smtp = smtplib.SMTP(mail.host, mail.port, timeout=mail.timeout)
    try:
        if mail.security == "starttls":
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise StartTlsUnavailable(
                    f"the SMTP server at {where} does not offer STARTTLS, which "
                    "approvalrules.smtp_security = starttls requires; nothing was sent in plain "
                    "text (use tls if the server speaks TLS from the start, e.g. on port 465)"
                )
            smtp.starttls(context=context)
            smtp.ehlo()
        if mail.user:
            smtp.ehlo_or_helo_if_needed()
            if not smtp.has_extn("auth"):
                raise SmtpLoginRefused(
                    f"the SMTP server at {where} offers no login (AUTH) on this connection"
                    + (
                        "; many offer it only after STARTTLS: set approvalrules.smtp_security"
                        if mail.security == "none"
                        else ""
                    )
                )
            try:
                smtp.login(mail.user, password or "")
            except smtplib.SMTPAuthenticationError as exc:
                reply = exc.smtp_error
                if isinstance(reply, bytes):
                    reply = reply.decode("utf-8", "replace")
                raise SmtpLoginRefused(
                    f"the SMTP server at {where} refused the login of {mail.user} "
                    f"({exc.smtp_code} {reply}); check approvalrules.smtp_user and the password "
                    + (
                        f"in {mail.password_file}"
                        if mail.password_file
                        else f"in the environment variable {mail.password_env}"
                    )
                ) from None
    except BaseException:
        smtp.close()
        raise
    return smtp


def _send_emails(
    tenant: Tenant,
    event: OutboxEvent,
    mail: MailSettings,
    password: str | None = None,
    context: ssl.SSLContext | None = None,
) -> int:
    recipients = [
        r for r in event.recipients or () if r.get("channel") == "email" and r.get("email")
    ]
    if not recipients:
        return 0
    messages = [_email(tenant, event, recipient, mail) for recipient in recipients]
    current = ", ".join(r["email"] for r in recipients)  # until the connection is open
    try:
        if mail.transport == "file":
            _write_emails(messages, Path(mail.directory))
        elif mail.transport == "console":
            for message in messages:
                print(f"----- e-mail {message['Message-ID']}\n{message}", flush=True)
        else:
            with _smtp_connection(mail, password, context) as smtp:
                for message in messages:
                    current = message["To"]
                    smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise _DeliveryError("email", current, exc) from exc
    return len(recipients)


def _email(
    tenant: Tenant, event: OutboxEvent, recipient: Mapping[str, Any], mail: MailSettings
) -> EmailMessage:
    subject, body = render_email(tenant, event, recipient)
    message = EmailMessage()
    message["From"] = mail.sender
    message["To"] = recipient["email"]
    message["Subject"] = subject
    message["Message-ID"] = f"<{event.event_id}.{recipient['account']}@approvalrules>"
    message["X-Approvalrules-Event"] = event.event_type
    message.set_content(body)
    return message


def _write_emails(messages: list[EmailMessage], directory: Path) -> None:
    """Each message as ``<event id>.<account>.eml``: delivered again (at least once), it
    replaces its file rather than adding a copy."""
    directory.mkdir(parents=True, exist_ok=True)
    for message in messages:
        name = message["Message-ID"].strip("<>").removesuffix("@approvalrules")
        safe = "".join(c if c.isalnum() or c in "._-@" else "_" for c in name)[:200]
        (directory / f"{safe}.eml").write_bytes(bytes(message))


def webhook_body(tenant_slug: str, event: OutboxEvent) -> dict[str, Any]:
    """What a webhook delivers for ``event`` (schemas/webhook.schema.json): the same on every
    attempt, so a receiver de-duplicates by its ``id``."""
    return {
        "id": str(event.event_id),
        "type": event.event_type,
        "tenant": tenant_slug,
        "created_at": event.created_at.isoformat(),
        "data": event.payload,
    }


def _post_webhook(tenant: Tenant, event: OutboxEvent, timeout: float) -> bool:
    hook = (tenant.settings or {}).get("webhook") or {}
    url = hook.get("url")
    if not url:
        return False
    body = json.dumps(webhook_body(tenant.slug, event), sort_keys=True).encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-Approvalrules-Event": event.event_type,
            "X-Approvalrules-Event-Id": str(event.event_id),
            "X-Approvalrules-Signature": sign(hook.get("secret", ""), body),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (the tenant's own configured URL)
            if response.status >= 300:
                raise urllib.error.HTTPError(
                    url, response.status, "webhook receiver refused", response.headers, None
                )
    except (OSError, urllib.error.URLError) as exc:
        raise _DeliveryError("webhook", _without_query(url), exc) from exc
    return True


def backoff(attempts: int) -> timedelta:
    return min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_CAP)


def dispatch(
    session: Session,
    settings: Mapping[str, Any],
    *,
    now: datetime | None = None,
    limit: int = 100,
    only: Collection[int] | None = None,
) -> DispatchReport:
    """Deliver due events; returns counts (delivered, failed, ...) and each failure's reason.

    Run it from cron on as many hosts as you like.  ``only``: these events (row ids) alone,
    as a retry from the admin asks.
    """
    now = now or datetime.now(UTC)
    mail = MailSettings.from_settings(settings)
    # a missing password or CA file fails the run before any event spends an attempt on it
    password, context = mail.password(), mail.tls_context()
    timeout = float(settings.get("approvalrules.webhook_timeout", 5))
    query = select(OutboxEvent).where(
        OutboxEvent.delivered_at.is_(None),
        OutboxEvent.next_attempt_at.is_not(None),
        OutboxEvent.next_attempt_at <= now,
    )
    if only is not None:
        query = query.where(OutboxEvent.id.in_(list(only)))
    due = session.scalars(
        query.order_by(OutboxEvent.id).limit(limit).with_for_update(skip_locked=True)
    ).all()
    report = DispatchReport(mail_where=mail.where())
    tenants: dict[int, Tenant] = {}
    for event in due:
        tenant = tenants.get(event.tenant_id) or tenants.setdefault(
            event.tenant_id, session.get(Tenant, event.tenant_id)
        )
        event.attempts += 1
        try:
            report.emails += _send_emails(tenant, event, mail, password, context)
            report.webhooks += _post_webhook(tenant, event, timeout)
        except _DeliveryError as exc:
            observability.count_delivery_failure(exc.channel)
            event.last_error = f"{exc.channel} to {exc.recipient}: {exc}"[:1000]
            event.next_attempt_at = (
                now + backoff(event.attempts) if event.attempts < MAX_ATTEMPTS else None
            )
            report.failed += 1
            report.failures.append(
                DeliveryFailure(
                    event_id=str(event.event_id),
                    event_type=event.event_type,
                    channel=exc.channel,
                    recipient=exc.recipient,
                    error=str(exc),
                    next_attempt_at=event.next_attempt_at,
                )
            )
        else:
            event.delivered_at = now
            event.last_error = None
            report.delivered += 1
        session.flush()
    return report


# ------------------------------------------------------------------ the merchant's view

#: where an event stands, as the admin's outbox page filters them
EVENT_STATES = ("waiting", "failed", "delivered", "given_up")


def event_state(event: OutboxEvent) -> str:
    """``delivered``; ``given_up`` after MAX_ATTEMPTS; ``failed`` (an attempt failed, another
    is scheduled); ``waiting`` (not tried yet)."""
    if event.delivered_at is not None:
        return "delivered"
    if event.next_attempt_at is None:
        return "given_up"
    return "failed" if event.last_error else "waiting"


def events_query(tenant_id: int, state: str | None = None):
    """The tenant's outbox events, newest first, optionally in one of EVENT_STATES."""
    query = select(OutboxEvent).where(OutboxEvent.tenant_id == tenant_id)
    delivered = OutboxEvent.delivered_at.is_not(None)
    undelivered = OutboxEvent.delivered_at.is_(None)
    scheduled = OutboxEvent.next_attempt_at.is_not(None)
    if state == "delivered":
        query = query.where(delivered)
    elif state == "given_up":
        query = query.where(undelivered, OutboxEvent.next_attempt_at.is_(None))
    elif state == "failed":
        query = query.where(undelivered, scheduled, OutboxEvent.last_error.is_not(None))
    elif state == "waiting":
        query = query.where(undelivered, scheduled, OutboxEvent.last_error.is_(None))
    return query.order_by(OutboxEvent.id.desc())


def retry(
    session: Session,
    tenant: Tenant,
    event_id: int,
    actor: str,
    settings: Mapping[str, Any],
    *,
    now: datetime | None = None,
) -> DispatchReport:
    """Deliver one undelivered event of ``tenant`` now, failed or given up; audited
    (``outbox.retried``).  A failure schedules the next attempt as usual; an event already
    delivered, or another tenant's, is not found."""
    now = now or datetime.now(UTC)
    event = session.get(OutboxEvent, event_id)
    if event is None or event.tenant_id != tenant.id or event.delivered_at is not None:
        raise NotFound(
            "unknown_event",
            f"no undelivered outbox event {event_id} (a delivered event is not sent again)",
        )
    audit(
        session,
        tenant.id,
        actor,
        "outbox.retried",
        "outbox_event",
        str(event.event_id),
        {"type": event.event_type, "attempts": event.attempts, "last error": event.last_error},
    )
    event.next_attempt_at = now
    session.flush()
    return dispatch(session, settings, now=now, only=[event.id])
