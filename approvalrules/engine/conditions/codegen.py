"""Generated code: the one evaluator of conditions.

The engine's hot path: each step's condition becomes one small Python
function, generated as source from the condition's tree and compiled once per
policy.  The source holds only operators, the attribute names below and
references to constants (``_k0``, ``_k1``...) passed in the namespace: no
value from the rule set is ever written into the source text, so nothing in a
rule set can inject code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .describe import Describer
from .facts import Facts
from .tree import (
    And,
    Leaf,
    Node,
    Not,
    Or,
    Visitor,
    amount,
    as_set,
    day,
    key_of,
    parse,
    top_level_parts,
)

Predicate = Callable[[Facts], bool]

_PY_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "=="}
_SUBJECTS = {
    "currency": "f.currency",
    "order_type": "f.order_type",
    "buyer_role": "f.role",
    "buyer_group": "f.group",
    "buyer_account": "f.buyer",
}


class SourceWriter(Visitor):
    """A tree as one Python expression over ``f`` (a :class:`Facts`); constants in ``consts``."""

    def __init__(self) -> None:
        self.consts: dict[str, Any] = {}

    def const(self, value: Any) -> str:
        name = f"_k{len(self.consts)}"
        self.consts[name] = value
        return name

    def visit_and(self, node: And) -> str:
        subs = [child.accept(self) for child in node.children]
        if not subs:
            return "True"
        if not node.written and len(subs) == 1:
            return subs[0]
        return "(" + " and ".join(subs) + ")"

    def visit_or(self, node: Or) -> str:
        subs = [child.accept(self) for child in node.children]
        return "(" + " or ".join(subs) + ")" if subs else "False"

    def visit_not(self, node: Not) -> str:
        return f"(not {node.child.accept(self)})"

    def visit_leaf(self, node: Leaf) -> str:
        key, value = node.key, node.value
        if key == "total":
            return self.compare("f.total", value)
        if key == "quantity":
            return self.compare("f.quantity", value)
        if key == "line_count":
            return self.compare("len(f.lines)", value)
        if key in _SUBJECTS:
            allowed = as_set(value)
            if len(allowed) == 1:
                (only,) = allowed
                return f"({_SUBJECTS[key]} == {self.const(only)})"
            return f"({_SUBJECTS[key]} in {self.const(allowed)})"
        if key == "buyer_attributes":
            checks = [
                f"f.attributes.get({self.const(k)}) in {self.const(as_set(v))}"
                for k, v in value.items()
            ]
            if not checks:
                return "True"
            return "(" + " and ".join(checks) + ")"
        if key == "lines":
            return self.lines(value)
        if key == "exceeds":
            return f"({self.const(value)} in f.exceeded)"
        if key == "order_date":
            checks = [f"f.order_date {_PY_OPS[op]} {self.const(day(v))}" for op, v in value.items()]
            return "(" + " and ".join(checks) + ")" if checks else "True"
        if key == "buyer_has_approver":
            return "f.has_approver" if value else "(not f.has_approver)"
        if key == "always":
            return "True"
        raise KeyError(key)

    def compare(self, subject: str, spec: Mapping[str, Any]) -> str:
        checks = [f"{subject} {_PY_OPS[op]} {self.const(amount(v))}" for op, v in spec.items()]
        if not checks:
            return "True"
        return checks[0] if len(checks) == 1 else "(" + " and ".join(checks) + ")"

    def lines(self, spec: Mapping[str, Any]) -> str:
        guards, tests = [], []
        if "sku" in spec:
            skus = self.const(as_set(spec["sku"]))
            guards.append(f"not f.skus.isdisjoint({skus})")
            tests.append(f"l.sku in {skus}")
        if "category" in spec:
            categories = self.const(as_set(spec["category"]))
            guards.append(f"not f.categories.isdisjoint({categories})")
            tests.append(f"l.category in {categories}")
        quantity = list((spec.get("quantity") or {}).items()) if "quantity" in spec else []
        for op, bound in quantity:
            tests.append(f"l.quantity {_PY_OPS[op]} {self.const(amount(bound))}")
        if "quantity" not in spec and guards:
            return f"({guards[0]})"  # one set test answers it: no loop over the lines
        if not guards and len(quantity) == 1 and quantity[0][0] != "eq":
            op, bound = quantity[0]
            subject = "f.max_qty" if op in ("gt", "gte") else "f.min_qty"
            return f"({subject} {_PY_OPS[op]} {self.const(amount(bound))})"
        loop = f"any({' and '.join(tests) or 'True'} for l in f.lines)"
        return "(" + " and ".join(guards + [loop]) + ")"


def compile_predicates(conditions: list) -> list[Predicate]:
    """Generated-code predicates for many conditions at once, compiled together.

    The predicates take a :class:`Facts` (they use its derived facts).
    """
    return compile_trees([parse(condition) for condition in conditions])


def compile_trees(trees: Iterable[Node]) -> list[Predicate]:
    """:func:`compile_predicates` for conditions already parsed."""
    source = SourceWriter()
    text = []
    for index, tree in enumerate(trees):
        text.append(f"def p{index}(f):\n    return {tree.accept(source)}\n")
    namespace = dict(source.consts)
    namespace["__builtins__"] = {"any": any, "len": len}
    exec(compile("".join(text), "<approvalrules conditions>", "exec"), namespace)
    return [namespace[f"p{index}"] for index in range(len(text))]


# ------------------------------------------------------------ explanations

_ACTUAL: dict[str, Callable[[Any], str]] = {
    "total": lambda f: f" (total {f.total})",
    "quantity": lambda f: f" (quantity {f.quantity})",
    "buyer_role": lambda f: f" (role {f.role})",
    "buyer_group": lambda f: f" (group {f.group or 'none'})",
    "order_type": lambda f: f" (type {f.order_type})",
    "order_date": lambda f: f" (order date {f.order_date.isoformat()})",
}

_DESCRIBER = Describer()


def explain_parts(condition: Mapping[str, Any] | None) -> tuple:
    """What an explanation needs for one condition, built once.

    Per top-level part: (text if it held, text if not, predicate, the actual
    value's text or None).  The predicates are generated code (see
    :func:`compile_predicates`): they take a :class:`Facts`.
    """
    parts = top_level_parts(parse(condition))
    if not parts:
        return ()
    predicates = compile_trees(parts)
    texts = [part.accept(_DESCRIBER) for part in parts]
    return tuple(
        (text + ": yes", text + ": no", held, _ACTUAL.get(key_of(part)))
        for text, held, part in zip(texts, predicates, parts, strict=True)
    )


def render_explanation(parts: tuple, facts, held: bool | None = None) -> str:
    """For each part of a condition, its text and whether it held, from :func:`explain_parts`.

    Nothing is recompiled.  ``held``: whether the whole condition held, if
    known; a one-part condition's part then needs no evaluating.
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
