"""The jobs cron runs (``approvalrules expire|remind``): step timeouts (escalate, approve as the
system, cancel), request expiry, and reminders.

Each job looks at every pending request in batches, acts on each in its own
savepoint, and is safe to run anywhere, any time, on several hosts at once: a
request another host changed first fails its conditional update
(``StaleDataError``) and is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from ..engine import Policy
from ..engine.durations import isoformat, parse_duration
from ..store.directory import SqlDirectory
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
    timed out before).
    """
    now = now_or(now)
    handled: set[int] = set()
    count = escalate_due(session, now=now, limit=limit, handled=handled)
    due = session.scalars(
        select(ApprovalRequest)
        .where(ApprovalRequest.status == "pending", ApprovalRequest.expires_at <= now)
        .order_by(ApprovalRequest.id)
        .limit(limit)
    ).all()
    for request in due:
        if request.id in handled:
            continue  # its step timed out in this run already
        try:
            with session.begin_nested():
                tenant = session.get(Tenant, request.tenant_id)
                policy = queries.request_policy(session, request)
                step = request.steps[request.current_step]
                spec = _step_spec(policy, step)
                if _timeout_action(spec) != "cancel" and not step.get("timed_out"):
                    result = _on_timeout(session, tenant, request, policy, spec, now)
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


def _step_spec(policy: Policy, step: Mapping[str, Any]) -> dict:
    """The rule set's declaration of a request step (``tiers@1000`` is step ``tiers``); {} for
    the merchant step."""
    if step.get("merchant"):
        return {}
    base = step["name"].split("@", 1)[0].split("/", 1)[0]
    for spec in ((policy.data or {}).get("approval") or {}).get("steps") or ():
        if spec.get("name") == base:
            return spec
    return {}


def _timeout_action(spec: Mapping[str, Any]) -> str:
    """``on_timeout``; default ``escalate`` when the step names ``escalate_to``, else ``cancel``."""
    return spec.get("on_timeout") or ("escalate" if spec.get("escalate_to") else "cancel")


def _step_started(request: ApprovalRequest) -> datetime:
    return aware(request.step_started_at or request.created_at)


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
        if request.status != "pending":
            continue  # decided since its batch was read
        step = request.steps[request.current_step]
        if step.get("timed_out") or step.get("merchant"):
            continue
        policy = queries.request_policy(session, request)
        spec = _step_spec(policy, step)
        if not spec.get("escalate_after") or now < _step_started(request) + parse_duration(
            spec["escalate_after"]
        ):
            continue
        try:
            with session.begin_nested():
                result = _on_timeout(
                    session, session.get(Tenant, request.tenant_id), request, policy, spec, now
                )
            count += result != "reminded"
            if handled is not None:
                handled.add(request.id)
        except StaleDataError:
            continue
    return count


def _on_timeout(
    session: Session,
    tenant: Tenant,
    request: ApprovalRequest,
    policy: Policy,
    spec: Mapping[str, Any],
    now: datetime,
) -> str:
    """The current step timed out: do what ``on_timeout`` says; returns what was done."""
    action = _timeout_action(spec)
    step_index = request.current_step
    step = request.steps[step_index]
    if action == "cancel":
        _expire(
            session,
            tenant,
            request,
            now,
            {"step": step["name"], "timeout": spec.get("escalate_after")},
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
    _push_expiry(request, policy, spec, now)
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
            {"step": step["name"], "after": spec.get("escalate_after")},
        )
        transitions.advance(session, tenant, request, now, None)
        return "approved"
    return _escalate(session, tenant, request, policy, spec, steps, now)


def _escalate(
    session: Session,
    tenant: Tenant,
    request: ApprovalRequest,
    policy: Policy,
    spec: Mapping[str, Any],
    steps: list[dict],
    now: datetime,
) -> str:
    """The timed-out step's approvers are joined (``mode: add``) or replaced by the escalation
    targets; with no target the request expires."""
    step_index = request.current_step
    step = request.steps[step_index]
    targets = _escalation_targets(session, tenant, request, policy, spec)
    if not targets:
        request.steps = steps
        _expire(session, tenant, request, now, {"step": step["name"], "escalation": "no_targets"})
        return "expired"
    before = [a["account"] for a in step["approvers"]]
    mode = (spec.get("escalate_to") or {}).get("mode", "add")
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
        events._recipient(accounts.get(a["account"]), "email", a["account"]) for a in added
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
            "after": spec.get("escalate_after"),
            "approval_request": request.id,
        },
    )
    return "escalated"


def _push_expiry(
    request: ApprovalRequest, policy: Policy, spec: Mapping[str, Any], now: datetime
) -> None:
    """A step that escalates or is approved on timeout gives the request time again when its
    expiry has passed."""
    if request.expires_at is not None and aware(request.expires_at) <= now:
        grace = (
            parse_duration(spec["escalate_after"]) if spec.get("escalate_after") else policy.expiry
        )
        request.expires_at = now + grace if grace else None


def _escalation_targets(
    session: Session,
    tenant: Tenant,
    request: ApprovalRequest,
    policy: Policy,
    spec: Mapping[str, Any],
) -> list[dict]:
    """``escalate_to``: named accounts and/or the active members of the order's company holding
    a role with the ``approve_orders`` permission; never the buyer."""
    to = spec.get("escalate_to") or {}
    buyer = (request.order.decision.get("buyer") or {}).get("account")
    company = (request.order.decision.get("buyer") or {}).get("company")
    directory = SqlDirectory(session, tenant.id)
    why = f"escalated from step {request.steps[request.current_step]['name']}" + (
        f" after {spec['escalate_after']}" if spec.get("escalate_after") else " at expiry"
    )
    chosen: dict[str, dict] = {}
    roles = to.get("role")
    roles = [roles] if isinstance(roles, str) else list(roles or ())
    candidates = (
        [
            (m.account_id, m.role)
            for m in directory.memberships_of_company(company)
            if m.active and m.role in roles
        ]
        if company and roles
        else []
    )
    candidates += [(a, None) for a in to.get("accounts") or ()]
    for account_id, role in candidates:
        if account_id == buyer or account_id in chosen:
            continue
        if role is not None and "approve_orders" not in (
            policy.roles.get(role).permissions if policy.roles.get(role) else ()
        ):
            continue
        account = directory.account(account_id)
        if account is None or not account.active:
            continue
        chosen[account_id] = {
            "account": account_id,
            "name": account.name,
            "role": role,
            "role_label": policy.role_label(role) if role else "",
            "why": [why],
            "email": bool(account.email and account.email_enabled),
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
        if request.steps[request.current_step].get("merchant"):
            continue  # the merchant's review: no customer approver to remind
        policy = queries.request_policy(session, request)
        if not policy.reminders:
            continue
        started = _step_started(request)
        last = aware(request.last_reminded_at) if request.last_reminded_at else None
        if last is not None and last < started:
            last = None  # reminded about an earlier step
        after = parse_duration(policy.reminders["after"])
        every = parse_duration(policy.reminders.get("every", policy.reminders["after"]))
        if (last is None and now - started >= after) or (last is not None and now - last >= every):
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
