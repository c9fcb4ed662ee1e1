"""Instants as the API writes them (``engine.durations.isoformat``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from approvalrules.engine.durations import isoformat


@pytest.mark.parametrize(
    ("instant", "text"),
    [
        (datetime(2026, 11, 28, 15, 21, 41, 999999, tzinfo=UTC), "2026-11-28T15:21:41Z"),
        (
            datetime(2026, 11, 28, 15, 21, 41, tzinfo=timezone(timedelta(0), "GMT")),
            "2026-11-28T15:21:41Z",
        ),
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00Z"),
        # other zones: the same instant in UTC
        (datetime(2026, 3, 29, 3, 30, tzinfo=ZoneInfo("Europe/Berlin")), "2026-03-29T01:30:00Z"),
        (
            datetime(2026, 5, 1, 23, 0, 30, 5, tzinfo=timezone(timedelta(hours=-3))),
            "2026-05-02T02:00:30Z",
        ),
    ],
)
def test_an_instant_is_written_in_utc_to_the_second_with_z(instant, text):
    assert isoformat(instant) == text
