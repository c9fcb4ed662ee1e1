"""What happens when time passes: a step's timeout and escalation, fixed expiry dates, and
reminders, parsed once when a rule set is compiled (the workflow's jobs read them from the
compiled policy)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from .dates import deadline, earliest
from .durations import parse_duration


@dataclass(frozen=True, slots=True)
class Escalation:
    """``escalate_to``: who gets a timed-out step (members of the order's company holding one
    of ``roles``, and ``accounts``), joining its approvers (``add``) or replacing them."""

    roles: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    mode: str = "add"


@dataclass(frozen=True, slots=True)
class Reminders:
    """``approval.reminders``: the first reminder ``after`` a step became current, then one
    ``every`` (default: ``after``) after the last."""

    after: timedelta
    every: timedelta


def step_timeouts(spec: Mapping[str, Any], zone: tzinfo = UTC) -> dict[str, Any]:
    """A step's timeout fields (``escalate_after``, ``on_timeout``, ``escalate_to``, the fixed
    ``expiry.date`` read in the rule set's ``zone``), parsed once."""
    after = spec.get("escalate_after")
    to = spec.get("escalate_to")
    escalation = None
    if to:
        roles = to.get("role")
        escalation = Escalation(
            roles=(roles,) if isinstance(roles, str) else tuple(roles or ()),
            accounts=tuple(to.get("accounts") or ()),
            mode=to.get("mode", "add"),
        )
    return {
        "escalate_after": parse_duration(after) if after else None,
        "escalate_after_text": after,
        "on_timeout": spec.get("on_timeout") or ("escalate" if to else "cancel"),
        "escalation": escalation,
        "expiry_deadline": deadline(fixed, zone)
        if (fixed := (spec.get("expiry") or {}).get("date"))
        else None,
    }


def request_expiry(
    submitted: datetime,
    after: timedelta | None,
    fixed: datetime | None,
    step_deadlines: Iterable[datetime | None] = (),
) -> datetime | None:
    """When a pending request expires: the earliest of ``after`` from ``submitted``, the rule
    set's fixed ``expiry.date`` and the fixed dates of the steps it waits for; None when none
    is set (pending until decided)."""
    return earliest([submitted + after if after else None, fixed, *step_deadlines])


def fixed_deadline(
    fixed: datetime | None, step_deadlines: Iterable[datetime | None]
) -> datetime | None:
    """The earliest fixed calendar expiry of a request (rule set's and its steps'), or None.

    Unlike ``after`` and ``escalate_after``, a calendar date is final: when it
    has passed the request expires, whatever ``on_timeout`` says, and no
    escalation or approval on timeout pushes the expiry beyond it.
    """
    return earliest([fixed, *step_deadlines])


def compile_reminders(spec: Mapping[str, Any] | None) -> Reminders | None:
    """``approval.reminders`` as durations; None without reminders."""
    if not spec:
        return None
    after = parse_duration(spec["after"])
    return Reminders(after, parse_duration(spec["every"]) if spec.get("every") else after)
