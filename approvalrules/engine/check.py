"""The checks a JSON Schema cannot express: references, contradictions, unreachable steps.

:func:`check_ruleset` loads a rule set, checks it against the schema
(:mod:`approvalrules.engine.schema`), resolves ``extends`` and runs the
semantic checks.  Problems are collected, not raised one at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from ..errors import DocumentError, OrderError, Problem
from .conditions import interval_of, iter_leaves, referenced_names
from .conditions.tree import Leaf, key_of, top_level_parts
from .conditions.tree import parse as parse_condition
from .currencies import (
    amount_positions,
    base_currency,
    currency_problems,
    in_currency,
    priced_currencies,
)
from .dates import date_problem, deadline_problem, parse_day, time_zone_problem
from .directory import Directory
from .durations import parse_instant
from .load import Document, format_path, load_document, text_hash
from .money import CURRENCIES, fits_minor_units, format_amount, minor_units, parse_amount
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
    text: str | bytes,
    source: str | None = None,
    resolve: Resolver | None = None,
    *,
    published: bool = False,
) -> ValidatedRuleSet:
    """Load, schema-check, resolve ``extends`` and semantically check a rule set.

    ``resolve(name)`` returns the text of a parent rule set (or None if there
    is none); it is only called when the document names one.  Raises
    :class:`DocumentError` listing every problem: the schema's and the semantic
    checks' together, in the order of their lines.

    ``published=True`` checks a version that was published already (loading it to evaluate):
    what later versions of the checks refuse (:data:`STRICTER_CODES`) is then a warning, so
    that a version accepted once keeps deciding orders.  A new file or draft is checked with
    the default, ``published=False``.
    """
    return _check(load_document(text, source), resolve, chain=(), published=published)


def check_document(
    doc: Document, resolve: Resolver | None = None, *, published: bool = False
) -> ValidatedRuleSet:
    """Like :func:`check_ruleset` for an already loaded document."""
    return _check(doc, resolve, chain=(), published=published)


MAX_EXTENDS_DEPTH = 5


#: problems refused since rule sets were first published; a published version that has one
#: still loads and evaluates, with the problem as a warning (``published=True``)
STRICTER_CODES = frozenset(
    [
        "amount_precision",
        "ignored_key",
        "invalid_test_time",
        "undefined_escalation_role",
        "undefined_budget",
    ]
)
#: a published version's stricter problem ends with this
PUBLISHED_NOTE = " (accepted in this published version; the next version must fix it)"

#: what a semantic check may raise on data the schema refused; it then stops, the schema's
#: problems stand alone
_SHAPE_ERRORS = (KeyError, TypeError, AttributeError, ValueError, ArithmeticError, IndexError)


def _check(
    doc: Document, resolve: Resolver | None, chain: tuple[str, ...], published: bool = False
) -> ValidatedRuleSet:
    if not isinstance(doc.data, dict):
        raise DocumentError(
            [
                doc.problem(
                    "not_a_mapping", "a rule set is a YAML mapping starting with `ruleset: <name>`"
                )
            ]
        )
    if "ruleset" not in doc.data and {"companies", "accounts"} & set(doc.data):
        raise DocumentError(
            [
                doc.problem(
                    "not_a_ruleset",
                    "this is a directory file (companies, accounts), not a rule set: check it "
                    "with `approvalrules validate RULESET.yaml --directory FILE`",
                )
            ]
        )
    problems = schema_problems(doc, "ruleset")
    shape_ok = not problems
    if any(p.code in ("too_many_problems", "check_stopped") for p in problems):
        raise DocumentError(problems)  # a list cut short: the semantic checks add nothing
    data = doc.data
    name = data.get("ruleset")
    parent, resolved = None, data
    parent_name = data.get("extends")
    if parent_name and isinstance(parent_name, str):
        parent, parent_problems = _parent(doc, resolve, chain, name, parent_name)
        problems.extend(parent_problems)
        if parent is None:
            resolved = None  # without the parent, names it defines would look undefined
        else:
            try:
                resolved = merge_rulesets(parent.resolved, data)
            except _SHAPE_ERRORS:
                if shape_ok:
                    raise
                resolved = None
    if resolved is not None:
        try:
            semantic = semantic_problems(doc, resolved, published=published)
        except _SHAPE_ERRORS:
            if shape_ok:
                raise
            semantic = []  # the schema's problems say what to fix first
        known = {(p.path, p.line) for p in problems}
        problems.extend(p for p in semantic if (p.path, p.line) not in known)
    problems = cap_problems(doc, _in_line_order(problems))
    if any(p.severity == "error" for p in problems):
        raise DocumentError(problems)
    return ValidatedRuleSet(
        name=name, data=data, document=doc, warnings=problems, parent=parent, resolved=resolved
    )


def _in_line_order(problems: list[Problem]) -> list[Problem]:
    """Problems of this document by line (a parent's, from its own file, first)."""
    return sorted(problems, key=lambda p: (p.source != problems[0].source, p.line or 0))


def _parent(
    doc: Document, resolve: Resolver | None, chain: tuple[str, ...], name, parent_name: str
) -> tuple[ValidatedRuleSet | None, list[Problem]]:
    """The checked parent of ``doc`` (parents are published, or files checked on their own:
    checked as published), or None and the problems that stop it."""
    if parent_name == name or parent_name in chain:
        return None, [
            doc.problem(
                "extends_cycle",
                f"`extends` forms a cycle: {' -> '.join(chain + (name, parent_name))}",
                ("extends",),
            )
        ]
    if len(chain) >= MAX_EXTENDS_DEPTH:
        return None, [
            doc.problem(
                "extends_too_deep",
                f"more than {MAX_EXTENDS_DEPTH} levels of `extends`",
                ("extends",),
            )
        ]
    found = resolve(parent_name) if resolve else None
    if found is None:
        return None, [
            doc.problem(
                "unknown_parent",
                f"extends {parent_name!r}, but no rule set of that name is known",
                ("extends",),
            )
        ]
    try:
        parent_doc = (
            found if isinstance(found, Document) else load_document(found, f"{parent_name}")
        )
        return _check(parent_doc, resolve, chain + (name,), published=True), []
    except DocumentError as exc:
        return None, list(exc.problems)


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


def semantic_problems(doc: Document, data: dict, *, published: bool = False) -> list[Problem]:
    """Checks beyond the schema: references, contradictions, unreachable steps.

    ``doc`` gives line numbers; ``data`` is the resolved rule set (after extends),
    so a child may refer to its parent's roles and groups.  ``published``: see
    :func:`check_ruleset` (problems in :data:`STRICTER_CODES` become warnings).
    """
    problems: list[Problem] = []

    def stricter(code: str, message: str, path) -> None:
        if published:
            problems.append(doc.problem(code, message + PUBLISHED_NOTE, path, "warning"))
        else:
            problems.append(doc.problem(code, message, path))

    roles = set((data.get("roles") or {}).keys())
    approving_roles = {
        name
        for name, role in (data.get("roles") or {}).items()
        if "approve_orders" in (role.get("permissions") or ())
    }
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
        for selectors, where in _selector_lists(step):
            for s_index, selector in enumerate(selectors):
                path = step_path(index, where + (s_index, "role"))
                names = _as_list(selector.get("role"))
                check_names("role", names, roles, path)
                for role in names:
                    if role in roles and role not in approving_roles:
                        problems.append(
                            doc.problem(
                                "role_cannot_approve",
                                f"step {step['name']!r}: role {role!r} has no approve_orders "
                                "permission, so no one finds approval through it; add "
                                f"approve_orders to roles.{role}.permissions or name another role",
                                path,
                                "warning",
                            )
                        )
        _escalation_problems(
            doc, step, step_path(index), roles, approving_roles, stricter, problems
        )
        if kind == "assignment_tiers":
            for key, why in (
                ("required", "each tier needs one approval"),
                ("fallback", "tiers never go up the company hierarchy"),
            ):
                if key in step:
                    stricter(
                        "ignored_key",
                        f"step {step['name']!r} is kind assignment_tiers, which does not use "
                        f"`{key}` ({why}); remove it, or make the step kind standard",
                        step_path(index, (key,)),
                    )
        if _quotes_only(step.get("when")):
            problems.append(
                doc.problem(
                    "unreachable_step",
                    f"step {step['name']!r} applies only to quotes, and a quote is never "
                    "submitted for approval (it is refused until converted to an order); "
                    "remove the step or its order_type condition",
                    step_path(index, ("when", "order_type")),
                    "warning",
                )
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
        elif _amount(rate) is not None and _amount(rate) <= 0:
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
    _precision_problems(doc, data, stricter)
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
        if "now" in test:
            try:
                parse_instant(test["now"], "now")
            except OrderError:
                stricter(
                    "invalid_test_time",
                    f"{str(test['now'])[:40]!r} is not a date-time: write one like "
                    "2026-01-15T12:00:00Z (date, T, time, then Z for UTC or an offset such "
                    "as +01:00); leave `now` out for the default, 2026-01-15T12:00:00Z",
                    ("tests", index, "now"),
                )
        for budget in test.get("budgets_spent") or {}:
            if budget not in budget_names:
                hint = (
                    f"the rule set's budgets: {listed_names(budget_names)}"
                    if budget_names
                    else "the rule set has no budgets"
                )
                stricter(
                    "undefined_budget",
                    f"budgets_spent names budget {budget!r}, which the rule set does not "
                    f"define; {hint}",
                    ("tests", index, "budgets_spent", budget),
                )
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
    # the blocking maximum every buyer has: limits.max_order_total, or settings.max_order_total
    # when no role or group changes it (a membership in the directory still may)
    blocking, blocked_by = max_total, "limits.max_order_total"
    default_max = _amount(settings.get("max_order_total"))
    overridden = any(
        "max_order_total" in ((spec or {}).get("settings") or {})
        for kind in ("roles", "groups")
        for spec in (data.get(kind) or {}).values()
    )
    if default_max is not None and not overridden and (blocking is None or default_max < blocking):
        blocking, blocked_by = default_max, "settings.max_order_total"
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
            blocking is not None
            and low is not None
            and (low.value > blocking or (low.strict and low.value >= blocking))
        ):
            problems.append(
                doc.problem(
                    "unreachable_step",
                    f"{prefix}step {step['name']!r} applies only above {low.value}, but orders "
                    f"above {blocking} are blocked ({blocked_by})",
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


def directory_problems(checked: ValidatedRuleSet, directory: Directory) -> list[Problem]:
    """Warnings only a directory can give about a checked rule set (the CLI's ``validate
    --directory`` and ``test``):

    - a step whose ``required`` is more than the accounts that could ever approve it, in a
      company the rule set governs (it could never be approved);
    - accounts named in approver selectors, escalations and ``buyer_account`` conditions that
      the directory does not have.
    """
    doc, data = checked.document, checked.resolved
    problems: list[Problem] = []
    roles = data.get("roles") or {}
    approving = {n for n, r in roles.items() if "approve_orders" in (r.get("permissions") or ())}
    companies = sorted(
        {m.company_id for a in directory.account_ids() for m in directory.memberships_of_account(a)}
    )
    named = {c: directory.ruleset_name_for(c) for c in companies}
    # the companies the rule set governs; a directory that names no rule set at all (a test
    # fixture) is all its own
    governed = [c for c in companies if named[c] in (checked.name, None)]
    if any(named.values()):
        governed = [c for c in companies if named[c] == checked.name]
    own = {
        step["name"]: index
        for index, step in enumerate(((doc.data.get("approval") or {}).get("steps")) or [])
    }

    def path_of(step: dict, rest: tuple) -> tuple:
        if step["name"] in own:
            return ("approval", "steps", own[step["name"]]) + rest
        return ("extends",)

    known_accounts = set(directory.account_ids())
    # the directory's roles and groups the rule set must know, and the other way round
    holders: dict[str, list[str]] = {}
    for company in governed:
        for m in directory.memberships_of_company(company):
            if m.role not in roles:
                holders.setdefault(m.role, []).append(f"{m.account_id} in {company}")
    for role, members in sorted(holders.items()):
        problems.append(
            doc.problem(
                "undefined_role",
                f"the directory gives role {role!r} to {listed_names(members)}, but the rule "
                f"set does not define it, so they have no permissions; define roles.{role} "
                "or change their memberships",
                ("roles",) if "roles" in doc.data else (),
                "warning",
            )
        )
    if governed:
        directory_groups = {g.id for c in governed for g in directory.groups_of_company(c)}
        for group in data.get("groups") or {}:
            if group not in directory_groups:
                problems.append(
                    doc.problem(
                        "unknown_group",
                        f"group {group!r} is not a group of {', '.join(governed)} in the "
                        "directory, so its settings apply to nobody",
                        ("groups", group) if group in (doc.data.get("groups") or {}) else (),
                        "warning",
                    )
                )
    for step in (data.get("approval") or {}).get("steps") or []:
        required = step.get("required", 1)
        for selectors, where in _selector_lists(step):
            for s_index, selector in enumerate(selectors):
                for account in selector.get("accounts") or ():
                    if account not in known_accounts:
                        problems.append(
                            doc.problem(
                                "unknown_account",
                                f"step {step['name']!r} names account {account!r}, which the "
                                "directory does not have",
                                path_of(step, where + (s_index, "accounts")),
                                "warning",
                            )
                        )
            if (
                not selectors
                or step.get("kind", "standard") != "standard"
                or step.get("fallback") == "parent_company"
            ):
                continue
            need = required if where == ("approvers", "any_of") else 1
            what = (
                f"step {step['name']!r}"
                if where == ("approvers", "any_of")
                else f"group {where[2] + 1} of step {step['name']!r}"
            )
            short = []
            for company in governed:
                possible = _possible_approvers(directory, company, selectors, approving)
                if len(possible) < need:
                    who = f" ({listed_names(possible)})" if possible else ""
                    short.append(f"{len(possible)} in {company}{who}")
            if short:
                problems.append(
                    doc.problem(
                        "too_few_approvers",
                        f"{what} needs {need} approval{'s' if need != 1 else ''}, but the "
                        f"directory has only {'; '.join(short)} who could give one: such "
                        "orders could never be approved; lower `required`, or give more "
                        "members a role the step names",
                        path_of(step, ("required",) if need > 1 else where),
                        "warning",
                    )
                )
        buyers = referenced_names(step.get("when"))["buyer_account"]
        for account in sorted(buyers - known_accounts):
            problems.append(
                doc.problem(
                    "unknown_account",
                    f"step {step['name']!r} tests buyer_account {account!r}, which the "
                    "directory does not have",
                    path_of(step, ("when",)),
                    "warning",
                )
            )
        for account in (step.get("escalate_to") or {}).get("accounts") or ():
            if account not in known_accounts:
                problems.append(
                    doc.problem(
                        "unknown_account",
                        f"step {step['name']!r} escalates to account {account!r}, which the "
                        "directory does not have",
                        path_of(step, ("escalate_to", "accounts")),
                        "warning",
                    )
                )
    for kind in ("deny", "bypass"):
        for index, rule in enumerate(data.get(kind) or []):
            buyers = referenced_names(rule.get("when"))["buyer_account"]
            for account in sorted(buyers - known_accounts):
                problems.append(
                    doc.problem(
                        "unknown_account",
                        f"{kind} rule {rule['name']!r} tests buyer_account {account!r}, which "
                        "the directory does not have",
                        (kind, index, "when") if kind in doc.data else ("extends",),
                        "warning",
                    )
                )
    return problems


def _possible_approvers(
    directory: Directory, company: str, selectors: list, approving: set[str]
) -> set[str]:
    """Every account of ``company`` (or a delegate of one) that some order could find through
    one of ``selectors``: an upper bound (relations and attributes are not narrowed)."""
    found: set[str] = set()
    for m in directory.memberships_of_company(company):
        account = directory.account(m.account_id)
        if not (m.active and account is not None and account.active and m.role in approving):
            continue
        if m.settings.get("may_approve") is False:
            continue
        for selector in selectors:
            named_roles = _as_list(selector.get("role"))
            if named_roles and m.role not in named_roles:
                continue
            if selector.get("accounts") and m.account_id not in selector["accounts"]:
                continue
            found.add(m.account_id)
            break
    for delegator in list(found):
        found.update(d.delegate_id for d in directory.delegations_of(delegator))
    return found


def _selector_lists(step: dict) -> Iterable[tuple[list, tuple]]:
    """Each list of approver selectors of a step, with its path inside the step."""
    approvers = step.get("approvers") or {}
    yield approvers.get("any_of") or [], ("approvers", "any_of")
    for g_index, group in enumerate(approvers.get("all_of") or []):
        yield group.get("any_of") or [], ("approvers", "all_of", g_index, "any_of")


def _escalation_problems(
    doc: Document,
    step: dict,
    path: tuple,
    roles: set[str],
    approving_roles: set[str],
    stricter,
    problems: list[Problem],
) -> None:
    """``escalate_to``'s roles exist and can approve; a step that escalates names someone;
    ``escalate_to`` is not given where ``on_timeout`` never escalates."""
    target = step.get("escalate_to")
    on_timeout = step.get("on_timeout") or ("escalate" if target else "cancel")
    name = step["name"]
    if target and on_timeout != "escalate":
        stricter(
            "ignored_key",
            f"step {name!r}: escalate_to is never used, because on_timeout is {on_timeout}; "
            "remove escalate_to or set on_timeout: escalate",
            path + ("escalate_to",),
        )
        return
    if on_timeout != "escalate":
        return
    named = _as_list((target or {}).get("role"))
    for role in named:
        if role not in roles:
            stricter(
                "undefined_escalation_role",
                f"step {name!r} escalates to role {role!r}, which is not defined; "
                + (f"defined: {listed_names(roles)}" if roles else "the rule set defines no roles"),
                path + ("escalate_to", "role"),
            )
    can_approve = [r for r in named if r in approving_roles]
    if target and target.get("accounts"):
        return
    if not target:
        message = (
            f"step {name!r} escalates on timeout but names nobody to escalate to: add "
            "escalate_to with a role or accounts, or set on_timeout to cancel or approve"
        )
    elif not named:
        message = (
            f"step {name!r}: escalate_to names no role and no accounts, so escalation reaches "
            "nobody; add a role or accounts"
        )
    elif not can_approve:
        message = (
            f"step {name!r} escalates only to {', '.join(map(repr, named))}, which cannot "
            "approve (no approve_orders permission), so escalation reaches nobody; give the "
            "role approve_orders or escalate to another role or to accounts"
        )
    else:
        return
    where = ("escalate_to",) if target else ("on_timeout",) if "on_timeout" in step else ()
    problems.append(doc.problem("escalates_to_nobody", message, path + where, "warning"))


def _quotes_only(when) -> bool:
    """Whether a condition requires the order to be a quote (an ``order_type`` of quote only,
    as one of the parts that must all hold)."""
    if not when:
        return False
    for part in top_level_parts(parse_condition(when)):
        if (
            isinstance(part, Leaf)
            and key_of(part) == "order_type"
            and set(_as_list(part.value)) <= {"quote"}
        ):
            return True
    return False


def _precision_problems(doc: Document, data: dict, stricter) -> None:
    """Every amount the document states is a whole number of its currency's minor units
    (ISO 4217: cents for USD, whole yen for JPY).  Only the document's own amounts: a parent's
    are its own document's to fix."""
    base = base_currency(data)
    for path, container, key in amount_positions(doc.data):
        value = container[key]
        given = value.items() if isinstance(value, dict) else [(base, value)]
        for code, amount in given:
            if code not in CURRENCIES:
                continue  # an unknown currency is the schema's problem
            try:
                exact = parse_amount(amount, format_path(path))
            except OrderError:
                continue  # not an amount: the schema says what to write
            if fits_minor_units(exact, code):
                continue
            units = minor_units(code)
            where = path + (code,) if isinstance(value, dict) else path
            lower = exact.quantize(Decimal(1).scaleb(-units), rounding=ROUND_FLOOR)
            upper = exact.quantize(Decimal(1).scaleb(-units), rounding=ROUND_CEILING)
            places = (
                f"{code} has no minor unit: amounts in it are whole numbers"
                if units == 0
                else f"{code} amounts have at most {units} decimal{'s' if units != 1 else ''}"
            )
            stricter(
                "amount_precision",
                f"{format_amount(exact)} {code}: {places} (ISO 4217); write "
                f"{format_amount(lower)} or {format_amount(upper)}",
                where,
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
    """``value`` as a Decimal; None when absent or not an amount (the schema says so)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        return None
    return amount if amount.is_finite() else None
