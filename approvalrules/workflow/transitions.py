"""The one place where an approval request changes state.

:func:`record` writes an order's decision and opens its request, :func:`advance`
moves to the next step, :func:`close` decides the request (approved, rejected,
expired, withdrawn), :func:`reopen` starts it again from its first step, and
:func:`redecide` replaces its decision.  Each writes the request's eligibility
rows (:func:`set_eligibility`), its audit entry and its outbox events, so the
actions and jobs never touch the request's status, steps or eligibility
themselves.  :func:`guard_approver` is the one check that an approver may act
on the current step.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, exists, func, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified, set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from ..engine import CompiledStep, Decision, Policy
from ..engine.durations import isoformat
from ..engine.money import format_amount
from ..engine.timeouts import request_expiry
from ..errors import Conflict, Forbidden
from ..store import versions
from ..store.db import core_write, insert_object, insert_rows
from ..store.models import (
    ELIGIBILITY_STATUS,
    Account,
    ApprovalEligibility,
    ApprovalRequest,
    Order,
    RuleSetVersion,
    Tenant,
    eligibility_status,
)
from ..store.services import audit
from . import events, queries
from .deciding import draw_budgets

MERCHANT_STEP = "merchant-review"


# ------------------------------------------------------- what is recorded


def steps_json(decision: Decision) -> list[dict]:
    """The decision's steps as a request stores them (the approvers' e-mail flag included, and
    the rule set's step each comes from)."""
    return [
        {
            "name": step.name,
            "base": step.base,
            **({"group_of": step.group_of} if step.group_of else {}),
            "required": step.required,
            "condition": step.condition,
            "approvers": [
                {
                    "account": a.account,
                    "name": a.name,
                    "role": a.role,
                    "role_label": a.role_label,
                    "why": list(a.why),
                    "email": a.email,
                    **({"delegate_of": list(a.delegate_of)} if a.delegate_of else {}),
                }
                for a in step.approvers
            ],
        }
        for step in decision.steps
    ]


def decision_data(session: Session, decision: Decision, version: RuleSetVersion) -> dict:
    """The decision as stored on the order: ``decision.as_dict()``, its ``ruleset`` stamped with
    the rules in force.

    ``ruleset.policy_hash`` is the compiled policy's hash (the merged data, inherited fields
    included); for a rule set that extends another, ``ruleset.parents`` lists the parents'
    versions it was compiled against, nearest first.  Re-evaluation on publish compares the
    hash to tell whether a parent's new version changed a pending request's rules.
    """
    data = decision.as_dict()
    stamp = dict(data.get("ruleset") or {})
    stamp["policy_hash"] = versions.policy_for(version, session).hash
    if version.extends:
        stamp["parents"] = [
            {"name": versions.ruleset_name(p), "version": p.number}
            for p in versions.parent_chain(session, version)
        ]
    data["ruleset"] = stamp
    return data


def merchant_steps(session: Session, version: RuleSetVersion) -> list[dict]:
    """``approval.merchant_review: true``: a final step only a merchant admin decides."""
    if not versions.policy_for(version, session).merchant_review:
        return []
    return [
        {
            "name": MERCHANT_STEP,
            "required": 1,
            "condition": "approval.merchant_review",
            "approvers": [],
            "merchant": True,
        }
    ]


def _review_expiry(session: Session, version: RuleSetVersion, now: datetime) -> datetime | None:
    """When a request that waits for the merchant alone expires: ``approval.expiry`` (``after``
    from now, its ``date`` if earlier), as any request."""
    policy = versions.policy_for(version, session)
    return request_expiry(now, policy.expiry, policy.expiry_deadline)


def step_base(step: Mapping[str, Any]) -> str:
    """The rule set's step a request step comes from (``tiers`` for ``tiers@1000``)."""
    if "base" in step:
        return step["base"]
    # stored before steps recorded their base (the one place that still reads it off the name)
    return step["name"].split("@", 1)[0].split("/", 1)[0]


def step_group(step: Mapping[str, Any]) -> str | None:
    """The ``all_of`` step a sub-step ``<step>/<n>`` belongs to, else None."""
    if "base" in step:
        return step.get("group_of") or None
    # stored before steps recorded their group (see step_base)
    base, slash, number = step["name"].rpartition("/")
    return base if slash and number.isdigit() else None


def compiled_step(policy: Policy, step: Mapping[str, Any]) -> CompiledStep | None:
    """The rule set's compiled step of a request step; None for the merchant's step."""
    return None if step.get("merchant") else policy.step(step_base(step))


# ------------------------------------------------------------------ open


def record(
    session: Session,
    tenant: Tenant,
    body: Mapping[str, Any],
    decision: Decision,
    version: RuleSetVersion | versions.ActiveVersion,
    digest: str,
    key: str | None,
    now: datetime,
    actor: str,
    order: Order | None = None,
) -> Order:
    """Write the order (new, or ``order`` again) with ``decision``; open its request when pending.

    An order the rules approve waits for the merchant when the rule set has
    ``approval.merchant_review``; an approved order draws on its budgets.  A new order and
    request take the ids the transaction drew for them, if any (``insert_object``).
    """
    company_id = queries.company_id(session, tenant, decision.buyer["company"])
    buyer_id = queries.account_id(session, tenant, decision.buyer["account"])
    data = decision_data(session, decision, version)
    merchant = (
        merchant_steps(session, version) if decision.outcome in ("pending", "approved") else []
    )
    # approved by the rules, but the merchant reviews every order first
    review = decision.outcome == "approved" and bool(merchant)
    status = "pending" if review else decision.outcome
    values = {
        "company_id": company_id,
        "buyer_id": buyer_id,
        "payload": dict(body),
        "total": decision.order.total,
        "currency": decision.order.currency,
        "type": decision.order.type,
        "status": status,
        "decision": data,
        "ruleset_version_id": version.id,
        "updated_at": now,
    }
    new = order is None
    # held by the order, the version stays in the session for whoever reads it next (the
    # response reads its number)
    stored = (
        versions.version_ref(session, version)
        if isinstance(version, versions.ActiveVersion)
        else version
    )
    if new:
        # a new order and its request are written with Core inserts, not the unit of work
        order = insert_object(
            session,
            Order,
            {
                "tenant_id": tenant.id,
                "external_id": body["id"],
                "idempotency_key": key,
                "request_hash": digest,
                "previous_decisions": None,
                "released_at": None,
                "created_at": now,
                **values,
            },
        )
        set_committed_value(order, "ruleset_version", stored)
    else:
        for name, value in values.items():
            setattr(order, name, value)
        order.ruleset_version = stored
        if status != "pending":
            # a pending order goes in with its request, in one flush below
            session.flush()
    audit(
        session,
        tenant.id,
        actor,
        f"order.{status}",
        "order",
        order.external_id,
        {
            "reasons": decision.reason_codes(),
            "version": version.number,
            **({"merchant_review": True} if review else {}),
        },
    )
    if status == "pending":
        steps = steps_json(decision) + merchant
        expires_at = _review_expiry(session, version, now) if review else decision.expires_at
        if new:
            request = insert_object(
                session,
                ApprovalRequest,
                {
                    "tenant_id": tenant.id,
                    "order_id": order.id,
                    "ruleset_version_id": version.id,
                    "status": "pending",
                    "current_step": 0,
                    "generation": 0,
                    "steps": steps,
                    "expires_at": expires_at,
                    "version_id": 1,  # the ORM's first version
                    "created_at": now,
                    "decided_at": None,
                    "last_reminded_at": None,
                    "step_started_at": now,
                },
            )
            # the response reads both sides, and the (no) actions, without a query
            set_committed_value(request, "order", order)
            set_committed_value(order, "approval_request", request)
            set_committed_value(request, "actions", [])
        else:
            request = ApprovalRequest(
                tenant_id=tenant.id,
                order=order,  # and order.approval_request
                ruleset_version_id=version.id,
                status="pending",
                current_step=0,
                steps=steps,
                expires_at=expires_at,
                created_at=now,
                step_started_at=now,
                actions=[],  # a new request has none: no query for them
            )
            session.add(request)
            session.flush()
        set_eligibility(session, tenant, request, now, fresh=True)
        if review:
            _emit_merchant_review(session, tenant, order, request)
        else:
            events.emit_decision(session, tenant, order, decision, request)
        return order
    if new:
        # no request: the response asks for none
        set_committed_value(order, "approval_request", None)
    if decision.outcome == "approved":
        draw_budgets(session, tenant, order, versions.policy_for(version, session), now)
        events.emit_decision(session, tenant, order, decision, None)
    elif decision.outcome == "held":
        events.emit_decision(session, tenant, order, decision, None)
    return order


def set_eligibility(
    session: Session,
    tenant: Tenant,
    request: ApprovalRequest,
    now: datetime,
    step_index: int | None = None,
    *,
    fresh: bool = False,
) -> None:
    """Make the inbox index say who may act on each step (or on step ``step_index`` alone),
    as the request's steps do now: rows of approvers no longer named go, new ones come.

    ``fresh``: the request was just created and has no rows yet (no need to read them).
    """
    indexes = range(len(request.steps)) if step_index is None else (step_index,)
    wanted = [(i, a["account"]) for i in indexes for a in request.steps[i]["approvers"]]
    where = [ApprovalEligibility.request_id == request.id]
    if step_index is not None:
        where.append(ApprovalEligibility.step_index == step_index)
    existing = (
        set()
        if fresh
        else {
            tuple(row)
            for row in session.execute(
                select(ApprovalEligibility.step_index, ApprovalEligibility.account_id).where(*where)
            )
        }
    )
    for index, account in existing - set(wanted):
        session.execute(
            ApprovalEligibility.__table__.delete().where(
                ApprovalEligibility.request_id == request.id,
                ApprovalEligibility.step_index == index,
                ApprovalEligibility.account_id == account,
            )
        )
    insert_rows(
        session,
        ApprovalEligibility,
        [
            {
                "request_id": request.id,
                "tenant_id": tenant.id,
                "account_id": account,
                "step_index": index,
                "created_at": now,
            }
            for index, account in dict.fromkeys(wanted)
            if (index, account) not in existing
        ],
    )


def ask_approvers(session: Session, tenant: Tenant, request: ApprovalRequest, **data: Any) -> None:
    """``approval_requested`` to the approvers of the current step (none for the merchant's step:
    the storefront's webhook hears)."""
    step_index = request.current_step
    events.emit(
        session,
        tenant,
        "approval_requested",
        request.order,
        events.step_recipients(session, tenant, request, step_index),
        {"step": request.steps[step_index]["name"], **data},
    )


def _emit_merchant_review(
    session: Session, tenant: Tenant, order: Order, request: ApprovalRequest
) -> None:
    """An order the rules approve outright now waits for the merchant's review.

    The buyer hears that the order waits (``order_submitted``, as for any pending
    order); ``approval_requested`` for the merchant step has no recipients (the
    merchant is no account) and reaches the storefront's webhook, as when a request
    reaches that step after the customer's approvers.
    """
    data = {"step": request.steps[request.current_step]["name"], "approval_request": request.id}
    events.emit(
        session,
        tenant,
        "order_submitted",
        order,
        events.buyer_recipients(session, tenant, order),
        data,
    )
    ask_approvers(session, tenant, request, approval_request=request.id)


# ----------------------------------------------------------------- guards


def check_if_match(request: ApprovalRequest, if_match: str | int | None) -> None:
    """409 ``stale_version`` when the caller read another version of the request."""
    if if_match is None or if_match == "":
        return
    expected = str(if_match).strip('"W/ ')
    if expected != str(request.version_id):
        raise Conflict(
            "stale_version",
            f"approval request {request.id} is at version {request.version_id}, not {expected}; "
            "reload it and try again",
        )


def _who_decided(session: Session, request: ApprovalRequest) -> str:
    deciding = [
        a
        for a in request.actions
        if a.generation == request.generation and a.action in ("approve", "reject")
    ]
    names = sorted({session.get(Account, a.approver_id).external_id for a in deciding})
    return ", ".join(names) or "the system"


def require_pending(session: Session, request: ApprovalRequest) -> None:
    """409 ``already_decided`` (naming who decided) unless the request is pending."""
    if request.status != "pending":
        by = (
            f" by {_who_decided(session, request)}"
            if request.status in ("approved", "rejected")
            else ""
        )
        raise Conflict(
            "already_decided",
            f"approval request {request.id} is already {request.status}{by}",
            details={"status": request.status},
        )


def eligible_in_step(request: ApprovalRequest, step_index: int, approver: str) -> bool:
    """Whether ``approver`` is named among the approvers of step ``step_index``."""
    step = request.steps[step_index]
    return any(a["account"] == approver for a in step["approvers"])


def refuse_merchant_step(request: ApprovalRequest, step: Mapping[str, Any]) -> None:
    """403 ``merchant_review``: only a merchant admin decides the merchant's step."""
    if step.get("merchant"):
        raise Forbidden(
            "merchant_review",
            f"order {request.order.external_id} waits for the merchant's review; "
            "only a merchant admin can decide it now",
            details={"step": step["name"]},
        )


def guard_approver(
    session: Session, tenant: Tenant, request_id: int, approver: str, if_match=None
) -> tuple[ApprovalRequest, dict]:
    """The request and its current step, when ``approver`` may act on that step now.

    404 for another tenant's request, 409 when the caller read a stale version or
    the request is decided, 403 for the merchant's step and for an approver the
    step does not name (its ``details`` list who is eligible).
    """
    request = queries.get_request(session, tenant, request_id, for_update=True)
    check_if_match(request, if_match)
    require_pending(session, request)
    step = request.steps[request.current_step]
    refuse_merchant_step(request, step)
    if not eligible_in_step(request, request.current_step, approver):
        raise Forbidden(
            "not_eligible",
            f"{approver} is not an eligible approver of step {step['name']} "
            f"of order {request.order.external_id}",
            details={"step": step["name"], "eligible": [a["account"] for a in step["approvers"]]},
        )
    return request, step


# ------------------------------------------------------------ transitions


def touch(request: ApprovalRequest) -> None:
    """Bump the request's version although no column changed (a partial approval)."""
    # a version bump makes the UPDATE conditional, so racing approvers conflict
    # instead of both counting against a stale read
    flag_modified(request, "current_step")


def advance(
    session: Session, tenant: Tenant, request: ApprovalRequest, now: datetime, comment: str | None
) -> ApprovalRequest:
    """The current step is approved: on to the next step, or the request is approved."""
    if request.current_step + 1 < len(request.steps):
        request.current_step += 1
        request.step_started_at = now
        session.flush()
        ask_approvers(session, tenant, request)
        return request
    return close(session, tenant, request, "approved", now, comment=comment)


def close(
    session: Session,
    tenant: Tenant,
    request: ApprovalRequest,
    status: str,
    now: datetime,
    *,
    comment: str | None = None,
    order_status: str | None = None,
    audit_entry: tuple[str, str, Mapping[str, Any] | None] | None = None,
) -> ApprovalRequest:
    """The one terminal transition: the request is ``status`` and the order follows.

    ``order_status`` when the order's differs (a re-decision that holds or blocks
    the order closes its request as rejected).  ``audit_entry`` is ``(actor,
    action, data)`` of the audit row to write.  An approved order draws on its
    budgets; the buyer (and the master, on approval) hear of the final state.
    """
    order = request.order
    if _unchanged(request) and _unchanged(order):
        _write_close(session, request, order, status, order_status or status, now)
    else:
        request.status = status
        request.decided_at = now
        order.status = order_status or status
        order.updated_at = now
        session.flush()
    if audit_entry is not None:
        actor, action, data = audit_entry
        audit(session, tenant.id, actor, action, "order", order.external_id, data)
    if order.status == "approved":
        draw_budgets(
            session,
            tenant,
            order,
            queries.version_policy(session, tenant, request.ruleset_version_id),
            now,
        )
    events.emit_final(session, tenant, order, order.status, comment)
    return request


def _unchanged(instance) -> bool:
    """Whether ``instance`` is in the database and nothing of it waits to be written."""
    state = sa_inspect(instance)
    return state.persistent and not state.committed_state


# :func:`_write_close`'s statements, built once (building them cost more than running them);
# the values to set are named by the parameters
_REQUESTS, _ORDERS = ApprovalRequest.__table__, Order.__table__
_CLOSE_REQUEST = update(_REQUESTS).where(
    _REQUESTS.c.id == bindparam("of_request"),
    _REQUESTS.c.version_id == bindparam("read_version"),
)
_CLOSE_ORDER = update(_ORDERS).where(_ORDERS.c.id == bindparam("of_order"))


def _close_in_one_statement():
    """PostgreSQL: the three updates of :func:`_write_close` as one statement (one round
    trip instead of three), whose answer is how many requests it closed (0 or 1).

    Data-modifying ``WITH`` parts all run, once each, whatever the final ``SELECT`` reads;
    the eligibility rows and the order follow only a request that was closed.
    """
    closed = (
        _CLOSE_REQUEST.values(
            status=bindparam("status"),
            decided_at=bindparam("decided_at"),
            version_id=bindparam("version_id"),
        )
        .returning(_REQUESTS.c.id)
        .cte("closed_request")
    )
    was_closed = exists(select(closed.c.id))
    follow = [
        ELIGIBILITY_STATUS.where(was_closed)
        .values(status=bindparam("status"))
        .cte("closed_eligibility"),
        _CLOSE_ORDER.where(was_closed)
        .values(status=bindparam("order_status"), updated_at=bindparam("decided_at"))
        .cte("closed_order"),
    ]
    return select(func.count()).select_from(closed).add_cte(*follow)


_CLOSE_IN_ONE_STATEMENT = _close_in_one_statement()


def _write_close(
    session: Session,
    request: ApprovalRequest,
    order: Order,
    status: str,
    order_status: str,
    now: datetime,
) -> None:
    """:func:`close`'s writes as Core updates (one statement on PostgreSQL, three
    elsewhere), for a request and an order with nothing else to write (an approval, a
    rejection): the unit of work's flush of the two rows cost more than the statements
    themselves.

    The request's UPDATE is conditional on the version read, as the ORM's would be, and
    bumps it; a concurrent write makes it fail with ``StaleDataError`` (409).  The new
    values are then set on the objects as committed, so the response reads them without a
    query.
    """
    version = request.version_id
    request_values = {
        "of_request": request.id,
        "read_version": version,
        "status": status,
        "decided_at": now,
        "version_id": version + 1,
    }
    in_one_statement = session.get_bind().dialect.name == "postgresql"
    if in_one_statement:
        changed = core_write(
            session,
            _CLOSE_IN_ONE_STATEMENT,
            {**request_values, "of_order": order.id, "order_status": order_status},
        ).scalar_one()
    else:
        changed = core_write(session, _CLOSE_REQUEST, request_values).rowcount
    if changed != 1:
        raise StaleDataError(
            f"UPDATE statement on table 'approval_requests' expected to update 1 row(s); "
            f"{changed} were matched."
        )
    if not in_one_statement:
        core_write(session, *eligibility_status(request.id, status))
        core_write(
            session,
            _CLOSE_ORDER,
            {"of_order": order.id, "status": order_status, "updated_at": now},
        )
    for target, values in (
        (request, {"status": status, "decided_at": now, "version_id": version + 1}),
        (order, {"status": order_status, "updated_at": now}),
    ):
        for key, value in values.items():
            set_committed_value(target, key, value)


def reopen(
    session: Session,
    tenant: Tenant,
    request: ApprovalRequest,
    now: datetime,
    *,
    steps: list[dict] | None = None,
    expires_at: datetime | None = None,
) -> ApprovalRequest:
    """The request is pending again from its first step, in a new generation (the approvals
    so far no longer count).  With ``steps``, they replace the request's steps (and
    ``expires_at`` its expiry) and the inbox index follows."""
    request.generation += 1
    request.status = "pending"
    request.current_step = 0
    request.step_started_at = now
    request.decided_at = None
    if steps is not None:
        request.steps = steps
        request.expires_at = expires_at
        set_eligibility(session, tenant, request, now)
    order = request.order
    order.status = "pending"
    order.updated_at = now
    session.flush()
    return request


def redecide(
    session: Session,
    tenant: Tenant,
    request: ApprovalRequest,
    body: Mapping[str, Any],
    decision: Decision,
    version: RuleSetVersion,
    now: datetime,
    actor: str,
    history: Mapping[str, Any],
) -> str:
    """Replace a pending request's decision by ``decision``; the old one goes to
    ``order.previous_decisions`` with ``history`` (why it was decided again).

    approved: the request is approved (budget drawn, buyer told), unless the
    rule set has ``approval.merchant_review``: then the steps are replaced by the
    merchant's step alone and the order waits for the merchant; blocked or
    held: the request is closed as rejected and the order takes that status;
    pending: the steps are replaced (generation + 1, eligibility rebuilt) and
    the first step's approvers are asked again.  Returns the order's new status.
    """
    order = request.order
    old_version = queries.request_version(session, request)
    previous = list(order.previous_decisions or [])
    previous.append(
        {
            **history,
            "at": isoformat(now),
            "status": order.status,
            "total": format_amount(order.total),
            "ruleset_version": old_version.number if old_version else None,
            "decision": order.decision,
        }
    )
    order.previous_decisions = previous
    order.payload = dict(body)
    order.total = decision.order.total
    order.currency = decision.order.currency
    order.decision = decision_data(session, decision, version)
    order.ruleset_version_id = version.id
    outcome = decision.outcome
    merchant = merchant_steps(session, version) if outcome in ("pending", "approved") else []
    # approved by the rules: on to the merchant's review
    review = outcome == "approved" and bool(merchant)
    order.status = "pending" if review else outcome
    order.updated_at = now
    request.ruleset_version_id = version.id
    audit(
        session,
        tenant.id,
        actor,
        "approval.redecided",
        "order",
        order.external_id,
        {
            **{k: v for k, v in history.items() if k != "changes"},
            "outcome": outcome,
            "version": version.number,
            "reasons": decision.reason_codes(),
            **({"merchant_review": True} if review else {}),
        },
    )
    if outcome == "pending" or review:
        reopen(
            session,
            tenant,
            request,
            now,
            steps=steps_json(decision) + merchant,
            expires_at=_review_expiry(session, version, now) if review else decision.expires_at,
        )
        ask_approvers(session, tenant, request, approval_request=request.id)
    elif outcome == "approved":
        close(session, tenant, request, "approved", now)
    else:
        close(session, tenant, request, "rejected", now, order_status=outcome)
    return order.status
