"""The order body in one pass: checked against the OpenAPI ``Order`` schema and built into
the engine's ``Order`` in the same walk.

The long way is two walks over every cart: the generated schema validator
(``inputs.check_order``), then ``Order.from_dict``, each about half of a 15-line cart's
parsing.  :func:`plain_order` does both at once for a body that is *plainly* valid --
strings within their lengths, amounts as whole numbers or short decimal strings,
quantities as whole numbers, known choices -- and answers None for anything else (an
error, a fraction, a null, an unusual amount), which then goes the long way: the long
way decides every rejection and words it as it always has.

So this module never explains and never refuses; it only has to accept nothing that the
long way refuses and to build the very ``Order`` the long way builds
(tests/api/test_order_body.py holds it to both).  Its limits (lengths, choices, bounds)
are read from the document's schemas when first used, so the document stays the one
place that states them; a schema whose shape this module does not know fails that
first use loudly instead of being read wrongly.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from approvalrules.engine.conditions import Line
from approvalrules.engine.decision import ORDER_KEYS, ORDER_TYPES, PAYERS, Order
from approvalrules.engine.money import CURRENCIES, PLAIN_AMOUNT_TEXT

from . import openapi

#: the schema's ``requested_date`` pattern, ASCII digits only (``\d`` would take others)
_PLAIN_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class _Limits:
    """What the document's ``Order`` schema allows, as the one pass needs it."""

    #: (min, max) characters of each string field, by field name
    order_text: dict[str, tuple[int, int]]
    line_text: dict[str, tuple[int, int]]
    ship_to_text: dict[str, tuple[int, int]]
    currencies: frozenset[str]
    order_types: frozenset[str]
    payers: frozenset[str]
    max_lines: int
    max_money: int
    max_quantity: int


def _text(schema: dict) -> tuple[int, int]:
    """``(minLength, maxLength)`` of a plain string schema (no pattern, format or choices)."""
    assert schema.get("type") == "string", schema
    assert not {"pattern", "format", "enum", "$ref"} & schema.keys(), schema
    return schema.get("minLength", 0), schema["maxLength"]


def _choices(schema: dict) -> frozenset[str]:
    assert schema.get("type") == "string" and "enum" in schema, schema
    return frozenset(schema["enum"])


def _object(schema: dict, known: AbstractSet[str]) -> dict:
    """The properties of a closed object schema whose fields are all ``known`` to this module."""
    assert schema.get("type") == "object" and schema.get("additionalProperties") is False, schema
    assert set(schema["properties"]) == known, (sorted(schema["properties"]), sorted(known))
    return schema["properties"]


def _ref(schemas: dict, schema: dict) -> dict:
    prefix = "#/components/schemas/"
    assert schema["$ref"].startswith(prefix), schema
    return schemas[schema["$ref"][len(prefix) :]]


@functools.cache
def _limits() -> _Limits:
    schemas = openapi.document()["components"]["schemas"]
    order = schemas["Order"]
    assert order["required"] == ["buyer", "total"], order["required"]
    fields = _object(order, ORDER_KEYS)
    lines = fields["lines"]
    assert lines["type"] == "array" and "minItems" not in lines, lines
    line = _object(lines["items"], {*_LINE_FIELDS})
    assert lines["items"]["required"] == ["sku"], lines["items"]
    quantity = line["quantity"]
    assert quantity["type"] == "number" and quantity["minimum"] == 0, quantity
    money = _ref(schemas, fields["total"])
    assert _ref(schemas, line["price"]) is money
    number, text = money["oneOf"]
    assert number["type"] == "number" and number["minimum"] == 0, number
    # every text PLAIN_AMOUNT_TEXT takes matches the document's pattern for money
    assert text == {"type": "string", "pattern": r"^[0-9]{1,15}(\.[0-9]{1,4})?$"}, text
    assert fields["requested_date"]["pattern"] == "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
    assert fields["attributes"] == {"type": "object"}, fields["attributes"]
    ship_to = _object(fields["ship_to"], {"id", "manual", "address"})
    assert ship_to["manual"] == {"type": "boolean"}, ship_to["manual"]
    return _Limits(
        order_text={
            name: _text(fields[name]) for name in ("id", "buyer", "company", "cost_centre")
        },
        line_text={name: _text(line[name]) for name in ("sku", "category", "name")},
        ship_to_text={name: _text(ship_to[name]) for name in ("id", "address")},
        currencies=_choices(_ref(schemas, fields["currency"])) & CURRENCIES,
        order_types=_choices(_ref(schemas, fields["type"])) & frozenset(ORDER_TYPES),
        payers=_choices(_ref(schemas, fields["payer"])) & frozenset(PAYERS),
        max_lines=lines["maxItems"],
        max_money=int(number["maximum"]),
        max_quantity=int(quantity["maximum"]),
    )


def _plain_text(value: Any, bounds: tuple[int, int]) -> bool:
    return type(value) is str and bounds[0] <= len(value) <= bounds[1]


def _plain_money(value: Any, maximum: int) -> Decimal | None:
    if type(value) is str:
        return Decimal(value) if PLAIN_AMOUNT_TEXT.fullmatch(value) else None
    if type(value) is int and 0 <= value <= maximum:
        return Decimal(value)
    return None


def plain_order(body: dict) -> Order | None:
    """The engine's ``Order`` of a plainly valid order ``body`` (parsed JSON), the same as
    ``Order.from_dict`` builds after ``inputs.check_order`` accepted it; None when the body
    is anything else, to go the long way (which explains what is wrong, if anything)."""
    limits = _limits()
    order_text = limits.order_text
    for key in body:
        if key not in order_text and key not in _OTHER_ORDER_FIELDS:
            return None
    for key in ("id", "company", "cost_centre"):
        if key in body and not _plain_text(body[key], order_text[key]):
            return None
    buyer = body.get("buyer")
    if not _plain_text(buyer, order_text["buyer"]):
        return None
    total = _plain_money(body.get("total"), limits.max_money)
    if total is None:
        return None
    # null is no value the schema takes: present, a field must hold a plain value
    currency = body.get("currency")
    if "currency" in body and (type(currency) is not str or currency not in limits.currencies):
        return None
    order_type = body.get("type", "regular")
    if type(order_type) is not str or order_type not in limits.order_types:
        return None
    payer = body.get("payer")
    if "payer" in body and (type(payer) is not str or payer not in limits.payers):
        return None
    if "attributes" in body and type(body["attributes"]) is not dict:
        return None
    manual = False
    if "ship_to" in body:
        ship_to = body["ship_to"]
        if type(ship_to) is not dict:
            return None
        for key, value in ship_to.items():
            if key == "manual":
                if type(value) is not bool:
                    return None
                manual = value
            elif key not in limits.ship_to_text or not _plain_text(value, limits.ship_to_text[key]):
                return None
    requested = body.get("requested_date")
    if "requested_date" in body:
        if type(requested) is not str or not _PLAIN_DATE.fullmatch(requested):
            return None
        try:
            requested = date.fromisoformat(requested)
        except ValueError:
            return None
    lines = _plain_lines(body["lines"], limits) if "lines" in body else ()
    if lines is None:
        return None
    return Order(
        buyer=buyer,
        total=total,
        id=body.get("id"),
        company=body.get("company"),
        currency=currency,
        type=order_type,
        lines=lines,
        manual_ship_to=manual,
        requested_date=requested,
        cost_centre=body.get("cost_centre"),
        payer=payer,
    )


_OTHER_ORDER_FIELDS = ORDER_KEYS - {"id", "buyer", "company", "cost_centre"}


def _plain_lines(raw: Any, limits: _Limits) -> tuple[Line, ...] | None:
    # the cost of a cart is in here: one dict lookup per field, no call per value
    if type(raw) is not list or len(raw) > limits.max_lines:
        return None
    (sku_min, sku_max), (category_min, category_max), (name_min, name_max) = (
        limits.line_text["sku"],
        limits.line_text["category"],
        limits.line_text["name"],
    )
    max_money, max_quantity = limits.max_money, limits.max_quantity
    plain_money_text = PLAIN_AMOUNT_TEXT.fullmatch
    lines = []
    for line in raw:
        if type(line) is not dict or not line.keys() <= _LINE_FIELDS:
            return None
        sku = line.get("sku")
        if type(sku) is not str or not sku_min <= len(sku) <= sku_max:
            return None
        quantity = line.get("quantity", 1)
        if type(quantity) is not int or not 0 <= quantity <= max_quantity:
            return None
        if "price" in line:
            price = line["price"]
            if type(price) is str:
                if not plain_money_text(price):
                    return None
            elif type(price) is not int or not 0 <= price <= max_money:
                return None
        category = line.get("category")
        if "category" in line and (
            type(category) is not str or not category_min <= len(category) <= category_max
        ):
            return None
        if "name" in line:
            name = line["name"]
            if type(name) is not str or not name_min <= len(name) <= name_max:
                return None
        lines.append(
            Line(sku, category, _SMALL[quantity] if quantity < _SMALL_COUNT else Decimal(quantity))
        )
    return tuple(lines)


_LINE_FIELDS = frozenset(("sku", "category", "quantity", "price", "name"))
#: the quantities most lines have, made once (a Decimal is immutable)
_SMALL_COUNT = 1000
_SMALL = tuple(Decimal(number) for number in range(_SMALL_COUNT))
