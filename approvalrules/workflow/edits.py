"""An approver's edit of an order: which changes are reductions, and the order they leave.

Pure arithmetic on the stored order; :func:`.actions.edit` re-evaluates the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..engine.money import format_amount, parse_amount
from ..errors import OrderError
from ..store.models import Order


def _lines_by_sku(order: Order) -> dict[str, dict]:
    """The order's lines by sku; an order that cannot be edited by sku is refused."""
    by_sku: dict[str, dict] = {}
    for index, line in enumerate(order.payload.get("lines") or []):
        if line["sku"] in by_sku:
            raise OrderError(
                "ambiguous_lines",
                f"order {order.external_id} has sku {line['sku']!r} on several lines; "
                "it cannot be edited by sku",
                path=f"order.lines[{index}]",
            )
        if line.get("price") is None:
            raise OrderError(
                "missing_line_price",
                f"line {line['sku']!r} of order {order.external_id} has no price, "
                "so its total cannot be recomputed",
                path=f"order.lines[{index}].price",
            )
        by_sku[line["sku"]] = line
    return by_sku


def _wanted_quantities(order: Order, by_sku: Mapping[str, dict], lines: Any) -> dict[str, Decimal]:
    """The quantity per sku an edit asks for; only reductions of lines on the order pass."""
    if not isinstance(lines, list) or not all(
        isinstance(x, Mapping) and isinstance(x.get("sku"), str) and set(x) <= {"sku", "quantity"}
        for x in lines
    ):
        raise OrderError("invalid_lines", "lines must be a list of {sku, quantity}", path="lines")
    wanted: dict[str, Decimal] = {}
    for index, line in enumerate(lines):
        sku = line["sku"]
        if sku in wanted:
            raise OrderError(
                "invalid_lines", f"sku {sku!r} is listed twice", path=f"lines[{index}]"
            )
        quantity = parse_amount(line.get("quantity", 0), f"lines[{index}].quantity")
        if sku not in by_sku:
            raise OrderError(
                "edit_not_a_reduction",
                f"sku {sku!r} is not on order {order.external_id}: an approver may lower "
                "quantities or remove lines, never add",
                path=f"lines[{index}]",
            )
        original = parse_amount(by_sku[sku].get("quantity", 1), "quantity")
        if quantity > original:
            raise OrderError(
                "edit_not_a_reduction",
                f"sku {sku!r}: {format_amount(quantity)} is more than the ordered "
                f"{format_amount(original)}; an approver may only lower quantities",
                path=f"lines[{index}].quantity",
            )
        wanted[sku] = quantity
    return wanted


def reduced_body(order: Order, lines: Any) -> tuple[dict, list[dict]]:
    """(the order's body after an approver's edit to ``lines``, the changes per sku).

    ``lines`` is the complete new list of ``{sku, quantity}``: a line left out is
    removed.  The total drops by price x removed quantity of every line, so charges
    outside the lines stay.  Raises :class:`OrderError` for anything but a reduction.
    """
    by_sku = _lines_by_sku(order)
    wanted = _wanted_quantities(order, by_sku, lines)
    changes, new_lines, reduction = [], [], Decimal(0)
    for sku, line in by_sku.items():
        original = parse_amount(line.get("quantity", 1), "quantity")
        quantity = wanted.get(sku, Decimal(0))
        if quantity != original:
            changes.append(
                {"sku": sku, "from": format_amount(original), "to": format_amount(quantity)}
            )
            reduction += parse_amount(line["price"], "price") * (original - quantity)
        if quantity > 0:
            new_lines.append(
                {**line, "quantity": format_amount(quantity)} if quantity != original else line
            )
    if not changes:
        raise OrderError(
            "edit_no_change", "the lines are as ordered; nothing to edit", path="lines"
        )
    if not new_lines:
        raise OrderError(
            "edit_empties_order",
            "an edit cannot remove every line; reject the order instead",
            path="lines",
        )
    body = {
        **order.payload,
        "lines": new_lines,
        "total": format_amount(max(order.total - reduction, Decimal(0))),
    }
    return body, changes
