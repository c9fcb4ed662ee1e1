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
deform appstructs (:mod:`.form_values`).  :func:`save_into_yaml` applies only
what changed to the original text: unchanged lines stay byte for byte, comments
included (:mod:`.yaml_roundtrip`).  :func:`field_errors` places the engine's
problems on the fields.  The names of those modules are re-exported here, the
one import the admin pages need.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import colander
import deform

from approvalrules.engine import schema as load_schema

from . import form_layout
from .form_layout import humanize
from .form_values import (
    MISSING,
    MONEY_RE,
    dump_snippet,
    from_form,
    is_empty,
    parse_snippet,
    split_lines,
    to_form,
    to_plain,
)
from .yaml_roundtrip import load_round_trip, save_into_yaml

__all__ = [
    "MISSING",
    "build_schema",
    "dump_snippet",
    "field_errors",
    "from_form",
    "load_round_trip",
    "parse_snippet",
    "save_into_yaml",
    "to_form",
    "to_plain",
]

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
        site_title = spec.get("title")
        if "$ref" in spec:
            target, _, defname = self.deref(spec, doc)
            title = title if title is not None else site_title or target.get("title")
            description = spec.get("description") or target.get("description")
            if defname == "condition":
                return form_layout.condition_node(
                    name, title or humanize(name), required, description, _valid_yaml
                )
            if defname == "approvers":
                return form_layout.approvers_node(
                    name, title or humanize(name), required, description, _valid_yaml
                )
            ref_doc, pointer = self._split_ref(spec["$ref"], doc)
            if self.is_recursive(ref_doc, pointer):
                return yaml_node(name, title or humanize(name), required, description)
        spec, doc, defname = self.deref(spec, doc)
        title = title if title is not None else spec.get("title") or humanize(name)
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
            node = self.object_node(spec, doc, name, title, required, description)
            node.json_defname = defname or ("document" if name == "document" else None)
            return node
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
        if isinstance(additional, dict) and self.depth:
            return yaml_node(name, title, required, description)
        if isinstance(additional, dict):
            self.depth += 1
            item = colander.SchemaNode(
                colander.Mapping(unknown="ignore"),
                name="entry",
                title=form_layout.item_title(name),
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
            values = [(v, form_layout.enum_word(name, v)) for v in items["enum"]]
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
        singular = name[:-1] if name.endswith("s") and not name.endswith("ss") else "item"
        self.depth += 1
        child = self.node(
            spec.get("items") or {}, doc, singular, True, title=form_layout.item_title(name)
        )
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
            is_empty(v) or v == [] or v == set() for v in value.values()
        ):
            return
        error = colander.Invalid(node, "")
        for index, child in enumerate(node.children):
            if child.name in self.names and is_empty(value.get(child.name, colander.null)):
                error.add(colander.Invalid(child, "Required"), index)
        if error.children:
            raise error


def _optional(required: bool):
    return colander.required if required else colander.null


def yaml_node(name, title, required, description) -> colander.SchemaNode:
    """A YAML snippet in a small textarea: recursive or free-form parts (conditions, orders)."""
    hint = description or "Written as YAML."
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
        values = ([] if required else [("", "(default)")]) + [
            (v, form_layout.enum_word(name, v)) for v in spec["enum"]
        ]
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
    if name == "ruleset":
        form_layout.arrange(node)
    return node


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
    if kind in ("object", "fold") and isinstance(head, str):
        for index, child in enumerate(node.children):
            if child.name == head:
                return _locate(child, _child_invalid(invalid, child, index), rest)
        for index, child in enumerate(node.children):
            # a folded field: its error goes through the fold (which then opens)
            if child.json_kind == "fold" and any(c.name == head for c in child.children):
                return _locate(child, _child_invalid(invalid, child, index), parts)
        return None
    if kind == "array" and isinstance(head, int):
        return _locate(node.children[0], _child_invalid(invalid, node.children[0], head), rest)
    if kind in (
        "condition",
        "approvers",
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
