"""The order body in one pass: read, checked against the OpenAPI ``Order`` schema and
built into the engine's ``Order`` at once.

The long way is three passes over every cart: the standard library's JSON reader, the
generated schema validator (``inputs.check_order``), then ``Order.from_dict``.
:func:`plain_order` has msgspec read the raw body straight into types made from the schema,
for a body that is *plainly* valid -- strings within their lengths, amounts as whole
numbers or short decimal strings, quantities as whole numbers, known choices -- and answers
None for anything else (an error, a fraction, a null, an unusual amount), which then goes
the long way: the long way decides every rejection and words it as it always has.

So this module never explains and never refuses; it only has to accept nothing that the
long way refuses and to build the very ``Order`` the long way builds
(tests/api/test_order_body.py holds it to both).  Its limits (lengths, choices, bounds)
are read from the document's schemas when first used, so the document stays the one
place that states them; a schema whose shape this module does not know fails that
first use loudly instead of being read wrongly.
"""

from __future__ import annotations

import functools
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from approvalrules.engine.conditions import Line
from approvalrules.engine.decision import ORDER_KEYS, ORDER_TYPES, PAYERS, Order
from approvalrules.engine.money import CURRENCIES, PLAIN_AMOUNT_TEXT
from approvalrules.errors import ApprovalRulesError

from . import openapi
from .inputs import refuse_unstorable

#: the schema's ``requested_date`` pattern, ASCII digits only (``\d`` would take others);
#: ``\Z``, not ``$``, which takes a line break at the end
_PLAIN_DATE_TEXT = r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z"


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


def plain_order(raw: bytes) -> Order | None:
    """The engine's ``Order`` of a plainly valid order body (the raw JSON), the same as
    ``Order.from_dict`` builds after ``inputs.check_order`` accepted it; None when the body
    is anything else, to go the long way (which explains what is wrong, if anything).

    msgspec reads and checks the body in one pass against types made from the document's
    schema (:func:`_decoder`); it refuses lone surrogates and bytes that are not UTF-8
    itself, so what is left to refuse here is what it reads and no database stores."""
    if type(raw) is not bytes or b"\x00" in raw or b"\\u0000" in raw:
        return None  # a NUL character, as it is or escaped
    try:
        body = _decoder().decode(raw)
    except (msgspec.MsgspecError, ValueError):  # not plain (or not JSON): the long way
        return None
    if body.attributes:
        try:  # the long way's own walk, from where the attributes sit in the body
            refuse_unstorable(body.attributes, depth=2)
        except ApprovalRulesError:
            return None
    requested = body.requested_date
    if requested is not None:
        try:
            requested = date.fromisoformat(requested)
        except ValueError:
            return None
    total = body.total
    ship_to = body.ship_to
    return Order(
        buyer=body.buyer,
        total=Decimal(total) if type(total) is str else _decimal(total),
        id=body.id,
        company=body.company,
        currency=body.currency,
        type=body.type,
        lines=tuple(
            [Line(line.sku, line.category, _decimal(line.quantity)) for line in body.lines]
        ),
        manual_ship_to=ship_to.manual if ship_to is not None else False,
        requested_date=requested,
        cost_centre=body.cost_centre,
        payer=body.payer,
    )


def _decimal(number: int) -> Decimal:
    return _SMALL[number] if number < _SMALL_COUNT else Decimal(number)


@functools.cache
def _decoder() -> msgspec.json.Decoder:
    """A decoder of the ``Order`` schema's plain form: each field's type and bounds as the
    document states them (:func:`_limits`), amounts as whole numbers or
    :data:`~approvalrules.engine.money.PLAIN_AMOUNT_TEXT`, quantities as whole numbers,
    null nowhere, no unknown field."""
    limits = _limits()

    def text(bounds: tuple[int, int]) -> Any:
        return Annotated[str, Meta(min_length=bounds[0], max_length=bounds[1])]

    def choice(names: frozenset[str]) -> Any:
        return Literal[tuple(sorted(names))]

    money = (
        Annotated[int, Meta(ge=0, le=limits.max_money)]
        | Annotated[str, Meta(pattern=rf"\A(?:{PLAIN_AMOUNT_TEXT.pattern})\Z")]
    )
    closed = {"forbid_unknown_fields": True, "frozen": True}
    line_text, ship_to_text, order_text = limits.line_text, limits.ship_to_text, limits.order_text
    line = msgspec.defstruct(
        "PlainLine",
        [
            ("sku", text(line_text["sku"])),
            ("category", text(line_text["category"]), None),
            ("quantity", Annotated[int, Meta(ge=0, le=limits.max_quantity)], 1),
            ("price", money, None),
            ("name", text(line_text["name"]), None),
        ],
        **closed,
    )
    ship_to = msgspec.defstruct(
        "PlainShipTo",
        [
            ("id", text(ship_to_text["id"]), None),
            ("manual", bool, False),
            ("address", text(ship_to_text["address"]), None),
        ],
        **closed,
    )
    order = msgspec.defstruct(
        "PlainOrder",
        [
            ("buyer", text(order_text["buyer"])),
            ("total", money),
            ("id", text(order_text["id"]), None),
            ("company", text(order_text["company"]), None),
            ("cost_centre", text(order_text["cost_centre"]), None),
            ("currency", choice(limits.currencies), None),
            ("type", choice(limits.order_types), "regular"),
            ("payer", choice(limits.payers), None),
            ("attributes", dict, None),
            ("ship_to", ship_to, None),
            ("requested_date", Annotated[str, Meta(pattern=_PLAIN_DATE_TEXT)], None),
            ("lines", Annotated[list[line], Meta(max_length=limits.max_lines)], []),
        ],
        **closed,
    )
    # every field of the schema, and no other (the limits check the schema has these)
    assert set(order.__struct_fields__) == ORDER_KEYS, order.__struct_fields__
    assert set(line.__struct_fields__) == _LINE_FIELDS, line.__struct_fields__
    return msgspec.json.Decoder(order)


_LINE_FIELDS = frozenset(("sku", "category", "quantity", "price", "name"))
#: the quantities most lines have, made once (a Decimal is immutable)
_SMALL_COUNT = 1000
_SMALL = tuple(Decimal(number) for number in range(_SMALL_COUNT))
