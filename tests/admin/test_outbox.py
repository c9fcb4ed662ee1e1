"""The admin's outbox page: events, deliveries, failures with their reasons, and a retry for
owners and editors (CSRF-checked, audited)."""

from __future__ import annotations

import socket

import pytest
from sqlalchemy import select

from approvalrules.store.models import AuditEvent, OutboxEvent, Tenant

from .conftest import csrf


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def demo_events(db) -> list[OutboxEvent]:
    demo = db.scalar(select(Tenant).where(Tenant.slug == "demo"))
    return list(db.scalars(select(OutboxEvent).where(OutboxEvent.tenant_id == demo.id)))


@pytest.fixture
def mail_to(admin_app, monkeypatch, tmp_path):
    """Point the app's e-mail at files in a temporary folder, or at a closed SMTP port."""

    def point(transport):
        settings = admin_app.registry.settings
        monkeypatch.setitem(settings, "approvalrules.mail_transport", transport)
        monkeypatch.setitem(settings, "approvalrules.mail_dir", str(tmp_path / "mail"))
        monkeypatch.setitem(settings, "approvalrules.smtp_port", str(_closed_port()))
        monkeypatch.setitem(settings, "approvalrules.smtp_timeout", "2")
        return tmp_path / "mail"

    return point


def test_the_outbox_lists_the_tenants_events(viewer, db):
    events = demo_events(db)
    assert events, "the sample order PO-800 queued its e-mails"
    page = viewer.get("/admin/outbox")
    rows = page.html.select("#outbox tbody tr")
    assert len(rows) == len(events)
    text = page.html.select_one("#outbox").get_text(" ")
    assert "order submitted" in text and "PO-800" in text and "bob@acme.test" in text
    assert "waiting" in text
    assert not page.html.select("#outbox button"), "viewers do not retry"
    assert "Outbox" in [a.get_text() for a in page.html.select("nav a")]


def test_a_failed_retry_shows_its_reason_and_is_audited(editor, db, mail_to):
    mail_to("smtp")
    event = demo_events(db)[0]
    page = editor.post(
        f"/admin/outbox/{event.id}/retry", {"csrf_token": csrf(editor)}, status=303
    ).follow()
    assert "delivery failed again" in page.text and "ConnectionRefusedError" in page.text
    db.expire_all()
    event = db.get(OutboxEvent, event.id)
    assert event.attempts == 1 and event.delivered_at is None and event.last_error
    row = page.html.select_one(f"#event-{event.id}")
    assert "failed" in row.select_one(".state").get_text()
    assert "ConnectionRefusedError" in row.get_text()
    failed = editor.get("/admin/outbox?state=failed").html.select("#outbox tbody tr")
    assert [r["id"] for r in failed] == [f"event-{event.id}"]
    audit = db.scalar(select(AuditEvent).where(AuditEvent.action == "outbox.retried"))
    assert audit.actor == "admin:eddie" and audit.subject_id == str(event.event_id)


def test_a_retry_delivers_and_the_event_reads_delivered(owner, db, mail_to):
    folder = mail_to("file")
    event = demo_events(db)[0]
    page = owner.post(
        f"/admin/outbox/{event.id}/retry", {"csrf_token": csrf(owner)}, status=303
    ).follow()
    assert "Retried: delivered" in page.text
    assert list(folder.glob("*.eml"))
    db.expire_all()
    assert db.get(OutboxEvent, event.id).delivered_at is not None
    row = page.html.select_one(f"#event-{event.id}")
    assert "delivered" in row.select_one(".state").get_text() and not row.select("button")
    # delivered once: not again
    owner.post(f"/admin/outbox/{event.id}/retry", {"csrf_token": csrf(owner)}, status=404)


def test_viewers_may_not_retry(viewer, db):
    event = demo_events(db)[0]
    viewer.post(f"/admin/outbox/{event.id}/retry", {"csrf_token": csrf(viewer)}, status=403)


def test_a_retry_without_the_csrf_token_is_refused(editor, db):
    event = demo_events(db)[0]
    editor.post(f"/admin/outbox/{event.id}/retry", {}, status=400)
    db.expire_all()
    assert db.get(OutboxEvent, event.id).attempts == 0


def test_another_tenants_event_is_not_found(other, db):
    event = demo_events(db)[0]
    other.post(f"/admin/outbox/{event.id}/retry", {"csrf_token": csrf(other)}, status=404)
    assert other.get("/admin/outbox").html.select("#outbox tbody tr") == []


def test_a_retry_this_process_cannot_send_says_why_and_changes_nothing(
    editor, db, mail_to, admin_app, monkeypatch
):
    mail_to("smtp")
    settings = admin_app.registry.settings
    monkeypatch.setitem(settings, "approvalrules.smtp_user", "approvals@shop.test")
    monkeypatch.delenv("APPROVALRULES_SMTP_PASSWORD", raising=False)
    event = demo_events(db)[0]
    before = (event.attempts, event.next_attempt_at, event.last_error)
    page = editor.post(
        f"/admin/outbox/{event.id}/retry", {"csrf_token": csrf(editor)}, status=303
    ).follow()
    assert (
        "Not retried: approvalrules.smtp_user is approvals@shop.test but the environment "
        "variable APPROVALRULES_SMTP_PASSWORD is empty or unset" in page.text
    )
    db.expire_all()
    event = db.get(OutboxEvent, event.id)
    assert (event.attempts, event.next_attempt_at, event.last_error) == before
