"""Amounts per currency.

Which currencies a rule set prices, and the rule set as seen in one of them.

A plain amount (``500``) is in the rule set's ``currency``.  A per-currency
amount (``{USD: 500, EUR: 450}``) gives the amount in each currency the rule
set prices natively (``currency`` plus ``currencies``).  Compiling a rule set
that prices several currencies compiles one view of it per currency, in which
every amount is plain: the engine never compares money of two currencies.
"""

from __future__ import annotations

import copy
import dataclasses
import weakref
from collections.abc import Iterator, Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from ..errors import OrderError
from .conditions import COMPARATORS
from .directory import Directory
from .money import format_amount, parse_amount, to_cents

#: the settings whose values are money
MONEY_SETTINGS = ("max_order_total", "no_approval_below", "approval_limit")

Position = tuple[tuple, Any, Any]  # (path, container, key): container[key] is an amount


def base_currency(data: Mapping[str, Any]) -> str:
    """The rule set's own currency: plain amounts are in it."""
    return data.get("currency", "USD")


def priced_currencies(data: Mapping[str, Any]) -> tuple[str, ...]:
    """The currencies the rule set prices natively, its own first."""
    base = base_currency(data)
    return (base,) + tuple(code for code in data.get("currencies") or () if code != base)


def amount_positions(data: Mapping[str, Any]) -> Iterator[Position]:
    """Every money amount the rule set states, with its path.

    Tests and the conversion table are excluded.
    """
    yield from _settings_positions(data.get("settings"), ("settings",))
    for name, role in (data.get("roles") or {}).items():
        if isinstance(role, dict):
            yield from _settings_positions(role.get("settings"), ("roles", name, "settings"))
    for name, group in (data.get("groups") or {}).items():
        if isinstance(group, dict):
            yield from _settings_positions(group.get("settings"), ("groups", name, "settings"))
    limits = data.get("limits")
    if isinstance(limits, dict):
        if limits.get("max_order_total") is not None:
            yield ("limits", "max_order_total"), limits, "max_order_total"
        order_limit = limits.get("order_limit")
        if isinstance(order_limit, dict) and "amount" in order_limit:
            yield ("limits", "order_limit", "amount"), order_limit, "amount"
        for index, budget in enumerate(limits.get("budgets") or ()):
            if isinstance(budget, dict) and "amount" in budget:
                yield ("limits", "budgets", index, "amount"), budget, "amount"
    for index, step in enumerate((data.get("approval") or {}).get("steps") or ()):
        if isinstance(step, dict):
            yield from _condition_positions(step.get("when"), ("approval", "steps", index, "when"))
    for kind in ("deny", "bypass"):
        for index, rule in enumerate(data.get(kind) or ()):
            if isinstance(rule, dict):
                yield from _condition_positions(rule.get("when"), (kind, index, "when"))


def _settings_positions(settings: Any, path: tuple) -> Iterator[Position]:
    if isinstance(settings, dict):
        for key in MONEY_SETTINGS:
            if settings.get(key) is not None:
                yield path + (key,), settings, key


def _condition_positions(condition: Any, path: tuple) -> Iterator[Position]:
    if not isinstance(condition, dict):
        return
    total = condition.get("total")
    if isinstance(total, dict):
        for op in COMPARATORS:
            if op in total:
                yield path + ("total", op), total, op
    for key in ("all", "any"):
        for index, inner in enumerate(condition.get(key) or ()):
            yield from _condition_positions(inner, path + (key, index))
    if "not" in condition:
        yield from _condition_positions(condition["not"], path + ("not",))


def has_per_currency_amounts(data: Mapping[str, Any]) -> bool:
    """Whether any amount of the rule set is a per-currency map."""
    return any(isinstance(container[key], dict) for _, container, key in amount_positions(data))


def in_currency(data: Mapping[str, Any], currency: str) -> dict:
    """The rule set as seen in ``currency``, one of its priced currencies: every amount plain.

    Per-currency amounts become their amount in ``currency``; ``currency`` is
    set to it and ``currencies`` dropped.  The input is left untouched.  The
    caller has validated the rule set (:func:`currency_problems` found none).
    """
    if not data.get("currencies") and not has_per_currency_amounts(data):
        return dict(data)
    view = copy.deepcopy(dict(data))
    for _, container, key in amount_positions(view):
        value = container[key]
        if isinstance(value, dict):
            container[key] = value[currency]
    view["currency"] = currency
    view.pop("currencies", None)
    return view


def currency_problems(data: Mapping[str, Any]) -> list[tuple[str, str, tuple]]:
    """(code, message, path) for every amount that does not say what it is in each priced currency.

    - ``currencies`` must not repeat the rule set's own currency;
    - a per-currency amount names exactly the priced currencies;
    - with several priced currencies, a plain amount other than 0 is
      ambiguous: it would compare numbers of different money.
    """
    problems = []
    base = base_currency(data)
    priced = priced_currencies(data)
    listed = ", ".join(priced)
    if base in (data.get("currencies") or ()):
        problems.append(
            (
                "invalid_currencies",
                f"{base} is the rule set's own currency; list only the others",
                ("currencies",),
            )
        )
    for path, container, key in amount_positions(data):
        value = container[key]
        if isinstance(value, dict):
            missing = [code for code in priced if code not in value]
            extra = sorted(code for code in value if code not in priced)
            if extra:
                problems.append(
                    (
                        "unpriced_currency",
                        f"{', '.join(extra)} is not a currency the rule set prices ({listed}); "
                        "add it to `currencies` or remove the amount",
                        path + (extra[0],),
                    )
                )
            if missing:
                problems.append(
                    (
                        "missing_currency_amount",
                        f"no amount for {', '.join(missing)}; "
                        f"the rule set prices {listed}, so give each of them",
                        path,
                    )
                )
        elif len(priced) > 1 and _nonzero(value):
            example = ", ".join(f"{code}: {value if code == base else '...'}" for code in priced)
            problems.append(
                (
                    "ambiguous_amount",
                    f"{value} has no currency, but the rule set prices {listed}; "
                    f"write {{{example}}}",
                    path,
                )
            )
    return problems


def _nonzero(value: Any) -> bool:
    try:
        return float(value) != 0
    except (TypeError, ValueError):
        return True


class DirectoryInCurrency(Directory):
    """The directory as an evaluation in another priced currency sees it.

    The directory states its amounts (membership settings, assignment
    thresholds and limits) in the rule set's own currency.  Read for an order
    priced natively in ``currency``, each is converted with the rule set's
    ``conversion`` rate for it (amount / rate, half-even to 2 places); with no
    rate, reading a non-zero amount refuses the order (``currency_not_priced``)
    rather than compare numbers of two currencies.  Records are converted once
    and keep their identity, so the engine's per-directory memos still hold.
    """

    def __init__(self, inner: Directory, base: str, currency: str, rate: Decimal | None):
        # weak: the view is cached against its directory and must not keep it alive
        self._inner = weakref.proxy(inner)
        self._base = base
        self._currency = currency
        self._rate = rate
        self._memberships: dict = {}
        self._assignments: dict = {}

    def company(self, company_id):
        return self._inner.company(company_id)

    def account(self, account_id):
        return self._inner.account(account_id)

    def account_ids(self):
        return self._inner.account_ids()

    def groups_of_company(self, company_id):
        return self._inner.groups_of_company(company_id)

    def delegations_of(self, delegator_id):
        return self._inner.delegations_of(delegator_id)

    def memberships_of_account(self, account_id):
        return tuple(self._membership(m) for m in self._inner.memberships_of_account(account_id))

    def memberships_of_company(self, company_id):
        return tuple(self._membership(m) for m in self._inner.memberships_of_company(company_id))

    def assignments_for(self, account_id, company_id):
        return tuple(
            self._assignment(a) for a in self._inner.assignments_for(account_id, company_id)
        )

    def assignments_by(self, approver_id, company_id):
        return tuple(
            self._assignment(a) for a in self._inner.assignments_by(approver_id, company_id)
        )

    def _membership(self, membership):
        key = (membership.account_id, membership.company_id)
        cached = self._memberships.get(key)
        if cached is None or cached[0] is not membership:
            converted = membership
            if any(membership.settings.get(k) is not None for k in MONEY_SETTINGS):
                settings = dict(membership.settings)
                for k in MONEY_SETTINGS:
                    if settings.get(k) is not None:
                        settings[k] = self._amount(
                            settings[k],
                            f"{k} of {membership.account_id} in {membership.company_id}",
                        )
                converted = dataclasses.replace(membership, settings=MappingProxyType(settings))
            cached = self._memberships[key] = (membership, converted)
        return cached[1]

    def _assignment(self, assignment):
        key = id(assignment)
        cached = self._assignments.get(key)
        if cached is None or cached[0] is not assignment:
            converted = assignment
            if assignment.threshold is not None or assignment.limit is not None:
                what = f"assignment of {assignment.approver_id} to {assignment.account_id}"
                converted = dataclasses.replace(
                    assignment,
                    threshold=self._amount(assignment.threshold, f"threshold of the {what}"),
                    limit=self._amount(assignment.limit, f"limit of the {what}"),
                )
            cached = self._assignments[key] = (assignment, converted)
        return cached[1]

    def _amount(self, value, what: str):
        if value is None:
            return None
        amount = parse_amount(value, what)
        if amount == 0:
            return amount
        if self._rate is None:
            raise OrderError(
                "currency_not_priced",
                f"the {what} is {format_amount(amount)} {self._base} "
                "(the directory's amounts are in the rule set's currency) "
                f"and the rule set has no rate to price it in {self._currency}: "
                f"add conversion.{self._currency} to the rule set",
                path="order.currency",
            )
        return to_cents(amount / self._rate)
