"""Plain rule-set data <-> deform appstructs, by the ``json_kind`` of each node.

The nodes come from :func:`approvalrules.views.admin.schema_forms.build_schema`;
:func:`to_form` fills a form from data, :func:`from_form` turns a validated form
back into data, keeping old values that did not change (``500`` stays ``500``
when the form says ``"500"``).
"""

from __future__ import annotations

import io
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import colander
from ruamel.yaml import YAML

from approvalrules.engine.load import load_document
from approvalrules.errors import DocumentError

from . import form_layout

#: "the key is absent" (as opposed to present with the value None)
MISSING = object()

MONEY_RE = re.compile(r"^[0-9]{1,15}(\.[0-9]{1,4})?$")


def split_lines(text: str) -> list[str]:
    """The non-blank lines of a textarea, stripped."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def represent_decimal(representer, value: Decimal):
    """ruamel representer: a Decimal as a plain YAML number, never in exponent form."""
    return representer.represent_scalar("tag:yaml.org,2002:float", format(value, "f"))


def parse_snippet(text: str) -> Any:
    """Plain data from a YAML snippet, with the engine's safe loader (YAML 1.2, limits)."""
    try:
        return load_document(text, "field").data
    except DocumentError as exc:
        raise ValueError("; ".join(p.message for p in exc.problems) or "invalid YAML") from None


def dump_snippet(value: Any) -> str:
    """One-line flow YAML for a snippet field."""
    stream = io.StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = True
    yaml.brace_single_entry_mapping_in_flow_sequence = True
    yaml.width = 4096
    yaml.representer.add_representer(Decimal, represent_decimal)
    yaml.dump(to_plain(value), stream)
    return stream.getvalue().strip().removesuffix("...").strip()


def to_plain(value: Any) -> Any:
    """Round-trip (ruamel) data as plain dicts, lists and scalars."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


def _money_text(value: Any) -> str:
    if isinstance(value, float):
        text = repr(float(value))
        return text[:-2] if text.endswith(".0") else text
    return str(value)


def to_form(node: colander.SchemaNode, value: Any) -> Any:
    """The appstruct deform renders for plain ``value`` (MISSING or None: empty)."""
    kind = node.json_kind
    if kind == "fold" and value is MISSING:
        value = {}
    if value is MISSING or value is None:
        if kind == "boolean":
            return node.json_default
        return colander.null
    if kind in ("object", "fold"):
        if not isinstance(value, dict):
            return colander.null
        return {
            # a fold holds some of its parent's keys: it reads the parent's mapping
            child.name: to_form(
                child, value if child.json_kind == "fold" else value.get(child.name, MISSING)
            )
            for child in node.children
            if child.json_kind != "skip"
        }
    if kind == "condition":
        return form_layout.condition_to_form(node, value, dump_snippet)
    if kind == "approvers":
        return form_layout.approvers_to_form(node, value, dump_snippet)
    if kind == "map":
        entry = node.children[0]
        key_node, value_node = entry.children
        return (
            [{"key": k, "value": to_form(value_node, v)} for k, v in value.items()]
            if isinstance(value, dict)
            else colander.null
        )
    if kind == "array":
        return (
            [to_form(node.children[0], v) for v in value]
            if isinstance(value, list)
            else colander.null
        )
    if kind == "set":
        return set(value) if isinstance(value, list) else colander.null
    if kind == "lines":
        return "\n".join(str(v) for v in value) if isinstance(value, list) else colander.null
    if kind == "money":
        return _money_text(value)
    if kind == "amount":
        return dump_snippet(value) if isinstance(value, dict) else _money_text(value)
    if kind == "yaml":
        return dump_snippet(value)
    if kind == "boolean":
        return bool(value)
    if kind == "tristate":
        return "true" if value is True else "false" if value is False else colander.null
    if kind == "integer":
        return value if isinstance(value, int) else colander.null
    return value if isinstance(value, str) else str(value)


def is_empty(appstruct: Any) -> bool:
    """Whether a form value holds nothing (null, None or blank)."""
    return appstruct is colander.null or appstruct is None or appstruct == ""


def _absent_or(old: Any) -> Any:
    """Nothing entered: keep an explicit null, otherwise leave the key out."""
    return None if old is None else MISSING


def from_form(node: colander.SchemaNode, appstruct: Any, old: Any = MISSING) -> Any:
    """Plain data for a validated appstruct; MISSING when the key should be absent.

    ``old`` is the value before editing: values equal to it (``500`` vs ``"500"``)
    come back as ``old`` itself so that an unchanged form changes nothing.
    """
    kind = node.json_kind
    if kind in ("object", "fold"):
        if not isinstance(appstruct, dict):
            return {} if kind == "fold" else _absent_or(old)
        old_map = old if isinstance(old, dict) else {}
        result = {}
        for child in node.children:
            if child.json_kind == "skip":
                continue
            if child.json_kind == "fold":
                # its keys are the parent's: merged in, never nested
                folded = from_form(child, appstruct.get(child.name, colander.null), old_map)
                result.update(folded if isinstance(folded, dict) else {})
                continue
            value = from_form(
                child, appstruct.get(child.name, colander.null), old_map.get(child.name, MISSING)
            )
            if value is not MISSING:
                result[child.name] = value
        if node.json_kind == "fold":
            return result
        if not result and not (isinstance(old, dict) and not old):
            return _absent_or(old)
        return result
    if kind == "condition":
        if not isinstance(appstruct, dict):
            return _absent_or(old)
        return form_layout.condition_from_form(
            appstruct, old, parse_snippet, money_value, MISSING, equivalent
        )
    if kind == "approvers":
        if not isinstance(appstruct, dict):
            return _absent_or(old)
        return form_layout.approvers_from_form(appstruct, old, parse_snippet, MISSING, equivalent)
    if kind == "map":
        if is_empty(appstruct) or not appstruct:
            return {} if isinstance(old, dict) and not old else _absent_or(old)
        value_node = node.children[0].children[1]
        old_map = old if isinstance(old, dict) else {}
        result = {}
        for entry in appstruct:
            value = from_form(
                value_node, entry.get("value", colander.null), old_map.get(entry["key"], MISSING)
            )
            result[entry["key"]] = {} if value is MISSING else value
        return result
    if kind == "array":
        if is_empty(appstruct) or not appstruct:
            return [] if isinstance(old, list) and not old else _absent_or(old)
        child = node.children[0]
        olds = _aligned(old, appstruct, child)
        return [
            _present(from_form(child, item, o)) for item, o in zip(appstruct, olds, strict=True)
        ]
    if kind == "set":
        if is_empty(appstruct) or not appstruct:
            return [] if isinstance(old, list) and not old else _absent_or(old)
        chosen = set(appstruct)
        kept = [v for v in (old if isinstance(old, list) else []) if v in chosen]
        return kept + [v for v in node.json_enum if v in chosen and v not in kept]
    if kind == "lines":
        entries = split_lines("" if is_empty(appstruct) else appstruct)
        if not entries:
            return [] if isinstance(old, list) and not old else _absent_or(old)
        return old if isinstance(old, list) and to_plain(old) == entries else entries
    if is_empty(appstruct):
        return _absent_or(old)
    if kind == "amount" and not MONEY_RE.match(appstruct.strip()):
        value = parse_snippet(appstruct)
        return old if old is not MISSING and equivalent(old, value) else value
    if kind in ("money", "amount"):
        return money_value(appstruct, old)
    if kind == "yaml":
        value = parse_snippet(appstruct)
        return old if old is not MISSING and equivalent(old, value) else value
    if kind == "boolean":
        if old is MISSING and bool(appstruct) == node.json_default:
            return MISSING
        return bool(appstruct)
    if kind == "tristate":
        return appstruct == "true"
    return appstruct


def money_value(text: str, old: Any = MISSING) -> Any:
    """The number an amount field says: ``old`` itself when equal, an int when whole."""
    text = text.strip()
    new = Decimal(text)
    if old is not MISSING and old is not None and _decimal(old) == new:
        return old
    return int(new) if new == new.to_integral_value() and "." not in text else new


def _present(value: Any) -> Any:
    return {} if value is MISSING else value


def _aligned(old: Any, items: list, child: colander.SchemaNode) -> list:
    """The old value of each new item: by ``name`` when items have one, else by position."""
    olds = old if isinstance(old, list) else []
    if child.json_kind == "object" and any(c.name == "name" for c in child.children):
        by_name = {o.get("name"): o for o in olds if isinstance(o, dict)}
        return [
            by_name.get(item.get("name"), MISSING) if isinstance(item, dict) else MISSING
            for item in items
        ]
    return [olds[i] if i < len(olds) else MISSING for i in range(len(items))]


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def equivalent(a: Any, b: Any) -> bool:
    """Same data, numbers compared as decimals.

    ``500`` == ``"500"`` is not: the types differ in YAML.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equivalent(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equivalent(x, y) for x, y in zip(a, b, strict=True))
    numeric = (int, float, Decimal)
    if (
        isinstance(a, numeric)
        and isinstance(b, numeric)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    ):
        return Decimal(str(a)) == Decimal(str(b))
    return (
        type(a) is type(b) and a == b if not isinstance(a, str) else isinstance(b, str) and a == b
    )
