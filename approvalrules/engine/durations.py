"""ISO 8601 durations as rule sets write them (P7D, PT12H, P1DT6H, PT30M)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from ..errors import OrderError

_DURATION = re.compile(r"^P(?!$)(?:(\d{1,4})D)?(?:T(?=\d)(?:(\d{1,4})H)?(?:(\d{1,5})M)?)?$")


def parse_duration(text: str) -> timedelta:
    """``P7D`` -> 7 days.  The schema guarantees the shape; this converts."""
    match = _DURATION.match(text or "")
    if not match:
        raise ValueError(f"not an ISO 8601 duration of days/hours/minutes: {text!r}")
    days, hours, minutes = (int(g) if g else 0 for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes)


def parse_instant(text: str, where: str = "now") -> datetime:
    """An ISO 8601 date-time; naive values are taken as UTC."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise OrderError(
            "invalid_datetime",
            f"{where} must be an ISO 8601 date-time, got {str(text)[:40]!r}",
            path=where,
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def isoformat(value: datetime) -> str:
    """UTC, seconds precision, ``Z`` suffix: one canonical text per instant."""
    if value.tzinfo is UTC:  # most instants here: no conversion, no search for the offset
        return value.replace(microsecond=0, tzinfo=None).isoformat() + "Z"
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def duration_words(text: str) -> str:
    """``P7D`` as ``7 days``, ``P1DT6H`` as ``1 day 6 hours``, ``PT30M`` as ``30 minutes``."""
    match = _DURATION.match(text or "")
    if not match:
        return str(text)
    parts = []
    for value, unit in zip(match.groups(), ("day", "hour", "minute"), strict=True):
        if value and int(value):
            parts.append(f"{int(value)} {unit}{'' if int(value) == 1 else 's'}")
    return " ".join(parts) or "no time"


def utc_date(value: datetime) -> date:
    """The calendar date of an instant in UTC (naive values are taken as UTC, as
    :func:`parse_instant` does): ``2026-02-07T23:30-03:00`` is 2026-02-08."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).date()
