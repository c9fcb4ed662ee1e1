"""Values as a merchant reads them on admin pages: amounts, payers, audit details, settings.

Every admin template gets these as ``words`` (a ``BeforeRender`` subscriber), so no page
shows a Python repr (``{'kind': 'company', 'id': 'acme'}``, ``{'previous': None}``) or a
database's four decimals (``800.0000 USD``).  Amounts go through the engine's one
formatting function, :func:`approvalrules.engine.money.format_money`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pyramid.events import BeforeRender

from approvalrules.engine.money import format_amount, format_money


def money(amount: Decimal | int | str | None, currency: str | None) -> str:
    """``800.00 USD``, ``800 JPY``; empty for no amount, the bare amount for no currency."""
    if amount is None or amount == "":
        return ""
    if not currency:
        return str(amount)
    return format_money(amount, currency)


def payer(value: Mapping[str, Any] | None) -> str:
    """Who pays, in words: ``the company acme``, ``the buyer eve``; ``nobody`` (blocked)."""
    if not value:
        return "nobody: the order is not placed"
    kind, who = value.get("kind"), value.get("id")
    if kind == "company":
        return f"the company {who} (its billing account)"
    if kind == "buyer":
        return f"the buyer {who}"
    return text(value)


def text(value: Any) -> str:
    """Any stored value in words: mappings as ``key: value; ...``, lists joined, ``none``,
    ``yes``/``no``; nested mappings in brackets."""
    if value is None:
        return "none"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, Decimal):  # an amount whose currency the page does not know
        return format_amount(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        parts = [f"{_key(k)}: {_nested(v)}" for k, v in value.items()]
        return "; ".join(parts) if parts else "none"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(_nested(v) for v in value) if value else "none"
    return str(value)


def _nested(value: Any) -> str:
    if isinstance(value, Mapping) and value:
        return "(" + ", ".join(f"{_key(k)}: {_nested(v)}" for k, v in value.items()) + ")"
    return text(value)


def _key(key: Any) -> str:
    return str(key).replace("_", " ")


class Words:
    """What templates call: ``words.money(total, currency)``, ``words.payer(p)``,
    ``words.text(details)``."""

    money = staticmethod(money)
    payer = staticmethod(payer)
    text = staticmethod(text)


WORDS = Words()


def add_words(event) -> None:
    """Give every admin template ``words``."""
    event.setdefault("words", WORDS)


def includeme(config):
    config.add_subscriber(add_words, BeforeRender)
