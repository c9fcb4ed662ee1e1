"""The jobs cron runs (``approvalrules expire|remind``): step timeouts (escalate, approve as the
system, cancel), request expiry, and reminders.

Each job looks at every pending request in batches, acts on each in its own
savepoint, and is safe to run anywhere, any time, on several hosts at once.
A request found due is claimed first: its row is locked ``FOR UPDATE SKIP
LOCKED`` and read again (PostgreSQL; SQLite serialises writers), so a runner
passes over the requests another runner is handling instead of queueing
behind them, and acts only when the fresh row is still due -- once another
runner's action is committed, the request no longer is.  A request changed
by anyone else meanwhile still fails its conditional update
(``StaleDataError``) and is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from ..engine import CompiledStep, Policy
from ..engine.durations import isoformat
from ..engine.notify import emailed_as_approver
from ..engine.timeouts import fixed_deadline, request_expiry
from ..store.directory import directory_for
from ..store.models import ApprovalRequest, Tenant
from ..store.services import audit
from . import events, queries, transitions
from .queries import aware, now_or


def expire_due(session: Session, *, now: datetime | None = None, limit: int = 500) -> int:
    """Handle timeouts; returns how many requests were expired, escalated or approved by the
    system.

    First the steps whose own ``escalate_after`` has passed (:func:`escalate_due`),
    then the requests past their expiry: each is cancelled as expired, unless
    its current step says ``on_timeout: escalate | approve`` (and has not
    timed out before).  A fixed calendar expiry (``expiry.date`` of the rule
    set or of a step of the request) is final: past it the request expires
    whatever ``on_timeout`` says.
    """
    now = now_or(now)
    handled: set[int] = set()
    count = escalate_due(session, now=now, limit=limit, handled=handled)
    # claimed as a batch: rows another runner holds are passed over, the rest are read afresh
    due = session.scalars(
        select(ApprovalRequest)
        .where(ApprovalRequest.status == "pending", ApprovalRequest.expires_at <= now)
        .order_by(ApprovalRequest.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    ).all()
    for request in due:
        if request.id in handled:
            continue  # its step timed out in this run already
        try:
            with session.begin_nested():
                tenant = session.get(Tenant, request.tenant_id)
                policy = queries.request_policy(session, request)
                step = request.steps[request.current_step]
                compiled = transitions.compiled_step(policy, step)
                fixed = _fixed_deadline(request, policy)
                if fixed is not None and fixed <= now:
                    _expire(session, tenant, request, now, {"expiry_date": isoformat(fixed)})
                    result = "expired"
                elif _on_timeout_of(compiled) != "cancel" and not step.get("timed_out"):
                    result = _on_timeout(session, tenant, request, policy, compiled, now)
                else:
                    _expire(session, tenant, request, now)
                    result = "expired"
            count += result != "reminded"
        except StaleDataError:
            continue  # another host expired or decided it first
    return count


def _expire(
    session: Session,
    tenant: Tenant,
    request: ApprovalRequest,
    now: datetime,
    data: Mapping[str, Any] | None = None,
) -> None:
    transitions.close(
        session, tenant, request, "expired", now, audit_entry=("system", "order.expired", data)
    )


def _fixed_deadline(request: ApprovalRequest, policy: Policy) -> datetime | None:
    """The request's fixed calendar expiry: the rule set's ``expiry.date`` and those of the
    steps it waits for (``timeouts.fixed_deadline``), or None."""
    return fixed_deadline(
        policy.expiry_deadline,
        [
            compiled.expiry_deadline
            for step in request.steps
            if (compiled := transitions.compiled_step(policy, step)) is not None
        ]
        if policy.step_deadlines
        else (),
    )


def _on_timeout_of(step: CompiledStep | None) -> str:
    """What a timeout of ``step`` does; the merchant's step (None) is cancelled."""
    return step.on_timeout if step is not None else "cancel"


def _step_started(request: ApprovalRequest) -> datetime:
    return aware(request.step_started_at or request.created_at)


def _claim(session: Session, request: ApprovalRequest) -> ApprovalRequest | None:
    """``request`` locked until the transaction ends and read again, while it is pending; None
    when another runner holds its row (``SKIP LOCKED``: no waiting) or it was decided since.

    The caller checks again on the fresh row that the request is still due: a runner that
    finished with it has committed its change (a later ``step_started_at`` or
    ``last_reminded_at``, another status).
    """
    return session.scalar(
        select(ApprovalRequest)
        .where(ApprovalRequest.id == request.id, ApprovalRequest.status == "pending")
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )


def _pending_requests(session: Session, batch: int) -> Iterator[ApprovalRequest]:
    """Every pending request, oldest first, ``batch`` rows a query (keyset on id).

    Whether a request is due depends on its rule set's durations, so the jobs
    look at every pending request; a fixed window of the oldest would starve
    the rest once that many wait.
    """
    last = 0
    while True:
        rows = session.scalars(
            select(ApprovalRequest)
            .where(ApprovalRequest.status == "pending", ApprovalRequest.id > last)
            .order_by(ApprovalRequest.id)
            .limit(batch)
        ).all()
        yield from rows
        if len(rows) < batch:
            return
        last = rows[-1].id


def escalate_due(
    session: Session,
    *,
    now: datetime | None = None,
    limit: int = 500,
    handled: set[int] | None = None,
    batch: int = 500,
) -> int:
    """Steps whose ``escalate_after`` has passed: escalate, approve as the system or cancel
    (``on_timeout``).

    At most ``limit`` requests are acted on per run; every pending request is looked at.
    """
    now = now_or(now)
    count = 0
    for request in _pending_requests(session, batch):
        if count >= limit:
            break
        if _timed_out_step(session, request, now) is None:
            continue
        request = _claim(session, request)
        due = _timed_out_step(session, request, now) if request is not None else None
        if due is None:
            continue  # another runner has it, or had it
        policy, compiled = due
        try:
            with session.begin_nested():
                result = _on_timeout(
                    session, session.get(Tenant, request.tenant_id), request, policy, compiled, now
                )
            count += result != "reminded"
            if handled is not None:
                handled.add(request.id)
        except StaleDataError:
            continue
    return count


def _timed_out_step(
    session: Session, request: ApprovalRequest, now: datetime
) -> tuple[Policy, CompiledStep] | None:
    """The request's policy and current step when that step's ``escalate_after`` has passed
    and it has not timed out before; None otherwise, and for a request past its fixed
    calendar expiry (``expire_due`` cancels it, nothing escalates)."""
    if request.status != "pending":
        return None  # decided since its batch was read
    step = request.steps[request.current_step]
    if step.get("timed_out") or step.get("merchant"):
        return None
    policy = queries.request_policy(session, request)
    compiled = transitions.compiled_step(policy, step)
    if (
        compiled is None
        or compiled.escalate_after is None
        or now < _step_started(request) + compiled.escalate_after
    ):
        return None
    fixed = _fixed_deadline(request, policy)
    if fixed is not None and fixed <= now:
        return None
    return policy, compiled


def _on_timeout(
    session: Session,
    tenant: Tenant,
    request: ApprovalRequest,
    policy: Policy,
    compiled: CompiledStep | None,
    now: datetime,
) -> str:
    """The current step timed out: do what ``on_timeout`` says; returns what was done."""
    action = _on_timeout_of(compiled)
    after = compiled.escalate_after_text if compiled is not None else None
    step_index = request.current_step
    step = request.steps[step_index]
    if action == "cancel":
        _expire(
            session,
            tenant,
            request,
            now,
            {"step": step["name"], "timeout": after},
        )
        return "expired"
    if policy.reminders:
        last = aware(request.last_reminded_at) if request.last_reminded_at else None
        if last is None or last < _step_started(request):
            # reminders are configured: the approvers hear once before the step escalates
            # (next run)
            request.last_reminded_at = now
            session.flush()
            events.emit(
                session,
                tenant,
                "approval_reminder",
                request.order,
                events.step_recipients(session, tenant, request, step_index),
                {"step": step["name"], "reason": "before_escalation"},
            )
            return "reminded"
    _push_expiry(request, policy, compiled, now, _fixed_deadline(request, policy))
    steps = [dict(s) for s in request.steps]
    steps[step_index]["timed_out"] = isoformat(now)
    if action == "approve":
        steps[step_index]["approved_by_system"] = True
        request.steps = steps
        audit(
            session,
            tenant.id,
            "system",
            "approval.approved_on_timeout",
            "order",
            request.order.external_id,
            {"step": step["name"], "after": after},
        )
        transitions.advance(session, tenant, request, now, None)
        return "approved"
    return _escalate(session, tenant, request, policy, compiled, steps, now)


def _escalate(
    session: Session,
    tenant: Tenant,
    request: ApprovalRequest,
    policy: Policy,
    compiled: CompiledStep,
    steps: list[dict],
    now: datetime,
) -> str:
    """The timed-out step's approvers are joined (``mode: add``) or replaced by the escalation
    targets; with no target the request expires."""
    step_index = request.current_step
    step = request.steps[step_index]
    targets = _escalation_targets(session, tenant, request, policy, compiled)
    if not targets:
        request.steps = steps
        _expire(session, tenant, request, now, {"step": step["name"], "escalation": "no_targets"})
        return "expired"
    before = [a["account"] for a in step["approvers"]]
    mode = compiled.escalation.mode if compiled.escalation is not None else "add"
    kept = [a for a in step["approvers"] if mode == "add"]
    added = [t for t in targets if t["account"] not in {a["account"] for a in kept}]
    steps[step_index]["approvers"] = kept + added
    steps[step_index]["escalated_at"] = isoformat(now)
    request.steps = steps
    request.step_started_at = now  # reminders to the new approvers count from here
    transitions.set_eligibility(session, tenant, request, now, step_index)
    session.flush()
    audit(
        session,
        tenant.id,
        "system",
        "approval.escalated",
        "order",
        request.order.external_id,
        {
            "step": step["name"],
            "from": before,
            "to": [a["account"] for a in steps[step_index]["approvers"]],
            "mode": mode,
        },
    )
    accounts = events._accounts(session, tenant, [a["account"] for a in added])
    recipients = [
        events._recipient(
            accounts.get(a["account"]), "email" if a["email"] else "inbox", a["account"]
        )
        for a in added
    ]
    events.emit(
        session,
        tenant,
        "approval_escalated",
        request.order,
        recipients,
        {
            "step": step["name"],
            "escalated_from": before,
            "after": compiled.escalate_after_text,
            "approval_request": request.id,
        },
    )
    return "escalated"


def _push_expiry(
    request: ApprovalRequest,
    policy: Policy,
    compiled: CompiledStep | None,
    now: datetime,
    fixed: datetime | None = None,
) -> None:
    """A step that escalates or is approved on timeout gives the request time again when its
    expiry has passed, never beyond its fixed calendar expiry (``fixed``)."""
    if request.expires_at is not None and aware(request.expires_at) <= now:
        grace = (
            compiled.escalate_after
            if compiled is not None and compiled.escalate_after is not None
            else policy.expiry
        )
        request.expires_at = request_expiry(now, grace, fixed)


def _escalation_targets(
    session: Session,
    tenant: Tenant,
    request: ApprovalRequest,
    policy: Policy,
    compiled: CompiledStep,
) -> list[dict]:
    """``escalate_to``: named accounts and/or the active members of the order's company holding
    a role with the ``approve_orders`` permission; never the buyer.  Each is told by e-mail or
    in the inbox as the engine decides for any approver (its effective ``email`` setting, the
    account's own switch and an address)."""
    escalation = compiled.escalation
    if escalation is None:
        return []
    buyer = (request.order.decision.get("buyer") or {}).get("account")
    company = (request.order.decision.get("buyer") or {}).get("company")
    directory = directory_for(session, tenant)
    why = f"escalated from step {request.steps[request.current_step]['name']}" + (
        f" after {compiled.escalate_after_text}" if compiled.escalate_after_text else " at expiry"
    )
    chosen: dict[str, dict] = {}
    candidates = (
        [
            (m.account_id, m.role, m)
            for m in directory.memberships_of_company(company)
            if m.active and m.role in escalation.roles
        ]
        if company and escalation.roles
        else []
    )
    candidates += [
        (a, None, directory.membership(a, company) if company else None)
        for a in escalation.accounts
    ]
    for account_id, role, membership in candidates:
        if account_id == buyer or account_id in chosen:
            continue
        if role is not None and "approve_orders" not in (
            policy.roles.get(role).permissions if policy.roles.get(role) else ()
        ):
            continue
        account = directory.account(account_id)
        if account is None or not account.active:
            continue
        settings = (
            policy.effective_settings(membership) if membership is not None else policy.settings
        )
        chosen[account_id] = {
            "account": account_id,
            "name": account.name,
            "role": role,
            "role_label": policy.role_label(role) if role else "",
            "why": [why],
            "email": emailed_as_approver(settings, account),
            "escalated": True,
        }
    return list(chosen.values())


def remind_due(
    session: Session, *, now: datetime | None = None, limit: int = 500, batch: int = 500
) -> int:
    """Send approval_reminder to the approvers of each pending request's current step.

    The first reminder goes out ``reminders.after`` after the step became
    current (``step_started_at``: submission, the previous step's approval, a
    reversal, an escalation, a re-decision), the next ones ``reminders.every``
    (default: ``after``) after the last.  A reminder sent during an earlier
    step does not count for the current one.  At most ``limit`` reminders go
    out per run; every pending request is looked at.
    """
    now = now_or(now)
    count = 0
    for request in _pending_requests(session, batch):
        if count >= limit:
            break
        if not _reminder_due(session, request, now):
            continue
        request = _claim(session, request)
        if request is not None and _reminder_due(session, request, now):
            try:
                with session.begin_nested():
                    request.last_reminded_at = now
                    session.flush()
                    tenant = session.get(Tenant, request.tenant_id)
                    events.emit(
                        session,
                        tenant,
                        "approval_reminder",
                        request.order,
                        events.step_recipients(session, tenant, request, request.current_step),
                        {"step": request.steps[request.current_step]["name"]},
                    )
                count += 1
            except StaleDataError:
                continue
    return count


def _reminder_due(session: Session, request: ApprovalRequest, now: datetime) -> bool:
    """Whether the approvers of the request's current step are due a reminder at ``now``."""
    if request.status != "pending":
        return False
    if request.steps[request.current_step].get("merchant"):
        return False  # the merchant's review: no customer approver to remind
    reminders = queries.request_policy(session, request).reminders
    if reminders is None:
        return False
    started = _step_started(request)
    last = aware(request.last_reminded_at) if request.last_reminded_at else None
    if last is not None and last < started:
        last = None  # reminded about an earlier step
    return (last is None and now - started >= reminders.after) or (
        last is not None and now - last >= reminders.every
    )
