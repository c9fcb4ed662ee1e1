"""Evaluate an order with a compiled policy: the pipeline, stage by stage.

:class:`Evaluation` holds one evaluation's working state and runs the stages
in order; each stage is a function of that state in its own module:

* ``buyer``: who orders, in which company, with which effective settings;
* ``order_checks``: what blocks the order (account, products, limits, budgets);
* ``precedence``: the ``deny`` and ``bypass`` rules;
* ``steps``: which approval steps apply, and ``approvers``: who may approve them;
* ``notify``: who is told, by e-mail or in the inbox.

Pure: no I/O, no clock, no randomness.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .buyer import buyer_settings_for, resolve_buyer
from .conditions import Facts
from .dates import local_date
from .decision import Decision, Order, Reason, Step, TraceEntry
from .directory import Directory
from .money import format_amount, to_cents
from .notify import approvers_emailed, notifications
from .order_checks import blocking_checks, limit_checks
from .precedence import bypass_rule, deny
from .steps import match_steps
from .timeouts import request_expiry

if TYPE_CHECKING:  # annotations only: compile imports this module to run evaluations
    from .approvers import CompanyContext
    from .compile import Policy


class BuyerAssignments:
    """The buyer's assignments in its company, read from the directory on first call."""

    __slots__ = ("directory", "buyer", "company", "found")

    def __init__(self, directory: Directory, buyer: str, company: str):
        self.directory, self.buyer, self.company = directory, buyer, company
        self.found = None

    def __call__(self):
        if self.found is None:
            self.found = self.directory.assignments_for(self.buyer, self.company)
        return self.found


class EvaluationContext:
    """Per (policy, directory): buyers' effective settings and per-company approver contexts.

    Directories are read-only snapshots (a SQL one lives for one request), so
    an entry never goes stale; the context dies with its directory.
    """

    __slots__ = ("buyers", "companies")

    def __init__(self):
        self.buyers: dict = {}
        self.companies: dict = {}


class Evaluation:
    """One evaluation's working state; discarded when the Decision is built."""

    __slots__ = (
        "policy",
        "order",
        "directory",
        "now",
        "ordered_at",
        "spent",
        "trace",
        "reasons",
        "account",
        "membership",
        "settings",
        "role",
        "group",
        "company",
        "blocked",
        "company_context",
        "first_step",
        "hold_lifted",
        "_assignments",
        "_context",
        "_order_date",
    )

    def __init__(
        self,
        policy: Policy,
        order: Order,
        directory: Directory,
        now: datetime,
        spent: Mapping[str, Any],
        ordered_at: datetime | None = None,
        hold_lifted: bool = False,
    ):
        self.policy = policy
        self.order = order
        self.directory = directory
        self.now = now
        #: when the order was submitted: its date is the order's date (default ``now``)
        self.ordered_at = ordered_at or now
        self.spent = spent
        self.trace: list[TraceEntry] = []
        self.reasons: list[Reason] = []
        self.blocked = False
        #: the buyer's company's approver context (approvers.buyer_company), once looked up
        self.company_context: CompanyContext | None = None
        #: the memo entry of the first pending step, for its notification (see steps.py)
        self.first_step: list | None = None
        #: the merchant lifted a hold: ``hold_orders`` no longer holds this order
        self.hold_lifted = hold_lifted
        self._assignments = None
        self._context = None
        self._order_date = None

    def run(self) -> Decision:
        """The decision, step by step; each check either passes or adds a reason."""
        p, order = self.policy, self.order
        self.account, self.membership = resolve_buyer(self.directory, order)
        m = self.membership
        self.company = m.company_id
        self.role = p.roles.get(m.role)
        # an invited (not yet accepted) member's orders have no relation to the group
        self.group = m.group if m.active else None
        own = buyer_settings_for(self, m)
        self.settings = own.settings
        currency = order.currency or p.currency
        priced = currency
        if currency != p.currency and currency in p.conversion:
            # every comparison uses the total in the rule set's currency
            priced = p.currency
            self.order = self.converted(currency)
        elif currency == p.currency and p.data.get("currencies"):
            self.trace.append(
                TraceEntry(
                    "currencies",
                    "passed",
                    f"priced in {currency} with the rule set's {currency} amounts",
                )
            )
        facts_exceeded: set[str] = set()

        blocking_checks(self, priced, own)
        if not self.blocked:
            facts_exceeded = limit_checks(self)
        facts = Facts(
            self.order.total,
            currency,
            order.type,
            order.lines,
            order.buyer,
            m.role,
            self.group,
            m.attributes,
            frozenset(facts_exceeded),
            ordered_at=self.ordered_at,
            zone=p.time_zone,
            # not the bound method: the trace keeps these facts, and facts that point back at
            # this evaluation would make every decision a reference cycle, freed only by the
            # garbage collector's passes instead of at once
            assignments_of=self._buyer_assignments(),
        )
        if p.deny:
            deny(self, facts)
        blocked = self.blocked
        steps: list[Step] = []
        outcome = "blocked" if blocked else "approved"
        if not blocked:
            if self.settings["hold_orders"] and self.hold_lifted:
                self.trace.append(
                    TraceEntry(
                        "settings.hold_orders",
                        "passed",
                        "hold_orders is on; the merchant lifted "
                        "the hold, so the order goes on as the rules decide",
                    )
                )
            if self.settings["hold_orders"] and not self.hold_lifted:
                outcome = "held"
                self.reasons.append(
                    Reason(
                        "orders_held",
                        "orders of this account are held until the merchant lets them proceed",
                    )
                )
                self.trace.append(
                    TraceEntry("settings.hold_orders", "matched", "hold_orders is on")
                )
            elif order.type == "bulk" and self.group and p.bulk_orders == "bulk_settings":
                self.trace.append(
                    TraceEntry(
                        "bulk_orders",
                        "matched",
                        "bulk_settings: placed as a regular order, approval steps do not apply",
                    )
                )
            elif p.bypass and (bypass := bypass_rule(self, facts)) is not None:
                self.reasons.append(
                    Reason(
                        "bypassed",
                        f"auto-approved by bypass rule {bypass.name}",
                        {"rule": bypass.name},
                    )
                )
            else:
                steps = match_steps(self, facts)
                if steps:
                    outcome = "pending"
                    self.reasons.append(
                        Reason(
                            "approval_required",
                            f"approval required: {', '.join(s.name for s in steps)}",
                        )
                    )
                    for step in steps:
                        if len(step.approvers) < step.required:
                            self.reasons.append(
                                Reason(
                                    "insufficient_approvers",
                                    f"step {step.name} needs {step.required} approval(s) but only "
                                    f"{len(step.approvers)} account(s) may approve",
                                    {"step": step.name},
                                )
                            )
        payer = None if outcome == "blocked" else self.payer()
        expires_at = (
            request_expiry(
                self.now,
                p.expiry,
                p.expiry_deadline,
                [p.step_deadlines.get(step.base) for step in steps] if p.step_deadlines else (),
            )
            if outcome == "pending"
            else None
        )
        role_label = p.role_label(m.role)
        buyer = {
            "account": order.buyer,
            "name": self.account.name,
            "company": m.company_id,
            "role": m.role,
            "role_label": role_label,
            "group": self.group,
            # whether the approvers of this order may be e-mailed (later steps, reminders)
            "email_to_approvers": approvers_emailed(p, self.settings, self.account),
        }
        return Decision(
            outcome=outcome,
            reasons=tuple(self.reasons),
            payer=payer,
            steps=tuple(steps),
            expires_at=expires_at,
            notifications=notifications(self, outcome, steps),
            ruleset=p._ruleset_ref,
            buyer=MappingProxyType(buyer),
            # the decision states the currency it priced the order in, given or not
            order=order
            if order.currency
            else Order(
                order.buyer,
                order.total,
                order.id,
                order.company,
                currency,
                order.type,
                order.lines,
                order.manual_ship_to,
                order.requested_date,
                order.cost_centre,
                order.payer,
            ),
            trace=tuple(self.trace),
        )

    def converted(self, currency: str) -> Order:
        """The order with its total in the rule set's currency (``conversion``), the conversion
        stated."""
        p, order = self.policy, self.order
        rate = p.conversion[currency]
        total = to_cents(order.total * rate)
        message = (
            f"{format_amount(order.total)} {currency} converted to {total} {p.currency} at "
            f"{format_amount(rate)}"
        )
        self.reasons.append(
            Reason(
                "currency_converted",
                message,
                {
                    "currency": currency,
                    "rate": format_amount(rate),
                    "total": format_amount(total),
                    "priced_in": p.currency,
                },
            )
        )
        self.trace.append(TraceEntry(f"conversion.{currency}", "passed", message))
        return Order(
            order.buyer,
            total,
            order.id,
            order.company,
            p.currency,
            order.type,
            order.lines,
            order.manual_ship_to,
            order.requested_date,
            order.cost_centre,
            order.payer,
        )

    def block(self, code: str, message: str, rule: str, details: Mapping | None = None) -> None:
        """Block the order with a reason, and say so in the trace."""
        self.blocked = True
        self.reasons.append(Reason(code, message, details))
        self.trace.append(TraceEntry(rule, "failed", message))

    def order_date(self):
        """The order's date: the date of its submission in the rule set's ``time_zone``."""
        if self._order_date is None:
            self._order_date = local_date(self.ordered_at, self.policy.time_zone)
        return self._order_date

    def context(self) -> EvaluationContext:
        """This policy's context for this directory, created on first use."""
        ctx = self._context
        if ctx is None:
            pools = self.policy._pools
            ctx = pools.get(self.directory)
            if ctx is None:
                ctx = pools.setdefault(self.directory, EvaluationContext())
            self._context = ctx
        return ctx

    def _buyer_assignments(self) -> BuyerAssignments:
        if self._assignments is None:
            self._assignments = BuyerAssignments(self.directory, self.order.buyer, self.company)
        return self._assignments

    def buyer_assignments(self):
        """The buyer's assignments in its company, read once."""
        return self._buyer_assignments()()

    def payer(self) -> dict[str, str]:
        """Who pays: the buyer or its company, by the ``payer`` setting (a bulk order may say)."""
        order = self.order
        if (
            order.type == "bulk"
            and self.group
            and self.policy.bulk_orders == "bulk_settings"
            and order.payer
        ):
            kind = order.payer
        else:
            kind = self.settings["payer"]
        if kind == "company":
            return {"kind": "company", "id": self.company}
        return {"kind": "buyer", "id": order.buyer}
