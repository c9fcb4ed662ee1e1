"""Amounts as people read them: the currency's minor units and its code, one function."""

from decimal import Decimal

import pytest

from approvalrules.engine.money import format_money, minor_units


@pytest.mark.parametrize(
    ("code", "places"), [("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("KWD", 3), ("BHD", 3)]
)
def test_minor_units_follow_iso_4217(code, places):
    assert minor_units(code) == places


@pytest.mark.parametrize(
    ("amount", "code", "text"),
    [
        (Decimal("800.0000"), "USD", "800.00 USD"),  # as a Numeric(18, 4) column hands it back
        (Decimal("800"), "USD", "800.00 USD"),
        (Decimal("800.0000"), "JPY", "800 JPY"),
        (Decimal("800"), "JPY", "800 JPY"),
        (Decimal("1.5"), "KWD", "1.500 KWD"),
        (Decimal("12.345"), "BHD", "12.345 BHD"),
        (Decimal("1234567.5"), "USD", "1,234,567.50 USD"),
        (Decimal("0"), "EUR", "0.00 EUR"),
        ("12.3", "EUR", "12.30 EUR"),  # decisions store amounts as text
        (500, "USD", "500.00 USD"),
    ],
)
def test_amounts_show_the_currencys_minor_units_and_code(amount, code, text):
    assert format_money(amount, code) == text


def test_digits_beyond_the_minor_units_are_kept_not_rounded_away():
    assert format_money(Decimal("0.125"), "USD") == "0.125 USD"
    assert format_money(Decimal("800.5000"), "JPY") == "800.5 JPY"
