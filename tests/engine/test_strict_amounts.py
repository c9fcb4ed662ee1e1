"""Amounts are ASCII decimal numbers (issue 15, defect 6): no Unicode digits, underscores,
blanks, signs or exponents in text; a line's price is an amount like the total."""

from __future__ import annotations

from decimal import Decimal

import pytest

from approvalrules.engine import Order
from approvalrules.engine.money import parse_amount
from approvalrules.errors import OrderError


@pytest.mark.parametrize("text", ["8_00", "٨٠٠", "  800 ", "800\n", "1x3", "0x10", "+5", "", "."])
def test_text_off_the_pattern_is_not_an_amount(text):
    with pytest.raises(OrderError) as raised:
        parse_amount(text, "order.total")
    assert raised.value.code == "invalid_amount"


def test_a_negative_amount_says_so():
    with pytest.raises(OrderError) as raised:
        parse_amount("-5", "order.total")
    assert raised.value.code == "negative_amount"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("800", "800"),
        ("999999.99", "999999.99"),
        (5, "5"),
        (2.5, "2.5"),
        ("1e3", "1000"),
        (Decimal("1.25"), "1.25"),
    ],
)
def test_plain_amounts_stay_accepted(value, expected):
    assert parse_amount(value) == Decimal(expected)


@pytest.mark.parametrize("price", [-10, "abc", "-10", True])
def test_a_line_price_is_an_amount(price):
    with pytest.raises(OrderError) as raised:
        Order.from_dict({"buyer": "sam", "total": 5, "lines": [{"sku": "a", "price": price}]})
    assert raised.value.path == "order.lines[0].price"
