"""What conditions may look at: the order and its buyer, resolved."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, tzinfo
from decimal import Decimal

import msgspec

from ..dates import local_date


class Line(msgspec.Struct, frozen=True, gc=False):
    """One order line as conditions see it.

    A msgspec ``Struct`` rather than a frozen dataclass: a cart makes one per line, and a
    frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field) took six times as
    long.  Immutable, compared and hashed by its fields, like the dataclass; ``gc=False``:
    it holds only text and a ``Decimal``, so it can be in no reference cycle."""

    sku: str
    category: str | None
    quantity: Decimal


#: the largest/smallest quantity of an order without lines: no finite bound holds
#: for them, as ``any()`` over no lines does not
_BELOW_ANY = Decimal("-Infinity")
_ABOVE_ANY = Decimal("Infinity")


class Facts:
    """What conditions may look at, with derived facts computed on first use.

    ``quantity`` (sum of line quantities), ``skus`` and ``categories`` (sets
    over the lines), ``max_qty`` and ``min_qty``, ``order_date`` (the date of
    ``ordered_at`` in the rule set's ``zone``) and ``has_approver`` (whether
    ``assignments_of()`` returns any assignment of the buyer) are filled in
    lazily, once per evaluation, only when a condition asks for them.
    """

    __slots__ = (
        "total",
        "currency",
        "order_type",
        "lines",
        "buyer",
        "role",
        "group",
        "attributes",
        "exceeded",
        "quantity",
        "skus",
        "categories",
        "max_qty",
        "min_qty",
        "ordered_at",
        "zone",
        "assignments_of",
        "order_date",
        "has_approver",
    )

    def __init__(
        self,
        total,
        currency,
        order_type,
        lines,
        buyer,
        role,
        group,
        attributes,
        exceeded,
        *,
        ordered_at: datetime | None = None,
        zone: tzinfo = UTC,
        assignments_of: Callable[[], Sequence] | None = None,
    ):
        self.total = total
        self.currency = currency
        self.order_type = order_type
        self.lines = lines
        self.buyer = buyer
        self.role = role
        self.group = group
        self.attributes = attributes
        self.exceeded = exceeded
        self.ordered_at = ordered_at
        self.zone = zone
        self.assignments_of = assignments_of

    def __getattr__(self, name):  # only called for a derived fact not computed yet
        lines = self.lines
        if name == "quantity":
            value = sum((line.quantity for line in lines), Decimal(0))
        elif name == "skus":
            value = {line.sku for line in lines}
        elif name == "categories":
            value = {line.category for line in lines}
        elif name == "max_qty":
            value = max((line.quantity for line in lines), default=_BELOW_ANY)
        elif name == "min_qty":
            value = min((line.quantity for line in lines), default=_ABOVE_ANY)
        elif name == "order_date":
            if self.ordered_at is None:
                raise AttributeError("order_date: these facts have no submission instant")
            value = local_date(self.ordered_at, self.zone)
        elif name == "has_approver":
            value = self.assignments_of is not None and bool(self.assignments_of())
        else:
            raise AttributeError(name)
        setattr(self, name, value)
        return value
