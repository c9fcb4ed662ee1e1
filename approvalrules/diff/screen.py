"""Which steps can apply to a buyer and an order type, whatever the total: a three-valued test.

Evaluating thousands of generated or recorded orders is faster with only the
steps that can apply to the buyer: a step whose condition is false for the
buyer and the order type alone (its group, role, account, attributes, the
order's type and currency) can be dropped without changing any decision.

The test is a visitor of the condition tree.  Leaves on the buyer and the
order type are answered by the engine's generated code (compiled once per
policy, all steps together); leaves on the total or the lines are unknown
(None), and ``all``/``any``/``not`` combine True, False and None the
three-valued way.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ..engine import Policy
from ..engine.conditions import And, Facts, Leaf, Node, Not, Or, Visitor, compile_trees, parse
from ..engine.directory import Membership

#: condition keys whose truth is known from the buyer and the order type alone
BUYER_KEYS = frozenset(
    [
        "buyer_role",
        "buyer_group",
        "buyer_account",
        "buyer_attributes",
        "order_type",
        "currency",
        "always",
    ]
)

#: a test's answer for one buyer and order type: True, False or None (the total or lines decide)
Tri = bool | None
#: a built test: a constant answer, or a function of the buyer's facts
Test = Tri | Callable[[Facts], Tri]


class ThreeValued(Visitor):
    """Builds the three-valued test of a tree.

    Parts whose answer is the same for every buyer fold into constants; the
    buyer leaves met on the way are collected in :attr:`leaves` and answered
    through :attr:`predicates`, which :meth:`compile` fills once every tree of
    a policy has been visited.
    """

    def __init__(self) -> None:
        self.leaves: list[Node] = []
        self.predicates: list[Callable[[Facts], bool]] = []

    def compile(self) -> None:
        """Generate the code of every buyer leaf collected so far, in one go."""
        self.predicates[:] = compile_trees(self.leaves)

    def visit_and(self, node: And) -> Test:
        return _combine([child.accept(self) for child in node.children], decisive=False)

    def visit_or(self, node: Or) -> Test:
        return _combine([child.accept(self) for child in node.children], decisive=True)

    def visit_not(self, node: Not) -> Test:
        test = node.child.accept(self)
        if not callable(test):
            return None if test is None else not test

        def negated(facts: Facts) -> Tri:
            answer = test(facts)
            return None if answer is None else not answer

        return negated

    def visit_leaf(self, node: Leaf) -> Test:
        if node.key not in BUYER_KEYS:
            return None  # the total, the lines or the limits decide
        index = len(self.leaves)
        self.leaves.append(node)
        predicates = self.predicates
        return lambda facts: predicates[index](facts)


def _combine(tests: list[Test], decisive: bool) -> Test:
    """``all`` (decisive False: one False decides) or ``any`` (decisive True: one True decides)."""
    functions = []
    unknown = False
    for test in tests:
        if callable(test):
            functions.append(test)
        elif test is decisive:
            return decisive
        elif test is None:
            unknown = True
    default: Tri = None if unknown else not decisive
    if not functions:
        return default

    def combined(facts: Facts) -> Tri:
        answer = default
        for function in functions:
            value = function(facts)
            if value is decisive:
                return decisive
            if value is None:
                answer = None
        return answer

    return combined


class StepScreen:
    """The steps of each policy that can apply to a buyer and order type.

    The tests are built once per policy and kept for the screen's life (one diff or replay).
    """

    def __init__(self) -> None:
        # id(policy) -> (policy, one test per step); the policy is kept so its id stays its own
        self._tests: dict[int, tuple[Policy, list[Test]]] = {}

    def tests_of(self, policy: Policy) -> list[Test]:
        """One three-valued test per step of ``policy``, in step order."""
        entry = self._tests.get(id(policy))
        if entry is None:
            visitor = ThreeValued()
            tests = [parse(step.condition).accept(visitor) for step in policy.steps]
            visitor.compile()
            entry = self._tests[id(policy)] = (policy, tests)
        return entry[1]

    def relevant_steps(
        self, policy: Policy, m: Membership, order_type: str, currency: str | None = None
    ) -> tuple:
        """The steps whose condition is not false for this buyer and order type."""
        facts = buyer_facts(policy, m, order_type, currency)
        return tuple(
            step
            for step, test in zip(policy.steps, self.tests_of(policy), strict=True)
            if (test(facts) if callable(test) else test) is not False
        )


def buyer_facts(policy: Policy, m: Membership, order_type: str, currency: str | None) -> Facts:
    """What conditions see of an order of ``order_type`` by ``m``, before its total and lines."""
    return Facts(
        total=Decimal(0),
        currency=currency or policy.currency,
        order_type=order_type,
        lines=(),
        buyer=m.account_id,
        role=m.role,
        group=m.group if m.active else None,
        attributes=m.attributes,
        exceeded=frozenset(),
    )


def pruned(policy: Policy, steps: tuple) -> Policy:
    """The same policy with only ``steps``.

    The same decisions for the buyers those steps were chosen for, faster.
    """
    if len(steps) == len(policy.steps):
        return policy
    fields: dict[str, Any] = {
        k: getattr(policy, k) for k in policy.__slots__ if k != "_ruleset_ref"
    }
    fields["steps"] = steps
    return Policy(**fields)
