"""Deciding an order: the policy that governs its buyer's company, what its budgets have
drawn so far, and the engine's decision; and drawing on (or releasing) those budgets.

:func:`evaluate` writes nothing; :func:`draw_budgets` adds ledger rows in the
caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..engine import Decision, Policy, compile_ruleset, priced_total, resolve_buyer
from ..engine import Order as EngineOrder
from ..engine.dates import local_date
from ..errors import NotFound
from ..store import versions
from ..store.company_slice import directory_for_order
from ..store.models import BudgetLedger, Company, Order, RuleSetVersion, Tenant
from . import queries


def evaluate(
    session: Session,
    tenant: Tenant,
    body: Mapping[str, Any] | EngineOrder,
    *,
    now: datetime | None = None,
    version: RuleSetVersion | None = None,
    dry_run: bool = False,
    ordered_at: datetime | None = None,
    hold_lifted: bool = False,
) -> tuple[Decision, RuleSetVersion | versions.ActiveVersion]:
    """The decision for ``body`` (the order's JSON form, or the engine's ``Order`` built from
    it) under the active version (or ``version``, e.g. a request's pinned one); writes nothing.

    ``dry_run`` (the storefront's evaluate endpoint): the active version comes from
    the per-process cache (:func:`versions.cached_active_versions`) and is returned as
    an :class:`~approvalrules.store.versions.ActiveVersion`, with no query for it.
    Actions that record the version (submit, re-decisions) leave it off: they read
    the versions in their own transaction, which may just have published one.

    ``ordered_at``: when an order decided again was submitted; its date stays the
    order's date (``order_date`` conditions, validity windows).  Default ``now``.
    ``hold_lifted``: the merchant let a held order proceed (see ``Policy.evaluate``).
    """
    now = queries.now_or(now)
    order = body if isinstance(body, EngineOrder) else EngineOrder.from_dict(body)
    directory = directory_for_order(session, tenant, order)
    _, membership = resolve_buyer(directory, order)
    company_id = membership.company_id
    if version is None and dry_run:
        policy, version = queries.cached_policy_for_company(session, tenant, directory, company_id)
    elif version is None:
        policy, version = queries.policy_for_company(session, tenant, directory, company_id)
    else:
        policy = versions.policy_for(version, session)
    decision = _decide(
        session,
        tenant,
        order,
        directory,
        company_id,
        policy,
        now,
        ordered_at=ordered_at,
        hold_lifted=hold_lifted,
    )
    return decision, version


def evaluate_under(
    session: Session,
    tenant: Tenant,
    body: Mapping[str, Any],
    ruleset: str,
    number: int | None,
    *,
    now: datetime | None = None,
) -> Decision:
    """The decision for ``body`` under version ``number`` of rule set ``ruleset``, or under its
    draft (``number`` None), whatever rule set governs the buyer's company; writes nothing.

    The merchant's "what if": try an order against a version before rolling back to it, or
    against the draft before publishing it.  Raises ``NotFound`` for an unknown version or a
    missing draft, ``DocumentError`` for a draft that does not compile.
    """
    now = queries.now_or(now)
    order = EngineOrder.from_dict(body)
    directory = directory_for_order(session, tenant, order)
    _, membership = resolve_buyer(directory, order)
    if number is not None:
        policy = versions.policy_for(
            versions.get_version(session, tenant, ruleset, number), session
        )
    else:
        row = versions.get_ruleset(session, tenant, ruleset)
        if row is None or row.draft_text is None:
            raise NotFound("no_draft", f"rule set {ruleset!r} has no draft to evaluate against")
        policy = compile_ruleset(row.draft_text, ruleset, versions.resolver(session, tenant))
    return _decide(session, tenant, order, directory, membership.company_id, policy, now)


def _decide(
    session,
    tenant,
    order,
    directory,
    company_id,
    policy: Policy,
    now,
    *,
    ordered_at: datetime | None = None,
    hold_lifted: bool = False,
) -> Decision:
    """The engine's decision for ``order`` under ``policy``, with what its budgets have drawn."""
    spent = {}
    if policy.budgets:
        membership = directory.membership(order.buyer, company_id)
        buyer = {"account": order.buyer, "group": membership.group if membership.active else None}
        spent = budgets_spent(
            session,
            tenant,
            queries.company(session, tenant, company_id),
            policy,
            buyer,
            now,
            policy.pricing_currency(order.currency),
        )
    return policy.evaluate(
        order,
        directory,
        now=now,
        budgets_spent=spent,
        ordered_at=queries.aware(ordered_at) if ordered_at is not None else None,
        hold_lifted=hold_lifted,
    )


# ---------------------------------------------------------------- budgets


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
    """A budget's ledger: one per scope, and per currency for a currency the rule set prices
    besides its own."""
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
    """What each budget of ``policy`` has drawn in the current period, net of releases, in
    ``currency`` (the currency the order is priced in; default the rule set's)."""
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


def draw_budgets(
    session: Session,
    tenant: Tenant,
    order: Order,
    policy: Policy,
    now: datetime,
    kind: str = "draw",
) -> None:
    """An approved order draws on every budget of its rule set's ``policy`` (``kind="release"``
    gives it back), in the period of the order's creation."""
    buyer = order.decision.get("buyer") or {}
    when = order.created_at or now
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    # in the money the order was compared in: a converted total, or the ledger of the order's
    # own currency
    amount, currency = priced_total(order.decision)
    day = local_date(when, policy.time_zone)
    for budget in policy.budgets:
        if not budget.in_force(day):
            continue  # outside its valid_from / valid_until: the order never counted against it
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
