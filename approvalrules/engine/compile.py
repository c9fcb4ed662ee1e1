"""Compile a validated rule set into an immutable :class:`Policy`.

Conditions become generated predicates once (``conditions.compile_predicates``),
settings are normalised, amounts parsed; a multi-currency rule set compiles
into one variant per priced currency.  ``Policy.evaluate`` hands the order to
``approvalrules.engine.evaluate``.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from .check import ValidatedRuleSet
from .conditions import Facts, compile_predicates, compile_trees, describe, explain_parts, parse
from .currencies import (
    MONEY_SETTINGS,
    DirectoryInCurrency,
    base_currency,
    has_per_currency_amounts,
    in_currency,
    priced_currencies,
)
from .dates import Validity, deadline, time_zone, validity_of, with_validity
from .decision import Decision, Order
from .directory import Directory, Membership
from .durations import parse_duration, parse_instant
from .evaluate import Evaluation
from .money import parse_amount
from .timeouts import Escalation, compile_reminders, step_timeouts

#: documented defaults of every membership setting (docs/ruleset.md)
DEFAULT_SETTINGS: Mapping[str, Any] = MappingProxyType(
    {
        "may_order": True,
        "may_approve": True,
        "max_order_total": None,
        "no_approval_below": Decimal(0),
        "approval_limit": None,
        "email": True,
        # None: follow ``email`` (see notify.py)
        "email_as_buyer": None,
        "email_as_approver": None,
        # None: true, or under approval_email both_flags the buyer's own e-mail (notify.py)
        "email_to_approvers": None,
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


def data_hash(data: Any) -> str:
    """Hash of plain data in canonical JSON: equal for texts that differ only in layout or
    comments."""
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
    """A role of the rule set: its label, permissions and settings."""

    name: str
    label: str
    permissions: frozenset[str]
    settings: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Selector:
    """One ``any_of`` entry of a step's approvers: roles, relation, named accounts, attributes."""

    roles: frozenset[str] | None
    relation: str
    accounts: frozenset[str] | None
    attributes: tuple[tuple[str, frozenset], ...]


@dataclass(frozen=True, slots=True)
class CompiledStep:
    """An approval step ready to run: its condition compiled, its approver selectors parsed."""

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
    #: ``escalate_after``: the step times out this long after it became current
    escalate_after: timedelta | None = None
    #: ``escalate_after`` as written (for audit entries and events)
    escalate_after_text: str | None = None
    #: ``on_timeout`` with its default resolved: escalate with ``escalate_to``, else cancel
    on_timeout: str = "cancel"
    #: ``escalate_to``, or None
    escalation: Escalation | None = None
    #: ``valid_from`` / ``valid_until``: already joined into ``condition`` (an ``order_date``
    #: test); kept for what is shown about the step
    validity: Validity | None = None
    #: ``expiry.date``: a request this step applies to expires at this instant (UTC)
    expiry_deadline: datetime | None = None
    #: lazily built, per-step: what ``explain`` needs (see :meth:`explain_parts`)
    _lazy: dict = field(default_factory=dict, compare=False, repr=False)

    def explain_parts(self) -> tuple:
        """What explaining the condition needs (``conditions.explain_parts``), built once."""
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
        for spec, predicate in zip(specs, predicates, strict=True)
    )


@dataclass(frozen=True, slots=True)
class Budget:
    """A spending budget per period (``limits.budgets``) and what exceeding it does."""

    name: str
    scope: str
    period: str
    amount: Decimal
    on_exceed: str
    #: ``valid_from`` / ``valid_until``: outside them the budget is not checked nor drawn
    validity: Validity | None = None

    def in_force(self, day) -> bool:
        """Whether the budget applies to an order dated ``day``."""
        return self.validity is None or self.validity.holds_on(day)


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
    """One currency's policy from ``data`` (its amounts plain); ``source`` is the rule set as
    written."""
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
    zone = time_zone(data.get("time_zone"))
    default_self = approval.get("self_approval", False)
    default_scope = approval.get("scope", "universal")
    steps = []
    step_specs = approval.get("steps") or ()
    # a step's validity window is one more test of its condition (order_date)
    validities = [validity_of(spec) for spec in step_specs]
    conditions = [
        with_validity(spec.get("when"), validity)
        for spec, validity in zip(step_specs, validities, strict=True)
    ]
    # each condition is parsed once: the generated code and the text come from one tree
    trees = [parse(condition) for condition in conditions]
    predicates = compile_trees(trees)
    for spec, condition, validity, tree, predicate in zip(
        step_specs, conditions, validities, trees, predicates, strict=True
    ):
        approvers_spec = spec.get("approvers") or {}
        selectors = _selectors(approvers_spec.get("any_of"))
        kind = spec.get("kind", "standard")
        if kind == "assignment_tiers" and not selectors:
            selectors.append(Selector(None, "assigned", None, ()))
        timeouts = step_timeouts(spec, zone)
        timeouts["validity"] = validity
        steps.append(
            CompiledStep(
                name=spec["name"],
                kind=kind,
                condition=condition,
                condition_text=describe(tree),
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
                **timeouts,
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
                        **timeouts,
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
                    **timeouts,
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
            validity_of(b),
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
        order_limit_validity=validity_of(order_limit),
        expiry=parse_duration(expiry["after"]) if expiry and expiry.get("after") else None,
        expiry_deadline=deadline(expiry["date"], zone) if expiry and expiry.get("date") else None,
        step_deadlines=MappingProxyType(
            {step.name: step.expiry_deadline for step in steps if step.expiry_deadline}
        ),
        time_zone=zone,
        reversal_allowed=(approval.get("reversal") or {}).get("allowed", True),
        reminders=compile_reminders(approval.get("reminders")),
        merchant_review=bool(approval.get("merchant_review", False)),
        pending_on_new_version=data.get("pending_on_new_version", "keep"),
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
        "order_limit_validity",
        "budgets",
        "expiry",
        "expiry_deadline",
        "step_deadlines",
        "time_zone",
        "reversal_allowed",
        "reminders",
        "merchant_review",
        "pending_on_new_version",
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

    def step(self, name: str) -> CompiledStep | None:
        """The top-level step called ``name`` (a decision step's ``base``), or None."""
        for step in self.steps:
            if step.name == name:
                return step
        return None

    def role_label(self, role: str | None) -> str:
        """The label of a role, or its name when the rule set does not define it."""
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
        ordered_at: datetime | None = None,
        hold_lifted: bool = False,
    ) -> Decision:
        """Decide what happens to ``order``.  Pure: every input is an argument.

        ``now`` defaults to a fixed instant only in the sense that the caller
        must pass the clock; the API passes the request time.  ``budgets_spent``
        maps a budget name to what the current period has already drawn for
        this order's scope.  ``ordered_at``: when the order was submitted, if
        before ``now`` (an order decided again); its date, in the rule set's
        ``time_zone``, is the order's date.  Default: ``now``.
        ``hold_lifted``: the merchant let a held order proceed, so ``hold_orders``
        no longer holds it and the rest of the rules decide.
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
            return Evaluation(
                variant, order, view, now, budgets_spent or {}, ordered_at or now, hold_lifted
            ).run()
        return Evaluation(
            self, order, directory, now, budgets_spent or {}, ordered_at or now, hold_lifted
        ).run()

    def _directory_view(self, directory: Directory, base: str, rate: Decimal | None) -> Directory:
        view = self._directory_views.get(directory)
        if view is None:
            view = self._directory_views[directory] = DirectoryInCurrency(
                directory, base, self.currency, rate
            )
        return view
