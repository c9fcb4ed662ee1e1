"""The order body's fast validator (generated code) never accepts what jsonschema refuses.

views/inputs.py lets fastjsonschema answer "valid" for every cart and leaves each rejection to
jsonschema; this holds only while the two agree on what is valid.
"""

from __future__ import annotations

import copy
import json

import pytest

from approvalrules.views import inputs

CART = {
    "id": "PO-1",
    "buyer": "bob",
    "total": "1849.70",
    "lines": [
        {"sku": "SKU-1", "category": "office", "quantity": 2, "name": "Pen", "price": "3.00"}
    ],
}


def _variants():
    for total in [
        "8_00",
        "٨٠٠",
        "  800 ",
        "1e3",
        "-5",
        "12.34567",
        "abc",
        800,
        12.5,
        -1,
        True,
        None,
    ]:
        yield {"total": total}
    for quantity in ["2", -1, 1.5, True, None, 0, 10**12]:
        yield {"lines.quantity": quantity}
    for price in [-10, "abc", "1.00", 1, "1_0", None]:
        yield {"lines.price": price}
    for key, value in [
        ("id", "x" * 101),
        ("id", ""),
        ("currency", "usd"),
        ("type", "odd"),
        ("unit_price", 1),
        ("lines.extra", 1),
        ("lines", "x"),
        ("requested_date", "2026-13-45"),
        ("ship_to", 5),
        ("payer", {"kind": "x"}),
        ("attributes", {"a": [1, {"b": None}]}),
    ]:
        yield {key: value}


@pytest.mark.parametrize("change", list(_variants()), ids=repr)
def test_the_fast_validator_is_never_more_lenient(change):
    body = copy.deepcopy(CART)
    for key, value in change.items():
        if key.startswith("lines."):
            body["lines"][0][key.split(".", 1)[1]] = value
        else:
            body[key] = value
    parsed = inputs.parse_json(json.dumps(body).encode())
    fast = inputs._fast_order_validator()
    assert fast is not None
    try:
        fast(parsed)
    except Exception:
        return  # refused: jsonschema words the error
    assert not list(inputs._order_validator().iter_errors(parsed)), change
