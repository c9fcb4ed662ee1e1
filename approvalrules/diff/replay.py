"""Replay: recorded orders evaluated under both versions, changes counted per class of buyer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..engine import Directory, Order, Policy
from ..engine.directory import Membership
from ..errors import ApprovalRulesError
from .classes import buyer_classes
from .decisions import DEFAULT_NOW, change_text, directory_names, evaluate_summary
from .screen import StepScreen, pruned

#: how many orders between two calls of ``on_progress``
PROGRESS_EVERY = 1000


@dataclass
class ReplayReport:
    """What a replay found: orders read, changed and unreadable, and the changes per buyer class."""

    orders: int = 0
    changed: int = 0
    errors: int = 0
    per_class: dict[str, dict] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        """JSON-ready, and the same for the same orders: the time taken is left out."""
        return {
            "orders": self.orders,
            "changed": self.changed,
            "errors": self.errors,
            "per_class": self.per_class,
        }

    def lines(self) -> list[str]:
        out = []
        for name, counts in sorted(self.per_class.items()):
            if not counts["changed"]:
                continue
            out.append(f"{name}: {counts['changed']} of {counts['orders']} orders change")
            for text, n in sorted(counts["changes"].items(), key=lambda kv: -kv[1]):
                out.append(f"    {n} x {text}")
        return out


def replay(
    old_policy: Policy,
    new_policy: Policy,
    directory: Directory,
    orders_iterable: Iterable[Any],
    *,
    now: Any = None,
    on_progress: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Evaluate recorded orders under both versions; count changes per class of buyer.

    Each item is an order (dict or :class:`Order`), or
    ``{"order": ..., "now": ..., "budgets_spent": ...}``.
    ``on_progress`` is called with the number of orders read so far, every
    :data:`PROGRESS_EVERY` orders.
    """
    started = time.perf_counter()
    now = now or DEFAULT_NOW
    classes = buyer_classes(old_policy, new_policy, directory)
    class_of: dict[tuple[str, str], str] = {}
    for cls in classes:
        for member in cls.members:
            class_of[(member, cls.company)] = cls.name
    names_cache: dict[tuple[str, str | None], str] = {}
    memberships: dict[tuple[str, str | None], Membership | None] = {}
    pruned_pairs: dict[tuple, tuple[Policy, ...]] = {}
    screen = StepScreen()
    name_of = directory_names(directory)
    report = ReplayReport()
    for item in orders_iterable:
        report.orders += 1
        when, spent = now, None
        if isinstance(item, Mapping) and "order" in item and "buyer" not in item:
            when, spent, item = item.get("now", now), item.get("budgets_spent"), item["order"]
        try:
            order = item if isinstance(item, Order) else Order.from_dict(item)
        except ApprovalRulesError:
            report.errors += 1
            continue
        key = (order.buyer, order.company)
        name = names_cache.get(key)
        if name is None:
            m = directory.membership(order.buyer, order.company)
            memberships[key] = m
            name = (
                class_of.get((order.buyer, m.company_id), order.buyer)
                if m
                else f"unknown buyer {order.buyer}"
            )
            names_cache[key] = name
        m = memberships[key]
        policies: tuple[Policy, ...] = (old_policy, new_policy)
        if m is not None:
            # only the steps that can apply to this buyer and order type: same decision, less work
            pkey = (key, order.type, order.currency)
            policies = pruned_pairs.get(pkey)
            if policies is None:
                policies = pruned_pairs[pkey] = tuple(
                    pruned(p, screen.relevant_steps(p, m, order.type, order.currency))
                    for p in (old_policy, new_policy)
                )
        old, new = (evaluate_summary(p, order, directory, when, spent) for p in policies)
        counts = report.per_class.setdefault(name, {"orders": 0, "changed": 0, "changes": {}})
        counts["orders"] += 1
        text = change_text(old, new, name_of)
        if text is not None:
            report.changed += 1
            counts["changed"] += 1
            counts["changes"][text] = counts["changes"].get(text, 0) + 1
        if on_progress is not None and report.orders % PROGRESS_EVERY == 0:
            on_progress(report.orders)
    report.seconds = time.perf_counter() - started
    return report
