"""What a buyer sees on a shop's "my account" page: per company, the role, the group, who
approves its orders, its limits, and its budgets spent and left this period.

Read from the same directory snapshot and active policies that decide the buyer's orders, so
the page and the next decision agree.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from ..engine.approvers import select_approvers
from ..engine.decision import Order as EngineOrder
from ..engine.evaluate import Evaluation
from ..engine.money import format_amount
from ..errors import NotFound, OrderError
from ..store.company_slice import company_directory
from ..store.directory import SqlDirectory
from ..store.models import Tenant
from . import queries
from .deciding import budgets_spent

#: the effective settings that limit what the buyer may order (docs/ruleset.md)
LIMIT_SETTINGS = ("may_order", "max_order_total", "no_approval_below", "approval_limit")


def _shown(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format_amount(value)
    if isinstance(value, tuple | frozenset | set):
        return sorted(value)
    return value


def buyer_summary(
    session: Session, tenant: Tenant, account_id: str, *, now: datetime | None = None
) -> dict[str, Any]:
    """The account's summary: one entry per company it belongs to (default first)."""
    now = queries.now_or(now)
    # the account's own rows, then each company's slice: never the whole tenant's directory
    rows = SqlDirectory(session, tenant.id)
    memberships = sorted(
        rows.memberships_of_account(account_id), key=lambda m: (not m.default, m.company_id)
    )
    account = rows.account(account_id)
    if account is None:
        raise NotFound("unknown_account", f"no account {account_id!r}")

    def slice_of(company_id: str):
        return company_directory(session, tenant, company_id)

    return {
        "account": {
            "id": account.id,
            "name": account.name,
            "email": account.email,
            "active": account.active,
        },
        "companies": [
            _company_entry(session, tenant, slice_of(m.company_id), account_id, m, now)
            for m in memberships
        ],
    }


def _company_entry(session, tenant, directory, account_id, membership, now) -> dict[str, Any]:
    company = directory.company(membership.company_id)
    entry: dict[str, Any] = {
        "company": {"id": company.id, "name": company.name},
        "default": membership.default,
        "status": membership.status,
        "master": membership.master,
        "group": membership.group,
        "role": {"name": membership.role, "label": membership.role, "permissions": []},
        "assigned_approvers": [
            {
                "account": a.approver_id,
                "threshold": _shown(a.threshold),
                "limit": _shown(a.limit),
                "step": a.step,
            }
            for a in directory.assignments_for(account_id, membership.company_id)
        ],
        "approval_steps": [],
        "limits": {},
        "budgets": [],
        "ruleset": None,
    }
    try:
        policy, version = queries.cached_policy_for_company(
            session, tenant, directory, membership.company_id
        )
    except OrderError as exc:
        # no rule set governs the company yet: the directory part is still worth showing
        entry["problem"] = exc.as_dict()
        return entry
    entry["ruleset"] = {"name": version.name, "version": version.number}
    role = policy.roles.get(membership.role)
    if role is not None:
        entry["role"] = {
            "name": membership.role,
            "label": role.label,
            "permissions": sorted(role.permissions),
        }
    settings = policy.effective_settings(membership)
    entry["limits"] = {key: _shown(settings.get(key)) for key in LIMIT_SETTINGS}
    entry["limits"]["company_max_order_total"] = _shown(policy.max_order_total)
    if policy.order_limit:
        entry["limits"]["company_order_limit"] = _shown(policy.order_limit[0])
    entry["approval_steps"] = _steps(policy, directory, account_id, membership, now)
    entry["budgets"] = _budgets(session, tenant, policy, account_id, membership, now)
    return entry


def _steps(policy, directory, account_id, membership, now) -> list[dict[str, Any]]:
    """Every step of the rule set with who could approve it for this buyer (whatever the
    amount: a step's condition and approval limits decide per order)."""
    order = EngineOrder.from_dict(
        {"buyer": account_id, "company": membership.company_id, "total": "0"}
    )
    ev = Evaluation(policy, order, directory, now, {})
    ev.account, ev.membership = account_id, membership
    ev.company = membership.company_id
    ev.role = policy.roles.get(membership.role)
    ev.group = membership.group if membership.active else None
    steps = []
    for step in policy.steps:
        approvers = select_approvers(ev, step, None, [])
        steps.append(
            {
                "name": step.name,
                "required": step.required,
                "approvers": [{"account": a.account, "name": a.name} for a in approvers],
            }
        )
    return steps


def _budgets(session, tenant, policy, account_id, membership, now) -> list[dict[str, Any]]:
    if not policy.budgets:
        return []
    buyer = {"account": account_id, "group": membership.group if membership.active else None}
    company = queries.company(session, tenant, membership.company_id)
    spent = budgets_spent(session, tenant, company, policy, buyer, now)
    return [
        {
            "name": budget.name,
            "scope": budget.scope,
            "period": budget.period,
            "currency": policy.currency,
            "amount": format_amount(budget.amount),
            "spent": format_amount(spent.get(budget.name, Decimal(0))),
            "left": format_amount(max(budget.amount - spent.get(budget.name, Decimal(0)), 0)),
            "on_exceed": budget.on_exceed,
        }
        for budget in policy.budgets
    ]
