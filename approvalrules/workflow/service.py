"""The approval workflow: submit, approve, reject, reverse, withdraw, release, convert, expire, remind.

Every public function is one state change, made inside the caller's
transaction (pyramid_tm in the app, ``transaction.manager`` in jobs), and
writes its outbox events and audit rows in that same transaction.

Concurrency: an approval request carries a version counter
(``version_id_col``), so every UPDATE is conditional on the version that was
read; a concurrent approver's write makes ours fail with ``StaleDataError``,
which the error mapping turns into 409.  The unique constraint on approval
actions makes a repeated approval count once even when two arrive at the
same moment.  Neither relies on ``SELECT ... FOR UPDATE`` (a no-op on SQLite).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterable, Mapping

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError as StaleData

from ..durations import isoformat, parse_duration
from ..errors import Conflict, Forbidden, NotFound, OrderError
from ..policy import Decision, Order as EngineOrder, Policy
from ..store import versions
from ..store.directory import SqlDirectory
from ..store.models import (
    Account,
    ApprovalAction,
    ApprovalEligibility,
    ApprovalRequest,
    BudgetLedger,
    Company,
    Order,
    RuleSetVersion,
    Tenant,
    utcnow,
)
from ..store.services import audit
from . import events

DECIDED = ("approved", "rejected", "expired", "withdrawn")


# ------------------------------------------------------------- evaluation


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(timezone.utc)


def policy_for_company(session: Session, tenant: Tenant, directory: SqlDirectory, company_id: str) -> tuple[Policy, RuleSetVersion]:
    """The active policy governing a company (its own rule set, else its nearest parent's)."""
    name = directory.ruleset_name_for(company_id)
    if name is None:
        raise OrderError("no_ruleset", f"company {company_id!r} has no rule set, and neither has any parent company", path="order.company")
    version = versions.active_version(session, tenant.id, name)
    if version is None:
        raise OrderError("no_active_version", f"rule set {name!r} of company {company_id!r} has no published version", path="order.company")
    return versions.policy_for(version, session), version


def _membership_company(directory: SqlDirectory, order: EngineOrder) -> str:
    if directory.account(order.buyer) is None:
        raise OrderError("unknown_buyer", f"buyer {order.buyer!r} is not an account of this tenant", path="order.buyer")
    membership = directory.membership(order.buyer, order.company)
    if membership is None:
        if order.company:
            raise OrderError("not_a_member", f"buyer {order.buyer!r} is not a member of company {order.company!r}", path="order.company")
        raise OrderError("no_default_company", f"buyer {order.buyer!r} belongs to several companies and none is the default; name order.company", path="order.company")
    return membership.company_id


def period_key(period: str, when: datetime) -> str:
    """The ledger key of the budget period containing ``when``: 2026-11, 2026-W47, 2026-Q4, 2026."""
    if period == "month":
        return f"{when.year:04d}-{when.month:02d}"
    if period == "quarter":
        return f"{when.year:04d}-Q{(when.month - 1) // 3 + 1}"
    if period == "week":
        year, week, _ = when.isocalendar()
        return f"{year:04d}-W{week:02d}"
    return f"{when.year:04d}"


def _scope_key(scope: str, decision_buyer: Mapping[str, Any]) -> str:
    if scope == "buyer":
        return f"buyer:{decision_buyer['account']}"
    if scope == "group":
        return f"group:{decision_buyer.get('group') or '-'}"
    return "company"


def budgets_spent(session: Session, tenant: Tenant, company: Company, policy: Policy, buyer: Mapping[str, Any], now: datetime) -> dict[str, Decimal]:
    """What each budget of ``policy`` has drawn in the current period, net of releases."""
    spent = {}
    for budget in policy.budgets:
        total = session.scalar(
            select(
                func.coalesce(func.sum(BudgetLedger.amount).filter(BudgetLedger.kind == "draw"), 0)
                - func.coalesce(func.sum(BudgetLedger.amount).filter(BudgetLedger.kind == "release"), 0)
            ).where(
                BudgetLedger.tenant_id == tenant.id,
                BudgetLedger.company_id == company.id,
                BudgetLedger.scope_key == f"{budget.name}/{_scope_key(budget.scope, buyer)}",
                BudgetLedger.period_key == period_key(budget.period, now),
            )
        )
        spent[budget.name] = Decimal(total or 0)
    return spent


def evaluate(session: Session, tenant: Tenant, body: Mapping[str, Any], *, now: datetime | None = None) -> tuple[Decision, RuleSetVersion]:
    """Dry run: the decision for ``body`` under the active version; writes nothing."""
    now = _now(now)
    order = EngineOrder.from_dict(body)
    directory = SqlDirectory(session, tenant.id)
    company_id = _membership_company(directory, order)
    policy, version = policy_for_company(session, tenant, directory, company_id)
    company = _company(session, tenant, company_id)
    membership = directory.membership(order.buyer, company_id)
    buyer = {"account": order.buyer, "group": membership.group if membership.active else None}
    spent = budgets_spent(session, tenant, company, policy, buyer, now)
    return policy.evaluate(order, directory, now=now, budgets_spent=spent), version


# ---------------------------------------------------------------- helpers


def _one(session: Session, model, code: str, message: str, *where):
    """The single row of ``model`` matching ``where``; NotFound(code, message) otherwise.

    Callers always include the tenant in ``where``: another tenant's row is as
    absent as one that does not exist.
    """
    row = session.scalar(select(model).where(*where))
    if row is None:
        raise NotFound(code, message)
    return row


def _company(session: Session, tenant: Tenant, external_id: str) -> Company:
    return _one(session, Company, "unknown_company", f"no company {external_id!r}", Company.tenant_id == tenant.id, Company.external_id == external_id)


def _account(session: Session, tenant: Tenant, external_id: str) -> Account:
    return _one(session, Account, "unknown_account", f"no account {external_id!r}", Account.tenant_id == tenant.id, Account.external_id == external_id)


def request_hash(body: Mapping[str, Any]) -> str:
    """Hash of a request body in canonical JSON: equal bodies, equal hashes."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def get_order(session: Session, tenant: Tenant, external_id: str) -> Order:
    """The tenant's order by its storefront id."""
    return _one(session, Order, "unknown_order", f"no order {external_id!r}", Order.tenant_id == tenant.id, Order.external_id == external_id)


def get_request(session: Session, tenant: Tenant, request_id: int) -> ApprovalRequest:
    """The tenant's approval request by id."""
    return _one(session, ApprovalRequest, "unknown_approval", f"no approval request {request_id}", ApprovalRequest.tenant_id == tenant.id, ApprovalRequest.id == request_id)


def request_for_order(session: Session, order: Order) -> ApprovalRequest | None:
    return session.scalar(select(ApprovalRequest).where(ApprovalRequest.order_id == order.id))


def _steps_json(decision: Decision) -> list[dict]:
    return [
        {
            "name": step.name,
            "required": step.required,
            "condition": step.condition,
            "approvers": [
                {"account": a.account, "name": a.name, "role": a.role, "role_label": a.role_label, "why": list(a.why), "email": a.email}
                for a in step.approvers
            ],
        }
        for step in decision.steps
    ]


# ------------------------------------------------------------------ submit


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
    now = _now(now)
    if not isinstance(body, Mapping) or not isinstance(body.get("id"), str) or not body.get("id"):
        raise OrderError("missing_order_id", "order.id (the storefront's order number) is required to submit", path="order.id")
    digest = request_hash(body)
    existing = _existing_submission(session, tenant, body["id"], idempotency_key)
    if existing is not None:
        if existing.request_hash != digest:
            which = "Idempotency-Key" if idempotency_key and existing.idempotency_key == idempotency_key else "order id"
            raise Conflict("idempotency_conflict", f"order {existing.external_id!r} was already submitted with another body under the same {which}")
        return existing, False
    decision, version = evaluate(session, tenant, body, now=now)
    return _record(session, tenant, body, decision, version, digest, idempotency_key, now, actor), True


def _existing_submission(session: Session, tenant: Tenant, order_id: str, key: str | None) -> Order | None:
    clauses = [Order.external_id == order_id]
    if key:
        clauses.append(Order.idempotency_key == key)
    return session.scalar(select(Order).where(Order.tenant_id == tenant.id, or_(*clauses)).limit(1))


def _record(session, tenant, body, decision: Decision, version, digest, key, now, actor, order: Order | None = None) -> Order:
    company = _company(session, tenant, decision.buyer["company"])
    buyer = _account(session, tenant, decision.buyer["account"])
    data = decision.as_dict()
    if order is None:
        order = Order(tenant_id=tenant.id, external_id=body["id"], idempotency_key=key, request_hash=digest, created_at=now)
        session.add(order)
    order.company_id = company.id
    order.buyer_id = buyer.id
    order.payload = dict(body)
    order.total = decision.order.total
    order.currency = decision.order.currency
    order.type = decision.order.type
    order.status = decision.outcome
    order.decision = data
    order.ruleset_version_id = version.id
    order.updated_at = now
    session.flush()
    audit(session, tenant.id, actor, f"order.{decision.outcome}", "order", order.external_id, {"reasons": decision.reason_codes(), "version": version.number})
    if decision.outcome == "pending":
        request = ApprovalRequest(
            tenant_id=tenant.id,
            order_id=order.id,
            ruleset_version_id=version.id,
            status="pending",
            current_step=0,
            steps=_steps_json(decision),
            expires_at=decision.expires_at,
            created_at=now,
        )
        session.add(request)
        session.flush()
        for index, step in enumerate(decision.steps):
            for approver in step.approvers:
                session.add(ApprovalEligibility(request_id=request.id, tenant_id=tenant.id, account_id=approver.account, step_index=index, created_at=now))
        events.emit_decision(session, tenant, order, decision, request)
    elif decision.outcome == "approved":
        _draw_budgets(session, tenant, order, version, now)
        events.emit_decision(session, tenant, order, decision, None)
    elif decision.outcome == "held":
        events.emit_decision(session, tenant, order, decision, None)
    return order


def _draw_budgets(session: Session, tenant: Tenant, order: Order, version: RuleSetVersion, now: datetime, kind: str = "draw") -> None:
    policy = versions.policy_for(version, session)
    buyer = order.decision.get("buyer") or {}
    when = order.created_at or now
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    for budget in policy.budgets:
        session.add(
            BudgetLedger(
                tenant_id=tenant.id,
                company_id=order.company_id,
                scope_key=f"{budget.name}/{_scope_key(budget.scope, buyer)}",
                period_key=period_key(budget.period, when),
                order_id=order.id,
                amount=order.total,
                kind=kind,
                created_at=now,
            )
        )


# ----------------------------------------------------------------- actions


def _check_if_match(request: ApprovalRequest, if_match: str | int | None) -> None:
    if if_match is None or if_match == "":
        return
    expected = str(if_match).strip('"W/ ')
    if expected != str(request.version_id):
        raise Conflict("stale_version", f"approval request {request.id} is at version {request.version_id}, not {expected}; reload it and try again")


def _actions_of(request: ApprovalRequest, step: str, action: str = "approve") -> list[ApprovalAction]:
    return [a for a in request.actions if a.step == step and a.action == action and a.generation == request.generation]


def _who_decided(session: Session, request: ApprovalRequest) -> str:
    deciding = [a for a in request.actions if a.generation == request.generation and a.action in ("approve", "reject")]
    names = sorted({session.get(Account, a.approver_id).external_id for a in deciding})
    return ", ".join(names) or "the system"


def _require_pending(session: Session, request: ApprovalRequest) -> None:
    if request.status != "pending":
        by = f" by {_who_decided(session, request)}" if request.status in ("approved", "rejected") else ""
        raise Conflict("already_decided", f"approval request {request.id} is already {request.status}{by}", details={"status": request.status})


def _eligible_in_step(request: ApprovalRequest, step_index: int, approver: str) -> bool:
    step = request.steps[step_index]
    return any(a["account"] == approver for a in step["approvers"])


def approve(session: Session, tenant: Tenant, request_id: int, approver: str, *, comment: str | None = None, if_match=None, on_behalf_of: str | None = None, now: datetime | None = None) -> ApprovalRequest:
    """One approval of the current step by ``approver``; approving twice counts once."""
    now = _now(now)
    request = get_request(session, tenant, request_id)
    _check_if_match(request, if_match)
    _require_pending(session, request)
    step = request.steps[request.current_step]
    if not _eligible_in_step(request, request.current_step, approver):
        raise Forbidden("not_eligible", f"{approver} is not an eligible approver of step {step['name']} of order {request.order.external_id}", details={"step": step["name"], "eligible": [a["account"] for a in step["approvers"]]})
    account = _account(session, tenant, approver)
    if any(a.approver_id == account.id for a in _actions_of(request, step["name"])):
        return request  # counted once already
    request.actions.append(ApprovalAction(step=step["name"], approver_id=account.id, action="approve", generation=request.generation, comment=comment, created_at=now, on_behalf_of_id=_account(session, tenant, on_behalf_of).id if on_behalf_of else None))
    approvals = len(_actions_of(request, step["name"]))
    audit(session, tenant.id, approver, "approval.approved", "order", request.order.external_id, {"step": step["name"], "count": approvals, "required": step["required"], "comment": comment})
    if approvals < step["required"]:
        _touch(request)
        session.flush()
        return request
    if request.current_step + 1 < len(request.steps):
        request.current_step += 1
        session.flush()
        events.emit(session, tenant, "approval_requested", request.order, events.step_recipients(session, tenant, request, request.current_step), {"step": request.steps[request.current_step]["name"]})
        return request
    request.status = "approved"
    request.decided_at = now
    order = request.order
    order.status = "approved"
    order.updated_at = now
    session.flush()
    _draw_budgets(session, tenant, order, request_version(session, request), now)
    events.emit_final(session, tenant, order, "approved", comment)
    return request


def _touch(request: ApprovalRequest) -> None:
    # a partial approval changes no column of the request itself; a version
    # bump makes the UPDATE conditional, so racing approvers conflict
    # instead of both counting against a stale read
    flag_modified(request, "current_step")


def request_version(session: Session, request: ApprovalRequest) -> RuleSetVersion:
    return session.get(RuleSetVersion, request.ruleset_version_id)


def reject(session: Session, tenant: Tenant, request_id: int, approver: str, *, comment: str | None = None, if_match=None, now: datetime | None = None) -> ApprovalRequest:
    """Decline: the order is cancelled and the buyer sees the comment."""
    now = _now(now)
    request = get_request(session, tenant, request_id)
    _check_if_match(request, if_match)
    _require_pending(session, request)
    step = request.steps[request.current_step]
    if not _eligible_in_step(request, request.current_step, approver):
        raise Forbidden("not_eligible", f"{approver} is not an eligible approver of step {step['name']} of order {request.order.external_id}", details={"step": step["name"]})
    account = _account(session, tenant, approver)
    request.actions.append(ApprovalAction(step=step["name"], approver_id=account.id, action="reject", generation=request.generation, comment=comment, created_at=now))
    request.status = "rejected"
    request.decided_at = now
    order = request.order
    order.status = "rejected"
    order.updated_at = now
    session.flush()
    audit(session, tenant.id, approver, "approval.rejected", "order", order.external_id, {"step": step["name"], "comment": comment})
    events.emit_final(session, tenant, order, "rejected", comment)
    return request


def reverse(session: Session, tenant: Tenant, request_id: int, approver: str, *, comment: str | None = None, if_match=None, now: datetime | None = None) -> ApprovalRequest:
    """Undo an approval or a rejection: the request is pending again from its first step.

    Any eligible approver of the request may reverse (an authorizer who
    disagrees), until the storefront reports the order released.
    """
    now = _now(now)
    request = get_request(session, tenant, request_id)
    _check_if_match(request, if_match)
    order = request.order
    policy = versions.policy_for(request_version(session, request), session)
    if request.status not in ("approved", "rejected"):
        raise Conflict("not_reversible", f"approval request {request.id} is {request.status}; only approved or rejected requests can be reversed")
    if not policy.reversal_allowed:
        raise Conflict("reversal_not_allowed", f"rule set {policy.name} does not allow reversing decisions")
    if order.released_at is not None:
        raise Conflict("already_released", f"order {order.external_id} was released to fulfilment at {isoformat(order.released_at)}; its decision can no longer be reversed")
    if not any(_eligible_in_step(request, i, approver) for i in range(len(request.steps))):
        raise Forbidden("not_eligible", f"{approver} is not an approver of order {order.external_id} and cannot reverse its decision")
    account = _account(session, tenant, approver)
    was = request.status
    request.actions.append(ApprovalAction(step=request.steps[request.current_step]["name"], approver_id=account.id, action="reverse", generation=request.generation, comment=comment, created_at=now))
    if was == "approved":
        _draw_budgets(session, tenant, order, request_version(session, request), now, kind="release")
    request.generation += 1
    request.status = "pending"
    request.current_step = 0
    request.decided_at = None
    order.status = "pending"
    order.updated_at = now
    session.flush()
    audit(session, tenant.id, approver, "approval.reversed", "order", order.external_id, {"was": was, "comment": comment})
    events.emit(session, tenant, "approval_reversed", order, events.buyer_recipients(session, tenant, order), {"was": was, "by": approver, "comment": comment})
    events.emit(session, tenant, "approval_requested", order, events.step_recipients(session, tenant, request, 0), {"step": request.steps[0]["name"]})
    return request


def withdraw(session: Session, tenant: Tenant, order_id: str, *, now: datetime | None = None, actor: str = "storefront") -> Order:
    """The buyer takes back a pending order."""
    now = _now(now)
    order = get_order(session, tenant, order_id)
    request = request_for_order(session, order)
    if request is None or request.status != "pending":
        raise Conflict("not_withdrawable", f"order {order_id} is {order.status}; only pending orders can be withdrawn")
    request.status = "withdrawn"
    request.decided_at = now
    order.status = "withdrawn"
    order.updated_at = now
    session.flush()
    audit(session, tenant.id, actor, "order.withdrawn", "order", order_id)
    events.emit_final(session, tenant, order, "withdrawn", None)
    return order


def release(session: Session, tenant: Tenant, order_id: str, *, now: datetime | None = None, actor: str = "storefront") -> Order:
    """Fulfilment started: closes the reversal window.  Only approved orders can be released."""
    now = _now(now)
    order = get_order(session, tenant, order_id)
    if order.status != "approved":
        raise Conflict("not_releasable", f"order {order_id} is {order.status}; only approved orders are released to fulfilment")
    if order.released_at is None:
        order.released_at = now
        order.updated_at = now
        session.flush()
        audit(session, tenant.id, actor, "order.released", "order", order_id)
        events.emit(session, tenant, "order_released", order, [], {})
    return order


def convert(session: Session, tenant: Tenant, order_id: str, *, now: datetime | None = None, actor: str = "storefront") -> Order:
    """A quote becomes an order and is evaluated like any order."""
    now = _now(now)
    order = get_order(session, tenant, order_id)
    if order.type != "quote":
        raise Conflict("not_a_quote", f"order {order_id} is a {order.type} order, not a quote")
    body = dict(order.payload)
    body["type"] = "regular"
    decision, version = evaluate(session, tenant, body, now=now)
    audit(session, tenant.id, actor, "order.converted", "order", order_id)
    return _record(session, tenant, body, decision, version, request_hash(body), order.idempotency_key, now, actor, order=order)


# -------------------------------------------------------------------- jobs


def expire_due(session: Session, *, now: datetime | None = None, limit: int = 500) -> int:
    """Cancel pending requests whose expiry has passed; returns how many.  Safe to run anywhere, any time."""
    now = _now(now)
    due = session.scalars(
        select(ApprovalRequest).where(ApprovalRequest.status == "pending", ApprovalRequest.expires_at <= now).order_by(ApprovalRequest.id).limit(limit)
    ).all()
    count = 0
    for request in due:
        try:
            with session.begin_nested():
                request.status = "expired"
                request.decided_at = now
                order = request.order
                order.status = "expired"
                order.updated_at = now
                session.flush()
                tenant = session.get(Tenant, request.tenant_id)
                audit(session, tenant.id, "system", "order.expired", "order", order.external_id)
                events.emit_final(session, tenant, order, "expired", None)
            count += 1
        except StaleData:
            continue  # another host expired or decided it first
    return count


def remind_due(session: Session, *, now: datetime | None = None, limit: int = 500) -> int:
    """Send approval_reminder for requests pending longer than their rule set's ``reminders.after``."""
    now = _now(now)
    count = 0
    pending = session.scalars(select(ApprovalRequest).where(ApprovalRequest.status == "pending").order_by(ApprovalRequest.id).limit(limit)).all()
    for request in pending:
        policy = versions.policy_for(request_version(session, request), session)
        if not policy.reminders:
            continue
        created = _aware(request.created_at)
        last = _aware(request.last_reminded_at) if request.last_reminded_at else None
        after = parse_duration(policy.reminders["after"])
        every = parse_duration(policy.reminders.get("every", policy.reminders["after"]))
        if (last is None and now - created >= after) or (last is not None and now - last >= every):
            try:
                with session.begin_nested():
                    request.last_reminded_at = now
                    session.flush()
                    tenant = session.get(Tenant, request.tenant_id)
                    events.emit(session, tenant, "approval_reminder", request.order, events.step_recipients(session, tenant, request, request.current_step), {"step": request.steps[request.current_step]["name"]})
                count += 1
            except StaleData:
                continue
    return count


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

