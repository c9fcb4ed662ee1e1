"""The checks a JSON Schema cannot express: references, contradictions, unreachable steps.

:func:`check_ruleset` loads a rule set, checks it against the schema
(:mod:`approvalrules.engine.schema`), resolves ``extends`` and runs the
semantic checks.  Problems are collected, not raised one at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from ..errors import DocumentError, Problem
from .conditions import interval_of, iter_leaves, referenced_names
from .currencies import base_currency, currency_problems, in_currency, priced_currencies
from .dates import date_problem, deadline_problem, parse_day, time_zone_problem
from .load import Document, load_document, text_hash
from .schema import cap_problems, schema_problems


@dataclass
class ValidatedRuleSet:
    """A rule set that passed the schema and the semantic checks (warnings aside)."""

    name: str
    data: dict
    document: Document
    warnings: list[Problem] = field(default_factory=list)
    parent: ValidatedRuleSet | None = None
    #: the data after ``extends`` is applied: what the policy is compiled from
    resolved: dict = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        return text_hash(self.document.text)


Resolver = Callable[[str], "str | Document | None"]


def check_ruleset(
    text: str | bytes, source: str | None = None, resolve: Resolver | None = None
) -> ValidatedRuleSet:
    """Load, schema-check, resolve ``extends`` and semantically check a rule set.

    ``resolve(name)`` returns the text of a parent rule set (or None if there
    is none); it is only called when the document names one.  Raises
    :class:`DocumentError` listing every problem.
    """
    return _check(load_document(text, source), resolve, chain=())


def check_document(doc: Document, resolve: Resolver | None = None) -> ValidatedRuleSet:
    """Like :func:`check_ruleset` for an already loaded document."""
    return _check(doc, resolve, chain=())


MAX_EXTENDS_DEPTH = 5


def _check(doc: Document, resolve: Resolver | None, chain: tuple[str, ...]) -> ValidatedRuleSet:
    if not isinstance(doc.data, dict):
        raise DocumentError(
            [
                doc.problem(
                    "not_a_mapping", "a rule set is a YAML mapping starting with `ruleset: <name>`"
                )
            ]
        )
    problems = schema_problems(doc, "ruleset")
    if problems:
        raise DocumentError(problems)
    data = doc.data
    name = data["ruleset"]
    parent = None
    if data.get("extends"):
        parent_name = data["extends"]
        if parent_name == name or parent_name in chain:
            raise DocumentError(
                [
                    doc.problem(
                        "extends_cycle",
                        f"`extends` forms a cycle: {' -> '.join(chain + (name, parent_name))}",
                        ("extends",),
                    )
                ]
            )
        if len(chain) >= MAX_EXTENDS_DEPTH:
            raise DocumentError(
                [
                    doc.problem(
                        "extends_too_deep",
                        f"more than {MAX_EXTENDS_DEPTH} levels of `extends`",
                        ("extends",),
                    )
                ]
            )
        found = resolve(parent_name) if resolve else None
        if found is None:
            raise DocumentError(
                [
                    doc.problem(
                        "unknown_parent",
                        f"extends {parent_name!r}, but no rule set of that name is known",
                        ("extends",),
                    )
                ]
            )
        parent_doc = (
            found if isinstance(found, Document) else load_document(found, f"{parent_name}")
        )
        parent = _check(parent_doc, resolve, chain + (name,))
        resolved = merge_rulesets(parent.resolved, data)
    else:
        resolved = data
    problems = cap_problems(doc, semantic_problems(doc, resolved))
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise DocumentError(problems)
    return ValidatedRuleSet(
        name=name, data=data, document=doc, warnings=problems, parent=parent, resolved=resolved
    )


def merge_rulesets(parent: dict, child: dict) -> dict:
    """The child's view of its parent: maps merge key by key, steps by name, lists are replaced.

    ``tests`` and ``description`` are never inherited; ``ruleset`` and ``extends``
    are the child's own.
    """
    merged = {
        k: v for k, v in parent.items() if k not in ("tests", "description", "ruleset", "extends")
    }
    for key, value in child.items():
        if key == "approval" and isinstance(merged.get("approval"), dict):
            merged["approval"] = _merge_approval(merged["approval"], value)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge_maps(merged[key], value)
        else:
            merged[key] = value
    return merged


def _merge_maps(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge_maps(out[key], value)
        else:
            out[key] = value
    return out


def _merge_approval(base: dict, override: dict) -> dict:
    out = _merge_maps(
        {k: v for k, v in base.items() if k != "steps"},
        {k: v for k, v in override.items() if k != "steps"},
    )
    steps = list(base.get("steps") or [])
    for step in override.get("steps") or []:
        for index, existing in enumerate(steps):
            if existing["name"] == step["name"]:
                steps[index] = step
                break
        else:
            steps.append(step)
    out["steps"] = steps
    return out


def semantic_problems(doc: Document, data: dict) -> list[Problem]:
    """Checks beyond the schema: references, contradictions, unreachable steps.

    ``doc`` gives line numbers; ``data`` is the resolved rule set (after extends),
    so a child may refer to its parent's roles and groups.
    """
    problems: list[Problem] = []
    roles = set((data.get("roles") or {}).keys())
    groups = set((data.get("groups") or {}).keys())
    approval = data.get("approval") or {}
    steps = approval.get("steps") or []

    def check_names(kind: str, names: Iterable[str], known: set[str], path) -> None:
        for n in names:
            if n not in known:
                hint = (
                    f"; defined: {listed_names(known)}"
                    if known
                    else f"; the rule set defines no {kind}s"
                )
                problems.append(
                    doc.problem(f"undefined_{kind}", f"{kind} {n!r} is not defined{hint}", path)
                )

    # problems point at the document being checked: a step it defines by its
    # own index, a step it inherits at its `extends` line
    own_steps = {
        s["name"]: i
        for i, s in enumerate(((doc.data or {}).get("approval") or {}).get("steps") or [])
    }
    inherited = bool((doc.data or {}).get("extends"))

    def step_path(index: int, rest: tuple = ()) -> tuple:
        name = steps[index]["name"]
        if not inherited:
            return ("approval", "steps", index) + rest
        if name in own_steps:
            return ("approval", "steps", own_steps[name]) + rest
        return ("extends",)

    own_seen: dict[str, int] = {}
    for index, step in enumerate(((doc.data or {}).get("approval") or {}).get("steps") or []):
        if step["name"] in own_seen:
            problems.append(
                doc.problem(
                    "duplicate_step",
                    f"step name {step['name']!r} is used by step {own_seen[step['name']]} too",
                    ("approval", "steps", index, "name"),
                )
            )
        own_seen.setdefault(step["name"], index)

    seen_steps: dict[str, int] = {}
    for index, step in enumerate(steps):
        path = step_path(index)
        seen_steps.setdefault(step["name"], index)
        kind = step.get("kind", "standard")
        if kind == "standard" and "approvers" not in step:
            problems.append(
                doc.problem(
                    "missing_approvers",
                    f"step {step['name']!r} needs `approvers` (or kind: assignment_tiers)",
                    path,
                )
            )
        for s_index, selector in enumerate((step.get("approvers") or {}).get("any_of") or []):
            check_names(
                "role",
                _as_list(selector.get("role")),
                roles,
                step_path(index, ("approvers", "any_of", s_index, "role")),
            )
        for g_index, group in enumerate((step.get("approvers") or {}).get("all_of") or []):
            for s_index, selector in enumerate(group.get("any_of") or []):
                check_names(
                    "role",
                    _as_list(selector.get("role")),
                    roles,
                    step_path(index, ("approvers", "all_of", g_index, "any_of", s_index, "role")),
                )
        if step.get("approvers", {}).get("all_of") and kind == "assignment_tiers":
            problems.append(
                doc.problem(
                    "invalid_value",
                    f"step {step['name']!r}: approvers.all_of is for standard steps, not "
                    "assignment_tiers",
                    step_path(index, ("approvers",)),
                )
            )
        when = step.get("when")
        if when is not None:
            refs = referenced_names(when)
            check_names("role", refs["buyer_role"], roles, step_path(index, ("when",)))
            check_names("group", refs["buyer_group"], groups, step_path(index, ("when",)))
            if refs["exceeds"]:
                check_exceeds(refs["exceeds"], data, doc, step_path(index, ("when",)), problems)
    # precedence rules (deny, bypass): unique names, defined roles and groups
    for kind in ("deny", "bypass"):
        rule_names: dict[str, int] = {}
        for index, rule in enumerate(data.get(kind) or []):
            path = (kind, index)
            if rule["name"] in rule_names:
                problems.append(
                    doc.problem(
                        "duplicate_rule",
                        f"{kind} rule name {rule['name']!r} is used twice",
                        path + ("name",),
                    )
                )
            rule_names.setdefault(rule["name"], index)
            check_names("role", rule.get("roles") or [], roles, path + ("roles",))
            refs = referenced_names(rule.get("when"))
            check_names("role", refs["buyer_role"], roles, path + ("when",))
            check_names("group", refs["buyer_group"], groups, path + ("when",))
            if refs["exceeds"]:
                check_exceeds(refs["exceeds"], data, doc, path + ("when",), problems)
    own_currency = base_currency(data)
    for code, rate in (data.get("conversion") or {}).items():
        if code == own_currency:
            problems.append(
                doc.problem(
                    "invalid_conversion",
                    f"conversion.{code}: {code} is the rule set's own currency",
                    ("conversion", code),
                )
            )
        elif _amount(rate) <= 0:
            problems.append(
                doc.problem(
                    "invalid_conversion",
                    f"conversion.{code}: a rate must be above 0",
                    ("conversion", code),
                )
            )
    for key in ("viewer_roles",):
        check_names(
            "role", (data.get("visibility") or {}).get(key) or [], roles, ("visibility", key)
        )

    currency_errors = currency_problems(data)
    for code, message, path in currency_errors:
        problems.append(doc.problem(code, message, path))
    if not currency_errors:
        priced = priced_currencies(data)
        for currency in priced:
            # amounts compare only within one currency: check each priced one's view
            _amount_problems(
                doc,
                in_currency(data, currency),
                currency if len(priced) > 1 else None,
                step_path,
                problems,
            )
    budget_names: dict[str, int] = {}
    for index, budget in enumerate((data.get("limits") or {}).get("budgets") or []):
        if budget["name"] in budget_names:
            problems.append(
                doc.problem(
                    "duplicate_budget",
                    f"budget name {budget['name']!r} is used twice",
                    ("limits", "budgets", index, "name"),
                )
            )
        budget_names[budget["name"]] = index
    _calendar_problems(doc, data, step_path, problems)
    for index, test in enumerate(data.get("tests") or []):
        for s_index, step in enumerate((test.get("expect") or {}).get("steps") or []):
            base = step["name"].split("@", 1)[0].split("/", 1)[0]
            if base not in seen_steps:
                problems.append(
                    doc.problem(
                        "undefined_step",
                        f"test expects step {step['name']!r}, which the rule set does not define",
                        ("tests", index, "expect", "steps", s_index, "name"),
                    )
                )
    return problems


def _amount_problems(
    doc: Document, data: dict, currency: str | None, step_path, problems: list[Problem]
) -> None:
    """Contradictory limits and steps whose total range is empty or cut off, in one currency's
    view."""
    prefix = f"in {currency}: " if currency else ""
    limits = data.get("limits") or {}
    settings = data.get("settings") or {}
    max_total = _amount(limits.get("max_order_total"))
    below = _amount(settings.get("no_approval_below"))
    if max_total is not None and below is not None and below > max_total:
        problems.append(
            doc.problem(
                "contradictory_limits",
                f"{prefix}settings.no_approval_below ({below}) is above limits.max_order_total "
                f"({max_total}): no order could ever need approval",
                ("settings", "no_approval_below"),
                "warning",
            )
        )
    order_limit = _amount((limits.get("order_limit") or {}).get("amount"))
    if max_total is not None and order_limit is not None and order_limit >= max_total:
        problems.append(
            doc.problem(
                "contradictory_limits",
                f"{prefix}limits.order_limit ({order_limit}) is not below limits.max_order_total "
                f"({max_total}); it can never apply",
                ("limits", "order_limit", "amount"),
                "warning",
            )
        )
    for index, step in enumerate((data.get("approval") or {}).get("steps") or []):
        low, high = interval_of(step.get("when") or {})
        path = step_path(index, ("when",))
        if (
            low is not None
            and high is not None
            and (
                low.value > high.value or (low.value == high.value and (low.strict or high.strict))
            )
        ):
            problems.append(
                doc.problem(
                    "unreachable_step",
                    f"{prefix}step {step['name']!r} can never apply: its total range is empty",
                    path,
                    "warning",
                )
            )
        if (
            max_total is not None
            and low is not None
            and (low.value > max_total or (low.strict and low.value >= max_total))
        ):
            problems.append(
                doc.problem(
                    "unreachable_step",
                    f"{prefix}step {step['name']!r} applies only above {low.value}, but orders "
                    f"above {max_total} are blocked",
                    path,
                    "warning",
                )
            )
        if (
            below is not None
            and high is not None
            and (high.value < below or (high.strict and high.value <= below))
        ):
            problems.append(
                doc.problem(
                    "unreachable_step",
                    f"{prefix}step {step['name']!r} applies only below {high.value}, but orders "
                    f"below {below} need no approval",
                    path,
                    "warning",
                )
            )


def _calendar_problems(doc: Document, data: dict, step_path, problems: list[Problem]) -> None:
    """The time zone must exist; dates must be real (2026-02-30 is not); a validity window must
    not end before it starts."""
    zone = data.get("time_zone")
    if zone is not None and (why := time_zone_problem(zone)):
        problems.append(doc.problem("unknown_time_zone", why, ("time_zone",)))

    def check_window(entry: dict, what: str, path_of) -> None:
        dates = {}
        for key in ("valid_from", "valid_until"):
            if key in entry:
                if why := date_problem(entry[key]):
                    problems.append(doc.problem("invalid_date", f"{key}: {why}", path_of((key,))))
                else:
                    dates[key] = parse_day(entry[key])
        if len(dates) == 2 and dates["valid_until"] < dates["valid_from"]:
            problems.append(
                doc.problem(
                    "invalid_validity",
                    f"{what}: valid_until ({dates['valid_until']}) is before valid_from "
                    f"({dates['valid_from']}), so it never applies; swap them or fix one",
                    path_of(("valid_until",)),
                )
            )

    def check_condition(condition, path: tuple) -> None:
        for key, value in iter_leaves(condition):
            if key != "order_date":
                continue
            for op, bound in value.items():
                if why := date_problem(bound):
                    problems.append(doc.problem("invalid_date", f"order_date.{op}: {why}", path))

    def check_deadline(expiry, path: tuple) -> None:
        fixed = expiry.get("date") if isinstance(expiry, dict) else None
        if fixed is not None and (why := deadline_problem(fixed)):
            problems.append(doc.problem("invalid_date", f"expiry.date: {why}", path))

    limits = data.get("limits") or {}
    if limits.get("order_limit"):
        check_window(
            limits["order_limit"],
            "limits.order_limit",
            lambda rest: ("limits", "order_limit") + rest,
        )
    for index, budget in enumerate(limits.get("budgets") or []):
        check_window(
            budget,
            f"budget {budget['name']!r}",
            lambda rest, index=index: ("limits", "budgets", index) + rest,
        )
    approval = data.get("approval") or {}
    expiry = approval.get("expiry")
    if isinstance(expiry, dict) and "after" not in expiry and "date" not in expiry:
        problems.append(
            doc.problem(
                "missing_key",
                "approval.expiry needs `after` (a duration such as P14D), `date` (a calendar "
                "date such as 2026-03-31) or both; write `expiry: null` for no expiry",
                ("approval", "expiry"),
            )
        )
    check_deadline(expiry, ("approval", "expiry", "date"))
    for index, step in enumerate(approval.get("steps") or []):
        check_window(
            step, f"step {step['name']!r}", lambda rest, index=index: step_path(index, rest)
        )
        check_deadline(step.get("expiry"), step_path(index, ("expiry", "date")))
        check_condition(step.get("when"), step_path(index, ("when",)))
    for kind in ("deny", "bypass"):
        for index, rule in enumerate(data.get(kind) or []):
            check_condition(rule.get("when"), (kind, index, "when"))


def check_exceeds(kinds, data, doc, path, problems) -> None:
    """A condition tests ``exceeds: order_limit`` or ``exceeds: budget``: the limit must exist."""
    limits = data.get("limits") or {}
    for kind in kinds:
        if kind == "order_limit" and not limits.get("order_limit"):
            problems.append(
                doc.problem(
                    "undefined_limit",
                    "condition tests `exceeds: order_limit` but limits.order_limit is not set",
                    path,
                )
            )
        if kind == "budget" and not limits.get("budgets"):
            problems.append(
                doc.problem(
                    "undefined_limit",
                    "condition tests `exceeds: budget` but limits.budgets is empty",
                    path,
                )
            )


#: names listed in a hint ("defined: a, b, c ... (1,200 in all)")
HINT_NAMES = 20


def listed_names(names: Iterable[str]) -> str:
    """A few of ``names`` for a hint, sorted: a hostile rule set defines thousands, and every
    reference to an undefined one would repeat them all."""
    listed = sorted(names)
    if len(listed) <= HINT_NAMES:
        return ", ".join(listed)
    return f"{', '.join(listed[:HINT_NAMES])} ... ({len(listed):,} in all)"


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _amount(value) -> Decimal | None:
    if value is None:
        return None
    return Decimal(str(value))
