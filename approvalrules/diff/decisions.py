"""Decisions as the diff compares them: a short summary, and the change between two summaries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..engine import Decision, Directory, Order, Policy
from ..errors import ApprovalRulesError

#: the instant orders are evaluated at when none is given: fixed, so reports are reproducible
DEFAULT_NOW = "2026-01-15T12:00:00Z"


@dataclass(frozen=True, slots=True)
class Summary:
    """What two decisions are compared on."""

    outcome: str
    reasons: tuple[str, ...]
    payer: tuple[str, str] | None
    steps: tuple[tuple[str, int, frozenset[str]], ...]

    @classmethod
    def of(cls, decision: Decision) -> Summary:
        return cls(
            decision.outcome,
            tuple(sorted(set(decision.reason_codes()))),
            (decision.payer["kind"], decision.payer["id"]) if decision.payer else None,
            tuple(
                (s.name, s.required, frozenset(a.account for a in s.approvers))
                for s in decision.steps
            ),
        )

    def as_dict(self) -> dict:
        return {
            "outcome": self.outcome,
            "reasons": list(self.reasons),
            "payer": {"kind": self.payer[0], "id": self.payer[1]} if self.payer else None,
            "steps": [{"name": n, "required": r, "approvers": sorted(a)} for n, r, a in self.steps],
        }


def _error_summary(exc: ApprovalRulesError) -> Summary:
    return Summary("error", (exc.code,), None, ())


def _as_is(identifier: str) -> str:
    return identifier


def directory_names(directory: Directory) -> Callable[[str], str]:
    """Account and company ids as the directory names them (the id when it has no name)."""

    def name(identifier: str) -> str:
        account = directory.account(identifier)
        if account is not None and account.name:
            return account.name
        company = directory.company(identifier)
        return company.name if company is not None and company.name else identifier

    return name


def change_text(old: Summary, new: Summary, name: Callable[[str], str] = _as_is) -> str | None:
    """The difference between two decisions as a short phrase, or None when they agree.

    Written relative to the buyer (no absolute approver lists unless they
    changed) so that classes with the same change read the same.  ``name``
    turns account and company ids into what a reader knows them by (see
    :func:`directory_names`).
    """
    if old == new:
        return None
    if old.outcome != new.outcome:
        text = f"{_outcome(old)} -> {_outcome(new)}"
        extra = []
        if (
            old.outcome != "blocked"
            and new.outcome != "blocked"
            and old.payer
            and new.payer
            and old.payer[0] != new.payer[0]
        ):
            extra.append(f"payer {old.payer[0]} -> {new.payer[0]}")
        return "; ".join([text] + extra)
    parts: list[str] = []
    if old.outcome in ("blocked", "error"):
        added = [r for r in new.reasons if r not in old.reasons]
        removed = [r for r in old.reasons if r not in new.reasons]
        return f"{old.outcome}: reasons " + " ".join(
            [f"+{r}" for r in added] + [f"-{r}" for r in removed]
        )
    parts += _step_changes(old, new, name)
    added = [r for r in new.reasons if r not in old.reasons]
    removed = [r for r in old.reasons if r not in new.reasons]
    if added or removed:
        parts.append("reasons " + " ".join([f"+{r}" for r in added] + [f"-{r}" for r in removed]))
    if old.payer != new.payer:
        if old.payer and new.payer and old.payer[0] != new.payer[0]:
            parts.append(f"payer {old.payer[0]} -> {new.payer[0]}")
        else:
            old_payer = name(old.payer[1]) if old.payer else "none"
            new_payer = name(new.payer[1]) if new.payer else "none"
            parts.append(f"payer {old_payer} -> {new_payer}")
    return "; ".join(parts) or None


def _outcome(s: Summary) -> str:
    if s.outcome in ("blocked", "error"):
        return f"{s.outcome} ({', '.join(s.reasons)})"
    return s.outcome


def _step_changes(old: Summary, new: Summary, name: Callable[[str], str]) -> list[str]:
    parts = []
    on = [s[0] for s in old.steps]
    nn = [s[0] for s in new.steps]
    ob = {s[0]: s for s in old.steps}
    nb = {s[0]: s for s in new.steps}
    added = [n for n in nn if n not in ob]
    removed = [n for n in on if n not in nb]
    if added:
        parts.append("+step " + ", ".join(added))
    if removed:
        parts.append("-step " + ", ".join(removed))
    common_o = [n for n in on if n in nb]
    common_n = [n for n in nn if n in ob]
    if common_o != common_n:
        parts.append(f"step order {', '.join(common_o)} -> {', '.join(common_n)}")
    for step in common_n:
        _, ro, ao = ob[step]
        _, rn, an = nb[step]
        if ro != rn:
            parts.append(f"step {step} required {ro} -> {rn}")
        if ao != an:
            delta = [f"+{name(a)}" for a in sorted(an - ao)] + [
                f"-{name(a)}" for a in sorted(ao - an)
            ]
            parts.append(f"step {step} approvers {' '.join(delta)}")
    return parts


def evaluate_summary(
    policy: Policy, order: Order, directory: Directory, now, budgets_spent=None
) -> Summary:
    """The summary of ``policy``'s decision on ``order``; an engine error is a decision too."""
    try:
        return Summary.of(policy.evaluate(order, directory, now=now, budgets_spent=budgets_spent))
    except ApprovalRulesError as exc:
        return _error_summary(exc)
