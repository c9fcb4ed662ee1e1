"""What evaluation takes and gives: the :class:`Order` in, the :class:`Decision` out.

Plain immutable values with their JSON forms (``from_dict`` / ``as_dict``); the
trace entries render their explanations only when a decision is serialised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..errors import OrderError
from .conditions import Facts, Line, render_explanation
from .durations import isoformat
from .money import CURRENCIES, format_amount, parse_amount

if TYPE_CHECKING:  # annotations only: compile imports this module
    from .compile import CompiledStep

ORDER_TYPES = ("regular", "bulk", "quote", "subscription")
#: who may pay for an order
PAYERS = ("buyer", "company")


# ------------------------------------------------------------------ orders


@dataclass(frozen=True, slots=True)
class Order:
    """An order as the engine sees it.  Build it with :meth:`from_dict`."""

    buyer: str
    total: Decimal
    id: str | None = None
    company: str | None = None
    currency: str | None = None
    type: str = "regular"
    lines: tuple[Line, ...] = ()
    manual_ship_to: bool = False
    requested_date: date | None = None
    cost_centre: str | None = None
    payer: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Order:
        """Parse the storefront's JSON form (``schemas/order.schema.json``), with clear errors."""
        if not isinstance(data, Mapping):
            raise OrderError("invalid_order", "the order must be a JSON object")
        unknown = set(data) - ORDER_KEYS
        if unknown:
            key = sorted(unknown)[0]
            raise OrderError(
                "unknown_key",
                f"unknown order field {key!r}; allowed: {', '.join(sorted(ORDER_KEYS))}",
                path=f"order.{key}",
            )
        buyer = data.get("buyer")
        if not isinstance(buyer, str) or not buyer:
            raise OrderError(
                "missing_buyer", "order.buyer must name the ordering account", path="order.buyer"
            )
        if "total" not in data:
            raise OrderError("missing_total", "order.total is required", path="order.total")
        total = parse_amount(data["total"], "order.total")
        currency = data.get("currency")
        if currency is not None and (not isinstance(currency, str) or currency not in CURRENCIES):
            raise OrderError(
                "unknown_currency",
                f"order.currency {str(currency)[:10]!r} is not an ISO 4217 code this service knows",
                path="order.currency",
            )
        order_type = data.get("type", "regular")
        if order_type not in ORDER_TYPES:
            raise OrderError(
                "invalid_order_type",
                f"order.type must be one of {', '.join(ORDER_TYPES)}",
                path="order.type",
            )
        lines = []
        raw_lines = data.get("lines") or []
        if not isinstance(raw_lines, list):
            raise OrderError("invalid_lines", "order.lines must be a list", path="order.lines")
        for index, raw in enumerate(raw_lines):
            where = f"order.lines[{index}]"
            if not isinstance(raw, Mapping) or not isinstance(raw.get("sku"), str):
                raise OrderError(
                    "invalid_line", f"{where} must be an object with a sku", path=where
                )
            quantity = parse_amount(raw.get("quantity", 1), f"{where}.quantity")
            if raw.get("price") is not None:
                # not used by the rules yet, but an order with a price of -10 is no order
                parse_amount(raw["price"], f"{where}.price")
            category = raw.get("category")
            lines.append(
                Line(raw["sku"], category if isinstance(category, str) else None, quantity)
            )
        ship_to = data.get("ship_to") or {}
        if not isinstance(ship_to, Mapping):
            raise OrderError(
                "invalid_ship_to", "order.ship_to must be an object", path="order.ship_to"
            )
        requested = data.get("requested_date")
        if requested is not None:
            try:
                requested = date.fromisoformat(requested)
            except (TypeError, ValueError):
                raise OrderError(
                    "invalid_date",
                    "order.requested_date must be a date like 2026-12-24",
                    path="order.requested_date",
                ) from None
        for key in ("id", "company", "cost_centre"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise OrderError("wrong_type", f"order.{key} must be a string", path=f"order.{key}")
        payer = data.get("payer")
        if payer is not None and payer not in PAYERS:
            raise OrderError(
                "invalid_payer", "order.payer must be buyer or company", path="order.payer"
            )
        return cls(
            buyer=buyer,
            total=total,
            id=data.get("id"),
            company=data.get("company"),
            currency=currency,
            type=order_type,
            lines=tuple(lines),
            manual_ship_to=bool(ship_to.get("manual", False)),
            requested_date=requested,
            cost_centre=data.get("cost_centre"),
            payer=payer,
        )


#: the fields an order may carry (the API document's ``Order`` schema names the same)
ORDER_KEYS = frozenset(
    [
        "id",
        "buyer",
        "company",
        "total",
        "currency",
        "type",
        "lines",
        "ship_to",
        "requested_date",
        "cost_centre",
        "payer",
        "attributes",
    ]
)


# --------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an order has its outcome: a stable ``code``, a message for people, optional details."""

    code: str
    message: str
    details: Mapping[str, Any] | None = None

    def as_dict(self) -> dict:
        data = {"code": self.code, "message": self.message}
        if self.details:
            data["details"] = dict(self.details)
        return data


@dataclass(frozen=True, slots=True)
class Approver:
    """An eligible approver and why it is eligible."""

    account: str
    name: str
    role: str
    role_label: str
    why: tuple[str, ...]
    email: bool
    #: the accounts this one stands in for; set only when it is eligible as a delegate alone
    delegate_of: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        data = {
            "account": self.account,
            "name": self.name,
            "role": self.role,
            "role_label": self.role_label,
            "why": list(self.why),
        }
        if self.delegate_of:
            data["delegate_of"] = list(self.delegate_of)
        return data


@dataclass(frozen=True, slots=True)
class Step:
    """An approval step the order waits for: how many approvals, from whom, and its condition."""

    name: str
    required: int
    approvers: tuple[Approver, ...]
    condition: str
    #: the rule set's step this one comes from (``tiers`` for ``tiers@1000``, ``dual`` for
    #: ``dual/1``)
    base: str = ""
    #: for a sub-step of an ``all_of`` step (``<step>/<n>``): that step's name
    group_of: str = ""

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "required": self.required,
            "condition": self.condition,
            "approvers": [a.as_dict() for a in self.approvers],
        }


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who a notification goes to, and by which channel."""

    account: str | None
    channel: str  # email | inbox
    company: str | None = None

    def as_dict(self) -> dict:
        data = {"channel": self.channel}
        if self.account:
            data["account"] = self.account
        if self.company:
            data["company"] = self.company
        return data


@dataclass(frozen=True, slots=True)
class Notification:
    """An event (order_confirmation, approval_requested, ...) and its recipients."""

    event: str
    recipients: tuple[Recipient, ...]

    def as_dict(self) -> dict:
        return {"event": self.event, "recipients": [r.as_dict() for r in self.recipients]}


class TraceEntry:
    """One rule looked at: ``result`` is matched, not_matched, passed, failed, excluded or skipped.

    ``why`` is the explanation, or a callable that renders it (lazily, when
    the trace is serialised).  A plain slotted class rather than a frozen
    dataclass: a decision records ~20 of these, and frozen ``__init__`` costs
    a third of an evaluation.  Treat it as immutable.
    """

    __slots__ = ("rule", "result", "_why")

    def __init__(self, rule: str, result: str, why: str | Callable[[], str]):
        self.rule = rule
        self.result = result
        self._why = why

    @property
    def why(self) -> str | Callable[[], str]:
        return self._why

    def as_dict(self) -> dict:
        why = self.why
        return {"rule": self.rule, "result": self.result, "why": why() if callable(why) else why}

    def _key(self):
        return (self.rule, self.result, self.why)

    def __eq__(self, other):
        if not isinstance(other, TraceEntry):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return f"TraceEntry(rule={self.rule!r}, result={self.result!r}, why={self.why!r})"


class _StepTrace(TraceEntry):
    """A step's matched/not_matched entry: the explanation is rendered from the step's parts on
    demand.

    Two stores per entry: the rule comes from the step, the result from the subclass.
    """

    __slots__ = ("facts",)

    def __init__(self, step: CompiledStep, facts: Facts):
        self._why = step
        self.facts = facts

    @property
    def rule(self) -> str:
        return self._why.rule

    @property
    def why(self) -> Callable[[], str]:
        return self._render

    def _render(self) -> str:
        return render_explanation(self._why.explain_parts(), self.facts, self.result == "matched")

    def as_dict(self) -> dict:
        result = self.result
        return {
            "rule": self._why.rule,
            "result": result,
            "why": render_explanation(self._why.explain_parts(), self.facts, result == "matched"),
        }


class StepMatched(_StepTrace):
    """A step whose condition holds for the order."""

    __slots__ = ()
    result = "matched"


class StepNotMatched(_StepTrace):
    """A step whose condition does not hold for the order."""

    __slots__ = ()
    result = "not_matched"


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens to an order, and why.  ``as_dict`` is the JSON the API returns."""

    outcome: str
    reasons: tuple[Reason, ...]
    payer: Mapping[str, str] | None
    steps: tuple[Step, ...]
    expires_at: datetime | None
    notifications: tuple[Notification, ...]
    ruleset: Mapping[str, Any]
    buyer: Mapping[str, Any]
    order: Order
    trace: tuple[TraceEntry, ...]

    def reason_codes(self) -> list[str]:
        """The codes of the reasons, in order."""
        return [r.code for r in self.reasons]

    def as_dict(self, trace: bool = True) -> dict:
        data = {
            "outcome": self.outcome,
            "reasons": [r.as_dict() for r in self.reasons],
            "payer": dict(self.payer) if self.payer else None,
            "steps": [s.as_dict() for s in self.steps],
            "expires_at": isoformat(self.expires_at) if self.expires_at else None,
            "notifications": [n.as_dict() for n in self.notifications],
            "ruleset": dict(self.ruleset),
            "buyer": dict(self.buyer),
            "order": {
                "id": self.order.id,
                "total": format_amount(self.order.total),
                "currency": self.order.currency,
                "type": self.order.type,
            },
        }
        if trace:
            data["trace"] = [t.as_dict() for t in self.trace]
        return data


def priced_total(decision: Mapping[str, Any]) -> tuple[Decimal, str]:
    """(total, currency) the order of a decision (its JSON form) was compared in.

    The order's own for a priced currency; the converted total and the rule
    set's currency when ``conversion`` applied.  Budgets draw this amount.
    """
    for reason in decision.get("reasons") or ():
        if reason.get("code") == "currency_converted":
            details = reason["details"]
            return Decimal(details["total"]), details["priced_in"]
    order = decision["order"]
    return Decimal(order["total"]), order["currency"]
