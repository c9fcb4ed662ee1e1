"""The precedence rules: ``deny`` blocks an order, ``bypass`` auto-approves it before any step."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .conditions import Facts, describe
from .decision import TraceEntry

if TYPE_CHECKING:  # annotations only: evaluate imports this module
    from .compile import PrecedenceRule
    from .evaluate import Evaluation


def deny(ev: Evaluation, facts: Facts) -> None:
    """Deny rules: each one that holds blocks the order with its own reason."""
    for rule in ev.policy.deny:
        if rule.predicate(facts):
            ev.block("denied", rule.reason, f"deny.{rule.name}", {"rule": rule.name})
        else:
            ev.trace.append(
                TraceEntry(
                    f"deny.{rule.name}",
                    "passed",
                    f"not denied: {describe(rule.condition)} does not hold",
                )
            )


def bypass_rule(ev: Evaluation, facts: Facts) -> PrecedenceRule | None:
    """The first bypass rule that holds for the buyer's role and the order, or None."""
    role = ev.membership.role
    for rule in ev.policy.bypass:
        if rule.roles is not None and role not in rule.roles:
            ev.trace.append(
                TraceEntry(
                    f"bypass.{rule.name}",
                    "not_matched",
                    f"buyer role {role} is not one of {', '.join(sorted(rule.roles))}",
                )
            )
        elif rule.predicate(facts):
            ev.trace.append(
                TraceEntry(
                    f"bypass.{rule.name}",
                    "matched",
                    f"{describe(rule.condition)}: auto-approved",
                )
            )
            return rule
        else:
            ev.trace.append(
                TraceEntry(
                    f"bypass.{rule.name}",
                    "not_matched",
                    f"{describe(rule.condition)} does not hold",
                )
            )
    return None
