"""The one-pass order parser (views/order_body.py) against the long way it stands in for.

``plain_order`` may answer None for any body (the long way then decides and explains);
what it must never do is accept a body that ``inputs.check_order`` or ``Order.from_dict``
refuses, or build another ``Order`` than ``Order.from_dict`` does.  And it must take the
ordinary carts, or the evaluate endpoint would pay for both ways.
"""

from __future__ import annotations

import copy
import json

import pytest

from approvalrules.engine.decision import Order
from approvalrules.errors import OrderError
from approvalrules.views import inputs
from approvalrules.views.api import _json_object as json_object
from approvalrules.views.api import order_of_body
from approvalrules.views.order_body import plain_order

CART = {
    "id": "PO-1",
    "buyer": "bob",
    "company": "acme",
    "total": "1849.70",
    "currency": "EUR",
    "type": "bulk",
    "payer": "company",
    "cost_centre": "CC-4711",
    "requested_date": "2026-12-24",
    "ship_to": {"id": "S-1", "manual": True, "address": "Main Street 1"},
    "attributes": {"channel": "web", "score": 1.5, "tags": [1, {"b": None}]},
    "lines": [
        {"sku": "SKU-1", "category": "office", "quantity": 2, "name": "Pen", "price": "3.00"},
        {"sku": "SKU-2"},
        {"sku": "SKU-3", "quantity": 0, "price": 7, "category": ""},
    ],
}

#: carts the one pass must take (besides CART): what storefronts send every day
PLAIN = [
    {"buyer": "bob", "total": 0},
    {"buyer": "bob", "total": "12", "lines": []},
    {"buyer": "b" * 100, "total": 10**15, "ship_to": {}, "attributes": {}},
    {"buyer": "bob", "total": "999999999999999.999", "cost_centre": ""},
    {"buyer": "bob", "total": "0.5", "lines": [{"sku": "x", "quantity": 10**9, "name": ""}]},
    {"buyer": "bob", "total": "1", "requested_date": "2028-02-29", "payer": "buyer"},
]

STRANGE_TEXTS = [
    "",
    "x" * 101,
    "x" * 301,
    "x" * 1001,
    5,
    True,
    None,
    [],
    {},
    "١٢",
    "a\tb",
    "é" * 100,
]
STRANGE_AMOUNTS = [
    "8_00",
    "٨٠٠",
    "  800 ",
    " 800",
    "800\n",
    "1e3",
    "1E3",
    "-5",
    "+5",
    "12.34567",
    "12.3456",
    "1234567890123456",
    "123456789012345.1234",
    "123456789012345.123",
    ".5",
    "5.",
    "abc",
    "",
    "NaN",
    "Infinity",
    800,
    0,
    12.5,
    1e3,
    -1,
    -0.0,
    10**15,
    10**15 + 1,
    10**18,
    10**20,
    True,
    False,
    None,
    [],
    {},
]
STRANGE_QUANTITIES = ["2", -1, 1.5, 2.0, True, None, 0, 10**9, 10**9 + 1, 10**12, 1e3, "1", []]


def _variants():
    for field in ("id", "buyer", "company", "cost_centre"):
        for value in STRANGE_TEXTS:
            yield {field: value}
        yield {field: "x" * 100}
    for value in STRANGE_AMOUNTS:
        yield {"total": value}
        yield {"lines.price": value}
    for value in STRANGE_QUANTITIES:
        yield {"lines.quantity": value}
    for field in ("sku", "category", "name"):
        for value in STRANGE_TEXTS:
            yield {f"lines.{field}": value}
    for field in ("currency", "type", "payer"):
        for value in ["", "usd", "USD", "EUR", "XXX", "regular", "quote", "buyer", 1, None, []]:
            yield {field: value}
    for value in ["2026-13-45", "2026-02-30", "2026-1-1", "26-12-24", "2026-12-24T00:00",
                  "２０２６-12-24", "2026-12-24\n", 20261224, None, ""]:  # fmt: skip
        yield {"requested_date": value}
    for value in [5, "x", [], None, {"manual": "yes"}, {"manual": None}, {"manual": False},
                  {"id": 1}, {"address": "x" * 1001}, {"other": 1}, {"id": "x" * 101}]:  # fmt: skip
        yield {"ship_to": value}
    for value in [None, [], "x", 1, {"a": {"b": [None]}}]:
        yield {"attributes": value}
    for value in [None, "x", {}, [None], ["x"], [{}], [{"sku": "a", "extra": 1}], [[]],
                  [{"sku": "a"}] * 1000, [{"sku": "a"}] * 1001]:  # fmt: skip
        yield {"lines": value}
    for field in ("unit_price", "Buyer", "lines.unit_price", "ship_to.extra"):
        yield {field: 1}
    for field in ("buyer", "total", "lines.sku", "currency", "lines", "ship_to.manual"):
        yield {f"-{field}": None}


def _changed(change: dict) -> dict:
    body = copy.deepcopy(CART)
    for key, value in change.items():
        removing = key.startswith("-")
        *parents, name = key.lstrip("-").split(".")
        target = body
        for parent in parents:
            target = target[parent][0] if parent == "lines" else target[parent]
        if removing:
            target.pop(name)
        else:
            target[name] = value
    return body


def _long_way(parsed: dict, fractional: bool) -> Order | OrderError:
    try:
        inputs.check_order(parsed)
        return Order.from_dict(inputs.numbers_as_text(parsed) if fractional else parsed)
    except OrderError as refused:
        return refused


def _parsed(body: dict) -> tuple[dict, bool]:
    return inputs.parse_json_noting_fractions(json.dumps(body).encode())


def _one_pass(body: dict) -> Order | None:
    return plain_order(json.dumps(body).encode())


@pytest.mark.parametrize("change", list(_variants()), ids=lambda c: repr(c)[:80])
def test_the_one_pass_accepts_nothing_the_long_way_refuses_and_builds_the_same_order(change):
    parsed, fractional = _parsed(_changed(change))
    fast = _one_pass(_changed(change))
    if fast is None:
        return  # the long way decides
    long_way = _long_way(parsed, fractional)
    assert not isinstance(long_way, OrderError), (change, long_way)
    assert fast == long_way


@pytest.mark.parametrize("body", [CART, *PLAIN], ids=lambda b: repr(b)[:60])
def test_ordinary_carts_take_the_one_pass(body):
    parsed, fractional = _parsed(body)
    fast = _one_pass(body)
    assert fast is not None
    assert fast == _long_way(parsed, fractional)


def test_the_variants_cover_both_answers():
    """The equality test above means something only if many variants do take the one pass and
    many do not."""
    answers = [_one_pass(_changed(change)) is None for change in _variants()]
    assert answers.count(True) > 100 and answers.count(False) > 20


# ---------------------------------------------------------------- the body as sent, read by msgspec


def _nested_attributes(levels: int) -> bytes:
    """A body whose ``attributes`` nest ``levels`` objects deep (the body itself is one more)."""
    return (
        b'{"buyer": "bob", "total": 5, "attributes": '
        + b'{"a": ' * (levels - 1)
        + b"{}"
        + (b"}" * (levels - 1))
        + b"}"
    )


#: raw bodies that json.dumps never writes: what msgspec reads otherwise than the standard
#: library, or refuses where it reads
RAW_BODIES = [
    b'{"buyer": "bob", "total": 5, "total": "7"}',  # a repeated name: the last counts
    b'{"buyer": "bob", "total": 1E3}',
    b'{"buyer": "bob", "total": 1000.0}',
    b'{"buyer": "bob", "total": 0.1}',
    b'{"buyer": "bob", "total": 5, "lines": [{"sku": "a", "price": 0.30}]}',
    b'{"buyer": "bob", "total": 18446744073709551616}',  # over 64 bits
    b'{"buyer": "bob", "total": 123456789012345678901234567890123}',
    b'{"buyer": "bob", "total": -0}',
    b'{"buyer": "bob", "total": NaN}',
    b'{"buyer": "bob", "total": 1e400}',
    b'{"buyer": "bob", "total": 5, "lines": [{"sku": "a", "quantity": 2E0}]}',
    b'{"buyer": "bob", "total": 5, "lines": [{"sku": "a", "quantity": 18446744073709551617}]}',
    b'{"buyer": "bob", "total": 5, "attributes": {"n": 18446744073709551616, "f": 0.1}}',
    b'{"buyer": "bob", "total": 5, "attributes": {"n": 1e400}}',
    b'\xef\xbb\xbf{"buyer": "bob", "total": 5}',  # a byte order mark
    '{"buyer": "bob", "total": 5}'.encode("utf-16"),
    b'{"buyer": "b\\u00f6b", "total": 5}',
    b'{"buyer": "b\\ud800b", "total": 5}',
    b'{"buyer": "b\xed\xa0\x80b", "total": 5}',
    b'{"buyer": "b\xc3b", "total": 5}',
    b'{"buyer": "bob\\u0000", "total": 5}',
    b'{"buyer": "bob", "total": 5}  \r\n',
    b'{"buyer": "bob", "total": 5} x',
    b'[{"buyer": "bob", "total": 5}]',
    b'"bob"',
    b"",
    b"null",
    b'{"buyer": "bob", "total": 5, "attributes": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}",
    _nested_attributes(31),  # the body 32 levels deep: as deep as the long way takes
    _nested_attributes(32),  # one level more: refused
    b'{"buyer": "bob", "total": 5, "attributes": {"a": ' + b"[" * 32 + b"]" * 32 + b"}}",
    b'{"buyer": "\\ud83d\\ude00", "total": 5}',  # a surrogate pair, escaped: one character
    b'{"buyer": "b\\udc00b", "total": 5}',  # a lone low surrogate
    b'{"buyer": "bob", "total": 5, "attributes": {"k": "\\ud800"}}',
    b'{"buyer": "bob", "total": 5, "attributes": {"k": "a\\u0000"}}',
    b'{"buyer": "bob\\\\u0000", "total": 5}',  # an escaped backslash, then text: no NUL
    b'{"buyer": "bob", "total": "5\\n"}',  # an amount with a line break after it
    b'{"buyer": "bob", "total": 5, "requested_date": "2026-12-24\\n"}',
    b'{"buyer": "bob", "total": 5, "requested_date": "2026-02-30"}',
    b'{"buyer": "bob", "total": 5, "lines": ['
    + b",".join(b'{"sku": "S-%d", "quantity": %d}' % (n, n) for n in range(60))
    + b"]}",  # more brackets than the depth limit, none of them deep
    b'{"buyer": "bob", "total": 5, "ship_to": {"manual": 1}}',
    b'{"buyer": "bob", "total": 5, "lines": [{"sku": "a", "quantity": true}]}',
    b'{"buyer": "bob", "total": 5, "attributes": []}',
]


def _answer(read):
    """What ``read`` answers, exactly: the order's repr tells ``Decimal("1000")`` from
    ``Decimal("1000.0")``, which compare equal; an error's type and wording."""
    try:
        return repr(read())
    except Exception as refused:
        return (type(refused).__name__, str(refused))


def _long_way_of(raw: bytes):
    def read():
        parsed, fractional = json_object(raw)
        long_way = _long_way(parsed, fractional)
        if isinstance(long_way, OrderError):
            raise long_way
        return long_way

    return _answer(read)


def _as_evaluate_reads(raw: bytes):
    return _answer(lambda: order_of_body(raw))


@pytest.mark.parametrize(
    "raw",
    [*RAW_BODIES, *(json.dumps(_changed(change)).encode() for change in _variants())],
    ids=lambda raw: repr(raw)[:80],
)
def test_evaluate_reads_a_body_as_the_long_way_does(raw):
    """Whatever orjson reads or refuses, evaluate builds the order the long way builds, or
    refuses the body with the long way's very error."""
    assert _as_evaluate_reads(raw) == _long_way_of(raw)


def test_the_raw_bodies_cover_both_readings():
    in_one_pass = [plain_order(raw) is not None for raw in RAW_BODIES]
    assert in_one_pass.count(True) >= 8 and in_one_pass.count(False) >= 20


def test_text_sent_as_escapes_takes_the_one_pass():
    """Storefronts whose encoder escapes every non-ASCII character (Python's json.dumps does
    by default) are not sent the long way for it."""
    body = {"buyer": "Jürgen 😀", "total": 5, "lines": [{"sku": "Größe-1", "name": "Çà"}]}
    raw = json.dumps(body).encode()
    assert b"\\u00fc" in raw
    assert plain_order(raw) == _long_way(*_parsed(body))
    assert plain_order(raw).buyer == "Jürgen 😀"


def test_a_cart_of_many_lines_takes_the_one_pass():
    body = {"buyer": "bob", "total": 5, "lines": [{"sku": f"S-{n}"} for n in range(200)]}
    assert len(plain_order(json.dumps(body).encode()).lines) == 200
