"""Held orders: the merchant's queue, and its two decisions on each order.

An order is ``held`` when its buyer's settings say ``hold_orders`` (PointForce's "Hold
Orders Created", ACCEPTANCE E4): nothing was asked of the customer's approvers.  A merchant
(an admin owner or editor, or a ``merchant`` API key) then either

* **lifts the hold** (:func:`lift_hold`, "let proceed"): the order goes on as its rules decide
  without the hold, under the rule-set version it was submitted under and at the moment of
  lifting (budgets, delegations): approved (the storefront's ``order_approved`` webhook),
  pending with its approval request (the approvers are asked), or blocked (a limit reached
  meanwhile).  The held decision stays in the order's ``previous_decisions``;
* or **cancels** it (:func:`cancel_held`): the order is ``cancelled``.

This is not ``released``: that word means the storefront started fulfilment of an approved
order (``actions.release``).  Both decisions are audited (``order.hold_lifted``,
``order.hold_cancelled``) and the buyer hears of them (``order_hold_lifted``,
``order_hold_cancelled``, each with the merchant's comment); a cancellation also sends the
storefront ``order_cancelled`` (reason ``hold_cancelled``), as every cancellation does.

Two merchants deciding the same order at once: the first to write wins, the other gets 409
``not_held`` (a conditional UPDATE on the order's status).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from ..engine.durations import isoformat
from ..engine.money import format_amount
from ..errors import Conflict, OrderError
from ..store.models import Order, RuleSetVersion, Tenant
from ..store.services import audit
from . import deciding, events, queries, transitions
from .queries import now_or

HELD = "held"
#: the status of an order whose hold the merchant cancelled
CANCELLED = "cancelled"
#: the longest comment a merchant may give (as approvers' comments)
MAX_COMMENT = 5000


def held_orders_query(tenant_id: int):
    """The tenant's held orders, oldest first (the queue's order: first held, first decided)."""
    return (
        select(Order)
        .where(Order.tenant_id == tenant_id, Order.status == HELD)
        .options(selectinload(Order.buyer), selectinload(Order.company))
        .order_by(Order.created_at, Order.id)
    )


def count_held(session: Session, tenant: Tenant) -> int:
    """How many orders wait in the tenant's queue."""
    return session.scalar(
        select(func.count()).where(Order.tenant_id == tenant.id, Order.status == HELD)
    )


def check_comment(comment: str | None) -> str | None:
    """The merchant's comment, stripped; None when empty; 422 when not text or too long."""
    if comment is None:
        return None
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
        raise OrderError(
            "invalid_comment",
            f"comment must be text of at most {MAX_COMMENT:,} characters",
            path="comment",
        )
    return comment.strip() or None


def _take_held(session: Session, tenant: Tenant, order_id: str, status: str, now: datetime):
    """The held order ``order_id``, its status moved to ``status`` in one conditional UPDATE.

    409 ``not_held`` when it is not held (never was, or another merchant decided first).
    """
    order = queries.get_order(session, tenant, order_id)
    taken = session.execute(
        update(Order)
        .where(Order.id == order.id, Order.status == HELD)
        .values(status=status, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken != 1:
        session.refresh(order)
        raise Conflict(
            "not_held",
            f"order {order_id} is {order.status}, not held; only held orders can be let "
            "proceed or cancelled here",
            details={"status": order.status},
        )
    session.refresh(order)
    return order


def _history_entry(order: Order, version: RuleSetVersion | None, actor: str, comment, now):
    return {
        "reason": "hold_lifted",
        "by": actor,
        "comment": comment,
        "at": isoformat(now),
        "status": HELD,
        "total": format_amount(order.total),
        "ruleset_version": version.number if version else None,
        "decision": order.decision,
    }


def lift_hold(
    session: Session,
    tenant: Tenant,
    order_id: str,
    actor: str,
    comment: str | None = None,
    *,
    now: datetime | None = None,
) -> Order:
    """Let a held order proceed: it is decided again without the hold (see the module)."""
    now = now_or(now)
    comment = check_comment(comment)
    order = _take_held(session, tenant, order_id, "pending", now)
    version = session.get(RuleSetVersion, order.ruleset_version_id)
    decision, version = deciding.evaluate(
        session, tenant, order.payload, now=now, version=version, hold_lifted=True
    )
    order.previous_decisions = [
        *(order.previous_decisions or []),
        _history_entry(order, version, actor, comment, now),
    ]
    audit(
        session,
        tenant.id,
        actor,
        "order.hold_lifted",
        "order",
        order.external_id,
        {"comment": comment, "outcome": decision.outcome, "version": version.number},
    )
    transitions.record(
        session,
        tenant,
        order.payload,
        decision,
        version,
        order.request_hash,
        order.idempotency_key,
        now,
        actor,
        order=order,
    )
    events.emit(
        session,
        tenant,
        "order_hold_lifted",
        order,
        events.buyer_recipients(session, tenant, order),
        {"comment": comment, "by": actor},
    )
    return order


def cancel_held(
    session: Session,
    tenant: Tenant,
    order_id: str,
    actor: str,
    comment: str | None = None,
    *,
    now: datetime | None = None,
) -> Order:
    """Cancel a held order: it is ``cancelled``; the buyer and the storefront hear of it."""
    now = now_or(now)
    comment = check_comment(comment)
    order = _take_held(session, tenant, order_id, CANCELLED, now)
    audit(
        session,
        tenant.id,
        actor,
        "order.hold_cancelled",
        "order",
        order.external_id,
        {"comment": comment},
    )
    events.emit(
        session,
        tenant,
        "order_hold_cancelled",
        order,
        events.buyer_recipients(session, tenant, order),
        {"comment": comment, "by": actor},
    )
    # every cancellation reaches the storefront as order_cancelled (webhook only: the buyer
    # has the e-mail above)
    events.emit(
        session,
        tenant,
        "order_cancelled",
        order,
        [],
        {"reason": "hold_cancelled", "comment": comment},
    )
    return order
