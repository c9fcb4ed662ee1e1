"""Values in diff reports: amounts written plainly, values compared and shown the rule-set way."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any


def _dec(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if isinstance(value, str) and re.fullmatch(r"\s*[0-9]+(\.[0-9]+)?\s*", value):
        return Decimal(value.strip())
    return None


def fmt_amount(value: Decimal) -> str:
    """500 for 500.00, 909.10 for 909.1 (cents shown whole), 0.125 stays; never an exponent."""
    if value == value.to_integral_value():
        return str(int(value))
    places = max(2, -value.normalize().as_tuple().exponent)
    return format(value.quantize(Decimal(1).scaleb(-places)), "f")


def same(a: Any, b: Any) -> bool:
    """Equal as rule-set values: 500, 500.0 and "500" are the same amount."""
    if a == b and type(a) is type(b):
        return True
    da, db = _dec(a), _dec(b)
    if da is not None and db is not None:
        return da == db
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def show(value: Any) -> str:
    """A value in a change sentence: strings quoted, amounts plain, absent as none."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "\\'") + "'"
    if isinstance(value, (int, float, Decimal)):
        return fmt_amount(Decimal(str(value)))
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    return str(value)


def jsonable(value: Any) -> Any:
    """A value as JSON can hold it: amounts as plain strings, sets sorted."""
    if isinstance(value, Decimal):
        return fmt_amount(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    return value
