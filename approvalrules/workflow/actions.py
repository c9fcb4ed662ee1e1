"""What people do to an order: the storefront submits, withdraws, releases and converts it;
approvers approve, reject, reverse and edit; a merchant admin decides its review.

Every function is one state change, made inside the caller's transaction
(pyramid_tm in the app), and goes through :mod:`.transitions` for the change
itself, its audit rows and its outbox events.

Concurrency: an approval request carries a version counter
(``version_id_col``), so every UPDATE is conditional on the version that was
read; a concurrent approver's write makes ours fail with ``StaleDataError``,
which the error mapping turns into 409.  The unique constraint on approval
actions makes a repeated approval count once even when two arrive at the
same moment.  On PostgreSQL every action first locks the request's row
(``SELECT ... FOR UPDATE``), so racing approvers queue on that one row rather
than deadlock over the order, the request and its actions; on SQLite, which
serialises writers, the version counter alone decides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, and_, bindparam, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ..engine.durations import isoformat
from ..engine.money import format_amount
from ..errors import ApprovalRulesError, Conflict, Forbidden, OrderError
from ..store import versions
from ..store.db import hold_drawn_ids, insert_object, next_id, rows_written_together
from ..store.models import (
    Account,
    AdminUser,
    ApprovalAction,
    ApprovalEligibility,
    ApprovalRequest,
    AuditEvent,
    Order,
    OutboxEvent,
    Tenant,
)
from ..store.services import audit
from . import deciding, events, queries, transitions
from .edits import reduced_body
from .queries import now_or

#: at most this many requests in one bulk call
BULK_LIMIT = 100


# ------------------------------------------------------------ storefront


def submit(
    session: Session,
    tenant: Tenant,
    body: Mapping[str, Any],
    *,
    idempotency_key: str | None = None,
    now: datetime | None = None,
    actor: str = "storefront",
) -> tuple[Order, bool]:
    """Record an order and its decision; returns (order, created).

    Idempotent: the storefront's order id, and the ``Idempotency-Key`` when
    given, identify the submission.  The same body again returns the stored
    order (created False); a different body under the same id or key is a
    409 ``idempotency_conflict``.
    """
    now = now_or(now)
    if not isinstance(body, Mapping) or not isinstance(body.get("id"), str) or not body.get("id"):
        raise OrderError(
            "missing_order_id",
            "order.id (the storefront's order number) is required to submit",
            path="order.id",
        )
    digest = queries.request_hash(body)
    _wait_for_submissions_in_flight(session, tenant, body["id"], idempotency_key)
    existing = _existing_submission(session, tenant, body["id"], idempotency_key)
    if existing is not None:
        if existing.request_hash != digest:
            which = (
                "Idempotency-Key"
                if idempotency_key and existing.idempotency_key == idempotency_key
                else "order id"
            )
            raise Conflict(
                "idempotency_conflict",
                f"order {existing.external_id!r} was already submitted with another body "
                f"under the same {which}",
            )
        return existing, False
    decision, version = deciding.evaluate(session, tenant, body, now=now)
    # the order, its request, its audit row, the request's eligibility rows and its events:
    # one statement on PostgreSQL, where their ids were drawn beforehand
    with rows_written_together(
        session, Order, ApprovalRequest, AuditEvent, ApprovalEligibility, OutboxEvent
    ):
        order = transitions.record(
            session, tenant, body, decision, version, digest, idempotency_key, now, actor
        )
    return order, True


def _wait_for_submissions_in_flight(
    session: Session, tenant: Tenant, order_id: str, key: str | None
) -> None:
    """Wait until no other transaction is submitting this order id or ``Idempotency-Key``.

    Without it, identical retries that arrive together all find nothing stored, all
    evaluate, and all but one fail on the unique constraints (a 409 for a request the
    storefront sent correctly).  On PostgreSQL a transaction-scoped advisory lock per id
    and per key makes the duplicates queue behind the first; when it commits, each reads
    its order (READ COMMITTED: every statement sees the latest commit) and answers as a
    later retry would.  Locks are taken in one order, so two submits that share only a
    key or only an id cannot deadlock.  SQLite serialises writers by itself; a duplicate
    that loses the race there gets "database is locked" and the request is retried
    (``views/errors.py``).
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    names = [f"order-id:{tenant.id}:{order_id}"]
    if key:
        names.append(f"idempotency-key:{tenant.id}:{key}")
    for lock_id in sorted(_advisory_lock_id(name) for name in names):
        session.execute(_ADVISORY_LOCK, {"lock_id": lock_id})


#: built once: building it cost more than running it
_ADVISORY_LOCK = select(func.pg_advisory_xact_lock(bindparam("lock_id", type_=BigInteger)))


def _advisory_lock_id(name: str) -> int:
    """A stable signed 64-bit number for ``name`` (PostgreSQL advisory locks take a bigint)."""
    digest = hashlib.blake2b(f"approvalrules.submit:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _existing_submission(
    session: Session, tenant: Tenant, order_id: str, key: str | None
) -> Order | None:
    """The order already submitted under ``order_id`` (or ``key``), if any.

    The same statement reads the tenant's rules version, which the submit's evaluation
    would otherwise read with a statement of its own a moment later
    (:func:`versions.note_rules_version`), and on PostgreSQL draws the ids of a new order
    and its request, so that they are written with their audit row and events in one
    statement (``store.db.insert_object``).
    """
    params = {"tenant_id": tenant.id, "order_id": order_id}
    if key:
        params["key"] = key
    draws_ids = session.get_bind().dialect.name == "postgresql"
    row = session.execute(_SUBMITTED[bool(key), draws_ids], params).one()
    versions.note_rules_version(session, tenant.id, row[0])
    if draws_ids:
        hold_drawn_ids(session, {Order: row[2], ApprovalRequest: row[3]})
    return row[1]


def _submitted(*match, draws_ids: bool):
    # the tenant's row, with the order matching ``match`` when there is one (and the new
    # rows' ids); built once (building one cost more than running it)
    columns = [Tenant.rules_version, Order]
    if draws_ids:
        columns += [next_id(Order), next_id(ApprovalRequest)]
    return (
        select(*columns)
        .select_from(Tenant)
        .outerjoin(Order, and_(Order.tenant_id == Tenant.id, *match))
        .where(Tenant.id == bindparam("tenant_id"))
        .limit(1)
    )


_BY_ID = Order.external_id == bindparam("order_id")
_BY_ID_OR_KEY = or_(_BY_ID, Order.idempotency_key == bindparam("key"))
#: by (an Idempotency-Key was sent, the ids are drawn)
_SUBMITTED = {
    (by_key, draws_ids): _submitted(_BY_ID_OR_KEY if by_key else _BY_ID, draws_ids=draws_ids)
    for by_key in (False, True)
    for draws_ids in (False, True)
}


def withdraw(
    session: Session,
    tenant: Tenant,
    order_id: str,
    *,
    now: datetime | None = None,
    actor: str = "storefront",
) -> Order:
    """The buyer takes back a pending order."""
    now = now_or(now)
    order = queries.get_order(session, tenant, order_id)
    request = queries.request_for_order(session, order)
    if request is None or request.status != "pending":
        raise Conflict(
            "not_withdrawable",
            f"order {order_id} is {order.status}; only pending orders can be withdrawn",
        )
    transitions.close(
        session, tenant, request, "withdrawn", now, audit_entry=(actor, "order.withdrawn", None)
    )
    return order


def release(
    session: Session,
    tenant: Tenant,
    order_id: str,
    *,
    now: datetime | None = None,
    actor: str = "storefront",
) -> Order:
    """Fulfilment started: closes the reversal window.  Only approved orders can be released."""
    now = now_or(now)
    order = queries.get_order(session, tenant, order_id)
    if order.status != "approved":
        raise Conflict(
            "not_releasable",
            f"order {order_id} is {order.status}; only approved orders are released to fulfilment",
        )
    if order.released_at is None:
        order.released_at = now
        order.updated_at = now
        session.flush()
        audit(session, tenant.id, actor, "order.released", "order", order_id)
        events.emit(session, tenant, "order_released", order, [], {})
    return order


def convert(
    session: Session,
    tenant: Tenant,
    order_id: str,
    *,
    now: datetime | None = None,
    actor: str = "storefront",
) -> Order:
    """A quote becomes an order and is evaluated like any order."""
    now = now_or(now)
    order = queries.get_order(session, tenant, order_id)
    if order.type != "quote":
        raise Conflict("not_a_quote", f"order {order_id} is a {order.type} order, not a quote")
    body = dict(order.payload)
    body["type"] = "regular"
    decision, version = deciding.evaluate(session, tenant, body, now=now)
    audit(session, tenant.id, actor, "order.converted", "order", order_id)
    return transitions.record(
        session,
        tenant,
        body,
        decision,
        version,
        queries.request_hash(body),
        order.idempotency_key,
        now,
        actor,
        order=order,
    )


# ------------------------------------------------------------- approvers


def _actions_of(
    request: ApprovalRequest, step: str, action: str = "approve"
) -> list[ApprovalAction]:
    return [
        a
        for a in request.actions
        if a.step == step and a.action == action and a.generation == request.generation
    ]


def _acting_for(
    session: Session, tenant: Tenant, request: ApprovalRequest, approver: str
) -> int | None:
    """The account a delegate acts for in the current step (recorded on the action), or None."""
    for entry in request.steps[request.current_step]["approvers"]:
        if entry["account"] == approver and entry.get("delegate_of"):
            return queries.account(session, tenant, entry["delegate_of"][0]).id
    return None


def _refuse_second_group(
    request: ApprovalRequest, step: Mapping[str, Any], account_id: int
) -> None:
    """``all_of`` means separate people: one approver counts for one group of a step only.

    Someone eligible in two groups who approved ``<step>/1`` in this
    generation may not also approve ``<step>/2`` (409 ``already_approved_in_group``).
    """
    group = transitions.step_group(step)
    if group is None:
        return
    siblings = {
        s["name"] for s in request.steps if s is not step and transitions.step_group(s) == group
    }
    for action in request.actions:
        if (
            action.generation == request.generation
            and action.action == "approve"
            and action.approver_id == account_id
            and action.step != step["name"]
            and action.step in siblings
        ):
            raise Conflict(
                "already_approved_in_group",
                f"{step['name']} needs another person: this approver already approved "
                f"{action.step} of the same step ({group}: one approval from each group, "
                "by different people)",
                details={"step": step["name"], "approved": action.step},
            )


def _act(
    session: Session,
    tenant: Tenant,
    request: ApprovalRequest,
    step: Mapping[str, Any],
    approver: str,
    account: Account,
    action: str,
    comment: str | None,
    now: datetime,
) -> None:
    """Record ``approver``'s ``action`` on ``step`` (and whom a delegate acted for).

    Written with a Core insert (at once, or with the rows of the caller's
    ``rows_written_together`` block when the lock drew its id) and added to
    ``request.actions`` as loaded, so the change that follows (:func:`.transitions.close`)
    has no unit of work to flush; a repeated approval that slipped past the check fails on
    the unique constraint when the row is written.
    """
    actions = list(request.actions)  # read before the insert, which it would see
    act = insert_object(
        session,
        ApprovalAction,
        {
            "request_id": request.id,
            "step": step["name"],
            "approver_id": account.id,
            "on_behalf_of_id": _acting_for(session, tenant, request, approver),
            "action": action,
            "generation": request.generation,
            "comment": comment,
            "created_at": now,
        },
    )
    # who reads the action next has its request and its account without a query
    set_committed_value(act, "request", request)
    set_committed_value(act, "approver", account)
    set_committed_value(request, "actions", [*actions, act])


def approve(
    session: Session,
    tenant: Tenant,
    request_id: int,
    approver: str,
    *,
    comment: str | None = None,
    if_match=None,
    now: datetime | None = None,
) -> ApprovalRequest:
    """One approval of the current step by ``approver``; approving twice counts once.

    A delegate's action records whom it acted for.
    """
    now = now_or(now)
    request, step = transitions.guard_approver(session, tenant, request_id, approver, if_match)
    account = queries.account_ref(session, tenant, approver)
    if any(a.approver_id == account.id for a in _actions_of(request, step["name"])):
        return request  # counted once already
    _refuse_second_group(request, step, account.id)
    # read before the action is added: loading the order then would flush the action apart
    # from the request's change (one flush per action)
    order = request.order
    # the action, its audit row and its events: one statement
    with rows_written_together(session, ApprovalAction, AuditEvent, OutboxEvent):
        _act(session, tenant, request, step, approver, account, "approve", comment, now)
        approvals = len(_actions_of(request, step["name"]))
        audit(
            session,
            tenant.id,
            approver,
            "approval.approved",
            "order",
            order.external_id,
            {
                "step": step["name"],
                "count": approvals,
                "required": step["required"],
                "comment": comment,
            },
        )
        if approvals < step["required"]:
            transitions.touch(request)
            session.flush()
            return request
        return transitions.advance(session, tenant, request, now, comment)


def reject(
    session: Session,
    tenant: Tenant,
    request_id: int,
    approver: str,
    *,
    comment: str | None = None,
    if_match=None,
    now: datetime | None = None,
) -> ApprovalRequest:
    """Decline: the order is cancelled and the buyer sees the comment."""
    now = now_or(now)
    request, step = transitions.guard_approver(session, tenant, request_id, approver, if_match)
    account = queries.account_ref(session, tenant, approver)
    # the action, its audit row and its events: one statement
    with rows_written_together(session, ApprovalAction, AuditEvent, OutboxEvent):
        _act(session, tenant, request, step, approver, account, "reject", comment, now)
        return transitions.close(
            session,
            tenant,
            request,
            "rejected",
            now,
            comment=comment,
            audit_entry=(approver, "approval.rejected", {"step": step["name"], "comment": comment}),
        )


def reverse(
    session: Session,
    tenant: Tenant,
    request_id: int,
    approver: str,
    *,
    comment: str | None = None,
    if_match=None,
    now: datetime | None = None,
) -> ApprovalRequest:
    """Undo an approval or a rejection: the request is pending again from its first step.

    Any eligible approver of the request may reverse (an authorizer who
    disagrees), until the storefront reports the order released.
    """
    now = now_or(now)
    request = queries.get_request(session, tenant, request_id, for_update=True)
    transitions.check_if_match(request, if_match)
    order = request.order
    policy = queries.request_policy(session, request)
    if request.status not in ("approved", "rejected"):
        raise Conflict(
            "not_reversible",
            f"approval request {request.id} is {request.status}; "
            "only approved or rejected requests can be reversed",
        )
    if not policy.reversal_allowed:
        raise Conflict(
            "reversal_not_allowed", f"rule set {policy.name} does not allow reversing decisions"
        )
    if order.released_at is not None:
        raise Conflict(
            "already_released",
            f"order {order.external_id} was released to fulfilment at "
            f"{isoformat(order.released_at)}; its decision can no longer be reversed",
        )
    if not any(
        transitions.eligible_in_step(request, i, approver) for i in range(len(request.steps))
    ):
        raise Forbidden(
            "not_eligible",
            f"{approver} is not an approver of order {order.external_id} "
            "and cannot reverse its decision",
        )
    account = queries.account(session, tenant, approver)
    was = request.status
    request.actions.append(
        ApprovalAction(
            step=request.steps[request.current_step]["name"],
            approver_id=account.id,
            action="reverse",
            generation=request.generation,
            comment=comment,
            created_at=now,
        )
    )
    if was == "approved":
        deciding.draw_budgets(session, tenant, order, policy, now, kind="release")
    transitions.reopen(session, tenant, request, now)
    audit(
        session,
        tenant.id,
        approver,
        "approval.reversed",
        "order",
        order.external_id,
        {"was": was, "comment": comment},
    )
    events.emit(
        session,
        tenant,
        "approval_reversed",
        order,
        events.buyer_recipients(session, tenant, order),
        {"was": was, "by": approver, "comment": comment},
    )
    transitions.ask_approvers(session, tenant, request)
    return request


def edit(
    session: Session,
    tenant: Tenant,
    request_id: int,
    approver: str,
    lines: Any,
    *,
    comment: str | None = None,
    if_match=None,
    now: datetime | None = None,
) -> ApprovalRequest:
    """An eligible approver of the current step lowers quantities or removes lines (never
    raises or adds).

    ``lines`` is the complete new list of ``{sku, quantity}``: a line left out
    is removed.  The total drops by price x removed quantity of every line
    (so charges outside the lines stay); the order is re-evaluated under the
    request's pinned version (see :func:`.transitions.redecide`) and the buyer is
    told (``order_edited``).
    """
    now = now_or(now)
    request, _ = transitions.guard_approver(session, tenant, request_id, approver, if_match)
    order = request.order
    body, changes = reduced_body(order, lines)
    decision, version = deciding.evaluate(
        session,
        tenant,
        body,
        now=now,
        version=queries.request_version(session, request),
        ordered_at=order.created_at,
    )
    account = queries.account(session, tenant, approver)
    transitions.redecide(
        session,
        tenant,
        request,
        body,
        decision,
        version,
        now,
        approver,
        {"reason": "edited", "by": account.external_id, "comment": comment, "changes": changes},
    )
    audit(
        session,
        tenant.id,
        approver,
        "approval.edited",
        "order",
        order.external_id,
        {"changes": changes, "comment": comment, "total": format_amount(order.total)},
    )
    events.emit(
        session,
        tenant,
        "order_edited",
        order,
        events.buyer_recipients(session, tenant, order),
        {"by": approver, "comment": comment, "changes": changes, "approval_request": request.id},
    )
    return request


def bulk(
    session: Session,
    tenant: Tenant,
    action: Any,
    request_ids: Any,
    approver: str,
    comment: str | None = None,
) -> list[dict]:
    """Approve or reject several requests; each is checked on its own, in its own savepoint.

    Returns one result per id: ``{id, ok, status}`` or ``{id, ok: false, error}``.
    """
    if action not in ("approve", "reject"):
        raise OrderError("invalid_action", "action must be approve or reject", path="action")
    if (
        not isinstance(request_ids, list)
        or not request_ids
        or len(request_ids) > BULK_LIMIT
        or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 < i < 2**62 for i in request_ids
        )
    ):
        raise OrderError(
            "invalid_requests",
            f"requests must be a list of 1 to {BULK_LIMIT} approval request ids",
            path="requests",
        )
    handler = approve if action == "approve" else reject
    outcomes: dict[int, dict] = {}
    # rows are locked in id order, so two bulk calls over the same requests queue
    # instead of deadlocking; results keep the caller's order
    for request_id in sorted(set(request_ids)):
        try:
            with session.begin_nested():
                request = handler(session, tenant, request_id, approver, comment=comment)
            outcomes[request_id] = {"id": request_id, "ok": True, "status": request.status}
        except ApprovalRulesError as exc:
            outcomes[request_id] = {"id": request_id, "ok": False, "error": exc.as_dict()}
    return [outcomes[request_id] for request_id in request_ids]


# --------------------------------------------------------- merchant review


def merchant_decide(
    session: Session,
    tenant: Tenant,
    request_id: int,
    admin_login: str,
    approve: bool,
    comment: str | None = None,
    *,
    if_match=None,
    now: datetime | None = None,
) -> ApprovalRequest:
    """A merchant admin (owner or editor) approves or rejects a request waiting in the
    ``merchant-review`` step.

    For the admin UI, not the storefront API: storefront keys act for the
    customer's approvers, never for the merchant.
    """
    now = now_or(now)
    admin = session.scalar(
        select(AdminUser).where(AdminUser.tenant_id == tenant.id, AdminUser.login == admin_login)
    )
    if admin is None:
        raise Forbidden("not_an_admin", f"{admin_login!r} is not an admin user of this merchant")
    if admin.role not in ("owner", "editor"):
        raise Forbidden(
            "read_only_admin",
            f"admin {admin_login!r} is a {admin.role}; "
            "only owners and editors decide merchant reviews",
        )
    request = queries.get_request(session, tenant, request_id, for_update=True)
    transitions.check_if_match(request, if_match)
    transitions.require_pending(session, request)
    step = request.steps[request.current_step]
    if not step.get("merchant"):
        raise Conflict(
            "not_in_merchant_review",
            f"approval request {request.id} is at step {step['name']}, "
            "not in the merchant's review",
            details={"step": step["name"]},
        )
    steps = [dict(s) for s in request.steps]
    steps[request.current_step].update(
        {
            "decided_by": f"admin:{admin_login}",
            "decision": "approved" if approve else "rejected",
            "decided_at": isoformat(now),
            "comment": comment,
        }
    )
    request.steps = steps
    audit(
        session,
        tenant.id,
        f"admin:{admin_login}",
        "approval.merchant_approved" if approve else "approval.merchant_rejected",
        "order",
        request.order.external_id,
        {"comment": comment},
    )
    status = "approved" if approve else "rejected"
    return transitions.close(session, tenant, request, status, now, comment=comment)
