"""Conditions as human text, e.g. ``total > 500 and buyer group is marketing``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .tree import COMPARATORS, And, Leaf, Node, Not, Or, Visitor, parse


def describe(condition: Mapping[str, Any] | Node | None) -> str:
    """Human text for a condition (or its parsed tree), e.g. ``total > 500 and buyer group is
    marketing``."""
    tree = condition if isinstance(condition, Node) else parse(condition)
    return tree.accept(_DESCRIBER)


class Describer(Visitor):
    """The text of a tree: ``all``/``any`` in brackets, keys of one mapping joined by ``and``."""

    def visit_and(self, node: And) -> str:
        texts = [child.accept(self) for child in node.children]
        if node.written:
            return "(" + " and ".join(texts) + ")"
        return " and ".join(texts) if texts else "always"

    def visit_or(self, node: Or) -> str:
        return "(" + " or ".join(child.accept(self) for child in node.children) + ")"

    def visit_not(self, node: Not) -> str:
        return f"not {node.child.accept(self)}"

    def visit_leaf(self, node: Leaf) -> str:
        return describe_leaf(node.key, node.value)


_DESCRIBER = Describer()


def describe_leaf(key: str, value: Any) -> str:
    """The text of one leaf test."""
    label = key.replace("_", " ")
    if key in ("total", "quantity", "line_count"):
        return " and ".join(
            f"{label} {COMPARATORS[op][1]} {_amount_text(v)}" for op, v in value.items()
        )
    if key == "buyer_attributes":
        return " and ".join(f"buyer attribute {k} is {_names(v)}" for k, v in value.items())
    if key == "lines":
        inner = ", ".join(_line_test_text(k, v) for k, v in value.items())
        return f"a line with {inner}"
    if key == "order_date":
        return "order date " + " and ".join(
            f"{_DATE_WORDS[op]} {bound}" for op, bound in value.items()
        )
    if key == "buyer_has_approver":
        return "buyer has an assigned approver" if value else "buyer has no assigned approver"
    if key == "exceeds":
        return f"order exceeds the {value.replace('_', ' ')}"
    if key == "always":
        return "always"
    return f"{label} is {_names(value)}"


#: a date comparison in words: ``order date on or after 2026-01-01``
_DATE_WORDS = {
    "gt": "after",
    "gte": "on or after",
    "lt": "before",
    "lte": "on or before",
    "eq": "on",
}


def _line_test_text(key: str, value: Any) -> str:
    if key != "quantity":
        return f"{key} {_names(value)}"
    return f"{key} " + " ".join(
        COMPARATORS[op][1] + " " + str(bound) for op, bound in value.items()
    )


def _amount_text(value: Any) -> str:
    """500, or per currency: 500 USD / 450 EUR."""
    if isinstance(value, dict):
        return " / ".join(f"{amount} {code}" for code, amount in value.items())
    return str(value)


def _names(value: Any) -> str:
    if isinstance(value, list):
        return "one of " + ", ".join(map(str, value))
    return str(value)
