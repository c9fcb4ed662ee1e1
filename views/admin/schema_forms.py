"""Deform forms generated from the JSON Schema, and saving them back into YAML without losing it.

One source of truth: :func:`build_schema` walks ``schemas/ruleset.schema.json``
(or any schema of ``approvalrules.engine.schema.SCHEMA_NAMES``) and makes the
colander schema; nothing here names a rule-set field.  The mapping:

=============================================  ===========================================
JSON Schema                                    colander / deform
=============================================  ===========================================
object with ``properties``                     Mapping
object with only ``additionalProperties``      Sequence of Mapping ``{key, value}``
array of an enum, ``uniqueItems``              Set, checkboxes
array                                          Sequence, SequenceWidget (add / remove)
string enum                                    String, Select (blank = the default)
string                                         String, TextInput, Length / Regex validators
integer                                        Integer, Range
number, money (``oneOf`` number | string)      String, decimal validator
boolean with a documented default              Boolean, Checkbox
boolean without one                            String, Select inherit / yes / no
``anyOf`` with ``null``                        the other branch, optional
recursive definitions (conditions), other
unions, free-form objects                      String, small textarea holding a YAML snippet
=============================================  ===========================================

Each node carries ``json_kind`` (and a few ``json_*`` attributes) so that
:func:`to_form` and :func:`from_form` convert between plain data and
deform appstructs.  :func:`save_into_yaml` applies only what changed to the
original text: unchanged lines stay byte for byte, comments included.
"""

from __future__ import annotations

import difflib
import io
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import colander
import deform
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from approvalrules.engine import schema as load_schema

#: "the key is absent" (as opposed to present with the value None)
MISSING = object()

MONEY_RE = re.compile(r"^[0-9]{1,15}(\.[0-9]{1,4})?$")
NUMBER_RE = re.compile(r"^-?[0-9]{1,15}(\.[0-9]{1,9})?$")
DEFAULT_RE = re.compile(r"\bDefault (true|false)\b")

TRI_STATE = (("", "(inherit / default)"), ("true", "yes"), ("false", "no"))


# ----------------------------------------------------------------- schema walking


class _Walker:
    """Builds colander nodes from one JSON Schema document, resolving ``$ref``."""

    def __init__(self, root: dict, root_name: str):
        self.roots = {root_name: root}
        self.root_name = root_name
        self._recursive: dict[str, bool] = {}
        #: how many sequences the node being built is inside
        self.depth = 0

    def _doc(self, name: str) -> dict:
        if name not in self.roots:
            self.roots[name] = load_schema(name)
        return self.roots[name]

    def _split_ref(self, ref: str, doc: str) -> tuple[str, str]:
        file, _, pointer = ref.partition("#")
        if file:
            doc = file.removesuffix(".schema.json")
        return doc, pointer

    def deref(self, spec: dict, doc: str) -> tuple[dict, str, str | None]:
        """Follow ``$ref`` chains: (schema, its document, the last definition name)."""
        name = None
        while "$ref" in spec:
            doc, pointer = self._split_ref(spec["$ref"], doc)
            target: Any = self._doc(doc)
            for part in [p for p in pointer.split("/") if p]:
                target = target[part]
            name = pointer.rsplit("/", 1)[-1]
            extra = {k: v for k, v in spec.items() if k != "$ref"}
            spec = {**target, **extra} if extra else target
        return spec, doc, name

    def is_recursive(self, doc: str, pointer: str) -> bool:
        """Whether a definition refers back to itself (directly or not): edited as YAML."""
        key = f"{doc}#{pointer}"
        if key not in self._recursive:
            self._recursive[key] = False  # cut cycles while looking
            self._recursive[key] = self._reaches(
                self.deref({"$ref": f"{doc}.schema.json#{pointer}"}, doc)[0], doc, key, set()
            )
        return self._recursive[key]

    def _reaches(self, spec: Any, doc: str, target: str, seen: set) -> bool:
        if isinstance(spec, dict):
            if "$ref" in spec:
                ref_doc, pointer = self._split_ref(spec["$ref"], doc)
                key = f"{ref_doc}#{pointer}"
                if key == target:
                    return True
                if key in seen:
                    return False
                seen.add(key)
                return self._reaches(self.deref(spec, doc)[0], ref_doc, target, seen)
            return any(self._reaches(v, doc, target, seen) for v in spec.values())
        if isinstance(spec, list):
            return any(self._reaches(v, doc, target, seen) for v in spec)
        return False

    # -- nodes

    def node(
        self, spec: dict, doc: str, name: str, required: bool, title: str | None = None
    ) -> colander.SchemaNode:
        title = title if title is not None else name.replace("_", " ")
        if "$ref" in spec:
            ref_doc, pointer = self._split_ref(spec["$ref"], doc)
            if self.is_recursive(ref_doc, pointer):
                return yaml_node(
                    name,
                    title,
                    required,
                    spec.get("description") or self.deref(spec, doc)[0].get("description"),
                )
        spec, doc, defname = self.deref(spec, doc)
        description = spec.get("description", "")
        if defname == "money":
            return money_node(name, title, required, description)
        if defname == "amount":
            return amount_node(name, title, required, description)
        for union in ("anyOf", "oneOf"):
            if union in spec:
                options = [o for o in spec[union] if o.get("type") != "null"]
                nullable = len(options) < len(spec[union])
                if len(options) == 1:
                    inner = self.node(
                        {**options[0], "description": description} if description else options[0],
                        doc,
                        name,
                        required and not nullable,
                        title,
                    )
                    inner.json_nullable = nullable
                    return inner
                return yaml_node(name, title, required, description)
        if "const" in spec:
            return yaml_node(name, title, required, description)
        kind = spec.get("type")
        if kind == "object":
            return self.object_node(spec, doc, name, title, required, description)
        if kind == "array":
            return self.array_node(spec, doc, name, title, required, description)
        if kind == "string":
            return string_node(spec, name, title, required, description)
        if kind == "integer":
            return integer_node(spec, name, title, required, description)
        if kind == "number":
            return number_node(name, title, required, description)
        if kind == "boolean":
            return boolean_node(name, title, required, description)
        return yaml_node(name, title, required, description)

    def object_node(self, spec, doc, name, title, required, description) -> colander.SchemaNode:
        properties = spec.get("properties")
        additional = spec.get("additionalProperties")
        if properties:
            needed = [key for key in spec.get("required", ()) if key in properties]
            # An optional object's required keys are only required once the
            # object is filled in at all; deform always posts every field, so
            # that is checked by the mapping's validator, not by colander.
            node = colander.SchemaNode(
                colander.Mapping(unknown="ignore"),
                name=name,
                title=title,
                description=description,
                missing=colander.null if not required else colander.required,
                json_kind="object",
                validator=None if required or not needed else _RequiredIfAny(needed),
            )
            for key, sub in properties.items():
                node.add(self.node(sub, doc, key, key in needed and required))
            return node
        if isinstance(additional, dict):
            if self.depth:
                return yaml_node(name, title, required, description)
            self.depth += 1
            singular = name[:-1] if name.endswith("s") and len(name) > 3 else "entry"
            item = colander.SchemaNode(
                colander.Mapping(unknown="ignore"),
                name="entry",
                title=singular.replace("_", " "),
                json_kind="entry",
            )
            key_spec = spec.get("propertyNames") or {
                "type": "string",
                "minLength": 1,
                "maxLength": 200,
            }
            item.add(self.node(key_spec, doc, "key", True, title="name"))
            item.add(self.node(additional, doc, "value", True, title=""))
            self.depth -= 1
            return colander.SchemaNode(
                colander.Sequence(),
                item,
                name=name,
                title=title,
                description=description,
                missing=colander.null,
                widget=deform.widget.SequenceWidget(
                    add_subitem_text_template="Add ${subitem_title}", orderable=False
                ),
                json_kind="map",
            )
        return yaml_node(name, title, required, description)

    def array_node(self, spec, doc, name, title, required, description) -> colander.SchemaNode:
        items, items_doc, _ = self.deref(spec.get("items") or {}, doc)
        if items.get("enum") and spec.get("uniqueItems"):
            values = [(v, v.replace("_", " ")) for v in items["enum"]]
            return colander.SchemaNode(
                colander.Set(),
                name=name,
                title=title,
                description=description,
                missing=colander.null,
                widget=deform.widget.CheckboxChoiceWidget(values=values, inline=True),
                json_kind="set",
                json_enum=list(items["enum"]),
            )
        if items.get("type") == "string" and "enum" not in items:
            # a list of plain strings (SKUs, account ids): one per line keeps
            # the form small; lists of objects get the sequence widget
            return lines_node(items, name, title, required, description, spec)
        if self.depth:
            # a sequence inside a sequence item would nest deform's item
            # prototypes (and their size) once per level: one level of
            # add/remove buttons, YAML snippets below it
            return yaml_node(name, title, required, description)
        singular = name[:-1] if name.endswith("s") and len(name) > 3 else "item"
        self.depth += 1
        child = self.node(spec.get("items") or {}, doc, singular, True)
        self.depth -= 1
        validator = None
        if spec.get("minItems") or spec.get("maxItems"):
            validator = colander.Length(min=spec.get("minItems"), max=spec.get("maxItems"))
        return colander.SchemaNode(
            colander.Sequence(),
            child,
            name=name,
            title=title,
            description=description,
            missing=colander.null if not required else colander.required,
            validator=validator,
            widget=deform.widget.SequenceWidget(
                add_subitem_text_template="Add ${subitem_title}", orderable=False
            ),
            json_kind="array",
        )


class _RequiredIfAny:
    """Validator of an optional mapping: once any field is given, its required fields must be."""

    def __init__(self, names: list[str]):
        self.names = names

    def __call__(self, node, value):
        if not isinstance(value, dict) or all(
            _empty(v) or v == [] or v == set() for v in value.values()
        ):
            return
        error = colander.Invalid(node, "")
        for index, child in enumerate(node.children):
            if child.name in self.names and _empty(value.get(child.name, colander.null)):
                error.add(colander.Invalid(child, "Required"), index)
        if error.children:
            raise error


def _optional(required: bool):
    return colander.required if required else colander.null


def yaml_node(name, title, required, description) -> colander.SchemaNode:
    """A YAML snippet in a small textarea: recursive or free-form parts (conditions, orders)."""
    hint = (description + " " if description else "") + "(YAML, e.g. {total: {gt: 500}})"
    return colander.SchemaNode(
        colander.String(),
        name=name,
        title=title,
        description=hint,
        missing=_optional(required),
        widget=deform.widget.TextAreaWidget(rows=2, css_class="yaml-snippet"),
        validator=_valid_yaml,
        json_kind="yaml",
    )


def _valid_yaml(node, value):
    try:
        parse_snippet(value)
    except ValueError as exc:
        raise colander.Invalid(node, str(exc)) from None


def lines_node(items, name, title, required, description, spec) -> colander.SchemaNode:
    """A list of strings as a textarea, one per line."""

    def validate(node, value):
        entries = split_lines(value)
        problems = [
            f"{e!r} is longer than {items['maxLength']} characters"
            for e in entries
            if items.get("maxLength") and len(e) > items["maxLength"]
        ]
        if spec.get("uniqueItems") and len(set(entries)) != len(entries):
            problems.append("an entry is listed twice")
        if spec.get("minItems") and len(entries) < spec["minItems"]:
            problems.append(f"give at least {spec['minItems']}")
        if problems:
            raise colander.Invalid(node, "; ".join(problems))

    return colander.SchemaNode(
        colander.String(),
        name=name,
        title=title,
        description=((description + " ") if description else "") + "One per line.",
        missing=_optional(required),
        widget=deform.widget.TextAreaWidget(rows=2, css_class="lines"),
        validator=validate,
        json_kind="lines",
    )


def split_lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def money_node(name, title, required, description) -> colander.SchemaNode:
    return colander.SchemaNode(
        colander.String(),
        name=name,
        title=title,
        description=description or "An amount, e.g. 500 or 999999.99",
        missing=_optional(required),
        json_kind="money",
        validator=colander.Regex(
            MONEY_RE,
            "an amount: digits, optionally a dot and up to 4 decimals (e.g. 500 or 1250.50)",
        ),
        widget=deform.widget.TextInputWidget(attributes={"inputmode": "decimal"}),
    )


def amount_node(name, title, required, description) -> colander.SchemaNode:
    """Money, or one amount per priced currency written as YAML ({USD: 500, EUR: 450})."""
    return colander.SchemaNode(
        colander.String(),
        name=name,
        title=title,
        description=description or "An amount, e.g. 500, or per currency: {USD: 500, EUR: 450}",
        missing=_optional(required),
        json_kind="amount",
        validator=_valid_amount,
        widget=deform.widget.TextInputWidget(attributes={"inputmode": "decimal"}),
    )


def _valid_amount(node, value):
    if MONEY_RE.match(value.strip()):
        return
    try:
        parsed = parse_snippet(value)
    except ValueError as exc:
        raise colander.Invalid(node, str(exc)) from None
    if not isinstance(parsed, dict) or not all(
        isinstance(v, (int, float, str, Decimal)) and not isinstance(v, bool)
        for v in parsed.values()
    ):
        raise colander.Invalid(
            node, "an amount (e.g. 500 or 1250.50) or one per currency: {USD: 500, EUR: 450}"
        )


def number_node(name, title, required, description) -> colander.SchemaNode:
    return colander.SchemaNode(
        colander.String(),
        name=name,
        title=title,
        description=description,
        missing=_optional(required),
        json_kind="money",
        validator=colander.Regex(NUMBER_RE, "a number"),
        widget=deform.widget.TextInputWidget(attributes={"inputmode": "decimal"}),
    )


def string_node(spec, name, title, required, description) -> colander.SchemaNode:
    if "enum" in spec:
        values = ([] if required else [("", "(default)")]) + [(v, v) for v in spec["enum"]]
        return colander.SchemaNode(
            colander.String(),
            name=name,
            title=title,
            description=description,
            missing=_optional(required),
            validator=colander.OneOf(spec["enum"]),
            widget=deform.widget.SelectWidget(values=values),
            json_kind="string",
        )
    validators = []
    if spec.get("minLength") or spec.get("maxLength"):
        validators.append(colander.Length(min=spec.get("minLength"), max=spec.get("maxLength")))
    if spec.get("pattern"):
        validators.append(
            colander.Regex(
                spec["pattern"], spec.get("description") or f"must match {spec['pattern']}"
            )
        )
    long_text = (spec.get("maxLength") or 0) > 200
    return colander.SchemaNode(
        colander.String(),
        name=name,
        title=title,
        description=description,
        missing=_optional(required),
        validator=colander.All(*validators) if validators else None,
        json_kind="string",
        widget=deform.widget.TextAreaWidget(rows=2)
        if long_text
        else deform.widget.TextInputWidget(),
    )


def integer_node(spec, name, title, required, description) -> colander.SchemaNode:
    return colander.SchemaNode(
        colander.Integer(),
        name=name,
        title=title,
        description=description,
        missing=_optional(required),
        json_kind="integer",
        validator=colander.Range(min=spec.get("minimum"), max=spec.get("maximum")),
        widget=deform.widget.TextInputWidget(attributes={"inputmode": "numeric"}),
    )


def boolean_node(name, title, required, description) -> colander.SchemaNode:
    found = DEFAULT_RE.search(description or "")
    if found:
        default = found.group(1) == "true"
        return colander.SchemaNode(
            colander.Boolean(),
            name=name,
            title=title,
            description=description,
            missing=default,
            default=default,
            widget=deform.widget.CheckboxWidget(),
            json_kind="boolean",
            json_default=default,
        )
    # no documented default: a checkbox could not say "not set here, inherit"
    return colander.SchemaNode(
        colander.String(),
        name=name,
        title=title,
        description=description,
        missing=colander.null,
        widget=deform.widget.SelectWidget(values=TRI_STATE),
        validator=colander.OneOf(["true", "false"]),
        json_kind="tristate",
    )


def build_schema(name: str = "ruleset") -> colander.SchemaNode:
    """The colander schema of a whole document described by ``schemas/<name>.schema.json``."""
    root = load_schema(name)
    walker = _Walker(root, name)
    node = walker.node(root, name, "document", True, title="")
    node.name = ""
    return node


# ------------------------------------------------------------ data <-> appstruct


def parse_snippet(text: str) -> Any:
    """Plain data from a YAML snippet, with the engine's safe loader (YAML 1.2, limits)."""
    from approvalrules.engine.load import load_document
    from approvalrules.errors import DocumentError

    try:
        return load_document(text, "field").data
    except DocumentError as exc:
        raise ValueError("; ".join(p.message for p in exc.problems) or "invalid YAML") from None


def dump_snippet(value: Any) -> str:
    """One-line flow YAML for a snippet field."""
    stream = io.StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = True
    yaml.width = 4096
    yaml.representer.add_representer(Decimal, _represent_decimal)
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
    if value is MISSING or value is None:
        if kind == "boolean":
            return node.json_default
        return colander.null
    if kind == "object":
        if not isinstance(value, dict):
            return colander.null
        return {
            child.name: to_form(child, value.get(child.name, MISSING))
            for child in node.children
            if child.json_kind != "skip"
        }
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


def _empty(appstruct: Any) -> bool:
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
    if kind == "object":
        if not isinstance(appstruct, dict):
            return _absent_or(old)
        old_map = old if isinstance(old, dict) else {}
        result = {}
        for child in node.children:
            if child.json_kind == "skip":
                continue
            value = from_form(
                child, appstruct.get(child.name, colander.null), old_map.get(child.name, MISSING)
            )
            if value is not MISSING:
                result[child.name] = value
        if not result and not (isinstance(old, dict) and not old):
            return _absent_or(old)
        return result
    if kind == "map":
        if _empty(appstruct) or not appstruct:
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
        if _empty(appstruct) or not appstruct:
            return [] if isinstance(old, list) and not old else _absent_or(old)
        child = node.children[0]
        olds = _aligned(old, appstruct, child)
        return [_present(from_form(child, item, o)) for item, o in zip(appstruct, olds)]
    if kind == "set":
        if _empty(appstruct) or not appstruct:
            return [] if isinstance(old, list) and not old else _absent_or(old)
        chosen = set(appstruct)
        kept = [v for v in (old if isinstance(old, list) else []) if v in chosen]
        return kept + [v for v in node.json_enum if v in chosen and v not in kept]
    if kind == "lines":
        entries = split_lines("" if _empty(appstruct) else appstruct)
        if not entries:
            return [] if isinstance(old, list) and not old else _absent_or(old)
        return old if isinstance(old, list) and to_plain(old) == entries else entries
    if _empty(appstruct):
        return _absent_or(old)
    if kind == "amount" and not MONEY_RE.match(appstruct.strip()):
        value = parse_snippet(appstruct)
        return old if old is not MISSING and _equivalent(old, value) else value
    if kind in ("money", "amount"):
        appstruct = appstruct.strip()
        new = Decimal(appstruct)
        if old is not MISSING and old is not None and _decimal(old) == new:
            return old
        return int(new) if new == new.to_integral_value() and "." not in appstruct else new
    if kind == "yaml":
        value = parse_snippet(appstruct)
        return old if old is not MISSING and _equivalent(old, value) else value
    if kind == "boolean":
        if old is MISSING and bool(appstruct) == node.json_default:
            return MISSING
        return bool(appstruct)
    if kind == "tristate":
        return appstruct == "true"
    return appstruct


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


def _equivalent(a: Any, b: Any) -> bool:
    """Same data, numbers compared as decimals (``500`` == ``"500"`` is not: types differ in YAML)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equivalent(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equivalent(x, y) for x, y in zip(a, b))
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


# ------------------------------------------------------------------ YAML round trip


def _represent_decimal(representer, value: Decimal):
    return representer.represent_scalar("tag:yaml.org,2002:float", format(value, "f"))


def _represent_none(representer, value):
    # ruamel writes an empty value; the rule sets spell it out
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


def round_trip_yaml() -> YAML:
    """ruamel.yaml in round-trip mode, styled like the sample rule sets."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.representer.add_representer(Decimal, _represent_decimal)
    yaml.representer.add_representer(type(None), _represent_none)
    return yaml


def load_round_trip(text: str) -> Any:
    return round_trip_yaml().load(text)


def _dump(data: Any) -> str:
    stream = io.StringIO()
    round_trip_yaml().dump(data, stream)
    return stream.getvalue()


def merge(old: Any, new: Any) -> Any:
    """``new`` written into ``old`` in place where both are containers; the value to store."""
    if isinstance(old, CommentedMap) and isinstance(new, dict):
        for key in [k for k in old if k not in new]:
            del old[key]
        for key, value in new.items():
            if key in old:
                merged = merge(old[key], value)
                if merged is not old[key]:
                    old[key] = merged
            else:
                old[key] = _fresh(value)
        return old
    if isinstance(old, CommentedSeq) and isinstance(new, list):
        names = [item.get("name") if isinstance(item, dict) else None for item in new]
        old_names = [item.get("name") if isinstance(item, dict) else None for item in old]
        if names != old_names and all(names) and all(old_names):
            # steps added, removed or moved: keep each surviving item (and its comments)
            by_name = {item["name"]: item for item in old}
            rebuilt = [
                merge(by_name[n], item) if n in by_name else _fresh(item)
                for n, item in zip(names, new)
            ]
            del old[:]
            old.extend(rebuilt)
            return old
        for index, value in enumerate(new):
            if index < len(old):
                merged = merge(old[index], value)
                if merged is not old[index]:
                    old[index] = merged
            else:
                old.append(_fresh(value))
        del old[len(new) :]
        return old
    if _equivalent(to_plain(old), to_plain(new)) and type(to_plain(old)) is type(to_plain(new)):
        return old
    return _fresh(new)


def _fresh(value: Any) -> Any:
    """A new value as round-trip data; small mappings and lists in flow style, like the samples."""
    if isinstance(value, dict):
        node = CommentedMap((k, _fresh(v)) for k, v in value.items())
        if _is_small(value):
            node.fa.set_flow_style()
        return node
    if isinstance(value, list):
        node = CommentedSeq(_fresh(v) for v in value)
        if _is_small(value):
            node.fa.set_flow_style()
        return node
    return value


def _is_small(value: Any) -> bool:
    return len(dump_snippet(value)) <= 60


def save_into_yaml(original: str, new_data: dict) -> str:
    """The original text with ``new_data`` applied; untouched lines (and their comments) verbatim.

    ruamel keeps comments and key order but normalises some spacing; so the
    changed document is dumped, compared line by line with a dump of the
    unchanged one, and only the lines that differ are taken from it.  When
    the normalised dump does not line up with the original, it is used as is.
    """
    baseline = _dump(load_round_trip(original))
    document = load_round_trip(original)
    merge(document, new_data)
    changed = _dump(document)
    old_lines = original.splitlines(keepends=True)
    base_lines = baseline.splitlines(keepends=True)
    new_lines = changed.splitlines(keepends=True)
    if len(old_lines) != len(base_lines):
        return changed
    out: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(
        None, base_lines, new_lines, autojunk=False
    ).get_opcodes():
        out.extend(old_lines[i1:i2] if tag == "equal" else new_lines[j1:j2])
    text = "".join(out)
    if original and not original.endswith("\n") and text.endswith("\n"):
        text = text[:-1]
    return text


# --------------------------------------------------------------- errors on fields


def field_errors(node: colander.SchemaNode, problems) -> tuple[colander.Invalid | None, list]:
    """Engine problems (``approval.steps[0].required``) as a colander error tree for deform.

    Returns the tree (None when no problem has a field) and the problems no
    field could take, which the page lists instead.
    """
    top = colander.Invalid(node, "The rule set has problems; see the fields below.")
    unplaced = []
    placed = False
    for problem in problems:
        target = _locate(node, top, _path_parts(problem.path))
        if target is None:
            unplaced.append(problem)
            continue
        invalid, _ = target
        invalid.msg = (
            invalid.msg + "; " if invalid.msg and invalid.msg != "." else ""
        ) + problem.message
        placed = True
    return (top if placed else None), unplaced


def _path_parts(path: str) -> list:
    parts: list = []
    for piece in re.findall(r"[^.\[\]]+|\[\d+\]", path or ""):
        parts.append(int(piece[1:-1]) if piece.startswith("[") else piece)
    return parts


def _locate(node, invalid, parts):
    """Walk ``parts`` through nodes and Invalid children, creating them; (Invalid, node) or None."""
    if not parts:
        return (invalid, node) if node.json_kind not in ("object",) else None
    head, rest = parts[0], parts[1:]
    kind = node.json_kind
    if kind == "object" and isinstance(head, str):
        for index, child in enumerate(node.children):
            if child.name == head:
                return _locate(child, _child_invalid(invalid, child, index), rest)
        return None
    if kind == "array" and isinstance(head, int):
        return _locate(node.children[0], _child_invalid(invalid, node.children[0], head), rest)
    if kind in (
        "yaml",
        "money",
        "amount",
        "string",
        "integer",
        "boolean",
        "tristate",
        "set",
        "map",
        "array",
        "lines",
    ):
        return (invalid, node)  # the deepest field there is holds the message
    return None


def _child_invalid(parent: colander.Invalid, node, pos: int) -> colander.Invalid:
    for child in parent.children:
        if child.pos == pos:
            return child
    child = colander.Invalid(node, "")
    parent.add(child, pos)
    return child
