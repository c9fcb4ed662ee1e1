"""Which conditions no order meets together (the chain diagram forks over them), and
durations in words."""

import pytest

from approvalrules.engine.conditions import exclude_each_other
from approvalrules.engine.durations import duration_words


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"buyer_group": "marketing", "total": {"gt": 500}}, {"buyer_group": "ops"}),
        ({"buyer_role": ["user", "guest"]}, {"buyer_role": "manager"}),
        ({"total": {"lte": 500}}, {"total": {"gt": 500}}),
        ({"total": {"lt": 500}}, {"total": {"gte": 500}}),
        ({"order_type": "bulk"}, {"not": {"order_type": ["bulk", "quote"]}}),
        ({"all": [{"currency": "EUR"}, {"total": {"gt": 1}}]}, {"currency": "USD"}),
    ],
)
def test_conditions_no_order_meets_together(first, second):
    assert exclude_each_other(first, second)
    assert exclude_each_other(second, first)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"total": {"gt": 500}}, {"total": {"gt": 10000}}),
        ({"total": {"lte": 500}}, {"total": {"gte": 500}}),  # 500 meets both
        ({"buyer_group": ["a", "b"]}, {"buyer_group": "b"}),
        (None, {"buyer_group": "a"}),
        ({"any": [{"buyer_group": "a"}, {"total": {"gt": 1}}]}, {"buyer_group": "b"}),
        ({"lines": {"category": "x"}}, {"lines": {"category": "y"}}),  # many lines: both
        ({"total": {"gt": {"USD": 5}}}, {"total": {"lt": {"USD": 5}}}),  # per currency: unknown
    ],
)
def test_conditions_an_order_may_meet_together_are_never_called_exclusive(first, second):
    assert not exclude_each_other(first, second)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("P7D", "7 days"),
        ("P1D", "1 day"),
        ("PT12H", "12 hours"),
        ("P1DT6H", "1 day 6 hours"),
        ("PT30M", "30 minutes"),
        ("PT1H1M", "1 hour 1 minute"),
    ],
)
def test_durations_in_words(text, words):
    assert duration_words(text) == words
