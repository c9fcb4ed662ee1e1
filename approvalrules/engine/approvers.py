"""Who may approve a step: the company's approver pool, selectors, limits, fall-back, delegates.

The pool of a company is built once per (policy, directory) in a
:class:`CompanyContext`; selection walks it per step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .decision import Approver, Reason, TraceEntry
from .directory import MAX_DELEGATION_DEPTH, Account, Membership
from .durations import utc_date
from .notify import emailed_as_approver

if TYPE_CHECKING:  # annotations only: evaluate imports this module
    from .compile import CompiledStep, Role
    from .evaluate import Evaluation


class _Candidate:
    """An account that may approve in a company, with what selection looks at resolved once."""

    __slots__ = (
        "membership",
        "account",
        "settings",
        "role",
        "account_id",
        "role_name",
        "group",
        "master",
        "attributes",
        "limit",
        "email",
    )

    def __init__(
        self, membership: Membership, account: Account, settings: Mapping[str, Any], role: Role
    ):
        self.membership = membership
        self.account = account
        self.settings = settings
        self.role = role
        self.account_id = account.id
        self.role_name = membership.role
        self.group = membership.group
        self.master = membership.master
        self.attributes = membership.attributes
        self.limit = settings["approval_limit"]
        self.email = emailed_as_approver(settings, account)


class CompanyContext:
    """Per (policy, directory, company): the approver pool and remembered approver selections."""

    __slots__ = ("pool", "limits", "memo", "buyer_limits")

    #: remembered selections per company before the memo starts over
    MEMO_SIZE = 50_000

    def __init__(self, pool: tuple, limits: list):
        self.pool = pool
        #: every amount a selection compares the total with: the candidates'
        #: approval limits and the limits of assignments to them
        self.limits = limits
        self.memo: dict = {}
        #: per buyer: ``limits`` and the limits of the buyer's assignments
        self.buyer_limits: dict = {}


def buyer_company(ev: Evaluation) -> CompanyContext:
    """The approver pool of the buyer's company: active accounts whose role and settings allow
    approving."""
    company = ev.company_context
    if company is None:
        company = ev.company_context = company_context(ev, ev.company)
    return company


def company_context(ev: Evaluation, company_id: str) -> CompanyContext:
    """The approver pool of a company (roles read through this rule set), built once per
    directory."""
    companies = ev.context().companies
    company = companies.get(company_id)
    if company is None:
        pool = []
        for m in ev.directory.memberships_of_company(company_id):
            if not m.active:
                continue
            role = ev.policy.roles.get(m.role)
            if role is None or "approve_orders" not in role.permissions:
                continue
            account = ev.directory.account(m.account_id)
            if account is None or not account.active:
                continue
            settings = ev.policy.effective_settings(m)
            if not settings["may_approve"]:
                continue
            pool.append(_Candidate(m, account, settings, role))
        limits = sorted({c.limit for c in pool if c.limit is not None})
        company = companies.setdefault(company_id, CompanyContext(tuple(pool), limits))
    return company


def select_approvers(
    ev: Evaluation, step: CompiledStep, only: set[str] | None, excluded: list
) -> tuple[Approver, ...]:
    """The eligible approvers of a step; exclusions go to ``excluded`` as (message, whether the
    total follows)."""
    total, buyer = ev.order.total, ev.order.buyer
    group = ev.group
    own_group = step.scope == "own_group"
    assigned: dict[str, Any] | None = None
    out = []
    for cand in buyer_company(ev).pool:
        account_id = cand.account_id
        if only is not None and account_id not in only:
            continue
        if account_id == buyer and not step.self_approval:
            excluded.append((f"{account_id}: the buyer may not approve its own order", False))
            continue
        if own_group and not cand.master and (group is None or cand.group != group):
            continue
        whys = []
        for sel in step.selectors:
            if sel.roles is not None and cand.role_name not in sel.roles:
                continue
            if sel.accounts is not None and account_id not in sel.accounts:
                continue
            if sel.attributes and not all(
                cand.attributes.get(k) in allowed for k, allowed in sel.attributes
            ):
                continue
            relation = sel.relation
            if relation in ("assigned", "unassigned"):
                if assigned is None:
                    own = step.group_of or step.name
                    assigned = {
                        a.approver_id: a
                        for a in ev.buyer_assignments()
                        if a.step is None or a.step == own or step.kind == "assignment_tiers"
                    }
                if relation == "assigned":
                    a = assigned.get(account_id)
                    if a is None:
                        continue
                    if a.limit is not None and total > a.limit:
                        excluded.append(
                            (
                                f"{account_id}: assigned to {buyer} with a limit of {a.limit}, "
                                "below ",
                                True,
                            )
                        )
                        continue
                    why = f"assigned to {buyer}"
                elif ev.buyer_assignments():
                    continue
                else:
                    why = f"{buyer} has no assigned approver"
            elif relation == "same_group":
                if group is None or cand.group != group:
                    continue
                why = f"in {buyer}'s group {group}"
            elif relation == "group_master":
                if not cand.master:
                    continue
                why = f"master of {ev.company}"
            else:
                why = f"member of {ev.company}"
            if sel.roles is not None:
                why = f"{cand.role.label}; {why}"
            if sel.accounts is not None:
                why = f"named approver; {why}"
            whys.append(why)
        if not whys:
            continue
        limit = cand.limit
        if limit is not None and total > limit:
            excluded.append((f"{account_id}: approval limit {limit} is below ", True))
            continue
        out.append(
            Approver(
                account_id,
                cand.account.name,
                cand.role_name,
                cand.role.label,
                tuple(dict.fromkeys(whys)),
                cand.email,
            )
        )
    return tuple(out)


def eligible_approvers(
    ev: Evaluation, step: CompiledStep, only: set[str] | None
) -> tuple[Approver, ...]:
    """The eligible approvers of a step (among ``only``), exclusions traced."""
    excluded: list = []
    approvers = select_approvers(ev, step, only, excluded)
    record_exclusions(ev, step, excluded)
    return approvers


def record_exclusions(ev: Evaluation, step: CompiledStep, excluded) -> None:
    """Trace the exclusions :func:`select_approvers` collected (the total appended where noted)."""
    total = str(ev.order.total)
    for prefix, with_total in excluded:
        ev.trace.append(TraceEntry(step.rule, "excluded", prefix + total if with_total else prefix))


def with_fallback(
    ev: Evaluation, step: CompiledStep, approvers: tuple[Approver, ...]
) -> tuple[Approver, ...]:
    """Too few approvers cover the total: up the company hierarchy (approvers, then masters)
    until enough."""
    total, buyer = ev.order.total, ev.order.buyer
    out = list(approvers)
    have = {a.account for a in out}
    for company in ev.directory.company_chain(ev.company)[1:]:
        found = []
        for cand in company_context(ev, company.id).pool:
            if cand.account_id in have or (cand.account_id == buyer and not step.self_approval):
                continue
            if cand.limit is None or total <= cand.limit:
                why = (
                    f"approver of parent company {company.id}: no approver of {ev.company} covers "
                    f"{total}"
                )
                found.append(
                    Approver(
                        cand.account_id,
                        cand.account.name,
                        cand.role_name,
                        cand.role.label,
                        (why,),
                        cand.email,
                    )
                )
        if not found:
            for m in ev.directory.memberships_of_company(company.id):
                account = ev.directory.account(m.account_id) if m.master and m.active else None
                if (
                    account is None
                    or not account.active
                    or m.account_id in have
                    or (m.account_id == buyer and not step.self_approval)
                ):
                    continue
                settings = ev.policy.effective_settings(m)
                if settings["approval_limit"] is not None and total > settings["approval_limit"]:
                    continue
                email = emailed_as_approver(settings, account)
                why = (
                    f"admin of parent company {company.id}: no approver of {ev.company} covers "
                    f"{total}"
                )
                found.append(
                    Approver(
                        m.account_id,
                        account.name,
                        m.role,
                        ev.policy.role_label(m.role),
                        (why,),
                        email,
                    )
                )
        if found:
            message = (
                f"step {step.name}: no approver of {ev.company} may approve {total}; escalated to "
                f"{company.id}"
            )
            ev.reasons.append(
                Reason("escalated_to_parent", message, {"step": step.name, "company": company.id})
            )
            ev.trace.append(TraceEntry(f"{step.rule}.fallback", "matched", message))
            out.extend(found)
            have.update(a.account for a in found)
            if len(out) >= step.required:
                break
    if len(out) < step.required:
        ev.trace.append(
            TraceEntry(
                f"{step.rule}.fallback",
                "skipped",
                f"step {step.name}: no parent company of {ev.company} has enough approvers who "
                f"cover {total}",
            )
        )
    return tuple(out)


def with_delegates(
    ev: Evaluation, step: CompiledStep, approvers: tuple[Approver, ...]
) -> tuple[Approver, ...]:
    """Add the active delegates of eligible approvers (chains up to MAX_DELEGATION_DEPTH hops).

    A delegate is added only where its delegator is eligible (so with the
    delegator's approval limit), never the buyer.  Returns ``approvers``
    itself when nobody delegates.
    """
    directory = ev.directory
    if not approvers or not any(directory.delegations_of(a.account) for a in approvers):
        return approvers
    day = utc_date(ev.now)  # delegation dates are UTC dates (docs/ruleset.md)
    names = (step.name, step.group_of or step.name.split("@", 1)[0])
    out = list(approvers)
    position = {a.account: i for i, a in enumerate(out)}
    buyer = ev.order.buyer
    for approver in approvers:
        stack = [(approver.account, 0)]
        seen = {approver.account}
        while stack:
            delegator, depth = stack.pop(0)
            for d in directory.delegations_of(delegator):
                if (
                    not d.active_on(day)
                    or (d.company_id and d.company_id != ev.company)
                    or (d.step and d.step not in names)
                ):
                    continue
                delegate = d.delegate_id
                if delegate in seen:
                    continue
                seen.add(delegate)
                if depth + 1 > MAX_DELEGATION_DEPTH:
                    ev.trace.append(
                        TraceEntry(
                            step.rule,
                            "skipped",
                            f"{delegate}: delegation chain from {approver.account} longer than "
                            f"{MAX_DELEGATION_DEPTH}",
                        )
                    )
                    continue
                if delegate == buyer:
                    ev.trace.append(
                        TraceEntry(
                            step.rule,
                            "excluded",
                            f"{delegate}: the buyer may not approve its own order, not even as "
                            f"delegate of {delegator}",
                        )
                    )
                    continue
                account = directory.account(delegate)
                membership = directory.membership(delegate, ev.company)
                if (
                    account is None
                    or not account.active
                    or membership is None
                    or not membership.active
                ):
                    ev.trace.append(
                        TraceEntry(
                            step.rule,
                            "excluded",
                            f"{delegate}: delegate of {delegator} but not an active member of "
                            f"{ev.company}",
                        )
                    )
                    continue
                why = f"delegate of {delegator} until {d.valid_until.isoformat()}"
                if delegate in position:
                    existing = out[position[delegate]]
                    if why not in existing.why:
                        # eligible in its own right too: it acts for nobody
                        acts_for = (
                            existing.delegate_of + (delegator,) if existing.delegate_of else ()
                        )
                        out[position[delegate]] = Approver(
                            existing.account,
                            existing.name,
                            existing.role,
                            existing.role_label,
                            existing.why + (why,),
                            existing.email,
                            acts_for,
                        )
                else:
                    settings = ev.policy.effective_settings(membership)
                    email = emailed_as_approver(settings, account)
                    position[delegate] = len(out)
                    out.append(
                        Approver(
                            delegate,
                            account.name,
                            membership.role,
                            ev.policy.role_label(membership.role),
                            (why,),
                            email,
                            (delegator,),
                        )
                    )
                stack.append((delegate, depth + 1))
    return tuple(out)
