"""Compile a validated rule set into an immutable Policy, and evaluate orders with it.

``Policy.evaluate`` is a pure function of (policy, order, directory facts,
now, budgets spent): no I/O, no clock, no randomness, so the same input and
version always give the same :class:`Decision`.  Conditions are compiled to
closures once; the trace records what was decided and renders its
explanations only when the decision is serialised.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from ..errors import OrderError
from .check import ValidatedRuleSet
from .conditions import Facts, Line, compile_predicates, describe, explain_parts, render_explanation
from .currencies import (
    MONEY_SETTINGS,
    DirectoryInCurrency,
    base_currency,
    has_per_currency_amounts,
    in_currency,
    priced_currencies,
)
from .directory import MAX_DELEGATION_DEPTH, Account, Directory, Membership
from .durations import isoformat, parse_duration, parse_instant
from .money import CURRENCIES, format_amount, parse_amount, to_cents

ORDER_TYPES = ("regular", "bulk", "quote", "subscription")
OUTCOMES = ("approved", "pending", "blocked", "held")

#: documented defaults of every membership setting (docs/ruleset.md)
DEFAULT_SETTINGS: Mapping[str, Any] = MappingProxyType(
    {
        "may_order": True,
        "may_approve": True,
        "max_order_total": None,
        "no_approval_below": Decimal(0),
        "approval_limit": None,
        "email": True,
        "hold_orders": False,
        "restricted_skus": (),
        "restricted_categories": (),
        "favourites_only": False,
        "favourites": (),
        "allow_future_ship_dates": True,
        "allow_manual_ship_to": True,
        "summary_invoicing": False,
        "cost_centres": (),
        "payer": "buyer",
    }
)


def text_hash(text: str) -> str:
    """Content hash of a rule set's verbatim text: the identity of a version."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def data_hash(data: Any) -> str:
    """Hash of plain data in canonical JSON: equal for texts that differ only in layout or comments."""
    canonical = json.dumps(
        data, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _normal_settings(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    out = {}
    for key, value in (raw or {}).items():
        if key in MONEY_SETTINGS and value is not None:
            value = parse_amount(value, key)
        elif isinstance(value, list):
            value = tuple(value)
        out[key] = value
    return out


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
        unknown = set(data) - _ORDER_KEYS
        if unknown:
            key = sorted(unknown)[0]
            raise OrderError(
                "unknown_key",
                f"unknown order field {key!r}; allowed: {', '.join(sorted(_ORDER_KEYS))}",
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
        if payer is not None and payer not in ("buyer", "company"):
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


_ORDER_KEYS = frozenset(
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
    name: str
    required: int
    approvers: tuple[Approver, ...]
    condition: str

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "required": self.required,
            "condition": self.condition,
            "approvers": [a.as_dict() for a in self.approvers],
        }


@dataclass(frozen=True, slots=True)
class Recipient:
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
    """A step's matched/not_matched entry: the explanation is rendered from the step's parts on demand.

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


class _Matched(_StepTrace):
    __slots__ = ()
    result = "matched"


class _NotMatched(_StepTrace):
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


# ------------------------------------------------------------ compilation


@dataclass(frozen=True, slots=True)
class Visibility:
    """What a member may see besides its own orders (see :meth:`Policy.visibility_for`)."""

    all_group_orders: bool
    own_group: str | None
    eligible: bool
    whole_company: bool


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    label: str
    permissions: frozenset[str]
    settings: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Selector:
    roles: frozenset[str] | None
    relation: str
    accounts: frozenset[str] | None
    attributes: tuple[tuple[str, frozenset], ...]


@dataclass(frozen=True, slots=True)
class CompiledStep:
    name: str
    kind: str
    condition: Mapping[str, Any] | None
    condition_text: str
    #: generated code (see conditions.compile_predicates): takes a conditions.Facts
    predicate: Callable[[Facts], bool]
    selectors: tuple[Selector, ...]
    required: int
    self_approval: bool
    scope: str
    #: ``approval.steps.<name>``: the step's trace rule
    rule: str = ""
    #: whether a selector uses the buyer's assignments (relation assigned/unassigned)
    uses_assignments: bool = False
    #: ``parent_company``: with too few eligible approvers, go up the company hierarchy
    fallback: str = "none"
    #: for a sub-step of an ``all_of`` step (``<step>/<n>``): the step's own name
    group_of: str = ""
    #: ``approvers: {all_of: [...]}``: one sub-step per group
    subs: tuple = ()
    #: lazily built, per-step: what ``explain`` needs (see :meth:`explain_parts`)
    _lazy: dict = field(default_factory=dict, compare=False, repr=False)

    def explain_parts(self) -> tuple:
        parts = self._lazy.get("explain")
        if parts is None:
            parts = self._lazy["explain"] = explain_parts(self.condition)
        return parts


@dataclass(frozen=True, slots=True)
class PrecedenceRule:
    """A top-level ``bypass`` (auto-approve) or ``deny`` (block) rule."""

    name: str
    condition: Mapping[str, Any] | None
    predicate: Callable[[Facts], bool]
    roles: frozenset[str] | None = None
    reason: str = ""


def _selectors(any_of) -> list[Selector]:
    selectors = []
    for sel in any_of or ():
        role = sel.get("role")
        selectors.append(
            Selector(
                roles=frozenset(role if isinstance(role, list) else [role]) if role else None,
                relation=sel.get("relation", "company"),
                accounts=frozenset(sel["accounts"]) if sel.get("accounts") else None,
                attributes=tuple(
                    (k, frozenset(v if isinstance(v, list) else [v]))
                    for k, v in (sel.get("attributes") or {}).items()
                ),
            )
        )
    return selectors


def _precedence_rules(specs, kind: str) -> tuple[PrecedenceRule, ...]:
    specs = list(specs or ())
    predicates = compile_predicates([spec.get("when") for spec in specs])
    return tuple(
        PrecedenceRule(
            name=spec["name"],
            condition=spec.get("when"),
            predicate=predicate,
            roles=frozenset(spec["roles"]) if spec.get("roles") else None,
            reason=spec.get("reason", ""),
        )
        for spec, predicate in zip(specs, predicates)
    )


@dataclass(frozen=True, slots=True)
class Budget:
    name: str
    scope: str
    period: str
    amount: Decimal
    on_exceed: str


def compile_policy(checked: ValidatedRuleSet, version: int | None = None) -> Policy:
    """Turn a validated rule set into a runnable, immutable :class:`Policy`.

    A rule set that prices several currencies (``currencies``, per-currency
    amounts) compiles into its own currency's policy holding one variant per
    other priced currency, each with plain amounts (see ``approvalrules.engine.currencies``).
    """
    data = checked.resolved
    priced = priced_currencies(data)
    if len(priced) == 1 and not has_per_currency_amounts(data):
        return _compile(checked, data, version)
    variants = {
        code: _compile(checked, in_currency(data, code), version, source=data)
        for code in priced[1:]
    }
    return _compile(checked, in_currency(data, priced[0]), version, source=data, variants=variants)


def _compile(
    checked: ValidatedRuleSet,
    data: dict,
    version: int | None,
    *,
    source: dict | None = None,
    variants: Mapping | None = None,
) -> Policy:
    """One currency's policy from ``data`` (its amounts plain); ``source`` is the rule set as written."""
    roles = {
        name: Role(
            name,
            spec["label"],
            frozenset(spec.get("permissions") or ()),
            MappingProxyType(_normal_settings(spec.get("settings"))),
        )
        for name, spec in (data.get("roles") or {}).items()
    }
    groups = {
        gid: MappingProxyType(_normal_settings((spec or {}).get("settings")))
        for gid, spec in (data.get("groups") or {}).items()
    }
    group_labels = {
        gid: (spec or {}).get("label", gid) for gid, spec in (data.get("groups") or {}).items()
    }
    approval = data.get("approval") or {}
    default_self = approval.get("self_approval", False)
    default_scope = approval.get("scope", "universal")
    steps = []
    step_specs = approval.get("steps") or ()
    predicates = compile_predicates([spec.get("when") for spec in step_specs])
    for spec, predicate in zip(step_specs, predicates):
        approvers_spec = spec.get("approvers") or {}
        selectors = _selectors(approvers_spec.get("any_of"))
        kind = spec.get("kind", "standard")
        if kind == "assignment_tiers" and not selectors:
            selectors.append(Selector(None, "assigned", None, ()))
        steps.append(
            CompiledStep(
                name=spec["name"],
                kind=kind,
                condition=spec.get("when"),
                condition_text=describe(spec.get("when")),
                predicate=predicate,
                selectors=tuple(selectors),
                required=spec.get("required", 1),
                self_approval=spec.get("self_approval", default_self),
                scope=spec.get("scope", default_scope),
                rule=f"approval.steps.{spec['name']}",
                uses_assignments=any(
                    sel.relation in ("assigned", "unassigned") for sel in selectors
                ),
                fallback=spec.get("fallback", "none"),
            )
        )
        if approvers_spec.get("all_of"):
            # one sub-step per group: one approval (``required``) from each
            step = steps.pop()
            subs = []
            for number, group in enumerate(approvers_spec["all_of"], start=1):
                group_selectors = tuple(_selectors(group.get("any_of")))
                subs.append(
                    CompiledStep(
                        name=f"{step.name}/{number}",
                        kind=step.kind,
                        condition=step.condition,
                        condition_text=step.condition_text,
                        predicate=predicate,
                        selectors=group_selectors,
                        required=step.required,
                        self_approval=step.self_approval,
                        scope=step.scope,
                        rule=step.rule,
                        uses_assignments=any(
                            sel.relation in ("assigned", "unassigned") for sel in group_selectors
                        ),
                        fallback=step.fallback,
                        group_of=step.name,
                    )
                )
            steps.append(
                CompiledStep(
                    name=step.name,
                    kind=step.kind,
                    condition=step.condition,
                    condition_text=step.condition_text,
                    predicate=predicate,
                    selectors=(),
                    required=step.required,
                    self_approval=step.self_approval,
                    scope=step.scope,
                    rule=step.rule,
                    uses_assignments=any(sub.uses_assignments for sub in subs),
                    fallback=step.fallback,
                    subs=tuple(subs),
                )
            )
    limits = data.get("limits") or {}
    order_limit = limits.get("order_limit")
    budgets = tuple(
        Budget(
            b["name"],
            b.get("scope", "company"),
            b["period"],
            parse_amount(b["amount"], "amount"),
            b.get("on_exceed", "require_approval"),
        )
        for b in limits.get("budgets") or ()
    )
    expiry = approval.get("expiry")
    return Policy(
        name=checked.name,
        version=version,
        text_hash=checked.content_hash,
        hash=data_hash(
            {
                k: v
                for k, v in (source if source is not None else data).items()
                if k not in ("tests", "description")
            }
        ),
        currency=base_currency(data),
        roles=MappingProxyType(roles),
        settings=MappingProxyType({**DEFAULT_SETTINGS, **_normal_settings(data.get("settings"))}),
        groups=MappingProxyType(groups),
        group_labels=MappingProxyType(group_labels),
        steps=tuple(steps),
        max_order_total=parse_amount(limits["max_order_total"], "max_order_total")
        if limits.get("max_order_total") is not None
        else None,
        order_limit=(
            parse_amount(order_limit["amount"], "amount"),
            order_limit.get("on_exceed", "require_approval"),
        )
        if order_limit
        else None,
        budgets=budgets,
        expiry=parse_duration(expiry["after"]) if expiry else None,
        reversal_allowed=(approval.get("reversal") or {}).get("allowed", True),
        reminders=MappingProxyType(dict(approval.get("reminders") or {})),
        bulk_orders=data.get("bulk_orders", "group_settings"),
        visibility=MappingProxyType(
            {
                "masters_see_group_orders": True,
                "approvers_see": "eligible",
                "viewer_roles": (),
                **(data.get("visibility") or {}),
            }
        ),
        master_confirmation=(data.get("notifications") or {}).get("master_confirmation", False),
        approval_email=(data.get("notifications") or {}).get("approval_email", "approver_flag"),
        conversion=MappingProxyType(
            {
                code: parse_amount(rate, f"conversion.{code}")
                for code, rate in (data.get("conversion") or {}).items()
            }
        ),
        bypass=_precedence_rules(data.get("bypass"), "bypass"),
        deny=_precedence_rules(data.get("deny"), "deny"),
        data=source if source is not None else data,
        variants=MappingProxyType(dict(variants or {})),
    )


class _Candidate:
    """An account that may approve in a company, with what selection looks at resolved once."""

    __slots__ = (
        "membership",
        "account",
        "settings",
        "role",
        "account_id",
        "role_name",
        "group",
        "master",
        "attributes",
        "limit",
        "email",
    )

    def __init__(
        self, membership: Membership, account: Account, settings: Mapping[str, Any], role: Role
    ):
        self.membership = membership
        self.account = account
        self.settings = settings
        self.role = role
        self.account_id = account.id
        self.role_name = membership.role
        self.group = membership.group
        self.master = membership.master
        self.attributes = membership.attributes
        self.limit = settings["approval_limit"]
        self.email = settings["email"] and account.email_enabled and bool(account.email)


class _BuyerSettings:
    """A membership's effective settings, with the sets the blocking checks test frozen once."""

    __slots__ = (
        "membership",
        "settings",
        "restricted_skus",
        "restricted_categories",
        "favourites",
        "scan_lines",
    )

    def __init__(self, membership: Membership, settings: dict):
        self.membership = membership
        self.settings = settings
        self.restricted_skus = frozenset(settings["restricted_skus"])
        self.restricted_categories = frozenset(settings["restricted_categories"])
        self.favourites = frozenset(settings["favourites"])
        self.scan_lines = bool(
            self.restricted_skus or self.restricted_categories or settings["favourites_only"]
        )


class _CompanyContext:
    """Per (policy, directory, company): the approver pool and remembered approver selections."""

    __slots__ = ("pool", "limits", "memo", "buyer_limits")

    #: remembered selections per company before the memo starts over
    MEMO_SIZE = 50_000

    def __init__(self, pool: tuple, limits: list):
        self.pool = pool
        #: every amount a selection compares the total with: the candidates'
        #: approval limits and the limits of assignments to them
        self.limits = limits
        self.memo: dict = {}
        #: per buyer: ``limits`` and the limits of the buyer's assignments
        self.buyer_limits: dict = {}


class _Context:
    """Per (policy, directory): buyers' effective settings and per-company contexts.

    Directories are read-only snapshots (a SQL one lives for one request), so
    an entry never goes stale; the context dies with its directory.
    """

    __slots__ = ("buyers", "companies")

    def __init__(self):
        self.buyers: dict = {}
        self.companies: dict = {}


class Policy:
    """A compiled rule set.  Immutable; safe to share between threads and requests."""

    __slots__ = (
        "name",
        "version",
        "text_hash",
        "hash",
        "currency",
        "roles",
        "settings",
        "groups",
        "group_labels",
        "steps",
        "max_order_total",
        "order_limit",
        "budgets",
        "expiry",
        "reversal_allowed",
        "reminders",
        "bulk_orders",
        "visibility",
        "master_confirmation",
        "approval_email",
        "conversion",
        "bypass",
        "deny",
        "data",
        "variants",
        "_ruleset_ref",
        "_pools",
        "_plan",
        "_directory_views",
    )

    def __init__(self, **fields):
        for key, value in fields.items():
            object.__setattr__(self, key, value)
        object.__setattr__(
            self,
            "_ruleset_ref",
            MappingProxyType({"name": self.name, "version": self.version, "hash": self.text_hash}),
        )
        # approver candidates per (directory, company): directories are
        # read-only snapshots (a SQL one lives for one request), so an entry
        # never goes stale, and it dies with its directory
        object.__setattr__(self, "_pools", weakref.WeakKeyDictionary())
        # per directory: its view in this variant's currency (DirectoryInCurrency)
        object.__setattr__(self, "_directory_views", weakref.WeakKeyDictionary())
        # what evaluation walks per step, unpacked once
        object.__setattr__(
            self,
            "_plan",
            tuple(
                (index, step.predicate, step, step.kind == "assignment_tiers")
                for index, step in enumerate(self.steps)
            ),
        )

    def __setattr__(self, key, value):
        raise AttributeError("a Policy is immutable")

    def with_version(self, version: int | None) -> Policy:
        """The same policy, labelled with a published version number."""
        fields = {
            k: getattr(self, k)
            for k in self.__slots__
            if k not in ("_ruleset_ref", "_pools", "_plan", "_directory_views")
        }
        fields["version"] = version
        fields["variants"] = MappingProxyType(
            {code: variant.with_version(version) for code, variant in self.variants.items()}
        )
        return Policy(**fields)

    @property
    def priced_currencies(self) -> tuple[str, ...]:
        """The currencies this policy prices natively, its own first."""
        return (self.currency,) + tuple(self.variants)

    def pricing_currency(self, currency: str | None) -> str | None:
        """The currency an order in ``currency`` is compared in: its own when priced natively,
        the rule set's when the conversion table has a rate for it, else None (refused)."""
        if currency is None or currency == self.currency or currency in self.variants:
            return currency or self.currency
        return self.currency if currency in self.conversion else None

    # ------------------------------------------------------------ settings

    def effective_settings(self, membership: Membership) -> dict[str, Any]:
        """Rule set -> role -> group -> membership: the last one that sets a key wins."""
        settings = dict(self.settings)
        role = self.roles.get(membership.role)
        if role is not None and role.settings:
            settings.update(role.settings)
        if membership.group and membership.active:
            group = self.groups.get(membership.group)
            if group:
                settings.update(group)
        if membership.settings:
            settings.update(_normal_settings(membership.settings))
        return settings

    def role_label(self, role: str | None) -> str:
        spec = self.roles.get(role) if role else None
        return spec.label if spec else (role or "")

    def visibility_for(self, membership: Membership) -> Visibility:
        """Which of its company's orders a member sees (ACCEPTANCE A10), from ``visibility``.

        Everyone sees their own orders; masters see every group order when
        ``masters_see_group_orders``; members whose role is in ``viewer_roles``
        see their group's orders without approving; approvers see the orders
        they may approve, or the whole company's with ``approvers_see: company``.
        """
        role = self.roles.get(membership.role)
        permissions = role.permissions if role else frozenset()
        active = membership.active
        approver = active and "approve_orders" in permissions
        return Visibility(
            all_group_orders=active
            and membership.master
            and bool(self.visibility["masters_see_group_orders"]),
            own_group=membership.group
            if active and membership.role in self.visibility["viewer_roles"]
            else None,
            eligible=approver,
            whole_company=approver and self.visibility["approvers_see"] == "company",
        )

    # ----------------------------------------------------------- evaluate

    def evaluate(
        self,
        order: Order | Mapping[str, Any],
        directory: Directory,
        *,
        now: datetime | str | None = None,
        budgets_spent: Mapping[str, Any] | None = None,
    ) -> Decision:
        """Decide what happens to ``order``.  Pure: every input is an argument.

        ``now`` defaults to a fixed instant only in the sense that the caller
        must pass the clock; the API passes the request time.  ``budgets_spent``
        maps a budget name to what the current period has already drawn for
        this order's scope.
        """
        if not isinstance(order, Order):
            order = Order.from_dict(order)
        if now is None:
            now = datetime.now(UTC)
        elif isinstance(now, str):
            now = parse_instant(now)
        if order.currency in self.variants:
            # priced natively: the variant's own amounts, the directory's converted
            variant = self.variants[order.currency]
            # ``directory`` stays referenced here: the view holds it only weakly
            view = variant._directory_view(
                directory, self.currency, self.conversion.get(order.currency)
            )
            return _Evaluation(variant, order, view, now, budgets_spent or {}).run()
        return _Evaluation(self, order, directory, now, budgets_spent or {}).run()

    def _directory_view(self, directory: Directory, base: str, rate: Decimal | None) -> Directory:
        view = self._directory_views.get(directory)
        if view is None:
            view = self._directory_views[directory] = DirectoryInCurrency(
                directory, base, self.currency, rate
            )
        return view


class _Evaluation:
    """One evaluation's working state; discarded when the Decision is built."""

    __slots__ = (
        "policy",
        "order",
        "directory",
        "now",
        "spent",
        "trace",
        "reasons",
        "account",
        "membership",
        "settings",
        "role",
        "group",
        "company",
        "_assignments",
        "blocked",
        "_context",
        "_company_context",
        "_first",
    )

    def __init__(
        self,
        policy: Policy,
        order: Order,
        directory: Directory,
        now: datetime,
        spent: Mapping[str, Any],
    ):
        self.policy = policy
        self.order = order
        self.directory = directory
        self.now = now
        self.spent = spent
        self.trace: list[TraceEntry] = []
        self.reasons: list[Reason] = []
        self._assignments = None
        self.blocked = False
        self._context = None
        self._company_context = None
        self._first = None  # the memo entry of the first pending step, for its notification

    # the decision, step by step; each check either passes or adds a reason
    def run(self) -> Decision:
        p, order = self.policy, self.order
        self.account = self.directory.account(order.buyer)
        if self.account is None:
            raise OrderError(
                "unknown_buyer",
                f"buyer {order.buyer!r} is not an account of this tenant",
                path="order.buyer",
            )
        self.membership = self.directory.membership(order.buyer, order.company)
        if self.membership is None:
            if order.company:
                raise OrderError(
                    "not_a_member",
                    f"buyer {order.buyer!r} is not a member of company {order.company!r}",
                    path="order.company",
                )
            raise OrderError(
                "no_default_company",
                f"buyer {order.buyer!r} belongs to several companies and none is the default; name order.company",
                path="order.company",
            )
        m = self.membership
        self.company = m.company_id
        self.role = p.roles.get(m.role)
        # an invited (not yet accepted) member's orders have no relation to the group
        self.group = m.group if m.active else None
        buyer_settings = self._buyer_settings(m)
        self.settings = buyer_settings.settings
        currency = order.currency or p.currency
        priced = currency
        if currency != p.currency and currency in p.conversion:
            # every comparison uses the total in the rule set's currency
            priced = p.currency
            self.order = self._converted(currency)
        elif currency == p.currency and p.data.get("currencies"):
            self.trace.append(
                TraceEntry(
                    "currencies",
                    "passed",
                    f"priced in {currency} with the rule set's {currency} amounts",
                )
            )
        facts_exceeded: set[str] = set()

        self._blocking_checks(priced, buyer_settings)
        if not self.blocked:
            facts_exceeded = self._limit_checks()
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
        )
        if p.deny:
            self._deny(facts)
        blocked = self.blocked
        steps: list[Step] = []
        outcome = "blocked" if blocked else "approved"
        if not blocked:
            if self.settings["hold_orders"]:
                outcome = "held"
                self.reasons.append(
                    Reason(
                        "orders_held",
                        "orders of this account are held until the merchant releases them",
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
            elif p.bypass and (bypass := self._bypass(facts)) is not None:
                self.reasons.append(
                    Reason(
                        "bypassed",
                        f"auto-approved by bypass rule {bypass.name}",
                        {"rule": bypass.name},
                    )
                )
            else:
                steps = self._steps(facts)
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
                                    f"step {step.name} needs {step.required} approval(s) but only {len(step.approvers)} account(s) may approve",
                                    {"step": step.name},
                                )
                            )
        payer = None if outcome == "blocked" else self._payer()
        expires_at = self.now + p.expiry if outcome == "pending" and p.expiry else None
        role_label = p.role_label(m.role)
        buyer = {
            "account": order.buyer,
            "name": self.account.name,
            "company": m.company_id,
            "role": m.role,
            "role_label": role_label,
            "group": self.group,
        }
        return Decision(
            outcome=outcome,
            reasons=tuple(self.reasons),
            payer=payer,
            steps=tuple(steps),
            expires_at=expires_at,
            notifications=self._notifications(outcome, steps),
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

    def _converted(self, currency: str) -> Order:
        """The order with its total in the rule set's currency (``conversion``), the conversion stated."""
        p, order = self.policy, self.order
        rate = p.conversion[currency]
        total = to_cents(order.total * rate)
        message = f"{format_amount(order.total)} {currency} converted to {total} {p.currency} at {format_amount(rate)}"
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

    def _deny(self, facts: Facts) -> None:
        """Deny rules: each one that holds blocks the order with its own reason."""
        for rule in self.policy.deny:
            if rule.predicate(facts):
                self._block("denied", rule.reason, f"deny.{rule.name}", {"rule": rule.name})
            else:
                self.trace.append(
                    TraceEntry(
                        f"deny.{rule.name}",
                        "passed",
                        f"not denied: {describe(rule.condition)} does not hold",
                    )
                )

    def _bypass(self, facts: Facts) -> PrecedenceRule | None:
        """The first bypass rule that holds for the buyer's role and the order, or None."""
        role = self.membership.role
        for rule in self.policy.bypass:
            if rule.roles is not None and role not in rule.roles:
                self.trace.append(
                    TraceEntry(
                        f"bypass.{rule.name}",
                        "not_matched",
                        f"buyer role {role} is not one of {', '.join(sorted(rule.roles))}",
                    )
                )
            elif rule.predicate(facts):
                self.trace.append(
                    TraceEntry(
                        f"bypass.{rule.name}",
                        "matched",
                        f"{describe(rule.condition)}: auto-approved",
                    )
                )
                return rule
            else:
                self.trace.append(
                    TraceEntry(
                        f"bypass.{rule.name}",
                        "not_matched",
                        f"{describe(rule.condition)} does not hold",
                    )
                )
        return None

    def _block(self, code: str, message: str, rule: str, details: Mapping | None = None) -> None:
        self.blocked = True
        self.reasons.append(Reason(code, message, details))
        self.trace.append(TraceEntry(rule, "failed", message))

    def _buyer_settings(self, m: Membership) -> _BuyerSettings:
        """The buyer's effective settings, computed once per (policy, directory, membership)."""
        buyers = self._get_context().buyers
        key = (m.account_id, m.company_id)
        entry = buyers.get(key)
        if entry is None or entry.membership is not m:
            entry = buyers[key] = _BuyerSettings(m, self.policy.effective_settings(m))
        return entry

    def _get_context(self) -> _Context:
        ctx = self._context
        if ctx is None:
            pools = self.policy._pools
            ctx = pools.get(self.directory)
            if ctx is None:
                ctx = pools.setdefault(self.directory, _Context())
            self._context = ctx
        return ctx

    def _blocking_checks(self, currency: str, buyer_settings: _BuyerSettings) -> None:
        p, order, s = self.policy, self.order, self.settings
        if not self.account.active:
            self._block(
                "account_inactive", f"account {order.buyer} is deactivated", "account.active"
            )
        if self.membership.status != "active" and self.membership.status != "invited":
            self._block(
                "membership_inactive",
                f"{order.buyer}'s membership of {self.company} is {self.membership.status}",
                "membership.status",
            )
        if currency != p.currency:
            converted = sorted(code for code in p.conversion if code not in p.priced_currencies)
            converts = f" and converts {', '.join(converted)}" if converted else ""
            self._block(
                "currency_not_supported",
                f"the rule set prices orders in {', '.join(p.priced_currencies)}{converts}, not {currency}: its amounts cannot be compared with {currency}",
                "currency",
                {"currency": currency, "priced": list(p.priced_currencies), "converted": converted},
            )
        permitted = self.role is not None and "place_orders" in self.role.permissions
        if not permitted or not s["may_order"]:
            why = (
                f"role {self.membership.role!r} is not defined in rule set {p.name}"
                if self.role is None
                else f"{self.role.label} may not place orders"
                if not permitted
                else "this account may not order (may_order: false)"
            )
            self._block(
                "may_not_order",
                why,
                "roles.permissions.place_orders" if not permitted else "settings.may_order",
            )
        else:
            self.trace.append(
                TraceEntry(
                    "roles.permissions.place_orders",
                    "passed",
                    f"{self.role.label} may place orders",
                )
            )
        if order.type == "quote":
            self._block(
                "quote_not_approvable",
                "a quote cannot be submitted for approval; convert it to an order first",
                "order.type",
            )
        if order.type == "bulk" and self.group and p.bulk_orders == "exclude":
            self._block(
                "bulk_orders_excluded",
                f"bulk orders are not allowed for members of group {self.group}",
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
            self._block(
                "restricted_products",
                f"these lines may not be ordered: {names}",
                "settings.restricted_skus",
                {"lines": offending},
            )
        if (
            order.requested_date
            and order.requested_date > self.now.date()
            and not s["allow_future_ship_dates"]
        ):
            self._block(
                "future_ship_date_not_allowed",
                f"requested date {order.requested_date} is in the future and this account may not order for later",
                "settings.allow_future_ship_dates",
            )
        if order.manual_ship_to and not s["allow_manual_ship_to"]:
            self._block(
                "manual_ship_to_not_allowed",
                "this account may not enter a ship-to address by hand",
                "settings.allow_manual_ship_to",
            )
        if s["summary_invoicing"]:
            if not order.cost_centre:
                self._block(
                    "cost_centre_required",
                    f"summary invoicing needs a cost centre: one of {', '.join(s['cost_centres']) or '(none configured)'}",
                    "settings.summary_invoicing",
                )
            elif order.cost_centre not in s["cost_centres"]:
                self._block(
                    "unknown_cost_centre",
                    f"cost centre {order.cost_centre!r} is not one of {', '.join(s['cost_centres'])}",
                    "settings.cost_centres",
                )
        # min() of the two, the policy's first when equal
        limit, own = p.max_order_total, s["max_order_total"]
        if own is not None and (limit is None or own < limit):
            limit = own
        if limit is not None and order.total > limit:
            self._block(
                "max_order_total_exceeded",
                f"cart value too high: {order.total} is above the maximum of {limit} {p.currency}",
                "limits.max_order_total",
                {"maximum": format_amount(limit)},
            )
        elif limit is not None:
            self.trace.append(
                TraceEntry("limits.max_order_total", "passed", f"{order.total} <= {limit}")
            )

    def _limit_checks(self) -> set[str]:
        p, total = self.policy, self.order.total
        exceeded = set()
        if p.order_limit:
            amount, on_exceed = p.order_limit
            if total > amount:
                if on_exceed == "block":
                    self._block(
                        "order_limit_exceeded",
                        f"{total} is above the company's purchasing limit of {amount}",
                        "limits.order_limit",
                    )
                else:
                    exceeded.add("order_limit")
                    self.reasons.append(
                        Reason(
                            "order_limit_exceeded",
                            f"{total} is above the company's purchasing limit of {amount}: approval required",
                        )
                    )
                    self.trace.append(
                        TraceEntry("limits.order_limit", "matched", f"{total} > {amount}")
                    )
            else:
                self.trace.append(
                    TraceEntry("limits.order_limit", "passed", f"{total} <= {amount}")
                )
        for budget in p.budgets:
            spent = parse_amount(self.spent.get(budget.name, 0), f"budgets_spent.{budget.name}")
            remaining = budget.amount - spent
            rule = f"limits.budgets.{budget.name}"
            if total > remaining:
                message = f"budget {budget.name}: {total} is more than the {budget.period}'s remaining {remaining} of {budget.amount}"
                if budget.on_exceed == "block":
                    self._block(
                        "budget_exceeded",
                        message,
                        rule,
                        {"budget": budget.name, "remaining": format_amount(remaining)},
                    )
                else:
                    exceeded.add("budget")
                    self.reasons.append(
                        Reason(
                            "budget_exceeded",
                            message + ": approval required",
                            {"budget": budget.name, "remaining": format_amount(remaining)},
                        )
                    )
                    self.trace.append(TraceEntry(rule, "matched", message))
            else:
                self.trace.append(
                    TraceEntry(rule, "passed", f"{total} fits the remaining {remaining}")
                )
        return exceeded

    # -------------------------------------------------------------- steps

    def _steps(self, facts: Facts) -> list[Step]:
        p, total = self.policy, self.order.total
        below = self.settings["no_approval_below"]
        if below and total < below:
            self.trace.append(
                TraceEntry(
                    "settings.no_approval_below",
                    "matched",
                    f"{total} < {below}: no approval needed",
                )
            )
            return []
        out: list[Step] = []
        append = self.trace.append
        for index, predicate, step, tiers in p._plan:
            if not predicate(facts):
                append(_NotMatched(step, facts))
                continue
            append(_Matched(step, facts))
            if tiers:
                out.extend(self._tiers(step))
            elif step.subs:
                for number, sub in enumerate(step.subs):
                    entry = self._step((index, number), sub)
                    if not out:
                        self._first = entry
                    out.append(entry[0])
            else:
                entry = self._step(index, step)
                if not out:
                    self._first = entry
                out.append(entry[0])
        return out

    def _step(self, index: int, step: CompiledStep) -> list:
        """A standard step's Step, remembered per (step, buyer, where the total lies among the limits).

        Everything else selection depends on is fixed for a buyer within a
        directory snapshot (group, assignments, the pool); the total only
        matters through ``total > limit`` comparisons, so the number of known
        limits below the total identifies the outcome.  The memo entry is
        ``[Step, exclusions, approval_requested notifications (2), whether an
        approver delegates]``.  Fall-back and delegation are applied after the
        memo, per evaluation: they depend on parent companies and on ``now``.
        """
        company = self._company()
        total, buyer = self.order.total, self.order.buyer
        if not step.uses_assignments:
            limits = company.limits
            key = (index, buyer, bisect_left(limits, total))
        else:
            limits = company.buyer_limits.get(buyer)
            if limits is None:
                own = {a.limit for a in self._buyer_assignments() if a.limit is not None}
                limits = company.buyer_limits[buyer] = sorted(own.union(company.limits))
            key = (index, buyer, bisect_left(limits, total), True)
        entry = company.memo.get(key)
        if entry is None:
            excluded: list = []
            approvers = self._select(step, None, excluded)
            # the last slot: whether an approver delegates (fixed within a directory snapshot)
            delegating = any(self.directory.delegations_of(a.account) for a in approvers)
            entry = [
                Step(step.name, step.required, approvers, step.condition_text),
                tuple(excluded),
                None,
                None,
                delegating,
            ]
            if len(company.memo) >= company.MEMO_SIZE:
                company.memo.clear()
            company.memo[key] = entry
        if entry[1]:
            self._excluded(step, entry[1])
        # not remembered: fall-back and delegation depend on more than the memo key
        approvers = entry[0].approvers
        fallback = step.fallback == "parent_company" and len(approvers) < step.required
        if fallback:
            approvers = self._fallback(step, approvers)
        if fallback or entry[4]:
            approvers = self._with_delegates(step, approvers)
            if approvers is not entry[0].approvers:
                entry = [
                    Step(step.name, step.required, approvers, step.condition_text),
                    entry[1],
                    None,
                    None,
                    False,
                ]
        return entry

    def _fallback(
        self, step: CompiledStep, approvers: tuple[Approver, ...]
    ) -> tuple[Approver, ...]:
        """Too few approvers cover the total: up the company hierarchy (approvers, then masters) until enough."""
        total, buyer = self.order.total, self.order.buyer
        out = list(approvers)
        have = {a.account for a in out}
        for company in self.directory.company_chain(self.company)[1:]:
            found = []
            for cand in self._company_for(company.id).pool:
                if cand.account_id in have or (cand.account_id == buyer and not step.self_approval):
                    continue
                if cand.limit is None or total <= cand.limit:
                    why = f"approver of parent company {company.id}: no approver of {self.company} covers {total}"
                    found.append(
                        Approver(
                            cand.account_id,
                            cand.account.name,
                            cand.role_name,
                            cand.role.label,
                            (why,),
                            cand.email,
                        )
                    )
            if not found:
                for m in self.directory.memberships_of_company(company.id):
                    account = (
                        self.directory.account(m.account_id) if m.master and m.active else None
                    )
                    if (
                        account is None
                        or not account.active
                        or m.account_id in have
                        or (m.account_id == buyer and not step.self_approval)
                    ):
                        continue
                    settings = self.policy.effective_settings(m)
                    if (
                        settings["approval_limit"] is not None
                        and total > settings["approval_limit"]
                    ):
                        continue
                    email = bool(settings["email"] and account.email_enabled and account.email)
                    why = f"admin of parent company {company.id}: no approver of {self.company} covers {total}"
                    found.append(
                        Approver(
                            m.account_id,
                            account.name,
                            m.role,
                            self.policy.role_label(m.role),
                            (why,),
                            email,
                        )
                    )
            if found:
                message = f"step {step.name}: no approver of {self.company} may approve {total}; escalated to {company.id}"
                self.reasons.append(
                    Reason(
                        "escalated_to_parent", message, {"step": step.name, "company": company.id}
                    )
                )
                self.trace.append(TraceEntry(f"{step.rule}.fallback", "matched", message))
                out.extend(found)
                have.update(a.account for a in found)
                if len(out) >= step.required:
                    break
        if len(out) < step.required:
            self.trace.append(
                TraceEntry(
                    f"{step.rule}.fallback",
                    "skipped",
                    f"step {step.name}: no parent company of {self.company} has enough approvers who cover {total}",
                )
            )
        return tuple(out)

    def _with_delegates(
        self, step: CompiledStep, approvers: tuple[Approver, ...]
    ) -> tuple[Approver, ...]:
        """Add the active delegates of eligible approvers (chains up to MAX_DELEGATION_DEPTH hops).

        A delegate is added only where its delegator is eligible (so with the
        delegator's approval limit), never the buyer.  Returns ``approvers``
        itself when nobody delegates.
        """
        directory = self.directory
        if not approvers or not any(directory.delegations_of(a.account) for a in approvers):
            return approvers
        day = self.now.date()
        names = (step.name, step.group_of or step.name.split("@", 1)[0])
        out = list(approvers)
        position = {a.account: i for i, a in enumerate(out)}
        buyer = self.order.buyer
        for approver in approvers:
            stack = [(approver.account, 0)]
            seen = {approver.account}
            while stack:
                delegator, depth = stack.pop(0)
                for d in directory.delegations_of(delegator):
                    if (
                        not d.active_on(day)
                        or (d.company_id and d.company_id != self.company)
                        or (d.step and d.step not in names)
                    ):
                        continue
                    delegate = d.delegate_id
                    if delegate in seen:
                        continue
                    seen.add(delegate)
                    if depth + 1 > MAX_DELEGATION_DEPTH:
                        self.trace.append(
                            TraceEntry(
                                step.rule,
                                "skipped",
                                f"{delegate}: delegation chain from {approver.account} longer than {MAX_DELEGATION_DEPTH}",
                            )
                        )
                        continue
                    if delegate == buyer:
                        self.trace.append(
                            TraceEntry(
                                step.rule,
                                "excluded",
                                f"{delegate}: the buyer may not approve its own order, not even as delegate of {delegator}",
                            )
                        )
                        continue
                    account = directory.account(delegate)
                    membership = directory.membership(delegate, self.company)
                    if (
                        account is None
                        or not account.active
                        or membership is None
                        or not membership.active
                    ):
                        self.trace.append(
                            TraceEntry(
                                step.rule,
                                "excluded",
                                f"{delegate}: delegate of {delegator} but not an active member of {self.company}",
                            )
                        )
                        continue
                    why = f"delegate of {delegator} until {d.valid_until.isoformat()}"
                    if delegate in position:
                        existing = out[position[delegate]]
                        if why not in existing.why:
                            # eligible in its own right too: it acts for nobody
                            acts_for = (
                                existing.delegate_of + (delegator,) if existing.delegate_of else ()
                            )
                            out[position[delegate]] = Approver(
                                existing.account,
                                existing.name,
                                existing.role,
                                existing.role_label,
                                existing.why + (why,),
                                existing.email,
                                acts_for,
                            )
                    else:
                        settings = self.policy.effective_settings(membership)
                        email = bool(settings["email"] and account.email_enabled and account.email)
                        position[delegate] = len(out)
                        out.append(
                            Approver(
                                delegate,
                                account.name,
                                membership.role,
                                self.policy.role_label(membership.role),
                                (why,),
                                email,
                                (delegator,),
                            )
                        )
                    stack.append((delegate, depth + 1))
        return tuple(out)

    def _excluded(self, step: CompiledStep, excluded) -> None:
        total = str(self.order.total)
        for prefix, with_total in excluded:
            self.trace.append(
                TraceEntry(step.rule, "excluded", prefix + total if with_total else prefix)
            )

    def _tiers(self, step: CompiledStep) -> list[Step]:
        total = self.order.total
        tiers: dict[Decimal, set[str]] = {}
        for a in self._buyer_assignments():
            if (
                a.threshold is not None
                and total > a.threshold
                and (a.step is None or a.step == step.name)
            ):
                tiers.setdefault(a.threshold, set()).add(a.approver_id)
        if not tiers:
            self.trace.append(
                TraceEntry(
                    step.rule,
                    "skipped",
                    f"no assignment threshold of {self.order.buyer} is below {total}",
                )
            )
        return [
            Step(
                f"{step.name}@{format_amount(threshold)}",
                1,
                self._with_delegates(step, self._eligible(step, tiers[threshold])),
                f"total > {threshold} (assignment threshold)",
            )
            for threshold in sorted(tiers)
        ]

    def _eligible(self, step: CompiledStep, only: set[str] | None) -> tuple[Approver, ...]:
        excluded: list = []
        approvers = self._select(step, only, excluded)
        self._excluded(step, excluded)
        return approvers

    def _buyer_assignments(self):
        if self._assignments is None:
            self._assignments = self.directory.assignments_for(self.order.buyer, self.company)
        return self._assignments

    def _company(self) -> _CompanyContext:
        """The approver pool of the buyer's company: active accounts whose role and settings allow approving."""
        company = self._company_context
        if company is None:
            company = self._company_context = self._company_for(self.company)
        return company

    def _company_for(self, company_id: str) -> _CompanyContext:
        """The approver pool of a company (roles read through this rule set), built once per directory."""
        companies = self._get_context().companies
        company = companies.get(company_id)
        if company is None:
            pool = []
            for m in self.directory.memberships_of_company(company_id):
                if not m.active:
                    continue
                role = self.policy.roles.get(m.role)
                if role is None or "approve_orders" not in role.permissions:
                    continue
                account = self.directory.account(m.account_id)
                if account is None or not account.active:
                    continue
                settings = self.policy.effective_settings(m)
                if not settings["may_approve"]:
                    continue
                pool.append(_Candidate(m, account, settings, role))
            limits = sorted({c.limit for c in pool if c.limit is not None})
            company = companies.setdefault(company_id, _CompanyContext(tuple(pool), limits))
        return company

    def _select(
        self, step: CompiledStep, only: set[str] | None, excluded: list
    ) -> tuple[Approver, ...]:
        """The eligible approvers of a step; exclusions go to ``excluded`` as (message, total follows)."""
        total, buyer = self.order.total, self.order.buyer
        group = self.group
        own_group = step.scope == "own_group"
        assigned: dict[str, Any] | None = None
        out = []
        for cand in self._company().pool:
            account_id = cand.account_id
            if only is not None and account_id not in only:
                continue
            if account_id == buyer and not step.self_approval:
                excluded.append((f"{account_id}: the buyer may not approve its own order", False))
                continue
            if own_group and not cand.master and (group is None or cand.group != group):
                continue
            whys = []
            for sel in step.selectors:
                if sel.roles is not None and cand.role_name not in sel.roles:
                    continue
                if sel.accounts is not None and account_id not in sel.accounts:
                    continue
                if sel.attributes and not all(
                    cand.attributes.get(k) in allowed for k, allowed in sel.attributes
                ):
                    continue
                relation = sel.relation
                if relation in ("assigned", "unassigned"):
                    if assigned is None:
                        own = step.group_of or step.name
                        assigned = {
                            a.approver_id: a
                            for a in self._buyer_assignments()
                            if a.step is None or a.step == own or step.kind == "assignment_tiers"
                        }
                    if relation == "assigned":
                        a = assigned.get(account_id)
                        if a is None:
                            continue
                        if a.limit is not None and total > a.limit:
                            excluded.append(
                                (
                                    f"{account_id}: assigned to {buyer} with a limit of {a.limit}, below ",
                                    True,
                                )
                            )
                            continue
                        why = f"assigned to {buyer}"
                    elif self._buyer_assignments():
                        continue
                    else:
                        why = f"{buyer} has no assigned approver"
                elif relation == "same_group":
                    if group is None or cand.group != group:
                        continue
                    why = f"in {buyer}'s group {group}"
                elif relation == "group_master":
                    if not cand.master:
                        continue
                    why = f"master of {self.company}"
                else:
                    why = f"member of {self.company}"
                if sel.roles is not None:
                    why = f"{cand.role.label}; {why}"
                if sel.accounts is not None:
                    why = f"named approver; {why}"
                whys.append(why)
            if not whys:
                continue
            limit = cand.limit
            if limit is not None and total > limit:
                excluded.append((f"{account_id}: approval limit {limit} is below ", True))
                continue
            out.append(
                Approver(
                    account_id,
                    cand.account.name,
                    cand.role_name,
                    cand.role.label,
                    tuple(dict.fromkeys(whys)),
                    cand.email,
                )
            )
        return tuple(out)

    def _approval_requested(self, step: Step) -> Notification:
        buyer_email = self._buyer_email()
        entry = self._first
        if entry is None or entry[0] is not step:
            return approval_requested(self.policy, step, buyer_email)
        slot = 3 if buyer_email else 2
        note = entry[slot]
        if note is None:
            note = entry[slot] = approval_requested(self.policy, step, buyer_email)
        return note

    # --------------------------------------------------------- the rest

    def _payer(self) -> dict[str, str]:
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

    def _buyer_email(self) -> bool:
        return bool(self.settings["email"] and self.account.email_enabled and self.account.email)

    def _notifications(self, outcome: str, steps: list[Step]) -> tuple[Notification, ...]:
        buyer = Recipient(self.order.buyer, "email" if self._buyer_email() else "inbox")
        if outcome == "approved":
            out = [Notification("order_confirmation", (buyer,))]
            if self.policy.master_confirmation and self.group:
                masters = []
                for m in self.directory.memberships_of_company(self.company):
                    account = (
                        self.directory.account(m.account_id) if m.master and m.active else None
                    )
                    if account is not None and account.active:
                        emailed = (
                            self.policy.effective_settings(m)["email"]
                            and account.email_enabled
                            and bool(account.email)
                        )
                        masters.append(
                            Recipient(m.account_id, "email" if emailed else "inbox", self.company)
                        )
                masters = tuple(masters)
                if masters:
                    out.append(Notification("master_confirmation", masters))
            return tuple(out)
        if outcome == "pending":
            return (Notification("order_submitted", (buyer,)), self._approval_requested(steps[0]))
        if outcome == "held":
            return (Notification("order_held", (buyer,)),)
        return ()


def approval_requested(policy: Policy, step: Step, buyer_email: bool) -> Notification:
    """The approval_requested notification for a step: e-mail or inbox per the e-mail flags (E3)."""
    both = policy.approval_email == "both_flags"
    return Notification(
        "approval_requested",
        tuple(
            Recipient(a.account, "email" if a.email and (buyer_email or not both) else "inbox")
            for a in step.approvers
        ),
    )
