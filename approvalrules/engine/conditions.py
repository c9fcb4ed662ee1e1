"""Structured conditions: compiled once into plain Python closures, explained on demand.

A condition is a mapping (see ``$defs/condition`` in the schema).  Several keys
in one mapping must all hold; ``all``/``any``/``not`` combine conditions.
:func:`compile_condition` returns a predicate over an :class:`OrderFacts`;
:func:`explain` says, for a given order, which parts held and which did not.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

Predicate = Callable[["OrderFacts"], bool]

COMPARATORS = {
    "gt": (operator.gt, ">"),
    "gte": (operator.ge, ">="),
    "lt": (operator.lt, "<"),
    "lte": (operator.le, "<="),
    "eq": (operator.eq, "="),
}


@dataclass(frozen=True, slots=True)
class Line:
    sku: str
    category: str | None
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What conditions may look at: the order and its buyer, resolved."""

    total: Decimal
    currency: str
    order_type: str
    lines: tuple[Line, ...]
    quantity: Decimal
    buyer: str
    role: str | None
    group: str | None
    attributes: Mapping[str, Any]
    exceeded: frozenset[str]


def _money(value) -> Decimal:
    return Decimal(str(value))


def _as_set(value) -> frozenset:
    return frozenset(value) if isinstance(value, list) else frozenset([value])


def _compare(spec: Mapping[str, Any], get: Callable[[OrderFacts], Decimal]) -> Predicate:
    checks = [(COMPARATORS[op][0], _money(v)) for op, v in spec.items()]
    if len(checks) == 1:
        ((fn, bound),) = checks
        return lambda f: fn(get(f), bound)
    return lambda f: all(fn(get(f), bound) for fn, bound in checks)


def _member(get: Callable[[OrderFacts], Any], value) -> Predicate:
    allowed = _as_set(value)
    if len(allowed) == 1:
        (only,) = allowed
        return lambda f: get(f) == only
    return lambda f: get(f) in allowed


def _attributes(spec: Mapping[str, Any]) -> Predicate:
    checks = [(k, _as_set(v)) for k, v in spec.items()]
    return lambda f: all(f.attributes.get(k) in allowed for k, allowed in checks)


def _lines(spec: Mapping[str, Any]) -> Predicate:
    parts: list[Callable[[Line], bool]] = []
    if "sku" in spec:
        skus = _as_set(spec["sku"])
        parts.append(lambda line: line.sku in skus)
    if "category" in spec:
        categories = _as_set(spec["category"])
        parts.append(lambda line: line.category in categories)
    if "quantity" in spec:
        checks = [(COMPARATORS[op][0], _money(v)) for op, v in spec["quantity"].items()]
        parts.append(lambda line: all(fn(line.quantity, b) for fn, b in checks))
    return lambda f: any(all(p(line) for p in parts) for line in f.lines)


_LEAVES: dict[str, Callable[[Any], Predicate]] = {
    "total": lambda v: _compare(v, operator.attrgetter("total")),
    "quantity": lambda v: _compare(v, operator.attrgetter("quantity")),
    "line_count": lambda v: _compare(v, lambda f: Decimal(len(f.lines))),
    "currency": lambda v: _member(operator.attrgetter("currency"), v),
    "order_type": lambda v: _member(operator.attrgetter("order_type"), v),
    "buyer_role": lambda v: _member(operator.attrgetter("role"), v),
    "buyer_group": lambda v: _member(operator.attrgetter("group"), v),
    "buyer_account": lambda v: _member(operator.attrgetter("buyer"), v),
    "buyer_attributes": _attributes,
    "lines": _lines,
    "exceeds": lambda v: lambda f: v in f.exceeded,
    "always": lambda v: lambda f: True,
}


def compile_condition(condition: Mapping[str, Any] | None) -> Predicate:
    """A predicate for ``condition``; ``None`` or ``{}`` always holds."""
    if not condition:
        return lambda f: True
    parts: list[Predicate] = []
    for key, value in condition.items():
        if key == "all":
            subs = [compile_condition(c) for c in value]
            parts.append(lambda f, subs=subs: all(p(f) for p in subs))
        elif key == "any":
            subs = [compile_condition(c) for c in value]
            parts.append(lambda f, subs=subs: any(p(f) for p in subs))
        elif key == "not":
            sub = compile_condition(value)
            parts.append(lambda f, sub=sub: not sub(f))
        else:
            parts.append(_LEAVES[key](value))
    if len(parts) == 1:
        return parts[0]
    return lambda f: all(p(f) for p in parts)


def describe(condition: Mapping[str, Any] | None) -> str:
    """Human text for a condition, e.g. ``total > 500 and buyer group is marketing``."""
    if not condition:
        return "always"
    parts = []
    for key, value in condition.items():
        if key == "all":
            parts.append("(" + " and ".join(describe(c) for c in value) + ")")
        elif key == "any":
            parts.append("(" + " or ".join(describe(c) for c in value) + ")")
        elif key == "not":
            parts.append(f"not {describe(value)}")
        else:
            parts.append(_describe_leaf(key, value))
    return " and ".join(parts)


def _describe_leaf(key: str, value) -> str:
    label = key.replace("_", " ")
    if key in ("total", "quantity", "line_count"):
        return " and ".join(
            f"{label} {COMPARATORS[op][1]} {_amount_text(v)}" for op, v in value.items()
        )
    if key == "buyer_attributes":
        return " and ".join(f"buyer attribute {k} is {_names(v)}" for k, v in value.items())
    if key == "lines":
        inner = ", ".join(
            f"{k} {_names(v) if k != 'quantity' else ' '.join(COMPARATORS[o][1] + ' ' + str(b) for o, b in v.items())}"
            for k, v in value.items()
        )
        return f"a line with {inner}"
    if key == "exceeds":
        return f"order exceeds the {value.replace('_', ' ')}"
    if key == "always":
        return "always"
    return f"{label} is {_names(value)}"


def _amount_text(value) -> str:
    """500, or per currency: 500 USD / 450 EUR."""
    if isinstance(value, dict):
        return " / ".join(f"{amount} {code}" for code, amount in value.items())
    return str(value)


def _names(value) -> str:
    if isinstance(value, list):
        return "one of " + ", ".join(map(str, value))
    return str(value)


def explain(condition: Mapping[str, Any] | None, facts: OrderFacts) -> list[str]:
    """For each top-level part of ``condition``: its text and whether it held for ``facts``."""
    if not condition:
        return ["always: yes"]
    out = []
    for key, value in condition.items():
        part = {key: value}
        held = compile_condition(part)(facts)
        out.append(f"{describe(part)}: {'yes' if held else 'no'}{_actual(key, facts)}")
    return out


def _actual(key: str, facts: OrderFacts) -> str:
    if key == "total":
        return f" (total {facts.total})"
    if key == "quantity":
        return f" (quantity {facts.quantity})"
    if key == "buyer_role":
        return f" (role {facts.role})"
    if key == "buyer_group":
        return f" (group {facts.group or 'none'})"
    if key == "order_type":
        return f" (type {facts.order_type})"
    return ""


# ------------------------------------------------------- static analysis


@dataclass(frozen=True, slots=True)
class Bound:
    """One end of a total range: ``strict`` for gt/lt, not for gte/lte/eq."""

    value: Decimal
    strict: bool


def _tighter_low(a: Bound | None, b: Bound) -> Bound:
    if a is None or b.value > a.value or (b.value == a.value and b.strict):
        return b
    return a


def _tighter_high(a: Bound | None, b: Bound) -> Bound:
    if a is None or b.value < a.value or (b.value == a.value and b.strict):
        return b
    return a


def interval_of(condition: Mapping[str, Any] | None) -> tuple[Bound | None, Bound | None]:
    """The (low, high) bounds on ``total`` that a condition's top-level ``total`` and ``all`` imply.

    Used to spot unreachable steps; ``None`` means unbounded.  Only
    conjunctions are analysed, so the result is conservative.
    """
    low: Bound | None = None
    high: Bound | None = None
    for key, value in (condition or {}).items():
        if key == "total":
            for op, bound in value.items():
                amount = _money(bound)
                if op in ("gt", "gte", "eq"):
                    low = _tighter_low(low, Bound(amount, op == "gt"))
                if op in ("lt", "lte", "eq"):
                    high = _tighter_high(high, Bound(amount, op == "lt"))
        elif key == "all":
            for sub in value:
                sub_low, sub_high = interval_of(sub)
                if sub_low is not None:
                    low = _tighter_low(low, sub_low)
                if sub_high is not None:
                    high = _tighter_high(high, sub_high)
    return low, high


def iter_leaves(condition: Mapping[str, Any] | None):
    """Every (key, value) leaf of a condition, through all/any/not, depth first."""
    for key, value in (condition or {}).items():
        if key in ("all", "any"):
            for sub in value:
                yield from iter_leaves(sub)
        elif key == "not":
            yield from iter_leaves(value)
        else:
            yield key, value


def referenced_names(condition: Mapping[str, Any] | None) -> dict[str, set]:
    """Roles, groups, accounts and limits a condition refers to, anywhere inside it."""
    refs: dict[str, set] = {
        "buyer_role": set(),
        "buyer_group": set(),
        "buyer_account": set(),
        "exceeds": set(),
    }
    for key, value in iter_leaves(condition):
        if key in refs:
            refs[key].update(value if isinstance(value, list) else [value])
    return refs


def thresholds(condition: Mapping[str, Any] | None, key: str = "total") -> set[Decimal]:
    """Every bound on ``key`` inside a condition: where decisions can change."""
    return {
        _money(bound) for k, value in iter_leaves(condition) if k == key for bound in value.values()
    }


# ------------------------------------------------------- generated code
#
# The engine's hot path: each step's condition becomes one small Python
# function, generated as source and compiled once per policy.  The source
# holds only operators, the attribute names below and references to
# constants (``_k0``, ``_k1``...) passed in the namespace: no value from the
# rule set is ever written into the source text, so nothing in a rule set
# can inject code.

_PY_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "=="}
_SUBJECTS = {
    "currency": "f.currency",
    "order_type": "f.order_type",
    "buyer_role": "f.role",
    "buyer_group": "f.group",
    "buyer_account": "f.buyer",
}


class Facts:
    """What conditions may look at, like :class:`OrderFacts`, with derived facts computed on first use.

    ``quantity`` (sum of line quantities), ``skus`` and ``categories`` (sets
    over the lines), ``max_qty`` and ``min_qty`` are filled in lazily, once
    per evaluation, only when a condition asks for them.
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
    )

    def __init__(
        self, total, currency, order_type, lines, buyer, role, group, attributes, exceeded
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
        else:
            raise AttributeError(name)
        setattr(self, name, value)
        return value


#: the largest/smallest quantity of an order without lines: no finite bound holds
#: for them, as ``any()`` over no lines does not
_BELOW_ANY = Decimal("-Infinity")
_ABOVE_ANY = Decimal("Infinity")


class _Source:
    def __init__(self):
        self.consts: dict[str, Any] = {}

    def const(self, value) -> str:
        name = f"_k{len(self.consts)}"
        self.consts[name] = value
        return name

    def expr(self, condition) -> str:
        if not condition:
            return "True"
        parts = []
        for key, value in condition.items():
            if key == "all":
                subs = [self.expr(c) for c in value]
                parts.append("(" + " and ".join(subs) + ")" if subs else "True")
            elif key == "any":
                subs = [self.expr(c) for c in value]
                parts.append("(" + " or ".join(subs) + ")" if subs else "False")
            elif key == "not":
                parts.append(f"(not {self.expr(value)})")
            else:
                parts.append(self.leaf(key, value))
        return parts[0] if len(parts) == 1 else "(" + " and ".join(parts) + ")"

    def compare(self, subject: str, spec) -> str:
        checks = [f"{subject} {_PY_OPS[op]} {self.const(_money(v))}" for op, v in spec.items()]
        if not checks:
            return "True"
        return checks[0] if len(checks) == 1 else "(" + " and ".join(checks) + ")"

    def leaf(self, key: str, value) -> str:
        if key == "total":
            return self.compare("f.total", value)
        if key == "quantity":
            return self.compare("f.quantity", value)
        if key == "line_count":
            return self.compare("len(f.lines)", value)
        if key in _SUBJECTS:
            allowed = _as_set(value)
            if len(allowed) == 1:
                (only,) = allowed
                return f"({_SUBJECTS[key]} == {self.const(only)})"
            return f"({_SUBJECTS[key]} in {self.const(allowed)})"
        if key == "buyer_attributes":
            checks = [
                f"f.attributes.get({self.const(k)}) in {self.const(_as_set(v))}"
                for k, v in value.items()
            ]
            if not checks:
                return "True"
            return "(" + " and ".join(checks) + ")"
        if key == "lines":
            return self.lines(value)
        if key == "exceeds":
            return f"({self.const(value)} in f.exceeded)"
        if key == "always":
            return "True"
        raise KeyError(key)

    def lines(self, spec) -> str:
        guards, tests = [], []
        if "sku" in spec:
            skus = self.const(_as_set(spec["sku"]))
            guards.append(f"not f.skus.isdisjoint({skus})")
            tests.append(f"l.sku in {skus}")
        if "category" in spec:
            categories = self.const(_as_set(spec["category"]))
            guards.append(f"not f.categories.isdisjoint({categories})")
            tests.append(f"l.category in {categories}")
        quantity = list((spec.get("quantity") or {}).items()) if "quantity" in spec else []
        for op, bound in quantity:
            tests.append(f"l.quantity {_PY_OPS[op]} {self.const(_money(bound))}")
        if "quantity" not in spec and guards:
            return f"({guards[0]})"  # one set test answers it: no loop over the lines
        if not guards and len(quantity) == 1 and quantity[0][0] != "eq":
            op, bound = quantity[0]
            subject = "f.max_qty" if op in ("gt", "gte") else "f.min_qty"
            return f"({subject} {_PY_OPS[op]} {self.const(_money(bound))})"
        loop = f"any({' and '.join(tests) or 'True'} for l in f.lines)"
        return "(" + " and ".join(guards + [loop]) + ")"


def compile_predicates(conditions: list) -> list[Predicate]:
    """Generated-code predicates for many conditions at once: the same truth as :func:`compile_condition`.

    The predicates take a :class:`Facts` (they use its derived facts).
    """
    source = _Source()
    text = []
    for index, condition in enumerate(conditions):
        text.append(f"def p{index}(f):\n    return {source.expr(condition)}\n")
    namespace = dict(source.consts)
    namespace["__builtins__"] = {"any": any, "len": len}
    exec(compile("".join(text), "<approvalrules conditions>", "exec"), namespace)
    return [namespace[f"p{index}"] for index in range(len(conditions))]


_ACTUAL: dict[str, Callable[[Any], str]] = {
    "total": lambda f: f" (total {f.total})",
    "quantity": lambda f: f" (quantity {f.quantity})",
    "buyer_role": lambda f: f" (role {f.role})",
    "buyer_group": lambda f: f" (group {f.group or 'none'})",
    "order_type": lambda f: f" (type {f.order_type})",
}


def explain_parts(condition: Mapping[str, Any] | None) -> tuple:
    """What :func:`explain` needs for one condition, built once: (text, predicate, actual value) per top-level part.

    The predicates are generated code (see :func:`compile_predicates`): they take a :class:`Facts`.
    """
    if not condition:
        return ()
    parts = [{key: value} for key, value in condition.items()]
    predicates = compile_predicates(parts)
    texts = [describe(part) for part in parts]
    return tuple(
        (text + ": yes", text + ": no", held, _ACTUAL.get(key))
        for text, held, key in zip(texts, predicates, condition)
    )


def render_explanation(parts: tuple, facts, held: bool | None = None) -> str:
    """``"; ".join(explain(condition, facts))`` from :func:`explain_parts`, without recompiling anything.

    ``held``: whether the whole condition held, if known; a one-part
    condition's part then needs no evaluating.
    """
    if not parts:
        return "always: yes"
    if held is not None and len(parts) == 1:
        yes, no, _, actual = parts[0]
        line = yes if held else no
        return line + actual(facts) if actual is not None else line
    out = []
    for yes, no, predicate, actual in parts:
        line = yes if predicate(facts) else no
        out.append(line + actual(facts) if actual is not None else line)
    return "; ".join(out)
