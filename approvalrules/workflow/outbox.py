"""Deliver outbox events: e-mail over SMTP and signed webhooks, at least once.

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
import smtplib
import string
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from importlib import resources
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..store.models import OutboxEvent, Tenant

MAX_ATTEMPTS = 10
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)


@dataclass(frozen=True)
class MailSettings:
    host: str = "127.0.0.1"
    port: int = 25
    sender: str = "approvals@approvalrules.invalid"
    timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> MailSettings:
        return cls(
            host=settings.get("approvalrules.smtp_host", cls.host),
            port=int(settings.get("approvalrules.smtp_port", cls.port)),
            sender=settings.get("approvalrules.mail_from", cls.sender),
            timeout=float(settings.get("approvalrules.smtp_timeout", cls.timeout)),
        )


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


def _send_emails(tenant: Tenant, event: OutboxEvent, mail: MailSettings) -> int:
    recipients = [
        r for r in event.recipients or () if r.get("channel") == "email" and r.get("email")
    ]
    if not recipients:
        return 0
    with smtplib.SMTP(mail.host, mail.port, timeout=mail.timeout) as smtp:
        for recipient in recipients:
            subject, body = render_email(tenant, event, recipient)
            message = EmailMessage()
            message["From"] = mail.sender
            message["To"] = recipient["email"]
            message["Subject"] = subject
            message["Message-ID"] = f"<{event.event_id}.{recipient['account']}@approvalrules>"
            message["X-Approvalrules-Event"] = event.event_type
            message.set_content(body)
            smtp.send_message(message)
    return len(recipients)


def _post_webhook(tenant: Tenant, event: OutboxEvent, timeout: float) -> bool:
    hook = (tenant.settings or {}).get("webhook") or {}
    url = hook.get("url")
    if not url:
        return False
    body = json.dumps(
        {
            "id": str(event.event_id),
            "type": event.event_type,
            "tenant": tenant.slug,
            "created_at": event.created_at.isoformat(),
            "data": event.payload,
        },
        sort_keys=True,
    ).encode()
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
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (the tenant's own configured URL)
        if response.status >= 300:
            raise urllib.error.HTTPError(
                url, response.status, "webhook receiver refused", response.headers, None
            )
    return True


def backoff(attempts: int) -> timedelta:
    return min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_CAP)


def dispatch(
    session: Session, settings: Mapping[str, Any], *, now: datetime | None = None, limit: int = 100
) -> dict[str, int]:
    """Deliver due events; returns counts (delivered, failed).

    Run it from cron on as many hosts as you like.
    """
    now = now or datetime.now(UTC)
    mail = MailSettings.from_settings(settings)
    timeout = float(settings.get("approvalrules.webhook_timeout", 5))
    due = session.scalars(
        select(OutboxEvent)
        .where(
            OutboxEvent.delivered_at.is_(None),
            OutboxEvent.next_attempt_at.is_not(None),
            OutboxEvent.next_attempt_at <= now,
        )
        .order_by(OutboxEvent.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    counts = {"delivered": 0, "failed": 0, "emails": 0, "webhooks": 0}
    tenants: dict[int, Tenant] = {}
    for event in due:
        tenant = tenants.get(event.tenant_id) or tenants.setdefault(
            event.tenant_id, session.get(Tenant, event.tenant_id)
        )
        event.attempts += 1
        try:
            counts["emails"] += _send_emails(tenant, event, mail)
            counts["webhooks"] += _post_webhook(tenant, event, timeout)
        except (OSError, smtplib.SMTPException, urllib.error.URLError) as exc:
            event.last_error = f"{type(exc).__name__}: {exc}"[:1000]
            event.next_attempt_at = (
                now + backoff(event.attempts) if event.attempts < MAX_ATTEMPTS else None
            )
            counts["failed"] += 1
        else:
            event.delivered_at = now
            event.last_error = None
            counts["delivered"] += 1
        session.flush()
    return counts
