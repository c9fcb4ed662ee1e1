"""A condition parsed once into a small tree, and the one way to walk it.

A condition is a mapping (see ``$defs/condition`` in the schema).  Several keys
in one mapping must all hold; ``all``/``any``/``not`` combine conditions.
:func:`parse` turns it into :class:`And`, :class:`Or`, :class:`Not` and
:class:`Leaf` nodes; everything that reads a condition (describing it,
analysing its total range, listing its leaves, generating its code, the
diff's three-valued test) is a :class:`Visitor` of that tree.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any


class Node:
    """A node of a parsed condition."""

    __slots__ = ()

    def accept(self, visitor: Visitor) -> Any:  # pragma: no cover - every node overrides it
        raise NotImplementedError


class And(Node):
    """All children hold.

    ``written`` tells the two ways a conjunction is spelt apart, because text
    and code show them differently: True for an ``all: [...]`` list, False for
    several keys of one mapping (no children at all: an empty condition, which
    always holds).
    """

    __slots__ = ("children", "written")

    def __init__(self, children: tuple[Node, ...], written: bool):
        self.children = children
        self.written = written

    def accept(self, visitor: Visitor) -> Any:
        return visitor.visit_and(self)


class Or(Node):
    """At least one child holds (``any: [...]``)."""

    __slots__ = ("children",)

    def __init__(self, children: tuple[Node, ...]):
        self.children = children

    def accept(self, visitor: Visitor) -> Any:
        return visitor.visit_or(self)


class Not(Node):
    """The child does not hold (``not: {...}``)."""

    __slots__ = ("child",)

    def __init__(self, child: Node):
        self.child = child

    def accept(self, visitor: Visitor) -> Any:
        return visitor.visit_not(self)


class Leaf(Node):
    """One test on the order or its buyer: ``key`` (``total``, ``buyer_group``...) and its value."""

    __slots__ = ("key", "value")

    def __init__(self, key: str, value: Any):
        self.key = key
        self.value = value

    def accept(self, visitor: Visitor) -> Any:
        return visitor.visit_leaf(self)


#: the empty condition: holds for every order
ALWAYS = And((), written=False)


def parse(condition: Mapping[str, Any] | None) -> Node:
    """The tree of a (validated) condition; ``None`` or ``{}`` is :data:`ALWAYS`."""
    if not condition:
        return ALWAYS
    if len(condition) == 1:  # the common case, kept short: compiling parses every condition
        for key, value in condition.items():
            return Leaf(key, value) if key not in _COMBINATORS else _combination(key, value)
    return And(
        tuple(
            [
                Leaf(key, value) if key not in _COMBINATORS else _combination(key, value)
                for key, value in condition.items()
            ]
        ),
        False,
    )


_COMBINATORS = frozenset(["all", "any", "not"])


def _combination(key: str, value: Any) -> Node:
    if key == "all":
        return And(tuple([parse(sub) for sub in value]), True)
    if key == "any":
        return Or(tuple([parse(sub) for sub in value]))
    return Not(parse(value))


def top_level_parts(node: Node) -> tuple[Node, ...]:
    """The parts a condition's mapping lists side by side: one per key (none if it is empty)."""
    if isinstance(node, And) and not node.written:
        return node.children
    return (node,)


def key_of(node: Node) -> str:
    """The key a part is written under: its leaf key, or ``all``/``any``/``not``."""
    if isinstance(node, Leaf):
        return node.key
    if isinstance(node, Not):
        return "not"
    return "any" if isinstance(node, Or) else "all"


class Visitor:
    """Walks a condition tree: one method per kind of node.

    Subclasses override the ``visit_*`` methods; the defaults walk every
    child and return nothing, so a visitor that only looks at leaves needs
    only :meth:`visit_leaf`.
    """

    def visit(self, node: Node) -> Any:
        """What this visitor makes of ``node`` (and, through it, of its children)."""
        return node.accept(self)

    def visit_and(self, node: And) -> Any:
        for child in node.children:
            child.accept(self)

    def visit_or(self, node: Or) -> Any:
        for child in node.children:
            child.accept(self)

    def visit_not(self, node: Not) -> Any:
        return node.child.accept(self)

    def visit_leaf(self, node: Leaf) -> Any:
        return None


# ------------------------------------------------- leaf values, as written

#: comparison keys of ``total``, ``quantity``, ``line_count``, ``order_date``: (operator, symbol
#: in text)
COMPARATORS = {
    "gt": (operator.gt, ">"),
    "gte": (operator.ge, ">="),
    "lt": (operator.lt, "<"),
    "lte": (operator.le, "<="),
    "eq": (operator.eq, "="),
}


def amount(value: Any) -> Decimal:
    """A bound as written (``500``, ``"12.50"``) as a Decimal."""
    return Decimal(str(value))


def day(value: Any) -> date:
    """A date as written (``"2026-03-31"``) as a date."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def as_set(value: Any) -> frozenset:
    """``x`` or ``[x, y]`` as a set of allowed values."""
    return frozenset(value) if isinstance(value, list) else frozenset([value])
