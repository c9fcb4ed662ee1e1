"""Money: exact Decimal amounts with an explicit ISO 4217 currency."""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import cache
from typing import Any

from babel.numbers import format_decimal, get_currency_precision

from ..errors import OrderError

#: ISO 4217 codes accepted in rule sets and orders.  A closed list, so that a
#: typo ("USS") is an error rather than a silently separate currency.
CURRENCIES = frozenset(
    [
        "AED",
        "AUD",
        "BGN",
        "BRL",
        "CAD",
        "CHF",
        "CLP",
        "CNY",
        "COP",
        "CZK",
        "DKK",
        "EGP",
        "EUR",
        "GBP",
        "HKD",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "ISK",
        "JPY",
        "KRW",
        "MXN",
        "MYR",
        "NOK",
        "NZD",
        "PEN",
        "PHP",
        "PKR",
        "PLN",
        "RON",
        "RUB",
        "SAR",
        "SEK",
        "SGD",
        "THB",
        "TRY",
        "TWD",
        "UAH",
        "USD",
        "VND",
        "ZAR",
    ]
)

#: where CLDR's "digits" (what babel reports: the decimals used in practice) differ from the
#: ISO 4217 minor units, ISO 4217 decides: these currencies have cents in law and in banking
_ISO_4217_MINOR_UNITS = {"COP": 2, "HUF": 2, "IDR": 2}


@cache
def minor_units(code: str) -> int:
    """The ISO 4217 minor units of ``code``: how many decimals an amount in it may have.

    2 for USD and EUR (cents), 0 for JPY and KRW.  The one place that says so: rule-set
    checks hold amounts to it, and amounts shown to people are formatted with it.
    """
    return _ISO_4217_MINOR_UNITS.get(code, get_currency_precision(code))


def fits_minor_units(amount: Decimal, code: str) -> bool:
    """Whether ``amount`` is a whole number of ``code``'s minor units (100.50 USD is; 100.125
    USD and 1000.5 JPY are not)."""
    return amount == amount.quantize(Decimal(1).scaleb(-minor_units(code)), rounding=ROUND_DOWN)


#: amounts are bounded so that a 5,000-digit number is a clear error, not a slow one
MAX_DIGITS = 18
#: an amount as text: ASCII digits with an optional fraction.  A minus sign is read so that
#: it can be refused as negative; an exponent because the API hands JSON numbers
#: such as 1e3 on as their text.
_AMOUNT_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]{1,3})?")


#: integers below this have at most MAX_DIGITS digits and exponent 0: valid as they are
_MAX_PLAIN_INT = 10**MAX_DIGITS
#: decimal text that every check below would pass (15 + 3 digits: within MAX_DIGITS), and
#: the schema's ``money`` pattern too
PLAIN_AMOUNT_TEXT = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,3})?")


def parse_amount(value: Any, where: str = "amount") -> Decimal:
    """Turn a YAML/JSON number or numeric string into a finite, non-negative Decimal.

    Floats go through ``str`` so that ``999999.99`` stays ``999999.99``.
    Raises :class:`OrderError` with ``where`` named on anything else.
    """
    if type(value) is int and 0 <= value < _MAX_PLAIN_INT:
        # most quantities and many prices: nothing below can refuse them
        return Decimal(value)
    if type(value) is str and PLAIN_AMOUNT_TEXT.fullmatch(value):
        # "12.50" and the like: at most 18 digits, no sign, no exponent; likewise
        return Decimal(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise OrderError(
            "invalid_amount", f"{where} must be a number, not {type(value).__name__}", path=where
        )
    if isinstance(value, str) and not _AMOUNT_TEXT.fullmatch(value):
        # Decimal() alone would take "8_00", "٨٠٠" and "  800 "
        raise OrderError(
            "invalid_amount",
            f"{where} must be a number or a decimal string of ASCII digits like "
            f'"999999.99" (no blanks, signs or "_"), got {value[:40]!r}',
            path=where,
        )
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise OrderError(
            "invalid_amount", f"{where} must be a number, got {str(value)[:40]!r}", path=where
        ) from None
    if not amount.is_finite():
        raise OrderError("invalid_amount", f"{where} must be a finite number", path=where)
    if amount < 0:
        raise OrderError(
            "negative_amount", f"{where} must not be negative (got {amount})", path=where
        )
    sign_digits_exponent = amount.as_tuple()
    if (
        len(sign_digits_exponent.digits) > MAX_DIGITS
        or not -MAX_DIGITS <= sign_digits_exponent.exponent <= MAX_DIGITS
    ):
        raise OrderError("invalid_amount", f"{where} has more than {MAX_DIGITS} digits", path=where)
    return amount


def to_cents(amount: Decimal) -> Decimal:
    """An amount rounded half-even to 2 places: what a currency conversion yields."""
    return amount.quantize(CENT, rounding=ROUND_HALF_EVEN)


CENT = Decimal("0.01")


def format_amount(amount: Decimal) -> str:
    """Canonical text for an amount: no exponent, no trailing zeros (``1000.0000`` -> ``1000``).

    Databases hand back ``Numeric(18, 4)`` values with four decimals; one text
    per value keeps names (``authorizers@1000``) and responses stable across stores.
    """
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def format_money(amount: Decimal | int | str, code: str, locale: str = "en") -> str:
    """An amount as a person reads it: grouped digits, the currency's minor units and its code.

    ``800.0000`` USD is ``800.00 USD``, 800 JPY is ``800 JPY``, 1.5 KWD is ``1.500 KWD``, and
    ``1234567.5`` USD is ``1,234,567.50 USD``.  The one text for amounts shown to people
    (the admin's pages); digits beyond the currency's minor units are kept, never rounded
    away, so that a price of ``0.125 USD`` still reads as written.
    """
    value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    places = minor_units(code)
    written = -value.normalize().as_tuple().exponent if value else 0
    places = max(places, written)
    pattern = "#,##0" + ("." + "0" * places if places else "")
    return f"{format_decimal(value, format=pattern, locale=locale)} {code}"
