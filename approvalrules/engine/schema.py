"""Validate plain data against the JSON Schemas shipped in ``approvalrules/schemas``.

Problems are collected, not raised one at a time, so an author sees every
mistake at once, each as ``file:line: path: message``.  The checks a schema
cannot express are in :mod:`approvalrules.engine.check`.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

from ..errors import DocumentError, Problem
from .directory import structure_problems
from .load import Document, format_path, load_document

try:
    import fastjsonschema
except ImportError:  # pragma: no cover - a dependency; jsonschema alone still works
    fastjsonschema = None

SCHEMA_NAMES = ("ruleset", "directory", "order", "webhook")

#: a problem list stops at this many problems and ends with "... and N more"
MAX_PROBLEMS = 100
#: problems counted past :data:`MAX_PROBLEMS` before the schema check stops counting
#: ("... and more than 1,000 more"): counting is most of a hostile document's cost
MAX_COUNTED = 1_000
#: errors kept per alternative of an ``anyOf``/``oneOf`` (enough to pick the closest one)
MAX_CONTEXT = 10
#: type checks jsonschema may make explaining one invalid document (about one per value
#: and alternative tried); past it the check stops with what it found -- at worst the
#: fast validator's first error -- and says so.  jsonschema costs ~30 us a check (0.15 s in all); a
#: 1 MB document whose one error is at its end would otherwise take seconds
MAX_SCHEMA_WORK = 5_000


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
        return (Path(__file__).resolve().parent.parent / "schemas" / filename).read_text("utf-8")


@functools.cache
def _registry() -> Registry:
    # the schemas carry no $id: a reference like ``ruleset.schema.json#/$defs/settings``
    # resolves against the file's own name, as it does in an editor reading schemas/
    resources_ = [(f"{n}.schema.json", Resource.from_contents(schema(n))) for n in SCHEMA_NAMES]
    return Registry().with_resources(resources_)


@functools.cache
def validator(name: str) -> jsonschema.protocols.Validator:
    """A compiled validator per schema, built once per process (Kinto habit).

    Three keywords are bounded (:func:`_bounded`): jsonschema lists every error of every
    ``anyOf``/``oneOf`` alternative before it picks one, and compares the items of an
    unsortable ``uniqueItems`` array pairwise, both unbounded on hostile input.
    """
    return _bounded(jsonschema.validators.validator_for(schema(name)))(
        schema(name), registry=_registry()
    )


class _OutOfWork(Exception):
    """jsonschema spent :data:`MAX_SCHEMA_WORK` type checks on one document."""


_work = threading.local()


def _counted_type(check):
    def type_(validator_, types, instance, schema_):
        # only :func:`schema_problems` sets a budget; other users of the validators
        # (the API's body checks) have none
        left = getattr(_work, "left", None)
        if left is not None:
            if left <= 0:
                raise _OutOfWork
            _work.left = left - 1
        yield from check(validator_, types, instance, schema_)

    return type_


def _any_of(validator_, alternatives, instance, schema_):
    context = []
    for index, subschema in enumerate(alternatives):
        errors = list(
            itertools.islice(
                validator_.descend(instance, subschema, schema_path=index), MAX_CONTEXT
            )
        )
        if not errors:
            return
        context.extend(errors)
    yield jsonschema.ValidationError(
        f"{_short(instance)} is not valid under any of the given schemas", context=context
    )


def _one_of(validator_, alternatives, instance, schema_):
    context, valid = [], 0
    for index, subschema in enumerate(alternatives):
        errors = list(
            itertools.islice(
                validator_.descend(instance, subschema, schema_path=index), MAX_CONTEXT
            )
        )
        if errors:
            context.extend(errors)
        else:
            valid += 1
    if valid == 0:
        yield jsonschema.ValidationError(
            f"{_short(instance)} is not valid under any of the given schemas", context=context
        )
    elif valid > 1:
        yield jsonschema.ValidationError(f"{_short(instance)} is valid under several schemas")


def _unique_items(validator_, unique, instance, schema_):
    if not unique or not validator_.is_type(instance, "array"):
        return
    seen = set()
    for item in instance:
        # canonical JSON, so equal maps compare equal; True is not 1 (as jsonschema says)
        key = (
            ("bool", item)
            if isinstance(item, bool)
            else json.dumps(item, sort_keys=True, default=str)
        )
        if key in seen:
            yield jsonschema.ValidationError(f"{_short(instance)} has non-unique elements")
            return
        seen.add(key)


def _bounded(cls):
    return jsonschema.validators.extend(
        cls,
        {
            "anyOf": _any_of,
            "oneOf": _one_of,
            "uniqueItems": _unique_items,
            "type": _counted_type(cls.VALIDATORS["type"]),
        },
    )


@functools.cache
def fast_validator(name: str) -> Callable[[Any], Any] | None:
    """A code-generated validator (fastjsonschema) for the happy path, or None if unavailable.

    It only ever says "valid": a document it rejects goes through
    :func:`validator` (jsonschema), which has the last word and words the
    messages.  fastjsonschema implements draft 7; every keyword the schemas
    use means the same there, except that ``enum``/``const`` compare with
    Python's ``==`` (``1 == True``), so booleans get an explicit type.
    """
    return fast_validator_for(schema(name))


def fast_validator_for(document: dict) -> Callable[[Any], Any] | None:
    """:func:`fast_validator` for a schema given as data (e.g. a part of the OpenAPI document).

    The same contract: it only ever says "valid"; anything it rejects, or raises on, goes to
    jsonschema, which decides and explains.
    """
    if fastjsonschema is None:  # pragma: no cover - a dependency; jsonschema alone still works
        return None
    try:
        return fastjsonschema.compile(_strict_booleans(document))
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
    """The structural problems of ``doc.data`` against schema ``name``.

    At most :data:`MAX_PROBLEMS`, then "... and N more" (:func:`more_problems`); the
    explanation stops after :data:`MAX_SCHEMA_WORK` type checks (``check_stopped``).
    """
    fast = fast_validator(name)
    fast_error = None
    if fast is not None:
        try:
            fast(doc.data)
            return []
        except Exception as exc:  # invalid (or too odd for it): jsonschema decides and explains
            fast_error = exc
    errors = validator(name).iter_errors(doc.data)
    first: list = []
    more, stopped = 0, False
    _work.left = MAX_SCHEMA_WORK
    try:
        for error in errors:
            if len(first) < MAX_PROBLEMS:
                first.append(error)
                continue
            more += 1
            if more > MAX_COUNTED:
                break
    except _OutOfWork:
        stopped = True
    finally:
        _work.left = None
    problems = [
        problem
        for error in sorted(first, key=lambda e: list(map(str, e.absolute_path)))
        for problem in _problems_from(doc, error)
    ]
    if stopped and not problems:
        problems.append(_fast_problem(doc, fast_error))
    if stopped:
        problems.append(
            doc.problem(
                "check_stopped",
                f"... the schema check stopped after {MAX_SCHEMA_WORK:,} checks; there may be "
                "more problems: fix these and check again",
            )
        )
    elif more:
        problems.append(more_problems(doc, more, counted=more <= MAX_COUNTED))
    return problems


def _fast_problem(doc: Document, error: Exception | None) -> Problem:
    """The fast validator's first error as a problem (when jsonschema ran out of work)."""
    path, node = [], doc.data
    for part in list(getattr(error, "path", None) or ["data"])[1:]:
        if isinstance(node, list) and str(part).isdigit():
            part = int(part)  # fastjsonschema names list items by strings
        path.append(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    message = getattr(error, "message", None) or "the document does not match the schema"
    message = message.replace(getattr(error, "name", "data"), format_path(path) or "the rule set")
    return doc.problem("invalid_value", message, path)


def more_problems(doc: Document, more: int, counted: bool = True) -> Problem:
    """The last entry of a problem list cut at :data:`MAX_PROBLEMS`: how many were left out."""
    how_many = f"{more:,}" if counted else f"more than {MAX_COUNTED:,}"
    return doc.problem(
        "too_many_problems",
        f"... and {how_many} more problems; only the first {MAX_PROBLEMS} are listed: "
        "fix these and check again",
    )


def cap_problems(doc: Document, problems: list[Problem]) -> list[Problem]:
    """``problems`` cut at :data:`MAX_PROBLEMS` errors (warnings after them dropped too),
    ending with "... and N more" when any were left out."""
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return problems[:MAX_PROBLEMS] + [more_problems(doc, len(problems) - MAX_PROBLEMS)]


def _problems_from(doc: Document, error: jsonschema.ValidationError) -> list[Problem]:
    """The problems one schema error stands for: one per unknown key of an object, else one."""
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        allowed = sorted(known)
        hint = f"; allowed here: {', '.join(allowed)}" if allowed else ""
        path = list(error.absolute_path)
        return [
            doc.problem("unknown_key", f"unknown key {key!r}{hint}", path + [key])
            for key in error.instance
            if key not in known
        ]
    return [_problem_from(doc, error)]


def _problem_from(doc: Document, error: jsonschema.ValidationError) -> Problem:
    instance = error.instance
    scalar = _scalar_kind_problem(doc, error)
    if scalar is not None:
        return scalar
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
            f"give only one of {', '.join(sorted(error.schema['properties']))}, not "
            f"{' and '.join(sorted(error.instance))}",
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
    if validator_name in ("maxItems", "maxProperties") and isinstance(instance, (list, dict)):
        what = "items" if validator_name == "maxItems" else "entries"
        return doc.problem(
            "invalid_value",
            f"{len(instance):,} {what}; at most {error.validator_value:,} are allowed",
            path,
        )
    if validator_name == "maxLength" and isinstance(instance, str):
        return doc.problem(
            "invalid_value",
            f"{len(instance):,} characters; at most {error.validator_value:,} are allowed",
            path,
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


#: the largest amount the schema takes (``$defs/money``'s maximum)
MAX_AMOUNT = 10**15
#: the largest conversion rate (``$defs/rate``'s maximum)
MAX_RATE = 10**6


def _scalar_kind_problem(doc: Document, error: jsonschema.ValidationError) -> Problem | None:
    """What to write instead, for an amount or a rate given as the wrong kind of value.

    jsonschema would say "expected object" for ``"1,000"`` (the last alternative of an
    amount is a per-currency map) or "expected null" for ``1e16``; an author needs to hear
    that an amount is a number like 1000.
    """
    instance = error.instance
    if isinstance(instance, (dict, list)):
        return None  # a per-currency map or a list: the schema's own words name the key
    kind = _value_kind(error)
    if kind is None:
        return None
    path = list(error.absolute_path)
    shown = _short(instance) if not isinstance(instance, str) else f'"{instance[:40]}"'
    if kind == "rate":
        example = "a rate above 0 like 1.08 (up to 6 digits before the point and 8 after)"
        if isinstance(instance, (int, float)) and not isinstance(instance, bool):
            if instance <= 0:
                return doc.problem(
                    "invalid_rate",
                    f"{shown} is not a usable rate: write {example}; to stop accepting the "
                    "currency, remove its line",
                    path,
                )
            if instance > MAX_RATE:
                return doc.problem("invalid_rate", f"{shown} is too large: write {example}", path)
        return doc.problem("invalid_rate", f"write {example}, not {shown}", path)
    if isinstance(instance, (int, float)) and not isinstance(instance, bool):
        if instance < 0:
            return doc.problem(
                "negative_amount", f"{shown} is negative; amounts must be 0 or more", path
            )
        if instance != instance or instance in (float("inf"), float("-inf")):
            return doc.problem("invalid_amount", f"{shown} is not an amount: {AMOUNT_HINT}", path)
        if instance > MAX_AMOUNT:
            return doc.problem(
                "invalid_amount",
                f"{shown} is too large: amounts go up to {MAX_AMOUNT:,} "
                "(write the digits, like 250000, not 2.5e5)",
                path,
            )
        return None
    if isinstance(instance, str):
        if instance.startswith("-"):
            return doc.problem(
                "negative_amount", f"{shown} is negative; amounts must be 0 or more", path
            )
        if re.fullmatch(r"[0-9]+\.[0-9]{5,}", instance):
            return doc.problem(
                "invalid_amount",
                f"{shown} has more decimals than any currency uses: give at most the "
                "currency's minor units (2 for USD and EUR, 0 for JPY)",
                path,
            )
        if re.fullmatch(r"[0-9]{16,}(\.[0-9]*)?", instance):
            return doc.problem(
                "invalid_amount", f"{shown} is too large: amounts go up to {MAX_AMOUNT:,}", path
            )
        plain = re.sub(r"[,\s_']", "", instance)
        if plain != instance and re.fullmatch(r"[0-9]+(\.[0-9]+)?", plain):
            return doc.problem("invalid_amount", f"write an amount like {plain}, not {shown}", path)
    return doc.problem("invalid_amount", f"{shown} is not an amount: {AMOUNT_HINT}", path)


#: how to write an amount, for messages about one written otherwise
AMOUNT_HINT = (
    "write a number like 1000 or 999.99 (digits and one decimal point; no commas, "
    "spaces, currency signs or words)"
)


def _value_kind(error: jsonschema.ValidationError) -> str | None:
    """``amount`` or ``rate`` when the failing schema is (or offers) the rule-set schema's
    money or rate definition; None for anything else."""
    definitions = schema("ruleset")["$defs"]
    money, rate = definitions["money"], definitions["rate"]
    pending = [error]
    while pending:
        current = pending.pop()
        if current.schema == money or current.schema == definitions["amount"]:
            return "amount"
        if current.schema == rate:
            return "rate"
        pending.extend(current.context or ())
    return None


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
    structure = [
        doc.problem(code, message, path) for code, message, path in structure_problems(doc.data)
    ]
    if structure:
        raise DocumentError(sorted(structure, key=lambda p: p.line or 0))
    return doc
