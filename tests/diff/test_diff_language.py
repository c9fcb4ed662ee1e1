"""The behavioural diff over the order's date and whether the buyer has an assigned approver.

Every pair starts from ``acme.yaml`` beside this file and changes one thing; the sentences are
written out in full.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from approvalrules import diff
from approvalrules.diff.dates import DateBand, date_bands, date_edges
from approvalrules.engine import Order, compile_ruleset, load_directory
from approvalrules.engine.durations import parse_instant

HERE = Path(__file__).resolve().parent
BASE = (HERE / "acme.yaml").read_text("utf-8")
DIRECTORY_TEXT = (HERE / "directories" / "acme.yaml").read_text("utf-8")
MARKETING_WHEN = "      when: {buyer_group: marketing, total: {gt: 500}}\n"
INVENTORY = (
    "deny:\n  - {name: inventory, when: {order_date: {gte: '2026-12-28', lte: '2026-12-31'}},"
    " reason: inventory}\n"
)


def variant(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"fixture drifted: {old!r}"
    return text.replace(old, new)


@pytest.fixture(scope="module")
def directory():
    return load_directory(DIRECTORY_TEXT, "directories/acme.yaml")


def behaviour(old_text: str, new_text: str, directory):
    return diff.behavioural_diff(
        compile_ruleset(old_text, "old.yaml"), compile_ruleset(new_text, "new.yaml"), directory
    )


def test_step_validity_added_is_found_for_the_dates_it_removes(directory):
    new = variant(BASE, MARKETING_WHEN, MARKETING_WHEN + '      valid_from: "2026-04-01"\n')
    report = behaviour(BASE, new, directory)
    assert report.lines() == [
        "orders dated until 2026-03-31 over 500 by Marketing members: pending -> approved"
    ]
    (change,) = report.changes
    assert change.as_dict()["dates"] == {
        "from": None,
        "until": "2026-04-01T00:00:00Z",
        "sample": "2026-01-15T12:00:00Z",
    }
    assert change.example["now"] == "2026-01-15T12:00:00Z"


def test_deny_on_order_dates_added(directory):
    report = behaviour(BASE, BASE + INVENTORY, directory)
    assert sorted(report.lines()) == sorted(
        [
            "all orders dated from 2026-12-28 until 2026-12-31 by buyers with role Master: "
            "approved -> blocked (denied)",
            "all quote orders dated from 2026-12-28 until 2026-12-31 by all buyers: "
            "blocked: reasons +denied",
            "regular, bulk and subscription orders dated from 2026-12-28 until 2026-12-31 over "
            "50000 by all buyers: blocked: reasons +denied",
            "orders dated from 2026-12-28 until 2026-12-31 up to 500 by Marketing members: "
            "approved -> blocked (denied)",
            "orders dated from 2026-12-28 until 2026-12-31 over 500 by Marketing members: "
            "pending -> blocked (denied)",
            "all orders dated from 2026-12-28 until 2026-12-31 by Ops members: "
            "pending -> blocked (denied)",
        ]
    )


def test_a_change_that_ignores_dates_is_reported_once_without_them(directory):
    dated = variant(BASE, MARKETING_WHEN, MARKETING_WHEN + '      valid_until: "2027-06-30"\n')
    raised = variant(dated, "total: {gt: 500}", "total: {gt: 1000}")
    report = behaviour(dated, raised, directory)
    # after 2027-06-30 the step applies in neither version: nothing changes there
    assert report.lines() == [
        "orders dated until 2027-06-30 over 500 up to 1000 by Marketing members: "
        "pending -> approved"
    ]
    # the same dated rule set on both sides: no changes at any date
    assert behaviour(dated, dated, directory).changes == []
    assert behaviour(BASE + INVENTORY, BASE + INVENTORY, directory).changes == []


def test_budget_validity_narrowed(directory):
    new = variant(BASE, "on_exceed: block}", 'on_exceed: block, valid_until: "2026-06-30"}')
    assert behaviour(BASE, new, directory).lines() == [
        "orders dated from 2026-07-01 over 50000 by buyers with role Master: "
        "blocked (budget_exceeded) -> approved",
        "orders dated from 2026-07-01 over 50000 by Marketing members and Ops members: "
        "blocked (budget_exceeded) -> pending",
    ]


def test_time_zone_change_moves_date_edges_and_names_instants(directory):
    old = BASE + INVENTORY
    new = old + "time_zone: Europe/Berlin\n"
    report = behaviour(old, new, directory)
    texts = report.lines()
    assert (
        "all orders submitted from 2026-12-27T23:00:00Z before 2026-12-28T00:00:00Z by Ops "
        "members: pending -> blocked (denied)"
    ) in texts
    assert (
        "all orders submitted from 2026-12-31T23:00:00Z before 2027-01-01T00:00:00Z by Ops "
        "members: blocked (denied) -> pending"
    ) in texts


def test_every_reported_dated_change_really_changes_and_no_date_is_missed(directory):
    """Soundness: each change's example differs at its sample instant.  Completeness: every
    day of 2026-2027 on which a sample order's decision differs lies in a reported band."""
    old_text = BASE + INVENTORY
    new_text = variant(
        old_text + "time_zone: America/New_York\n",
        MARKETING_WHEN,
        MARKETING_WHEN + '      valid_from: "2026-03-10"\n      valid_until: "2027-02-01"\n',
    )
    old, new = compile_ruleset(old_text, "old.yaml"), compile_ruleset(new_text, "new.yaml")
    report = diff.behavioural_diff(old, new, directory)
    assert report.changes
    for change in report.changes:
        example = dict(change.example)
        now = example.pop("now", "2026-01-15T12:00:00Z")
        order = Order.from_dict(example)
        before = old.evaluate(order, directory, now=now)
        after = new.evaluate(order, directory, now=now)
        assert (before.outcome, before.reason_codes()) != (after.outcome, after.reason_codes())
    # a change without dates holds at every date
    start = datetime(2026, 1, 1, 6, tzinfo=UTC)
    bands = [c.dates or DateBand(None, None, start) for c in report.changes]
    order = Order.from_dict({"buyer": "bob", "total": "800", "company": "acme"})
    instant = start
    while instant < datetime(2028, 1, 1, tzinfo=UTC):
        if old.evaluate(order, directory, now=instant).outcome != (
            new.evaluate(order, directory, now=instant).outcome
        ):
            assert any(_covers(band, instant) for band in bands), instant
        instant += timedelta(hours=7)


def _covers(band: DateBand, instant: datetime) -> bool:
    return (band.start is None or band.start <= instant) and (
        band.end is None or instant < band.end
    )


def test_date_bands_sample_now_and_each_bands_start():
    policy = compile_ruleset(BASE + INVENTORY, "a.yaml")
    assert date_edges(policy) == {
        datetime(2026, 12, 28, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    }
    now = parse_instant("2026-01-15T12:00:00Z")
    bands = date_bands([policy], now)
    assert [b.sample for b in bands] == [
        now,
        datetime(2026, 12, 28, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    ]
    late = parse_instant("2027-03-01T00:00:00Z")
    assert date_bands([policy], late)[0].sample == datetime(2026, 12, 27, tzinfo=UTC)
    assert date_bands([compile_ruleset(BASE, "a.yaml")], now) == [DateBand(None, None, now)]


def test_buyer_has_approver_added_changes_only_buyers_without_one():
    directory = load_directory(
        DIRECTORY_TEXT + "assignments:\n  - {approver: ann, account: bob, company: acme}\n",
        "acme.yaml",
    )
    new = variant(
        BASE,
        "when: {buyer_group: marketing, total: {gt: 500}}",
        "when: {buyer_group: marketing, total: {gt: 500}, buyer_has_approver: true}",
    )
    report = behaviour(BASE, new, directory)
    assert report.lines() == [
        "orders over 500 by buyers with role Approver in Marketing with no assigned approver: "
        "pending -> approved"
    ]
    names = {c.name for c in report.classes}
    assert "buyers with role Requisitioner in Marketing assigned to Ann" in names


def test_structural_diff_names_validity_and_expiry_dates():
    new = variant(
        BASE,
        MARKETING_WHEN,
        MARKETING_WHEN + '      valid_from: "2026-04-01"\n      expiry: {date: "2026-05-01"}\n',
    )
    new = variant(new, "on_exceed: block}", 'on_exceed: block, valid_until: "2026-06-30"}')
    new = variant(new, "expiry: {after: P7D}", 'expiry: {after: P7D, date: "2026-12-31"}')
    new += "time_zone: Europe/Berlin\n"
    result = diff.diff_versions(BASE, new, None, old_name="old.yaml", new_name="new.yaml")
    assert sorted(c["text"] for c in result["structural"]) == sorted(
        [
            "step marketing: valid_from none -> '2026-04-01'",
            "step marketing: expiry.date none -> '2026-05-01'",
            "budget monthly: valid_until none -> '2026-06-30'",
            "approval: expiry.date none -> '2026-12-31'",
            "time_zone: none -> 'Europe/Berlin'",
        ]
    )
