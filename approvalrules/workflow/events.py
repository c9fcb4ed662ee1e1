"""Outbox events: what the workflow tells people and systems.

Events are written in the state change's transaction.  An event row names
its type, its recipients (account, e-mail address, channel ``email`` or
``inbox``) and a payload; the dispatcher (``approvalrules.workflow.outbox``)
delivers e-mail and webhooks later, at least once, de-duplicated by the event
id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from ..engine import Decision
from ..engine.directory import Account as DirectoryAccount
from ..engine.money import format_amount
from ..engine.notify import approver_channel, master_confirmation_recipients
from ..store.company_slice import accounts_by_id, company_directory
from ..store.db import insert_rows
from ..store.models import ApprovalRequest, Order, OutboxEvent, Tenant
from . import queries

EVENTS = (
    "order_submitted",
    "approval_requested",
    "order_approved",
    "order_confirmation",
    "master_confirmation",
    "order_rejected",
    "order_cancelled",
    "order_expired",
    "approval_reminder",
    "order_released",
    "order_held",
    "order_hold_lifted",
    "order_hold_cancelled",
    "approval_reversed",
    "approval_escalated",
    "order_edited",
)


def _recipient(account: DirectoryAccount | None, channel: str, account_id: str) -> dict[str, Any]:
    email = account.email if account is not None else None
    if channel == "email" and not (email and account.email_enabled):
        channel = "inbox"
    return {
        "account": account_id,
        "email": email if channel == "email" else None,
        "channel": channel,
    }


def _accounts(
    session: Session, tenant: Tenant, ids: Iterable[str], order: Order | None = None
) -> dict[str, DirectoryAccount]:
    """The accounts by id, from the slice of ``order``'s company (no query while it is
    current; see ``store.company_slice``), the others in one query."""
    company = ((order.decision or {}).get("buyer") or {}).get("company") if order else None
    return accounts_by_id(session, tenant, ids, company)


def event_row(
    tenant: Tenant,
    event_type: str,
    order: Order,
    recipients: list[dict],
    data: Mapping[str, Any],
) -> dict[str, Any]:
    """The outbox row of one event about ``order`` (its state now), for :func:`queue`."""
    assert event_type in EVENTS, event_type
    payload = {
        "event": event_type,
        "order": {
            "id": order.external_id,
            "status": order.status,
            "total": format_amount(order.total),
            "currency": order.currency,
            "type": order.type,
        },
        **{k: v for k, v in data.items() if v is not None},
    }
    return {
        "tenant_id": tenant.id,
        "event_type": event_type,
        "payload": payload,
        "recipients": recipients,
    }


def queue(session: Session, rows: list[dict[str, Any]]) -> None:
    """Write outbox rows (:func:`event_row`) in the current transaction, in one statement."""
    insert_rows(session, OutboxEvent, rows)


def emit(
    session: Session,
    tenant: Tenant,
    event_type: str,
    order: Order,
    recipients: list[dict],
    data: Mapping[str, Any],
) -> None:
    """Queue one event for delivery, in the current transaction."""
    queue(session, [event_row(tenant, event_type, order, recipients, data)])


def buyer_recipients(session: Session, tenant: Tenant, order: Order) -> list[dict]:
    buyer = order.decision.get("buyer", {}).get("account")
    channel = _buyer_channel(order)
    accounts = _accounts(session, tenant, [buyer], order)
    return [_recipient(accounts.get(buyer), channel, buyer)]


def _buyer_channel(order: Order) -> str:
    for note in order.decision.get("notifications", ()):
        for r in note.get("recipients", ()):
            if r.get("account") == order.decision.get("buyer", {}).get("account"):
                return r.get("channel", "email")
    return "email"


def step_recipients(
    session: Session, tenant: Tenant, request: ApprovalRequest, step_index: int
) -> list[dict]:
    """The approvers of a step, by the channel the decision chose for each (ACCEPTANCE E3)."""
    step = request.steps[step_index]
    policy = queries.version_policy(session, tenant, request.ruleset_version_id)
    buyer_allows = (request.order.decision.get("buyer") or {}).get("email_to_approvers")
    if buyer_allows is None:  # decided before the per-recipient flags: the buyer's channel
        buyer_allows = (
            policy.approval_email != "both_flags" or _buyer_channel(request.order) == "email"
        )
    accounts = _accounts(session, tenant, [a["account"] for a in step["approvers"]], request.order)
    return [
        _recipient(
            accounts.get(a["account"]),
            approver_channel(bool(a.get("email")), buyer_allows),
            a["account"],
        )
        for a in step["approvers"]
    ]


def emit_decision(
    session: Session,
    tenant: Tenant,
    order: Order,
    decision: Decision,
    request: ApprovalRequest | None,
) -> None:
    """The notifications a fresh decision asks for (``Decision.notifications``)."""
    ids = {r.account for n in decision.notifications for r in n.recipients if r.account}
    accounts = accounts_by_id(session, tenant, ids, decision.buyer.get("company"))
    rows = []
    for note in decision.notifications:
        recipients = [
            _recipient(accounts.get(r.account), r.channel, r.account)
            for r in note.recipients
            if r.account
        ]
        data = (
            {"step": decision.steps[0].name}
            if note.event == "approval_requested" and decision.steps
            else {}
        )
        if request is not None:
            data["approval_request"] = request.id
        rows.append(event_row(tenant, note.event, order, recipients, data))
    if decision.outcome == "approved":
        # the storefront learns by webhook that the order may go to fulfilment
        rows.append(event_row(tenant, "order_approved", order, [], {}))
    queue(session, rows)


def emit_final(
    session: Session, tenant: Tenant, order: Order, outcome: str, comment: str | None
) -> None:
    """Notifications when a pending order reaches its final state (``outcome``: the order's
    status, which a re-decision may make ``held`` or ``blocked``)."""
    buyer = buyer_recipients(session, tenant, order)
    rows = []

    def add(event_type: str, recipients: list[dict], data: Mapping[str, Any]) -> None:
        rows.append(event_row(tenant, event_type, order, recipients, data))

    if outcome == "approved":
        add("order_approved", buyer, {"comment": comment})
        add("order_confirmation", buyer, {})
        policy = queries.version_policy(session, tenant, order.ruleset_version_id)
        group = order.decision.get("buyer", {}).get("group")
        if policy.master_confirmation and group:
            company = order.decision.get("buyer", {}).get("company")
            masters = master_confirmation_recipients(
                policy, company_directory(session, tenant, company), company
            )
            accounts = _accounts(session, tenant, [r.account for r in masters], order)
            if masters:
                add(
                    "master_confirmation",
                    [_recipient(accounts.get(r.account), r.channel, r.account) for r in masters],
                    {},
                )
    elif outcome == "rejected":
        add("order_rejected", buyer, {"comment": comment})
        add("order_cancelled", buyer, {"comment": comment, "reason": "rejected"})
    elif outcome == "expired":
        add("order_expired", buyer, {})
        add("order_cancelled", buyer, {"reason": "expired"})
    elif outcome == "withdrawn":
        add("order_cancelled", buyer, {"reason": "withdrawn"})
    elif outcome == "held":
        add("order_held", buyer, {})
    elif outcome == "blocked":
        add("order_cancelled", buyer, {"reason": "blocked"})
    queue(session, rows)
