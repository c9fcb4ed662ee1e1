"""Validate plain data: the JSON Schema first, then the checks a schema cannot express.

Problems are collected, not raised one at a time, so an author sees every
mistake at once, each as ``file:line: path: message``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from typing import Any

import jsonschema
from referencing import Registry, Resource

from ..errors import DocumentError, Problem
from .currencies import base_currency, currency_problems, in_currency, priced_currencies
from .load import Document, load_document, text_hash

SCHEMA_NAMES = ("ruleset", "directory", "order")


@functools.cache
def schema(name: str) -> dict:
    """The JSON Schema ``schemas/<name>.schema.json`` shipped with the package."""
    if name not in SCHEMA_NAMES:
        raise KeyError(name)
    text = _schema_text(name)
    return json.loads(text)


def _schema_text(name: str) -> str:
    filename = f"{name}.schema.json"
    try:
        return resources.files("approvalrules.schemas").joinpath(filename).read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError):  # running from a checkout without install
        from pathlib import Path

        return (Path(__file__).resolve().parent.parent / "schemas" / filename).read_text("utf-8")


@functools.cache
def _registry() -> Registry:
    resources_ = [(f"{n}.schema.json", Resource.from_contents(schema(n))) for n in SCHEMA_NAMES]
    resources_ += [(schema(n)["$id"], Resource.from_contents(schema(n))) for n in SCHEMA_NAMES]
    return Registry().with_resources(resources_)


@functools.cache
def validator(name: str) -> jsonschema.protocols.Validator:
    """A compiled validator per schema, built once per process (Kinto habit)."""
    cls = jsonschema.validators.validator_for(schema(name))
    return cls(schema(name), registry=_registry())


@functools.cache
def fast_validator(name: str) -> Callable[[Any], Any] | None:
    """A code-generated validator (fastjsonschema) for the happy path, or None if unavailable.

    It only ever says "valid": a document it rejects goes through
    :func:`validator` (jsonschema), which has the last word and words the
    messages.  fastjsonschema implements draft 7; every keyword the schemas
    use means the same there, except that ``enum``/``const`` compare with
    Python's ``==`` (``1 == True``), so booleans get an explicit type.
    """
    try:
        import fastjsonschema
    except ImportError:  # pragma: no cover - a dependency; jsonschema alone still works
        return None
    try:
        return fastjsonschema.compile(_strict_booleans(schema(name)))
    except Exception:  # pragma: no cover - a schema it cannot compile: jsonschema only
        return None


def _strict_booleans(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict_booleans(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict_booleans(v) for k, v in node.items()}
    values = (
        out["enum"]
        if isinstance(out.get("enum"), list)
        else [out["const"]]
        if "const" in out
        else None
    )
    if (
        values is not None
        and "type" not in out
        and any(isinstance(v, (bool, int, float)) or v is None for v in values)
    ):
        if all(isinstance(v, bool) for v in values):
            out["type"] = "boolean"
        else:  # numbers or null among the choices: leave it to jsonschema
            raise ValueError("enum of numbers")
    return out


def schema_problems(doc: Document, name: str) -> list[Problem]:
    """Every structural problem of ``doc.data`` against schema ``name``."""
    fast = fast_validator(name)
    if fast is not None:
        try:
            fast(doc.data)
            return []
        except Exception:  # invalid (or too odd for it): jsonschema decides and explains
            pass
    problems = []
    for error in sorted(
        validator(name).iter_errors(doc.data), key=lambda e: list(map(str, e.absolute_path))
    ):
        problems.append(_problem_from(doc, error))
    return problems


def _problem_from(doc: Document, error: jsonschema.ValidationError) -> Problem:
    instance = error.instance
    if (
        isinstance(instance, (int, float))
        and not isinstance(instance, bool)
        and instance < 0
        and _is_amount(error)
    ):
        return doc.problem(
            "negative_amount",
            f"{instance} is negative; amounts must be 0 or more",
            list(error.absolute_path),
        )
    if error.context:
        # anyOf/oneOf: report the alternative that came closest, not all of them
        deepest = jsonschema.exceptions.best_match(error.context)
        if deepest is not None and deepest.validator not in ("type", "const"):
            error = deepest
    path = list(error.absolute_path)
    validator_name = error.validator
    if validator_name == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in error.schema.get("properties", {})]
        key = extra[0] if extra else ""
        hint = f"; allowed here: {', '.join(allowed)}" if allowed else ""
        return doc.problem("unknown_key", f"unknown key {key!r}{hint}", path + [key])
    if (
        validator_name == "minProperties"
        and error.instance == {}
        and error.schema.get("properties")
    ):
        return doc.problem(
            "missing_key",
            f"empty: give one of {', '.join(sorted(error.schema['properties']))}",
            path,
        )
    if (
        validator_name == "maxProperties"
        and error.schema.get("maxProperties") == 1
        and error.schema.get("properties")
    ):
        return doc.problem(
            "invalid_value",
            f"give only one of {', '.join(sorted(error.schema['properties']))}, not {' and '.join(sorted(error.instance))}",
            path,
        )
    if validator_name == "required":
        return doc.problem("missing_key", f"{error.message}", path)
    if validator_name == "enum":
        choices = ", ".join(map(str, error.validator_value))
        if len(choices) > 200:
            choices = choices[:200] + "..."
        return doc.problem(
            "invalid_value", f"{_short(error.instance)} is not one of: {choices}", path
        )
    if validator_name == "type" or (error.context and validator_name in ("anyOf", "oneOf")):
        expected = _expected(error)
        return doc.problem("wrong_type", f"expected {expected}, got {_short(error.instance)}", path)
    if (
        validator_name in ("minimum", "exclusiveMinimum")
        and isinstance(error.instance, (int, float))
        and error.instance < 0
    ):
        return doc.problem(
            "negative_amount", f"{error.instance} is negative; amounts must be 0 or more", path
        )
    if (
        validator_name == "pattern"
        and isinstance(error.instance, str)
        and error.instance.startswith("-")
    ):
        return doc.problem(
            "negative_amount", f"{error.instance!r} is negative; amounts must be 0 or more", path
        )
    if validator_name == "pattern":
        description = error.schema.get("description") or f"the pattern {error.validator_value}"
        return doc.problem(
            "invalid_value", f"{_short(error.instance)} does not match: {description}", path
        )
    if validator_name == "propertyNames":
        return doc.problem(
            "invalid_name", f"invalid name {_short(error.instance)}: {error.message}", path
        )
    return doc.problem(
        "invalid_value",
        error.message if len(error.message) < 300 else error.message[:300] + "...",
        path,
    )


def _is_amount(error) -> bool:
    """Whether the failing schema is (or offers) the ``money`` or ``amount`` definition."""
    text = json.dumps(error.schema, default=str)
    return "defs/money" in text or "defs/amount" in text or '"minimum": 0' in text


def _expected(error) -> str:
    names = set()
    for e in [error] + list(error.context or ()):
        value = e.schema.get("type") if isinstance(e.schema, dict) else None
        if isinstance(value, str):
            names.add(value)
        elif isinstance(value, list):
            names.update(value)
        if isinstance(e.schema, dict) and "$ref" in e.schema:
            names.add(e.schema["$ref"].rsplit("/", 1)[-1])
    return " or ".join(sorted(names)) or "another type"


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------- semantics


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
    problems = semantic_problems(doc, resolved)
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
    from .conditions import referenced_names

    problems: list[Problem] = []
    roles = set((data.get("roles") or {}).keys())
    groups = set((data.get("groups") or {}).keys())
    approval = data.get("approval") or {}
    steps = approval.get("steps") or []

    def check_names(kind: str, names: Iterable[str], known: set[str], path) -> None:
        for n in names:
            if n not in known:
                hint = (
                    f"; defined: {', '.join(sorted(known))}"
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
                    f"step {step['name']!r}: approvers.all_of is for standard steps, not assignment_tiers",
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
    """Contradictory limits and steps whose total range is empty or cut off, in one currency's view."""
    from .conditions import interval_of

    prefix = f"in {currency}: " if currency else ""
    limits = data.get("limits") or {}
    settings = data.get("settings") or {}
    max_total = _amount(limits.get("max_order_total"))
    below = _amount(settings.get("no_approval_below"))
    if max_total is not None and below is not None and below > max_total:
        problems.append(
            doc.problem(
                "contradictory_limits",
                f"{prefix}settings.no_approval_below ({below}) is above limits.max_order_total ({max_total}): no order could ever need approval",
                ("settings", "no_approval_below"),
                "warning",
            )
        )
    order_limit = _amount((limits.get("order_limit") or {}).get("amount"))
    if max_total is not None and order_limit is not None and order_limit >= max_total:
        problems.append(
            doc.problem(
                "contradictory_limits",
                f"{prefix}limits.order_limit ({order_limit}) is not below limits.max_order_total ({max_total}); it can never apply",
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
                    f"{prefix}step {step['name']!r} applies only above {low.value}, but orders above {max_total} are blocked",
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
                    f"{prefix}step {step['name']!r} applies only below {high.value}, but orders below {below} need no approval",
                    path,
                    "warning",
                )
            )


def check_exceeds(kinds, data, doc, path, problems) -> None:
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


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _amount(value) -> Decimal | None:
    if value is None:
        return None
    return Decimal(str(value))


def check_directory(text: str | bytes, source: str | None = None) -> Document:
    """Load and schema-check a directory fixture; raises :class:`DocumentError`."""
    doc = load_document(text, source)
    if not isinstance(doc.data, dict):
        raise DocumentError(
            [
                doc.problem(
                    "not_a_mapping",
                    "a directory is a YAML mapping with companies, accounts and assignments",
                )
            ]
        )
    problems = schema_problems(doc, "directory")
    if problems:
        raise DocumentError(problems)
    return doc
