"""The behavioural diff: generated orders at every boundary of both versions, for every buyer class.

It needs no hand-written orders: it finds every total at which a decision can
change (step thresholds, limits, budgets, settings, assignment thresholds and
approval limits of both versions), puts orders just below, at and just above
each one, for every class of buyer in the directory and every order type,
evaluates them under both versions and merges the differences into readable
ranges ("orders over 500 up to 1000 by Marketing members: pending -> approved").
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from ..engine import ORDER_TYPES, Directory, Order, Policy
from ..engine.conditions import And, Leaf, Not, Or, Visitor, parse
from ..engine.directory import Membership
from ..engine.durations import isoformat, parse_instant
from .changes import BehaviourChange, BehaviourReport, report_changes
from .classes import BuyerClass, buyer_classes, enumerate_memberships
from .dates import MAX_BANDS, DateBand, date_bands
from .decisions import DEFAULT_NOW, Summary, change_text, directory_names, evaluate_summary
from .edges import Edges, converted_edges, directory_in, policy_edges
from .grid import Grid, Sample, samples_around
from .lines import scenarios
from .screen import StepScreen, pruned


def behavioural_diff(
    old_policy: Policy,
    new_policy: Policy,
    directory: Directory,
    *,
    now: Any = None,
    verify: bool = True,
) -> BehaviourReport:
    """What changes between two versions, found with generated orders.

    Orders at every boundary of both versions, for every class of buyer and
    order type, evaluated under both; the differences merged into ranges.

    Rule sets that price several currencies are explored once per priced
    currency (of either version), at that currency's own boundaries; each
    change then names its currency ("orders in EUR over 450 ...").

    Rule sets that look at the order's date (``order_date``, validity
    windows) are explored once per :class:`~.dates.DateBand`; a change found
    in some bands only names their dates ("orders dated from 2026-04-01 until
    2026-06-30 over 500 ...").
    """
    instant = parse_instant(now) if isinstance(now, str) else now or parse_instant(DEFAULT_NOW)
    bands = date_bands((old_policy, new_policy), instant)
    if len(bands) == 1:
        return _diff_at(old_policy, new_policy, directory, instant, verify)
    if len(bands) > MAX_BANDS:
        report = _diff_at(old_policy, new_policy, directory, instant, verify)
        report.unexplored.append(
            f"dates: {len(bands)} order-date bands are too many; only orders dated "
            f"{isoformat(instant)} were explored"
        )
        return report
    started = time.perf_counter()
    reports = [_diff_at(old_policy, new_policy, directory, b.sample, verify) for b in bands]
    return _merge_dated(reports, bands, new_policy.time_zone, time.perf_counter() - started)


def _merge_dated(
    reports: list[BehaviourReport], bands: list[DateBand], zone, seconds: float
) -> BehaviourReport:
    """One report from one per date band: a change found alike in every band stays as it is;
    one found in some bands is reported once per run of adjacent bands, naming their dates."""
    found: dict[str, list[tuple[int, BehaviourChange]]] = {}
    for index, report in enumerate(reports):
        for change in report.changes:
            found.setdefault(change.text, []).append((index, change))
    changes = []
    for occurrences in found.values():
        if len(occurrences) == len(bands):
            changes.append(occurrences[0][1])
            continue
        runs: list[list[tuple[int, BehaviourChange]]] = []
        for index, change in occurrences:
            if runs and runs[-1][-1][0] == index - 1:
                runs[-1].append((index, change))
            else:
                runs.append([(index, change)])
        for run in runs:
            first, last = bands[run[0][0]], bands[run[-1][0]]
            covered = DateBand(first.start, last.end, first.sample)
            change = replace(run[0][1], example=dict(run[0][1].example))
            change.dates = covered
            change.text = change.text.replace("orders", f"orders {covered.text(zone)}", 1)
            change.example["now"] = isoformat(first.sample)
            changes.append(change)
    classes = {}
    for report in reports:
        for cls in report.classes:
            classes.setdefault(cls.name, cls)
    return BehaviourReport(
        changes,
        list(classes.values()),
        sum(r.evaluations for r in reports),
        list(dict.fromkeys(note for r in reports for note in r.notes)),
        seconds,
        unexplored=list(dict.fromkeys(u for r in reports for u in r.unexplored)),
    )


def _diff_at(
    old_policy: Policy, new_policy: Policy, directory: Directory, now: Any, verify: bool
) -> BehaviourReport:
    """:func:`behavioural_diff` with every order submitted at ``now``."""
    screen = StepScreen()
    currencies = explored_currencies(old_policy, new_policy)
    if len(currencies) == 1:
        return _Exploration(old_policy, new_policy, directory, now, screen).run(verify)
    started = time.perf_counter()
    reports = [
        _Exploration(old_policy, new_policy, directory, now, screen, currency=code).run(verify)
        for code in currencies
    ]
    changes = []
    for code, report in zip(currencies, reports, strict=True):
        for change in report.changes:
            change.currency = code
            change.text = change.text.replace("orders", f"orders in {code}", 1)
            change.example["currency"] = code
            changes.append(change)
    notes = list(dict.fromkeys(note for report in reports for note in report.notes))
    unexplored = list(dict.fromkeys(u for report in reports for u in report.unexplored))
    return BehaviourReport(
        changes,
        reports[0].classes,
        sum(r.evaluations for r in reports),
        notes,
        time.perf_counter() - started,
        unexplored=unexplored,
    )


def explored_currencies(old: Policy, new: Policy) -> list[str]:
    """Every currency either version accepts: priced ones first, then converted ones (sorted)."""
    priced = list(dict.fromkeys(old.priced_currencies + new.priced_currencies))
    converted = sorted({*old.conversion, *new.conversion} - set(priced))
    return priced + converted


def _in_currency(policy: Policy, currency: str | None) -> Policy:
    """The policy whose amounts an order in ``currency`` meets: itself or the variant pricing it."""
    return policy.variants.get(currency, policy) if currency else policy


class ConditionKeys(Visitor):
    """Every key a tree uses, combinators (``all``, ``any``, ``not``) included."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def visit_and(self, node: And) -> None:
        if node.written:
            self.keys.add("all")
        super().visit_and(node)

    def visit_or(self, node: Or) -> None:
        self.keys.add("any")
        super().visit_or(node)

    def visit_not(self, node: Not) -> None:
        self.keys.add("not")
        super().visit_not(node)

    def visit_leaf(self, node: Leaf) -> None:
        self.keys.add(node.key)


def _condition_keys(policies: Iterable[Policy]) -> set[str]:
    """Every key used in the policies' conditions (steps, deny, bypass), combinators included."""
    visitor = ConditionKeys()
    for p in policies:
        for condition in [s.condition for s in p.steps] + [r.condition for r in p.deny + p.bypass]:
            parse(condition).accept(visitor)
    return visitor.keys


class _Exploration:
    """One behavioural diff in one currency (None: the rule sets' own)."""

    def __init__(
        self,
        old_policy: Policy,
        new_policy: Policy,
        directory: Directory,
        now: Any,
        screen: StepScreen,
        currency: str | None = None,
    ):
        self.policies = (old_policy, new_policy)
        self.directory = directory
        self.now = now or DEFAULT_NOW
        self.screen = screen
        self.currency = currency
        self.keys = _condition_keys(self.policies)
        self.type_specific = "order_type" in self.keys
        self.evaluations = 0
        #: dimensions the exploration could not cover, each said once
        self.unexplored: list[str] = []

    def notes(self) -> list[str]:
        """What generated orders assume."""
        notes = []
        if any(p.budgets for p in self.policies):
            notes.append(
                "budgets: generated orders assume nothing has been spent in the current period"
            )
        return notes

    def run(self, verify: bool) -> BehaviourReport:
        """Every buyer class's grid, classes split where a member disagrees, turned into changes."""
        started = time.perf_counter()
        directory = self.directory
        classes = buyer_classes(*self.policies, directory)
        grids: dict[int, Grid] = {}
        by_account: dict[tuple[str, str], Membership] = {}
        for m in enumerate_memberships(directory):
            by_account[(m.account_id, m.company_id)] = m
        split: list[BuyerClass] = []
        for cls in classes:
            grid = self.grid(by_account[(cls.representative, cls.company)])
            grids[id(cls)] = grid
            if not verify or len(cls.members) == 1:
                continue
            # representatives stand for their class; check the others agree when that is cheap
            budget = 20_000
            cost = (len(cls.members) - 1) * len(grid.samples) * 2
            if cost > budget:
                continue
            reference = [change_text(*pair) for pair in grid.of_type("regular")]
            for other in list(cls.members[1:]):
                om = by_account[(other, cls.company)]
                ogrid = self.grid(om, types=("regular",), shape=grid)
                if [change_text(*pair) for pair in ogrid.of_type("regular")] != reference:
                    cls.members.remove(other)
                    lone = _lone_class(cls, other, directory)
                    cls.exclude(lone.base_name)
                    grids[id(lone)] = self.grid(om)
                    split.append(lone)
        classes = classes + split
        changes = report_changes(classes, grids, directory_names(directory))
        return BehaviourReport(
            changes,
            classes,
            self.evaluations,
            self.notes(),
            time.perf_counter() - started,
            unexplored=list(self.unexplored),
        )

    def edges(self, m: Membership, types) -> Edges:
        """Every edge of both versions for ``m``'s orders of ``types``, in the explored currency."""
        currency, directory, relevant_steps = (
            self.currency,
            self.directory,
            self.screen.relevant_steps,
        )
        found = Edges()
        for p in self.policies:
            if currency is None or currency in p.priced_currencies:
                # priced natively: the variant's own amounts, the directory's converted
                priced, rate = _in_currency(p, currency), None
            elif currency in p.conversion:
                # converted: the rule set's amounts, crossed where total * rate crosses them
                priced, rate = p, p.conversion[currency]
            else:
                continue  # this version refuses the currency: nothing inside it changes
            view = directory_in(p, currency, directory)
            for t in types:
                edges = policy_edges(priced, relevant_steps(priced, m, t, currency), m, view)
                if rate is not None:
                    edges.total = converted_edges(edges.total, rate) | {Decimal(0)}
                found.update(edges)
        return found

    def grid(self, m: Membership, types=ORDER_TYPES, shape: Grid | None = None) -> Grid:
        """Both versions' decisions on ``m``'s orders at every sample total and line scenario,
        per order type; ``shape``: another grid's samples and scenarios, to compare with it."""
        policies, directory, currency = self.policies, self.directory, self.currency
        relevant_steps = self.screen.relevant_steps
        relevant = {t: tuple(relevant_steps(p, m, t, currency) for p in policies) for t in types}
        if shape is None:
            edges = self.edges(m, types)
            bounds = sorted(edges.total)
            found, complete = scenarios(edges)
            if not complete:
                self.flag(
                    "lines: too many line-count, quantity and line tests to combine; "
                    "orders with lines were not explored"
                )
            grid = Grid(samples_around(bounds, both_sides=len(bounds) <= 200), bounds, found)
        else:
            grid = Grid(shape.samples, shape.bounds, shape.scenarios)
        samples = grid.samples

        def run(order_type: str, index: int, subset: list[Sample]) -> list[tuple[Summary, Summary]]:
            old, new = (
                pruned(p, steps) for p, steps in zip(policies, relevant[order_type], strict=True)
            )
            lines = grid.scenarios[index].lines
            out = []
            for s in subset:
                order = Order(
                    buyer=m.account_id,
                    total=s.total,
                    company=m.company_id,
                    type=order_type,
                    currency=currency,
                    lines=lines,
                )
                out.append(
                    (
                        evaluate_summary(old, order, directory, self.now),
                        evaluate_summary(new, order, directory, self.now),
                    )
                )
                self.evaluations += 2
            return out

        first = "regular" if "regular" in types else types[0]
        for index in range(len(grid.scenarios)):
            grid.pairs[(first, index)] = run(first, index, samples)
            base = grid.pairs.get(("regular", index))
            for t in types:
                if (t, index) in grid.pairs:
                    continue
                bulk_differs = (
                    t == "bulk"
                    and m.group is not None
                    and any(p.bulk_orders != "group_settings" for p in policies)
                )
                if (
                    base is not None
                    and not self.type_specific
                    and not bulk_differs
                    and t != "quote"
                ):
                    # the engine treats this type like a regular order: check a few points, reuse
                    step = max(1, len(samples) // 8)
                    probe = list(range(0, len(samples), step))
                    pairs = run(t, index, [samples[i] for i in probe])
                    if all(pairs[j] == base[i] for j, i in enumerate(probe)):
                        grid.pairs[(t, index)] = base
                        continue
                grid.pairs[(t, index)] = run(t, index, samples)
        return grid

    def flag(self, what: str) -> None:
        """Say once that a dimension was not explored (the CLI exits with its own code)."""
        if what not in self.unexplored:
            self.unexplored.append(what)


def _lone_class(cls: BuyerClass, member: str, directory: Directory) -> BuyerClass:
    """``member`` of ``cls`` in a class of its own: its decisions differ from its class's."""
    account = directory.account(member)
    lone = BuyerClass(
        cls.key + (member,),
        cls.company,
        cls.company_name,
        cls.role,
        cls.role_label,
        cls.group,
        cls.group_label,
        cls.master,
        cls.qualifiers,
        [member],
        active_group=cls.active_group,
    )
    lone.base_name = account.name if account is not None and account.name else member
    lone.name = f"{lone.base_name} ({cls.base_name})"
    return lone
