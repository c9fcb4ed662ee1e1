"""The checks that block an order, and the limits and budgets that may require approval."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .decision import Reason, TraceEntry
from .money import format_amount, parse_amount

if TYPE_CHECKING:  # annotations only: evaluate imports this module
    from .buyer import BuyerSettings
    from .evaluate import Evaluation


def blocking_checks(ev: Evaluation, currency: str, buyer_settings: BuyerSettings) -> None:
    """What blocks the order outright: account, membership, currency, permissions, products,
    ship date and address, cost centre, the maximum order total."""
    p, order, s = ev.policy, ev.order, ev.settings
    if not ev.account.active:
        ev.block("account_inactive", f"account {order.buyer} is deactivated", "account.active")
    if ev.membership.status != "active" and ev.membership.status != "invited":
        ev.block(
            "membership_inactive",
            f"{order.buyer}'s membership of {ev.company} is {ev.membership.status}",
            "membership.status",
        )
    if currency != p.currency:
        converted = sorted(code for code in p.conversion if code not in p.priced_currencies)
        converts = f" and converts {', '.join(converted)}" if converted else ""
        ev.block(
            "currency_not_supported",
            f"the rule set prices orders in {', '.join(p.priced_currencies)}{converts}, not "
            f"{currency}: its amounts cannot be compared with {currency}",
            "currency",
            {"currency": currency, "priced": list(p.priced_currencies), "converted": converted},
        )
    permitted = ev.role is not None and "place_orders" in ev.role.permissions
    if not permitted or not s["may_order"]:
        why = (
            f"role {ev.membership.role!r} is not defined in rule set {p.name}"
            if ev.role is None
            else f"{ev.role.label} may not place orders"
            if not permitted
            else "this account may not order (may_order: false)"
        )
        ev.block(
            "may_not_order",
            why,
            "roles.permissions.place_orders" if not permitted else "settings.may_order",
        )
    else:
        ev.trace.append(
            TraceEntry(
                "roles.permissions.place_orders",
                "passed",
                f"{ev.role.label} may place orders",
            )
        )
    if order.type == "quote":
        ev.block(
            "quote_not_approvable",
            "a quote cannot be submitted for approval; convert it to an order first",
            "order.type",
        )
    if order.type == "bulk" and ev.group and p.bulk_orders == "exclude":
        ev.block(
            "bulk_orders_excluded",
            f"bulk orders are not allowed for members of group {ev.group}",
            "bulk_orders",
        )
    offending = []
    if buyer_settings.scan_lines:
        restricted_skus, restricted_categories = (
            buyer_settings.restricted_skus,
            buyer_settings.restricted_categories,
        )
        favourites = buyer_settings.favourites
        for index, line in enumerate(order.lines):
            if line.sku in restricted_skus or (
                line.category and line.category in restricted_categories
            ):
                offending.append({"line": index, "sku": line.sku, "why": "restricted"})
            elif s["favourites_only"] and line.sku not in favourites:
                offending.append({"line": index, "sku": line.sku, "why": "not in favourites"})
    if offending:
        names = ", ".join(f"{o['sku']} ({o['why']})" for o in offending)
        ev.block(
            "restricted_products",
            f"these lines may not be ordered: {names}",
            "settings.restricted_skus",
            {"lines": offending},
        )
    if (
        order.requested_date
        and order.requested_date > ev.now.date()
        and not s["allow_future_ship_dates"]
    ):
        ev.block(
            "future_ship_date_not_allowed",
            f"requested date {order.requested_date} is in the future and this account may not "
            "order for later",
            "settings.allow_future_ship_dates",
        )
    if order.manual_ship_to and not s["allow_manual_ship_to"]:
        ev.block(
            "manual_ship_to_not_allowed",
            "this account may not enter a ship-to address by hand",
            "settings.allow_manual_ship_to",
        )
    if s["summary_invoicing"]:
        if not order.cost_centre:
            ev.block(
                "cost_centre_required",
                "summary invoicing needs a cost centre: one of "
                f"{', '.join(s['cost_centres']) or '(none configured)'}",
                "settings.summary_invoicing",
            )
        elif order.cost_centre not in s["cost_centres"]:
            ev.block(
                "unknown_cost_centre",
                f"cost centre {order.cost_centre!r} is not one of {', '.join(s['cost_centres'])}",
                "settings.cost_centres",
            )
    # min() of the two, the policy's first when equal
    limit, own = p.max_order_total, s["max_order_total"]
    if own is not None and (limit is None or own < limit):
        limit = own
    if limit is not None and order.total > limit:
        ev.block(
            "max_order_total_exceeded",
            f"cart value too high: {order.total} is above the maximum of {limit} {p.currency}",
            "limits.max_order_total",
            {"maximum": format_amount(limit)},
        )
    elif limit is not None:
        ev.trace.append(TraceEntry("limits.max_order_total", "passed", f"{order.total} <= {limit}"))


def limit_checks(ev: Evaluation) -> set[str]:
    """The order limit and the budgets: each either blocks or requires approval.

    Returns what the order exceeds (``order_limit``, ``budget``) for ``exceeds`` conditions.
    """
    p, total = ev.policy, ev.order.total
    exceeded = set()
    limit_validity = p.order_limit_validity
    if (
        p.order_limit
        and limit_validity is not None
        and not limit_validity.holds_on(ev.order_date())
    ):
        ev.trace.append(
            TraceEntry(
                "limits.order_limit",
                "skipped",
                f"not in force on {ev.order_date().isoformat()} (valid {limit_validity.text()})",
            )
        )
    elif p.order_limit:
        amount, on_exceed = p.order_limit
        if total > amount:
            if on_exceed == "block":
                ev.block(
                    "order_limit_exceeded",
                    f"{total} is above the company's purchasing limit of {amount}",
                    "limits.order_limit",
                )
            else:
                exceeded.add("order_limit")
                ev.reasons.append(
                    Reason(
                        "order_limit_exceeded",
                        f"{total} is above the company's purchasing limit of {amount}: approval "
                        "required",
                    )
                )
                ev.trace.append(TraceEntry("limits.order_limit", "matched", f"{total} > {amount}"))
        else:
            ev.trace.append(TraceEntry("limits.order_limit", "passed", f"{total} <= {amount}"))
    for budget in p.budgets:
        rule = f"limits.budgets.{budget.name}"
        if budget.validity is not None and not budget.in_force(ev.order_date()):
            ev.trace.append(
                TraceEntry(
                    rule,
                    "skipped",
                    f"not in force on {ev.order_date().isoformat()} "
                    f"(valid {budget.validity.text()})",
                )
            )
            continue
        spent = parse_amount(ev.spent.get(budget.name, 0), f"budgets_spent.{budget.name}")
        remaining = budget.amount - spent
        if total > remaining:
            message = (
                f"budget {budget.name}: {total} is more than the {budget.period}'s remaining "
                f"{remaining} of {budget.amount}"
            )
            if budget.on_exceed == "block":
                ev.block(
                    "budget_exceeded",
                    message,
                    rule,
                    {"budget": budget.name, "remaining": format_amount(remaining)},
                )
            else:
                exceeded.add("budget")
                ev.reasons.append(
                    Reason(
                        "budget_exceeded",
                        message + ": approval required",
                        {"budget": budget.name, "remaining": format_amount(remaining)},
                    )
                )
                ev.trace.append(TraceEntry(rule, "matched", message))
        else:
            ev.trace.append(TraceEntry(rule, "passed", f"{total} fits the remaining {remaining}"))
    return exceeded
