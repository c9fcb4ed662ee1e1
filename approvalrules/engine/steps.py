"""Which approval steps apply to an order, and the Step (with approvers) each one becomes.

Standard steps are remembered per company context (see :func:`_standard_step`):
selecting approvers is the costly part of an evaluation, and its outcome
depends on the total only through a few limit comparisons.
"""

from __future__ import annotations

from bisect import bisect_left
from decimal import Decimal
from typing import TYPE_CHECKING

from .approvers import (
    buyer_company,
    eligible_approvers,
    record_exclusions,
    select_approvers,
    with_delegates,
    with_fallback,
)
from .conditions import Facts
from .decision import Step, StepMatched, StepNotMatched, TraceEntry
from .money import format_amount

if TYPE_CHECKING:  # annotations only: evaluate imports this module
    from .compile import CompiledStep
    from .evaluate import Evaluation


def match_steps(ev: Evaluation, facts: Facts) -> list[Step]:
    """The approval steps that apply to the order, each with its eligible approvers.

    Every step is traced as matched or not matched; the first pending step's memo
    entry is kept in ``ev.first_step`` for its notification.
    """
    p, total = ev.policy, ev.order.total
    below = ev.settings["no_approval_below"]
    if below and total < below:
        ev.trace.append(
            TraceEntry(
                "settings.no_approval_below",
                "matched",
                f"{total} < {below}: no approval needed",
            )
        )
        return []
    out: list[Step] = []
    append = ev.trace.append
    for index, predicate, step, tiers in p._plan:
        if not predicate(facts):
            append(StepNotMatched(step, facts))
            continue
        append(StepMatched(step, facts))
        if tiers:
            out.extend(_assignment_tiers(ev, step))
        elif step.subs:
            for number, sub in enumerate(step.subs):
                entry = _standard_step(ev, (index, number), sub)
                if not out:
                    ev.first_step = entry
                out.append(entry[0])
        else:
            entry = _standard_step(ev, index, step)
            if not out:
                ev.first_step = entry
            out.append(entry[0])
    return out


def _standard_step(ev: Evaluation, index: int | tuple, step: CompiledStep) -> list:
    """A standard step's Step, remembered per (step, buyer, where the total lies among the limits).

    Everything else selection depends on is fixed for a buyer within a
    directory snapshot (group, assignments, the pool); the total only
    matters through ``total > limit`` comparisons, so the number of known
    limits below the total identifies the outcome.  The memo entry is
    ``[Step, exclusions, approval_requested notifications (2), whether an
    approver delegates]``.  Fall-back and delegation are applied after the
    memo, per evaluation: they depend on parent companies and on ``now``.
    """
    company = buyer_company(ev)
    total, buyer = ev.order.total, ev.order.buyer
    if not step.uses_assignments:
        limits = company.limits
        key = (index, buyer, bisect_left(limits, total))
    else:
        limits = company.buyer_limits.get(buyer)
        if limits is None:
            own = {a.limit for a in ev.buyer_assignments() if a.limit is not None}
            limits = company.buyer_limits[buyer] = sorted(own.union(company.limits))
        key = (index, buyer, bisect_left(limits, total), True)
    entry = company.memo.get(key)
    if entry is None:
        excluded: list = []
        approvers = select_approvers(ev, step, None, excluded)
        # the last slot: whether an approver delegates (fixed within a directory snapshot)
        delegating = any(ev.directory.delegations_of(a.account) for a in approvers)
        entry = [
            Step(
                step.name,
                step.required,
                approvers,
                step.condition_text,
                step.group_of or step.name,
                step.group_of,
            ),
            tuple(excluded),
            None,
            None,
            delegating,
        ]
        if len(company.memo) >= company.MEMO_SIZE:
            company.memo.clear()
        company.memo[key] = entry
    if entry[1]:
        record_exclusions(ev, step, entry[1])
    # not remembered: fall-back and delegation depend on more than the memo key
    approvers = entry[0].approvers
    fallback = step.fallback == "parent_company" and len(approvers) < step.required
    if fallback:
        approvers = with_fallback(ev, step, approvers)
    if fallback or entry[4]:
        approvers = with_delegates(ev, step, approvers)
        if approvers is not entry[0].approvers:
            entry = [
                Step(
                    step.name,
                    step.required,
                    approvers,
                    step.condition_text,
                    step.group_of or step.name,
                    step.group_of,
                ),
                entry[1],
                None,
                None,
                False,
            ]
    return entry


def _assignment_tiers(ev: Evaluation, step: CompiledStep) -> list[Step]:
    """An ``assignment_tiers`` step: one Step per assignment threshold the total is above."""
    total = ev.order.total
    tiers: dict[Decimal, set[str]] = {}
    for a in ev.buyer_assignments():
        if (
            a.threshold is not None
            and total > a.threshold
            and (a.step is None or a.step == step.name)
        ):
            tiers.setdefault(a.threshold, set()).add(a.approver_id)
    if not tiers:
        ev.trace.append(
            TraceEntry(
                step.rule,
                "skipped",
                f"no assignment threshold of {ev.order.buyer} is below {total}",
            )
        )
    return [
        Step(
            f"{step.name}@{format_amount(threshold)}",
            1,
            with_delegates(ev, step, eligible_approvers(ev, step, tiers[threshold])),
            f"total > {threshold} (assignment threshold)",
            step.name,
        )
        for threshold in sorted(tiers)
    ]
