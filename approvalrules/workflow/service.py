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
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError as StaleData

from ..engine.durations import isoformat, parse_duration, parse_instant
from ..engine.money import format_amount, parse_amount
from ..engine import Decision, Policy, priced_total
from ..engine import Order as EngineOrder
from ..errors import ApprovalRulesError, Conflict, Forbidden, NotFound, OrderError
from ..store import versions
from ..store.directory import SqlDirectory, snapshot
from ..store.models import (
    Account,
    AdminUser,
    ApprovalAction,
    ApprovalEligibility,
    ApprovalRequest,
    BudgetLedger,
    Company,
    Order,
    RuleSetVersion,
    Tenant,
)
from ..store.services import audit
from . import events

DECIDED = ("approved", "rejected", "expired", "withdrawn")


# ------------------------------------------------------------- evaluation


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def policy_for_company(
    session: Session, tenant: Tenant, directory: SqlDirectory, company_id: str
) -> tuple[Policy, RuleSetVersion]:
    """The active policy governing a company (its own rule set, else its nearest parent's)."""
    name = _ruleset_name(directory, company_id)
    active = versions.active_versions(session, tenant.id)
    return versions.policy_for(_active(active, name, company_id), session, active), active[name]


def _cached_policy_for_company(
    session: Session, tenant: Tenant, directory: SqlDirectory, company_id: str
) -> tuple[Policy, versions.ActiveVersion]:
    """:func:`policy_for_company` from the per-process cache of active versions."""
    name = _ruleset_name(directory, company_id)
    active = versions.cached_active_versions(session, tenant)
    return versions.cached_policy(session, _active(active, name, company_id), active), active[name]


def _ruleset_name(directory, company_id: str) -> str:
    name = directory.ruleset_name_for(company_id)
    if name is None:
        raise OrderError(
            "no_ruleset",
            f"company {company_id!r} has no rule set, and neither has any parent company",
            path="order.company",
        )
    return name


def _active(active: Mapping[str, Any], name: str, company_id: str):
    version = active.get(name)
    if version is None:
        raise OrderError(
            "no_active_version",
            f"rule set {name!r} of company {company_id!r} has no published version",
            path="order.company",
        )
    return version


def _membership_company(directory: SqlDirectory, order: EngineOrder) -> str:
    if directory.account(order.buyer) is None:
        raise OrderError(
            "unknown_buyer",
            f"buyer {order.buyer!r} is not an account of this tenant",
            path="order.buyer",
        )
    membership = directory.membership(order.buyer, order.company)
    if membership is None:
        if order.company:
            raise OrderError(
                "not_a_member",
                f"buyer {order.buyer!r} is not a member of company {order.company!r}",
                path="order.company",
            )
        raise OrderError(
            "no_default_company",
            f"buyer {order.buyer!r} belongs to several companies and none is the default; name order.company",
            path="order.company",
        )
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


def _ledger_key(budget, policy: Policy, buyer: Mapping[str, Any], currency: str | None) -> str:
    """A budget's ledger: one per scope, and per currency for a currency the rule set prices besides its own."""
    in_currency = f":{currency}" if currency and currency != policy.currency else ""
    return f"{budget.name}{in_currency}/{_scope_key(budget.scope, buyer)}"


def budgets_spent(
    session: Session,
    tenant: Tenant,
    company: Company,
    policy: Policy,
    buyer: Mapping[str, Any],
    now: datetime,
    currency: str | None = None,
) -> dict[str, Decimal]:
    """What each budget of ``policy`` has drawn in the current period, net of releases, in ``currency``
    (the currency the order is priced in; default the rule set's)."""
    spent = {}
    for budget in policy.budgets:
        total = session.scalar(
            select(
                func.coalesce(func.sum(BudgetLedger.amount).filter(BudgetLedger.kind == "draw"), 0)
                - func.coalesce(
                    func.sum(BudgetLedger.amount).filter(BudgetLedger.kind == "release"), 0
                )
            ).where(
                BudgetLedger.tenant_id == tenant.id,
                BudgetLedger.company_id == company.id,
                BudgetLedger.scope_key == _ledger_key(budget, policy, buyer, currency),
                BudgetLedger.period_key == period_key(budget.period, now),
            )
        )
        spent[budget.name] = Decimal(total or 0)
    return spent


def evaluate(
    session: Session,
    tenant: Tenant,
    body: Mapping[str, Any],
    *,
    now: datetime | None = None,
    version: RuleSetVersion | None = None,
    dry_run: bool = False,
) -> tuple[Decision, RuleSetVersion | versions.ActiveVersion]:
    """The decision for ``body`` under the active version (or ``version``, e.g. a request's pinned one); writes nothing.

    ``dry_run`` (the storefront's evaluate endpoint): the active version comes from
    the per-process cache (:func:`versions.cached_active_versions`) and is returned as
    an :class:`~approvalrules.store.versions.ActiveVersion`, with no query for it.
    Actions that record the version (submit, re-decisions) leave it off: they read
    the versions in their own transaction, which may just have published one.
    """
    now = _now(now)
    order = EngineOrder.from_dict(body)
    directory = snapshot(session, tenant)
    company_id = _membership_company(directory, order)
    if version is None and dry_run:
        policy, version = _cached_policy_for_company(session, tenant, directory, company_id)
    elif version is None:
        policy, version = policy_for_company(session, tenant, directory, company_id)
    else:
        policy = versions.policy_for(version, session)
    spent = {}
    if policy.budgets:
        membership = directory.membership(order.buyer, company_id)
        buyer = {"account": order.buyer, "group": membership.group if membership.active else None}
        spent = budgets_spent(
            session,
            tenant,
            _company(session, tenant, company_id),
            policy,
            buyer,
            now,
            policy.pricing_currency(order.currency),
        )
    return policy.evaluate(order, directory, now=now, budgets_spent=spent), version


def inbox_queries(tenant_id: int, *, approver: str | None = None, status: str | None = None):
    """(requests query, counts-per-status query) of an approver's inbox, or of the whole tenant.

    With an approver, the eligibility index answers "this approver's requests
    in this status" alone, counts included.
    """
    from sqlalchemy import distinct

    query = (
        select(ApprovalRequest)
        .join(Order, ApprovalRequest.order_id == Order.id)
        .where(ApprovalRequest.tenant_id == tenant_id)
    )
    counts = (
        select(ApprovalRequest.status, func.count())
        .where(ApprovalRequest.tenant_id == tenant_id)
        .group_by(ApprovalRequest.status)
    )
    if approver:
        mine = [
            ApprovalEligibility.tenant_id == tenant_id,
            ApprovalEligibility.account_id == approver,
        ]
        eligible = select(ApprovalEligibility.request_id).where(*mine)
        if status:
            eligible = eligible.where(ApprovalEligibility.status == status)
        query = query.where(ApprovalRequest.id.in_(eligible))
        counts = (
            select(ApprovalEligibility.status, func.count(distinct(ApprovalEligibility.request_id)))
            .where(*mine)
            .group_by(ApprovalEligibility.status)
        )
    if status:
        query = query.where(ApprovalRequest.status == status)
    return query, counts


def visible_orders_query(
    session: Session, tenant: Tenant, viewer: str, company_id: str | None = None
):
    """A query of the orders ``viewer`` may see in one company, per the rule set's ``visibility``."""
    from sqlalchemy import exists

    from ..store.models import Group, Membership

    directory = snapshot(session, tenant)
    membership = directory.membership(viewer, company_id)
    if membership is None:
        raise OrderError(
            "not_a_member",
            f"account {viewer!r} is not a member of {company_id or 'a default company'}",
            path="viewer",
        )
    policy, _ = policy_for_company(session, tenant, directory, membership.company_id)
    seen = policy.visibility_for(membership)
    account = _account(session, tenant, viewer)
    company = _company(session, tenant, membership.company_id)
    in_company = Order.company_id == company.id

    def buyer_in_group(*group_filter):
        return exists().where(
            Membership.account_id == Order.buyer_id,
            Membership.company_id == company.id,
            *group_filter,
        )

    visible = [Order.buyer_id == account.id]
    if seen.whole_company:
        visible.append(in_company)
    if seen.all_group_orders:
        visible.append(and_(in_company, buyer_in_group(Membership.group_id.is_not(None))))
    if seen.own_group:
        group_ids = select(Group.id).where(
            Group.company_id == company.id, Group.external_id == seen.own_group
        )
        visible.append(and_(in_company, buyer_in_group(Membership.group_id.in_(group_ids))))
    if seen.eligible:
        eligible = (
            select(ApprovalRequest.order_id)
            .join(ApprovalEligibility, ApprovalEligibility.request_id == ApprovalRequest.id)
            .where(
                ApprovalEligibility.tenant_id == tenant.id, ApprovalEligibility.account_id == viewer
            )
        )
        visible.append(Order.id.in_(eligible))
    return select(Order).where(Order.tenant_id == tenant.id, or_(*visible))


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
    return _one(
        session,
        Company,
        "unknown_company",
        f"no company {external_id!r}",
        Company.tenant_id == tenant.id,
        Company.external_id == external_id,
    )


def _account(session: Session, tenant: Tenant, external_id: str) -> Account:
    return _one(
        session,
        Account,
        "unknown_account",
        f"no account {external_id!r}",
        Account.tenant_id == tenant.id,
        Account.external_id == external_id,
    )


def request_hash(body: Mapping[str, Any]) -> str:
    """Hash of a request body in canonical JSON: equal bodies, equal hashes."""
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()


def get_order(session: Session, tenant: Tenant, external_id: str) -> Order:
    """The tenant's order by its storefront id."""
    return _one(
        session,
        Order,
        "unknown_order",
        f"no order {external_id!r}",
        Order.tenant_id == tenant.id,
        Order.external_id == external_id,
    )


def get_request(session: Session, tenant: Tenant, request_id: int) -> ApprovalRequest:
    """The tenant's approval request by id."""
    if not 0 < request_id < 2**31:
        raise NotFound(
            "unknown_approval", f"no approval request {request_id}"
        )  # ids are 32-bit: never ask the database
    return _one(
        session,
        ApprovalRequest,
        "unknown_approval",
        f"no approval request {request_id}",
        ApprovalRequest.tenant_id == tenant.id,
        ApprovalRequest.id == request_id,
    )


def request_for_order(session: Session, order: Order) -> ApprovalRequest | None:
    return session.scalar(select(ApprovalRequest).where(ApprovalRequest.order_id == order.id))


def _steps_json(decision: Decision) -> list[dict]:
    return [
        {
            "name": step.name,
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
        raise OrderError(
            "missing_order_id",
            "order.id (the storefront's order number) is required to submit",
            path="order.id",
        )
    digest = request_hash(body)
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
                f"order {existing.external_id!r} was already submitted with another body under the same {which}",
            )
        return existing, False
    decision, version = evaluate(session, tenant, body, now=now)
    return _record(
        session, tenant, body, decision, version, digest, idempotency_key, now, actor
    ), True


def _existing_submission(
    session: Session, tenant: Tenant, order_id: str, key: str | None
) -> Order | None:
    clauses = [Order.external_id == order_id]
    if key:
        clauses.append(Order.idempotency_key == key)
    return session.scalar(select(Order).where(Order.tenant_id == tenant.id, or_(*clauses)).limit(1))


def _record(
    session,
    tenant,
    body,
    decision: Decision,
    version,
    digest,
    key,
    now,
    actor,
    order: Order | None = None,
) -> Order:
    company = _company(session, tenant, decision.buyer["company"])
    buyer = _account(session, tenant, decision.buyer["account"])
    data = _decision_data(session, decision, version)
    merchant = (
        _merchant_steps(session, version) if decision.outcome in ("pending", "approved") else []
    )
    # approved by the rules, but the merchant reviews every order first
    review = decision.outcome == "approved" and bool(merchant)
    status = "pending" if review else decision.outcome
    if order is None:
        order = Order(
            tenant_id=tenant.id,
            external_id=body["id"],
            idempotency_key=key,
            request_hash=digest,
            created_at=now,
        )
        session.add(order)
    order.company_id = company.id
    order.buyer_id = buyer.id
    order.payload = dict(body)
    order.total = decision.order.total
    order.currency = decision.order.currency
    order.type = decision.order.type
    order.status = status
    order.decision = data
    order.ruleset_version_id = version.id
    order.updated_at = now
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
        request = ApprovalRequest(
            tenant_id=tenant.id,
            order_id=order.id,
            ruleset_version_id=version.id,
            status="pending",
            current_step=0,
            steps=_steps_json(decision) + merchant,
            expires_at=_review_expiry(session, version, now) if review else decision.expires_at,
            created_at=now,
            step_started_at=now,
        )
        session.add(request)
        session.flush()
        for index, step in enumerate(decision.steps):
            for approver in step.approvers:
                session.add(
                    ApprovalEligibility(
                        request_id=request.id,
                        tenant_id=tenant.id,
                        account_id=approver.account,
                        step_index=index,
                        created_at=now,
                    )
                )
        if review:
            _emit_merchant_review(session, tenant, order, request, submitted=True)
        else:
            events.emit_decision(session, tenant, order, decision, request)
    elif decision.outcome == "approved":
        _draw_budgets(session, tenant, order, version, now)
        events.emit_decision(session, tenant, order, decision, None)
    elif decision.outcome == "held":
        events.emit_decision(session, tenant, order, decision, None)
    return order


def _decision_data(session: Session, decision: Decision, version: RuleSetVersion) -> dict:
    """The decision as stored on the order: ``decision.as_dict()``, its ``ruleset`` stamped with the rules in force.

    ``ruleset.policy_hash`` is the compiled policy's hash (the merged data, inherited fields
    included); for a rule set that extends another, ``ruleset.parents`` lists the parents'
    versions it was compiled against, nearest first.  :func:`on_publish` compares the hash to
    tell whether a parent's new version changed a pending request's rules.
    """
    data = decision.as_dict()
    stamp = dict(data.get("ruleset") or {})
    stamp["policy_hash"] = versions.policy_for(version, session).hash
    if version.extends:
        stamp["parents"] = [
            {"name": p.ruleset.name, "version": p.number}
            for p in versions.parent_chain(session, version)
        ]
    data["ruleset"] = stamp
    return data


def _draw_budgets(
    session: Session,
    tenant: Tenant,
    order: Order,
    version: RuleSetVersion,
    now: datetime,
    kind: str = "draw",
) -> None:
    policy = versions.policy_for(version, session)
    buyer = order.decision.get("buyer") or {}
    when = order.created_at or now
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    # in the money the order was compared in: a converted total, or the order's own currency's ledger
    amount, currency = priced_total(order.decision)
    for budget in policy.budgets:
        session.add(
            BudgetLedger(
                tenant_id=tenant.id,
                company_id=order.company_id,
                scope_key=_ledger_key(budget, policy, buyer, currency),
                period_key=period_key(budget.period, when),
                order_id=order.id,
                amount=amount,
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
        raise Conflict(
            "stale_version",
            f"approval request {request.id} is at version {request.version_id}, not {expected}; reload it and try again",
        )


def _actions_of(
    request: ApprovalRequest, step: str, action: str = "approve"
) -> list[ApprovalAction]:
    return [
        a
        for a in request.actions
        if a.step == step and a.action == action and a.generation == request.generation
    ]


def _who_decided(session: Session, request: ApprovalRequest) -> str:
    deciding = [
        a
        for a in request.actions
        if a.generation == request.generation and a.action in ("approve", "reject")
    ]
    names = sorted({session.get(Account, a.approver_id).external_id for a in deciding})
    return ", ".join(names) or "the system"


def _require_pending(session: Session, request: ApprovalRequest) -> None:
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


def _eligible_in_step(request: ApprovalRequest, step_index: int, approver: str) -> bool:
    step = request.steps[step_index]
    return any(a["account"] == approver for a in step["approvers"])


def _acting_for(
    session: Session, tenant: Tenant, request: ApprovalRequest, approver: str
) -> int | None:
    """The account a delegate acts for in the current step (recorded on the action), or None."""
    for entry in request.steps[request.current_step]["approvers"]:
        if entry["account"] == approver and entry.get("delegate_of"):
            return _account(session, tenant, entry["delegate_of"][0]).id
    return None


def _group_of(step_name: str) -> str | None:
    """The ``all_of`` step a sub-step ``<step>/<n>`` belongs to, else None (step names hold no ``/``)."""
    base, slash, number = step_name.rpartition("/")
    return base if slash and number.isdigit() else None


def _refuse_second_group(
    request: ApprovalRequest, step: Mapping[str, Any], account_id: int
) -> None:
    """``all_of`` means separate people: one approver counts for one group of a step only.

    Someone eligible in two groups who approved ``<step>/1`` in this
    generation may not also approve ``<step>/2`` (409 ``already_approved_in_group``).
    """
    group = _group_of(step["name"])
    if group is None:
        return
    for action in request.actions:
        if (
            action.generation == request.generation
            and action.action == "approve"
            and action.approver_id == account_id
            and action.step != step["name"]
            and _group_of(action.step) == group
        ):
            raise Conflict(
                "already_approved_in_group",
                f"{step['name']} needs another person: this approver already approved {action.step} of the same step ({group}: one approval from each group, by different people)",
                details={"step": step["name"], "approved": action.step},
            )


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
    now = _now(now)
    request = get_request(session, tenant, request_id)
    _check_if_match(request, if_match)
    _require_pending(session, request)
    step = request.steps[request.current_step]
    _refuse_merchant_step(request, step)
    if not _eligible_in_step(request, request.current_step, approver):
        raise Forbidden(
            "not_eligible",
            f"{approver} is not an eligible approver of step {step['name']} of order {request.order.external_id}",
            details={"step": step["name"], "eligible": [a["account"] for a in step["approvers"]]},
        )
    account = _account(session, tenant, approver)
    if any(a.approver_id == account.id for a in _actions_of(request, step["name"])):
        return request  # counted once already
    _refuse_second_group(request, step, account.id)
    request.actions.append(
        ApprovalAction(
            step=step["name"],
            approver_id=account.id,
            action="approve",
            generation=request.generation,
            comment=comment,
            created_at=now,
            on_behalf_of_id=_acting_for(session, tenant, request, approver),
        )
    )
    approvals = len(_actions_of(request, step["name"]))
    audit(
        session,
        tenant.id,
        approver,
        "approval.approved",
        "order",
        request.order.external_id,
        {
            "step": step["name"],
            "count": approvals,
            "required": step["required"],
            "comment": comment,
        },
    )
    if approvals < step["required"]:
        _touch(request)
        session.flush()
        return request
    return _advance(session, tenant, request, now, comment)


def _advance(
    session: Session, tenant: Tenant, request: ApprovalRequest, now: datetime, comment: str | None
) -> ApprovalRequest:
    """The current step is approved: on to the next step, or the request is approved."""
    if request.current_step + 1 < len(request.steps):
        request.current_step += 1
        request.step_started_at = now
        session.flush()
        events.emit(
            session,
            tenant,
            "approval_requested",
            request.order,
            events.step_recipients(session, tenant, request, request.current_step),
            {"step": request.steps[request.current_step]["name"]},
        )
        return request
    return _finish_approved(session, tenant, request, now, comment)


def _finish_approved(
    session: Session, tenant: Tenant, request: ApprovalRequest, now: datetime, comment: str | None
) -> ApprovalRequest:
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
    now = _now(now)
    request = get_request(session, tenant, request_id)
    _check_if_match(request, if_match)
    _require_pending(session, request)
    step = request.steps[request.current_step]
    _refuse_merchant_step(request, step)
    if not _eligible_in_step(request, request.current_step, approver):
        raise Forbidden(
            "not_eligible",
            f"{approver} is not an eligible approver of step {step['name']} of order {request.order.external_id}",
            details={"step": step["name"]},
        )
    account = _account(session, tenant, approver)
    request.actions.append(
        ApprovalAction(
            step=step["name"],
            approver_id=account.id,
            action="reject",
            generation=request.generation,
            comment=comment,
            created_at=now,
            on_behalf_of_id=_acting_for(session, tenant, request, approver),
        )
    )
    request.status = "rejected"
    request.decided_at = now
    order = request.order
    order.status = "rejected"
    order.updated_at = now
    session.flush()
    audit(
        session,
        tenant.id,
        approver,
        "approval.rejected",
        "order",
        order.external_id,
        {"step": step["name"], "comment": comment},
    )
    events.emit_final(session, tenant, order, "rejected", comment)
    return request


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
    now = _now(now)
    request = get_request(session, tenant, request_id)
    _check_if_match(request, if_match)
    order = request.order
    policy = versions.policy_for(request_version(session, request), session)
    if request.status not in ("approved", "rejected"):
        raise Conflict(
            "not_reversible",
            f"approval request {request.id} is {request.status}; only approved or rejected requests can be reversed",
        )
    if not policy.reversal_allowed:
        raise Conflict(
            "reversal_not_allowed", f"rule set {policy.name} does not allow reversing decisions"
        )
    if order.released_at is not None:
        raise Conflict(
            "already_released",
            f"order {order.external_id} was released to fulfilment at {isoformat(order.released_at)}; its decision can no longer be reversed",
        )
    if not any(_eligible_in_step(request, i, approver) for i in range(len(request.steps))):
        raise Forbidden(
            "not_eligible",
            f"{approver} is not an approver of order {order.external_id} and cannot reverse its decision",
        )
    account = _account(session, tenant, approver)
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
        _draw_budgets(
            session, tenant, order, request_version(session, request), now, kind="release"
        )
    request.generation += 1
    request.status = "pending"
    request.current_step = 0
    request.step_started_at = now
    request.decided_at = None
    order.status = "pending"
    order.updated_at = now
    session.flush()
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
    events.emit(
        session,
        tenant,
        "approval_requested",
        order,
        events.step_recipients(session, tenant, request, 0),
        {"step": request.steps[0]["name"]},
    )
    return request


def withdraw(
    session: Session,
    tenant: Tenant,
    order_id: str,
    *,
    now: datetime | None = None,
    actor: str = "storefront",
) -> Order:
    """The buyer takes back a pending order."""
    now = _now(now)
    order = get_order(session, tenant, order_id)
    request = request_for_order(session, order)
    if request is None or request.status != "pending":
        raise Conflict(
            "not_withdrawable",
            f"order {order_id} is {order.status}; only pending orders can be withdrawn",
        )
    request.status = "withdrawn"
    request.decided_at = now
    order.status = "withdrawn"
    order.updated_at = now
    session.flush()
    audit(session, tenant.id, actor, "order.withdrawn", "order", order_id)
    events.emit_final(session, tenant, order, "withdrawn", None)
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
    now = _now(now)
    order = get_order(session, tenant, order_id)
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
    now = _now(now)
    order = get_order(session, tenant, order_id)
    if order.type != "quote":
        raise Conflict("not_a_quote", f"order {order_id} is a {order.type} order, not a quote")
    body = dict(order.payload)
    body["type"] = "regular"
    decision, version = evaluate(session, tenant, body, now=now)
    audit(session, tenant.id, actor, "order.converted", "order", order_id)
    return _record(
        session,
        tenant,
        body,
        decision,
        version,
        request_hash(body),
        order.idempotency_key,
        now,
        actor,
        order=order,
    )


# -------------------------------------------------------------------- jobs


def expire_due(session: Session, *, now: datetime | None = None, limit: int = 500) -> int:
    """Handle timeouts; returns how many requests were expired, escalated or approved by the system.

    First the steps whose own ``escalate_after`` has passed (:func:`escalate_due`),
    then the requests past their expiry: each is cancelled as expired, unless
    its current step says ``on_timeout: escalate | approve`` (and has not
    timed out before).  Safe to run anywhere, any time.
    """
    now = _now(now)
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
                policy = versions.policy_for(request_version(session, request), session)
                step = request.steps[request.current_step]
                spec = _step_spec(policy, step)
                if _timeout_action(spec) != "cancel" and not step.get("timed_out"):
                    result = _on_timeout(session, tenant, request, policy, spec, now)
                else:
                    _expire(session, tenant, request, now)
                    result = "expired"
            count += result != "reminded"
        except StaleData:
            continue  # another host expired or decided it first
    return count


def _expire(
    session: Session,
    tenant: Tenant,
    request: ApprovalRequest,
    now: datetime,
    data: Mapping[str, Any] | None = None,
) -> None:
    request.status = "expired"
    request.decided_at = now
    order = request.order
    order.status = "expired"
    order.updated_at = now
    session.flush()
    audit(session, tenant.id, "system", "order.expired", "order", order.external_id, data)
    events.emit_final(session, tenant, order, "expired", None)


# ------------------------------------------------------ escalation (issue 9)

MERCHANT_STEP = "merchant-review"
TIMEOUT_ACTIONS = ("cancel", "escalate", "approve")


def _merchant_steps(session: Session, version: RuleSetVersion) -> list[dict]:
    """``approval.merchant_review: true``: a final step only a merchant admin decides (:func:`merchant_decide`)."""
    policy = versions.policy_for(version, session)
    if not ((policy.data or {}).get("approval") or {}).get("merchant_review"):
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
    """When a request that waits for the merchant alone expires: ``approval.expiry.after`` from now, as any request."""
    expiry = versions.policy_for(version, session).expiry
    return now + expiry if expiry else None


def _emit_merchant_review(
    session: Session, tenant: Tenant, order: Order, request: ApprovalRequest, *, submitted: bool
) -> None:
    """An order the rules approve outright now waits for the merchant's review.

    On submission the buyer hears that the order waits (``order_submitted``, as for any
    pending order); ``approval_requested`` for the merchant step has no recipients (the
    merchant is no account) and reaches the storefront's webhook, as when a request
    reaches that step after the customer's approvers.
    """
    data = {"step": request.steps[request.current_step]["name"], "approval_request": request.id}
    if submitted:
        events.emit(
            session,
            tenant,
            "order_submitted",
            order,
            events.buyer_recipients(session, tenant, order),
            data,
        )
    events.emit(
        session,
        tenant,
        "approval_requested",
        order,
        events.step_recipients(session, tenant, request, request.current_step),
        data,
    )


def _refuse_merchant_step(request: ApprovalRequest, step: Mapping[str, Any]) -> None:
    if step.get("merchant"):
        raise Forbidden(
            "merchant_review",
            f"order {request.order.external_id} waits for the merchant's review; only a merchant admin can decide it now",
            details={"step": step["name"]},
        )


def _step_spec(policy: Policy, step: Mapping[str, Any]) -> dict:
    """The rule set's declaration of a request step (``tiers@1000`` is step ``tiers``); {} for the merchant step."""
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
    return _aware(request.step_started_at or request.created_at)


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
    """Steps whose ``escalate_after`` has passed: escalate, approve as the system or cancel (``on_timeout``).

    At most ``limit`` requests are acted on per run; every pending request is looked at.
    """
    now = _now(now)
    count = 0
    for request in _pending_requests(session, batch):
        if count >= limit:
            break
        if request.status != "pending":
            continue  # decided since its batch was read
        step = request.steps[request.current_step]
        if step.get("timed_out") or step.get("merchant"):
            continue
        policy = versions.policy_for(request_version(session, request), session)
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
        except StaleData:
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
        last = _aware(request.last_reminded_at) if request.last_reminded_at else None
        if last is None or last < _step_started(request):
            # reminders are configured: the approvers hear once before the step escalates (next run)
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
        _advance(session, tenant, request, now, None)
        return "approved"
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
    existing = set(
        session.scalars(
            select(ApprovalEligibility.account_id).where(
                ApprovalEligibility.request_id == request.id,
                ApprovalEligibility.step_index == step_index,
            )
        )
    )
    now_eligible = {a["account"] for a in steps[step_index]["approvers"]}
    for account in existing - now_eligible:
        session.execute(
            ApprovalEligibility.__table__.delete().where(
                ApprovalEligibility.request_id == request.id,
                ApprovalEligibility.step_index == step_index,
                ApprovalEligibility.account_id == account,
            )
        )
    for account in sorted(now_eligible - existing):
        session.add(
            ApprovalEligibility(
                request_id=request.id,
                tenant_id=tenant.id,
                account_id=account,
                step_index=step_index,
                created_at=now,
            )
        )
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
    """A step that escalates or is approved on timeout gives the request time again when its expiry has passed."""
    if request.expires_at is not None and _aware(request.expires_at) <= now:
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
    """``escalate_to``: named accounts and/or the active members of the order's company holding a role
    with the ``approve_orders`` permission; never the buyer."""
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


# -------------------------------------------------- merchant review (issue 9)


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
    """A merchant admin (owner or editor) approves or rejects a request waiting in the ``merchant-review`` step.

    For the admin UI, not the storefront API: storefront keys act for the
    customer's approvers, never for the merchant.
    """
    now = _now(now)
    admin = session.scalar(
        select(AdminUser).where(AdminUser.tenant_id == tenant.id, AdminUser.login == admin_login)
    )
    if admin is None:
        raise Forbidden("not_an_admin", f"{admin_login!r} is not an admin user of this merchant")
    if admin.role not in ("owner", "editor"):
        raise Forbidden(
            "read_only_admin",
            f"admin {admin_login!r} is a {admin.role}; only owners and editors decide merchant reviews",
        )
    request = get_request(session, tenant, request_id)
    _check_if_match(request, if_match)
    _require_pending(session, request)
    step = request.steps[request.current_step]
    if not step.get("merchant"):
        raise Conflict(
            "not_in_merchant_review",
            f"approval request {request.id} is at step {step['name']}, not in the merchant's review",
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
    order = request.order
    audit(
        session,
        tenant.id,
        f"admin:{admin_login}",
        "approval.merchant_approved" if approve else "approval.merchant_rejected",
        "order",
        order.external_id,
        {"comment": comment},
    )
    if approve:
        return _finish_approved(session, tenant, request, now, comment)
    request.status = "rejected"
    request.decided_at = now
    order.status = "rejected"
    order.updated_at = now
    session.flush()
    events.emit_final(session, tenant, order, "rejected", comment)
    return request


# ------------------------------------------- re-evaluating pending requests (issue 9)


def _redecide(
    session: Session,
    tenant: Tenant,
    request: ApprovalRequest,
    body: Mapping[str, Any],
    decision: Decision,
    version: RuleSetVersion,
    now: datetime,
    actor: str,
    record: Mapping[str, Any],
) -> str:
    """Replace a pending request's decision by ``decision``; the old one goes to ``order.previous_decisions``.

    approved: the request is approved (budget drawn, buyer told), unless the
    rule set has ``approval.merchant_review``: then the steps are replaced by the
    merchant's step alone and the order waits for the merchant; blocked or
    held: the request is closed as rejected and the order takes that status;
    pending: the steps are replaced (generation + 1, eligibility rebuilt) and
    the first step's approvers are asked again.  Returns the order's new status.
    """
    order = request.order
    old_version = request_version(session, request)
    history = list(order.previous_decisions or [])
    history.append(
        {
            **record,
            "at": isoformat(now),
            "status": order.status,
            "total": format_amount(order.total),
            "ruleset_version": old_version.number if old_version else None,
            "decision": order.decision,
        }
    )
    order.previous_decisions = history
    order.payload = dict(body)
    order.total = decision.order.total
    order.currency = decision.order.currency
    order.decision = _decision_data(session, decision, version)
    order.ruleset_version_id = version.id
    outcome = decision.outcome
    merchant = _merchant_steps(session, version) if outcome in ("pending", "approved") else []
    review = outcome == "approved" and bool(
        merchant
    )  # approved by the rules: on to the merchant's review
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
            **{k: v for k, v in record.items() if k != "changes"},
            "outcome": outcome,
            "version": version.number,
            "reasons": decision.reason_codes(),
            **({"merchant_review": True} if review else {}),
        },
    )
    if outcome == "pending" or review:
        request.generation += 1
        request.current_step = 0
        request.steps = _steps_json(decision) + merchant
        request.expires_at = (
            _review_expiry(session, version, now) if review else decision.expires_at
        )
        request.step_started_at = now
        session.execute(
            ApprovalEligibility.__table__.delete().where(
                ApprovalEligibility.request_id == request.id
            )
        )
        for index, step in enumerate(request.steps):
            for approver in step["approvers"]:
                session.add(
                    ApprovalEligibility(
                        request_id=request.id,
                        tenant_id=tenant.id,
                        account_id=approver["account"],
                        step_index=index,
                        created_at=now,
                    )
                )
        session.flush()
        # the first step's approvers (none for the merchant's step: the storefront's webhook hears)
        events.emit(
            session,
            tenant,
            "approval_requested",
            order,
            events.step_recipients(session, tenant, request, 0),
            {"step": request.steps[0]["name"], "approval_request": request.id},
        )
    elif outcome == "approved":
        _finish_approved(session, tenant, request, now, None)
    else:
        request.status = "rejected"
        request.decided_at = now
        session.flush()
        buyer = events.buyer_recipients(session, tenant, order)
        if outcome == "held":
            events.emit(session, tenant, "order_held", order, buyer, {})
        else:
            events.emit(session, tenant, "order_cancelled", order, buyer, {"reason": outcome})
    return order.status


def on_publish(
    session: Session,
    tenant: Tenant,
    ruleset_name: str,
    *,
    now: datetime | None = None,
    actor: str = "system",
    limit: int = 5000,
) -> dict:
    """After a publish or rollback of ``ruleset_name``: pending requests are decided again
    where ``pending_on_new_version: reevaluate`` says so.

    First the requests of the companies ``ruleset_name`` governs that were decided under
    another version of it.  Then those of every active rule set extending it, directly or
    through others: such a rule set is compiled against ``ruleset_name``'s active version,
    so its rules changed although its own version did not.  Its resolved policy (inherited
    fields included) says ``keep`` or ``reevaluate``, and a request already decided under
    the rules now in force (same version, same compiled policy hash in
    ``decision.ruleset.policy_hash``) is left alone, approvals and all.

    Returns ``{ruleset, mode, reevaluated, skipped}``: ``mode`` is the published rule set's
    setting; ``reevaluated`` (order id -> new status) and ``skipped`` cover every rule set.
    When rule sets extend it, ``rulesets`` gives the same per rule set (name -> ``{mode,
    reevaluated, skipped}``, plus ``extends`` for the extending ones).

    Each request in its own savepoint: one that cannot be re-evaluated (the
    buyer left the company, a concurrent approver) keeps its old decision and
    is listed under ``skipped``.
    """
    now = _now(now)
    result: dict[str, Any] = {
        "ruleset": ruleset_name,
        "mode": "keep",
        "reevaluated": {},
        "skipped": [],
    }
    version = versions.active_version(session, tenant.id, ruleset_name)
    if version is None:
        return result
    active = versions.active_versions(session, tenant.id)
    # (name, version, the rule set it extends or None for the published one, its mode)
    targets = [(ruleset_name, version, None)] + [
        (name, active[name], parent) for name, parent in _extending(active, ruleset_name)
    ]
    modes = {
        name: (versions.policy_for(v, session, active).data or {}).get(
            "pending_on_new_version", "keep"
        )
        for name, v, _ in targets
    }
    governed = _governed_companies(
        session, tenant, {name for name, mode in modes.items() if mode == "reevaluate"}
    )
    entries: dict[str, dict] = {}
    for name, target, parent in targets:
        entry: dict[str, Any] = {"extends": parent} if parent else {}
        entry.update({"mode": modes[name], "reevaluated": {}, "skipped": []})
        if modes[name] == "reevaluate" and governed.get(name):
            record = {
                "reason": "new_version",
                "new_version": version.number,
                **({"ruleset": ruleset_name} if parent else {}),
            }
            _reevaluate_pending(
                session,
                tenant,
                target,
                governed[name],
                entry,
                now=now,
                actor=actor,
                limit=limit,
                record=record,
                inherited=parent is not None,
                active=active,
            )
            audit(
                session,
                tenant.id,
                actor,
                "ruleset.pending_reevaluated",
                "ruleset",
                name,
                {
                    "version": target.number,
                    "reevaluated": entry["reevaluated"],
                    "skipped": entry["skipped"],
                    **(
                        {
                            "extends": parent,
                            "published": {"ruleset": ruleset_name, "version": version.number},
                        }
                        if parent
                        else {}
                    ),
                },
            )
        entries[name] = entry
        result["reevaluated"].update(entry["reevaluated"])
        result["skipped"] += [{**s, "ruleset": name} if parent else s for s in entry["skipped"]]
    result["mode"] = modes[ruleset_name]
    if len(targets) > 1:
        result["rulesets"] = entries
    return result


def _extending(active: Mapping[str, RuleSetVersion], name: str) -> list[tuple[str, str]]:
    """(rule set, the parent it extends) of every active rule set extending ``name``, directly or
    through others: the nearest first, by name within a level; cycles cut."""
    found: list[tuple[str, str]] = []
    seen, level = {name}, [name]
    while level:
        below = []
        for parent in level:
            for child in sorted(
                n for n, v in active.items() if v.extends == parent and n not in seen
            ):
                seen.add(child)
                found.append((child, parent))
                below.append(child)
        level = below
    return found


def _governed_companies(session: Session, tenant: Tenant, names: set[str]) -> dict[str, list[int]]:
    """Rule-set name -> ids of the companies it governs (its own, and subsidiaries inheriting it), for ``names``."""
    if not names:
        return {}
    directory = SqlDirectory(session, tenant.id)
    governed: dict[str, list[int]] = {}
    for company in session.scalars(
        select(Company).where(Company.tenant_id == tenant.id).order_by(Company.id)
    ):
        name = directory.ruleset_name_for(company.external_id)
        if name in names:
            governed.setdefault(name, []).append(company.id)
    return governed


def _reevaluate_pending(
    session: Session,
    tenant: Tenant,
    version: RuleSetVersion,
    companies: list[int],
    entry: dict,
    *,
    now: datetime,
    actor: str,
    limit: int,
    record: Mapping[str, Any],
    inherited: bool,
    active: Mapping[str, RuleSetVersion],
) -> None:
    """Decide again the pending requests of ``companies`` not decided under ``version``'s rules in force; fills ``entry``.

    The published rule set (``inherited`` False): the requests under another version, unless
    their decision recorded the compiled policy now in force (a new description or new tests
    change no decision, so approvals given so far stand).  A rule set extending it: also those under the same version whose compiled
    policy differs from the one now in force (``decision.ruleset.policy_hash``); a decision
    recorded without that hash (before it was recorded) counts as out of date when a parent's
    active version was published after it.
    """
    policy = versions.policy_for(version, session, active)
    query = (
        select(ApprovalRequest)
        .join(Order, ApprovalRequest.order_id == Order.id)
        .where(
            ApprovalRequest.tenant_id == tenant.id,
            ApprovalRequest.status == "pending",
            Order.company_id.in_(companies),
        )
    )
    recorded = Order.decision[("ruleset", "policy_hash")].as_string()
    if inherited:
        query = query.where(
            or_(
                ApprovalRequest.ruleset_version_id != version.id,
                recorded.is_(None),
                recorded != policy.hash,
            )
        )
    else:
        query = query.where(
            ApprovalRequest.ruleset_version_id != version.id,
            or_(recorded.is_(None), recorded != policy.hash),
        )
    for request in session.scalars(query.order_by(ApprovalRequest.id).limit(limit)).all():
        order = request.order
        if (
            inherited
            and request.ruleset_version_id == version.id
            and _policy_hash(order) is None
            and not _parents_newer(session, order, version, active)
        ):
            continue
        try:
            with session.begin_nested():
                decision, used = evaluate(session, tenant, order.payload, now=now)
                if used.id != version.id:
                    raise Conflict(
                        "other_ruleset",
                        f"order {order.external_id} is now governed by another rule set",
                    )
                entry["reevaluated"][order.external_id] = _redecide(
                    session, tenant, request, order.payload, decision, used, now, actor, record
                )
        except (StaleData, ApprovalRulesError) as exc:
            entry["skipped"].append(
                {"order": order.external_id, "error": getattr(exc, "code", type(exc).__name__)}
            )


def _policy_hash(order: Order) -> str | None:
    """The compiled policy hash the order's decision was made under (see :func:`_decision_data`); None if not recorded."""
    return ((order.decision or {}).get("ruleset") or {}).get("policy_hash")


def _parents_newer(
    session: Session, order: Order, version: RuleSetVersion, active: Mapping[str, RuleSetVersion]
) -> bool:
    """Whether a parent ``version`` is compiled against was published after the order was last decided."""
    decided = _aware(order.created_at)
    if order.previous_decisions:
        decided = max(decided, parse_instant(order.previous_decisions[-1]["at"], "at"))
    return any(
        _aware(parent.published_at) > decided
        for parent in versions.parent_chain(session, version, active)
    )


# ------------------------------------------------ approver edits (issue 9)


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
    """An eligible approver of the current step lowers quantities or removes lines (never raises or adds).

    ``lines`` is the complete new list of ``{sku, quantity}``: a line left out
    is removed.  The total drops by price x removed quantity of every line
    (so charges outside the lines stay); the order is re-evaluated under the
    request's pinned version (see :func:`_redecide`) and the buyer is told
    (``order_edited``).
    """
    now = _now(now)
    request = get_request(session, tenant, request_id)
    _check_if_match(request, if_match)
    _require_pending(session, request)
    step = request.steps[request.current_step]
    _refuse_merchant_step(request, step)
    if not _eligible_in_step(request, request.current_step, approver):
        raise Forbidden(
            "not_eligible",
            f"{approver} is not an eligible approver of step {step['name']} of order {request.order.external_id}",
            details={"step": step["name"]},
        )
    order = request.order
    old_lines = order.payload.get("lines") or []
    by_sku: dict[str, dict] = {}
    for index, line in enumerate(old_lines):
        if line["sku"] in by_sku:
            raise OrderError(
                "ambiguous_lines",
                f"order {order.external_id} has sku {line['sku']!r} on several lines; it cannot be edited by sku",
                path=f"order.lines[{index}]",
            )
        if line.get("price") is None:
            raise OrderError(
                "missing_line_price",
                f"line {line['sku']!r} of order {order.external_id} has no price, so its total cannot be recomputed",
                path=f"order.lines[{index}].price",
            )
        by_sku[line["sku"]] = line
    if not isinstance(lines, list) or not all(
        isinstance(x, Mapping) and isinstance(x.get("sku"), str) and set(x) <= {"sku", "quantity"}
        for x in lines
    ):
        raise OrderError("invalid_lines", "lines must be a list of {sku, quantity}", path="lines")
    wanted: dict[str, Decimal] = {}
    for index, line in enumerate(lines):
        sku = line["sku"]
        if sku in wanted:
            raise OrderError(
                "invalid_lines", f"sku {sku!r} is listed twice", path=f"lines[{index}]"
            )
        quantity = parse_amount(line.get("quantity", 0), f"lines[{index}].quantity")
        if sku not in by_sku:
            raise OrderError(
                "edit_not_a_reduction",
                f"sku {sku!r} is not on order {order.external_id}: an approver may lower quantities or remove lines, never add",
                path=f"lines[{index}]",
            )
        original = parse_amount(by_sku[sku].get("quantity", 1), "quantity")
        if quantity > original:
            raise OrderError(
                "edit_not_a_reduction",
                f"sku {sku!r}: {format_amount(quantity)} is more than the ordered {format_amount(original)}; an approver may only lower quantities",
                path=f"lines[{index}].quantity",
            )
        wanted[sku] = quantity
    changes, new_lines, reduction = [], [], Decimal(0)
    for sku, line in by_sku.items():
        original = parse_amount(line.get("quantity", 1), "quantity")
        quantity = wanted.get(sku, Decimal(0))
        if quantity != original:
            changes.append(
                {"sku": sku, "from": format_amount(original), "to": format_amount(quantity)}
            )
            reduction += parse_amount(line["price"], "price") * (original - quantity)
        if quantity > 0:
            new_lines.append(
                {**line, "quantity": format_amount(quantity)} if quantity != original else line
            )
    if not changes:
        raise OrderError(
            "edit_no_change", "the lines are as ordered; nothing to edit", path="lines"
        )
    if not new_lines:
        raise OrderError(
            "edit_empties_order",
            "an edit cannot remove every line; reject the order instead",
            path="lines",
        )
    body = {
        **order.payload,
        "lines": new_lines,
        "total": format_amount(max(order.total - reduction, Decimal(0))),
    }
    decision, version = evaluate(
        session, tenant, body, now=now, version=request_version(session, request)
    )
    account = _account(session, tenant, approver)
    _redecide(
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
    now = _now(now)
    count = 0
    for request in _pending_requests(session, batch):
        if count >= limit:
            break
        if request.steps[request.current_step].get("merchant"):
            continue  # the merchant's review: no customer approver to remind
        policy = versions.policy_for(request_version(session, request), session)
        if not policy.reminders:
            continue
        started = _step_started(request)
        last = _aware(request.last_reminded_at) if request.last_reminded_at else None
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
            except StaleData:
                continue
    return count


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
