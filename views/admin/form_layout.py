"""How the rule-set form reads for a merchant, on top of the schema walk of :mod:`.schema_forms`.

The schema gives titles and descriptions; this module holds what a schema cannot say:

* words for enum values (``group_master`` reads "A master of the company");
* which fields fold away under "More options", and which sections start collapsed, so
  the form first shows what a merchant tunes most (the steps) and not every field;
* the small builders that replace YAML snippets: a condition as (group, role, field,
  operator, amount), approvers picked from the rule set's roles and relations and the
  tenant's accounts, and a step template ("orders above X need N approvals from Y");
  each keeps a YAML field as the escape hatch for what it cannot say;
* :func:`tailor`, which fills a request's copy of the schema with its choices (roles,
  groups, accounts, the currency shown beside amounts).
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import colander
import deform

#: words for enum values, by (field name, value) first, then by value alone
ENUM_WORDS: dict[Any, str] = {
    ("relation", "assigned"): "The buyer's assigned approver",
    ("relation", "unassigned"): "Anyone, when the buyer has no assigned approver",
    ("relation", "same_group"): "Someone in the buyer's group",
    ("relation", "group_master"): "A master of the company",
    ("relation", "company"): "Anyone in the company",
    ("payer", "buyer"): "The buyer",
    ("payer", "company"): "The company (its master's billing account)",
    ("scope", "company"): "The company",
    ("scope", "group"): "The buyer's group",
    ("scope", "buyer"): "The buyer",
    ("approvers_see", "company"): "Every order of the company",
    "own_group": "The buyer's group only (and masters)",
    "universal": "Anywhere in the company",
    "group_settings": "Follow the group's rules",
    "exclude": "Blocked for group members",
    "bulk_settings": "Placed as regular orders, no approval",
    "keep": "Keep them under the version they were decided by",
    "reevaluate": "Decide them again under the new version",
    "require_approval": "The order needs approval",
    "block": "The order is blocked",
    "standard": "Standard",
    "assignment_tiers": "Tiers from the buyer's assignments",
    "cancel": "Cancel the order",
    "escalate": "Escalate",
    "approve": "Approve automatically",
    "none": "Nothing",
    "parent_company": "Ask the parent company",
    "add": "Add them to the approvers",
    "replace": "Replace the approvers",
    "eligible": "Orders they may approve",
    "approver_flag": "When the approver's e-mail is on",
    "both_flags": "When both the buyer's and the approver's e-mail are on",
    "released": "Until the order is released to fulfilment",
}

#: the title of one item of a list, where dropping an "s" would not make one
ITEM_TITLES = {
    "steps": "empty step",
    "tests": "test",
    "deny": "deny rule",
    "bypass": "bypass rule",
    "budgets": "budget",
    "roles": "role",
    "groups": "group",
    "conversion": "exchange rate",
    "any_of": "approver",
    "budgets_spent": "budget",
    "labels": "label",
    "channels": "channel",
}

#: fields gathered under a collapsed "more" section, by the definition that holds them
FOLDS: dict[str, list[tuple[str, str, list[str]]]] = {
    "document": [
        (
            "more_settings",
            "More settings: other currencies, bulk orders, publishing",
            ["currencies", "bulk_orders", "pending_on_new_version"],
        )
    ],
    "approval": [
        (
            "approval_options",
            "Approval options: who may approve, expiry, reversal, reminders, merchant review",
            ["self_approval", "scope", "expiry", "reversal", "reminders", "merchant_review"],
        )
    ],
    "step": [
        (
            "step_options",
            "More options: kind, escalation and timeouts, scope, fallback",
            ["kind", "self_approval", "escalate_after", "escalate_to", "on_timeout", "scope"]
            + ["fallback"],
        )
    ],
}

#: sections of the document that start collapsed (they open on an error)
COLLAPSED = {
    "roles",
    "settings",
    "groups",
    "limits",
    "visibility",
    "notifications",
    "conversion",
    "deny",
    "bypass",
    "tests",
}

OPERATORS = (
    ("gt", "more than"),
    ("gte", "at least"),
    ("lt", "less than"),
    ("lte", "at most"),
    ("eq", "exactly"),
)
MEASURES = (
    ("total", "the order total"),
    ("quantity", "the quantity (sum of lines)"),
    ("line_count", "the number of lines"),
)
PLAIN_AMOUNT = re.compile(r"^[0-9]{1,15}(\.[0-9]{1,4})?$")


def humanize(key: str) -> str:
    """``no_approval_below`` -> ``No approval below``: the last resort for a title."""
    words = key.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def enum_word(field_name: str, value: str) -> str:
    """What a merchant reads for an enum value."""
    return ENUM_WORDS.get((field_name, value)) or ENUM_WORDS.get(value) or humanize(value)


def item_title(name: str) -> str:
    """The title of one item of the list ``name`` ("Add step", never "Add bypas")."""
    if name in ITEM_TITLES:
        return ITEM_TITLES[name]
    if name.endswith("s") and not name.endswith("ss") and len(name) > 3:
        return name[:-1].replace("_", " ")
    return "item"


# ------------------------------------------------------------------ choices of one request


@dataclass
class FormChoices:
    """What the pickers of one rule set's form offer: from the rule set and the directory."""

    currency: str = "USD"
    #: (name, label) of the rule set's roles (inherited ones included)
    roles: list[tuple[str, str]] = field(default_factory=list)
    #: (id, label) of the groups: the rule set's and the directory's
    groups: list[tuple[str, str]] = field(default_factory=list)
    #: (id, name) of the accounts of the companies that use the rule set
    accounts: list[tuple[str, str]] = field(default_factory=list)

    def approver_options(self) -> list[tuple[str, str]]:
        """(key, words) of every approver a step can pick: relations, roles, accounts."""
        options = [
            (f"relation:{value}", enum_word("relation", value))
            for value in ("group_master", "assigned", "same_group", "unassigned", "company")
        ]
        options += [(f"role:{name}", f"Role: {label}") for name, label in self.roles]
        options += [(f"account:{id_}", f"{name} ({id_})") for id_, name in self.accounts]
        return options


def selector_key(selector: Any) -> str | None:
    """The picker key of a one-key selector ({role: approver} -> role:approver), else None."""
    if not isinstance(selector, dict) or len(selector) != 1:
        return None
    ((kind, value),) = selector.items()
    if kind in ("role", "relation") and isinstance(value, str):
        return f"{kind}:{value}"
    if kind == "accounts" and isinstance(value, list) and len(value) == 1:
        return f"account:{value[0]}"
    return None


def selector_of(key: str) -> dict:
    """The selector a picker key stands for (account:ann -> {accounts: [ann]})."""
    kind, _, value = key.partition(":")
    return {"accounts": [value]} if kind == "account" else {kind: value}


def _picked(node: colander.SchemaNode, keys: list[str]) -> bool:
    """Whether every key is one the picker ``node`` offers (any key when it was not tailored)."""
    offered = getattr(node, "json_choices", None)
    return offered is None or all(k in offered for k in keys)


# ------------------------------------------------------------------ builder nodes


def _select(name, title, values, description=None, picker=None):
    return colander.SchemaNode(
        colander.String(),
        name=name,
        title=title,
        description=description,
        missing=colander.null,
        widget=deform.widget.SelectWidget(values=values),
        json_picker=picker,
    )


def _money_field(name, title, description=None):
    return colander.SchemaNode(
        colander.String(),
        name=name,
        title=title,
        description=description,
        missing=colander.null,
        validator=colander.Regex(PLAIN_AMOUNT, "an amount, e.g. 500 or 1250.50"),
        widget=deform.widget.TextInputWidget(attributes={"inputmode": "decimal"}),
        json_money=True,
    )


def _yaml_field(name, title, description, validator):
    return colander.SchemaNode(
        colander.String(),
        name=name,
        title=title,
        description=description,
        missing=colander.null,
        validator=validator,
        widget=deform.widget.TextAreaWidget(rows=2, css_class="yaml-snippet"),
        json_role="yaml",
    )


class _OneWay:
    """Validator of a builder: its fields or its YAML, not both; an amount needs a field."""

    def __init__(self, yaml_name: str, pairs: tuple[tuple[str, str], ...] = (), ignore: tuple = ()):
        self.yaml_name = yaml_name
        self.pairs = pairs
        #: fields that always hold a value (an operator select) and say nothing alone
        self.ignore = ignore

    def __call__(self, node, value):
        yaml = value.get(self.yaml_name)
        others = [
            k
            for k, v in value.items()
            if k != self.yaml_name and k not in self.ignore and v not in (colander.null, "", None)
        ]
        others = [k for k in others if not (isinstance(value[k], (set, list)) and not value[k])]
        error = colander.Invalid(node, "")
        if yaml not in (colander.null, "", None) and others:
            error.msg = "Use the fields or the YAML, not both."
        for first, second in self.pairs:
            given = [value.get(first), value.get(second)]
            if sum(1 for v in given if v not in (colander.null, "", None)) == 1:
                missing = first if given[0] in (colander.null, "", None) else second
                index = [c.name for c in node.children].index(missing)
                error.add(colander.Invalid(node.children[index], "Required with the other"), index)
        if error.msg or error.children:
            raise error


def condition_node(name, title, required, description, yaml_validator) -> colander.SchemaNode:
    """A condition as buyer group, buyer role and one comparison, or as YAML."""
    node = colander.SchemaNode(
        colander.Mapping(unknown="ignore"),
        name=name,
        title=title,
        description=description,
        missing=colander.null,
        widget=deform.widget.MappingWidget(template="ar_inline", css_class="condition"),
        validator=_OneWay("when_yaml", (("when_measure", "when_amount"),), ignore=("when_op",)),
        json_kind="condition",
    )
    node.add(_select("when_group", "Buyer's group", [("", "(any group)")], picker="groups"))
    node.add(_select("when_role", "Buyer's role", [("", "(any role)")], picker="roles"))
    node.add(_select("when_measure", "And", [("", "(no amount)"), *MEASURES]))
    node.add(_select("when_op", "is", OPERATORS))
    node.add(_money_field("when_amount", "Amount"))
    node.add(
        _yaml_field(
            "when_yaml",
            "Condition as YAML",
            "For what the fields cannot say: any / all / not, several groups, SKUs, order "
            "types. E.g. {any: [{buyer_group: ops}, {total: {gt: 5000}}]}",
            yaml_validator,
        )
    )
    node.json_required = required
    return node


def approvers_node(name, title, required, description, yaml_validator) -> colander.SchemaNode:
    """Approvers picked from a list (any of them may approve), or as YAML."""
    node = colander.SchemaNode(
        colander.Mapping(unknown="ignore"),
        name=name,
        title=title,
        description=description,
        missing=colander.null,
        widget=deform.widget.MappingWidget(template="ar_inline", css_class="approvers"),
        validator=_OneWay("approvers_yaml"),
        json_kind="approvers",
    )
    node.add(
        colander.SchemaNode(
            colander.Set(),
            name="approvers_pick",
            title="Any of",
            missing=colander.null,
            widget=deform.widget.CheckboxChoiceWidget(values=[], inline=True),
            json_picker="approvers",
        )
    )
    node.add(
        _yaml_field(
            "approvers_yaml",
            "Approvers as YAML",
            "For one approval from each of several groups, attributes, or a role within a "
            "relation. E.g. {all_of: [{any_of: [{role: finance}]}, {any_of: [{role: legal}]}]}",
            yaml_validator,
        )
    )
    return node


def step_template_node() -> colander.SchemaNode:
    """ "Orders above X [from group G] need N approvals from Y": a new step in one line."""
    node = colander.SchemaNode(
        colander.Mapping(unknown="ignore"),
        name="step_template",
        title="Add a step from a template",
        description="Orders above an amount need a number of approvals from the people you "
        "pick. The step is added at the end of the list; move it where it belongs.",
        missing=colander.null,
        widget=deform.widget.MappingWidget(
            template="ar_inline", css_class="step-template", button=("add_step", "Add this step")
        ),
        json_kind="skip",
    )
    node.add(_money_field("template_amount", "Orders above"))
    node.add(_select("template_group", "from", [("", "(any group)")], picker="groups"))
    node.add(
        colander.SchemaNode(
            colander.Integer(),
            name="template_required",
            title="need this many approvals",
            missing=colander.null,
            validator=colander.Range(1, 100),
            widget=deform.widget.TextInputWidget(attributes={"inputmode": "numeric"}),
        )
    )
    node.add(
        colander.SchemaNode(
            colander.Set(),
            name="template_pick",
            title="from any of",
            missing=colander.null,
            widget=deform.widget.CheckboxChoiceWidget(values=[], inline=True),
            json_picker="approvers",
        )
    )
    return node


def step_from_template(values: dict, taken: set[str], currency: str) -> dict:
    """The step a filled-in template stands for; raises ValueError naming what is missing."""
    amount, picks = values.get("template_amount"), values.get("template_pick") or set()
    if amount in (colander.null, None, "") or not picks:
        raise ValueError("To add a step from the template, give an amount and pick who approves.")
    required = values.get("template_required")
    required = 1 if required in (colander.null, None) else required
    group = values.get("template_group")
    group = None if group in (colander.null, None, "") else group
    number = Decimal(amount)
    plain = int(number) if number == number.to_integral_value() else number
    base = f"{group}-over-{amount}" if group else f"over-{amount}"
    name, n = base.replace(".", "-"), 2
    while name in taken:
        name, n = f"{base}-{n}".replace(".", "-"), n + 1
    who = "orders" if group is None else f"{group} orders"
    when: dict = {"buyer_group": group} if group else {}
    when["total"] = {"gt": plain}
    return {
        "name": name,
        "description": f"{who.capitalize()} above {amount} {currency} need {required} "
        f"approval{'s' if required != 1 else ''}.",
        "when": when,
        "approvers": {"any_of": [selector_of(k) for k in sorted(picks, key=_pick_order)]},
        "required": required,
    }


def _pick_order(key: str) -> tuple[int, str]:
    return ({"relation": 0, "role": 1, "account": 2}.get(key.partition(":")[0], 3), key)


# ------------------------------------------------------------------ conversions


def condition_to_form(node: colander.SchemaNode, value: Any, dump) -> dict:
    """The builder's fields for condition ``value``; the YAML field when they cannot hold it."""
    blank = {child.name: colander.null for child in node.children}
    fields = _condition_fields(value)
    if fields is not None:
        group_node, role_node = node["when_group"], node["when_role"]
        if (fields.get("when_group") is None or _picked(group_node, [fields["when_group"]])) and (
            fields.get("when_role") is None or _picked(role_node, [fields["when_role"]])
        ):
            return {**blank, **{k: v for k, v in fields.items() if v is not None}}
    return {**blank, "when_yaml": dump(value)}


def _condition_fields(value: Any) -> dict | None:
    if not isinstance(value, dict) or not value:
        return None
    out: dict = {}
    for key, item in value.items():
        if key == "buyer_group" and isinstance(item, str):
            out["when_group"] = item
        elif key == "buyer_role" and isinstance(item, str):
            out["when_role"] = item
        elif key in dict(MEASURES) and "when_measure" not in out and isinstance(item, dict):
            if len(item) != 1:
                return None
            ((op, amount),) = item.items()
            if op not in dict(OPERATORS) or isinstance(amount, bool):
                return None
            if not isinstance(amount, (int, float, Decimal, str)):
                return None
            text = _amount_text(amount)
            if not PLAIN_AMOUNT.match(text):
                return None
            out.update(when_measure=key, when_op=op, when_amount=text)
        else:
            return None
    return out


def _amount_text(value: Any) -> str:
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return str(value)


def condition_from_form(appstruct: dict, old: Any, parse, money, missing, equivalent) -> Any:
    """The condition the builder (or its YAML) says; ``old`` itself when it means the same."""
    yaml = appstruct.get("when_yaml")
    if yaml not in (colander.null, None, ""):
        value = parse(yaml)
    else:
        value = {}
        old_map = old if isinstance(old, dict) else {}
        if appstruct.get("when_group") not in (colander.null, None, ""):
            value["buyer_group"] = appstruct["when_group"]
        if appstruct.get("when_role") not in (colander.null, None, ""):
            value["buyer_role"] = appstruct["when_role"]
        measure = appstruct.get("when_measure")
        if measure not in (colander.null, None, ""):
            op = appstruct.get("when_op") or "gt"
            old_cmp = old_map.get(measure)
            old_amount = old_cmp.get(op, missing) if isinstance(old_cmp, dict) else missing
            value[measure] = {op: money(appstruct["when_amount"], old_amount)}
        if not value:
            return None if old is None else missing
    return old if old is not missing and equivalent(old, value) else value


def approvers_to_form(node: colander.SchemaNode, value: Any, dump) -> dict:
    """The picked keys of ``value`` (any_of one-key selectors); the YAML field otherwise."""
    blank = {"approvers_pick": colander.null, "approvers_yaml": colander.null}
    if isinstance(value, dict) and list(value) == ["any_of"] and isinstance(value["any_of"], list):
        keys = [selector_key(s) for s in value["any_of"]]
        if (
            keys
            and all(keys)
            and len(set(keys)) == len(keys)
            and _picked(node["approvers_pick"], keys)
        ):
            return {**blank, "approvers_pick": set(keys)}
    return {**blank, "approvers_yaml": dump(value)}


def approvers_from_form(appstruct: dict, old: Any, parse, missing, equivalent) -> Any:
    """The approvers picked (old ones keep their order, new ones follow), or the YAML's."""
    yaml = appstruct.get("approvers_yaml")
    if yaml not in (colander.null, None, ""):
        value = parse(yaml)
    else:
        picks = appstruct.get("approvers_pick")
        picks = set(picks) if picks not in (colander.null, None) else set()
        if not picks:
            return None if old is None else missing
        old_keys = []
        if isinstance(old, dict) and isinstance(old.get("any_of"), list):
            old_keys = [selector_key(s) for s in old["any_of"]]
        ordered = [k for k in old_keys if k in picks]
        ordered += sorted((k for k in picks if k not in ordered), key=_pick_order)
        value = {"any_of": [selector_of(k) for k in ordered]}
    return old if old is not missing and equivalent(old, value) else value


# ------------------------------------------------------------------ one request's copy


def tailor(node: colander.SchemaNode, choices: FormChoices) -> None:
    """Fill the pickers of ``node`` (a request's clone) with ``choices``, and put the currency
    beside every amount.  Widgets are replaced, never changed: the cached schema shares them."""
    picker = getattr(node, "json_picker", None)
    if picker == "approvers":
        options = choices.approver_options()
        node.widget = deform.widget.CheckboxChoiceWidget(values=options, inline=True)
        node.json_choices = {key for key, _ in options}
    elif picker in ("groups", "roles"):
        options = choices.groups if picker == "groups" else choices.roles
        widget = copy.copy(node.widget)
        blank = [v for v in node.widget.values if v[0] == ""]
        widget.values = blank + [
            (key, f"{label} ({key})" if label != key else key) for key, label in options
        ]
        node.widget = widget
        node.json_choices = {key for key, _ in options}
    if getattr(node, "json_defname", None) == "step":
        widget = copy.copy(node.widget)
        widget.summary = functools.partial(step_summary, labels=dict(choices.approver_options()))
        node.widget = widget
    if getattr(node, "json_money", False) or getattr(node, "json_kind", None) in (
        "money",
        "amount",
    ):
        widget = copy.copy(node.widget)
        widget.input_append = choices.currency
        node.widget = widget
    for child in node.children:
        tailor(child, choices)


def step_summary(cstruct: dict, labels: dict[str, str]) -> str:
    """One line for a collapsed step card: when, how many approvals, from whom."""
    parts = []
    when = cstruct.get("when") if isinstance(cstruct.get("when"), dict) else {}
    said = []
    if when.get("when_group"):
        said.append(f"group {when['when_group']}")
    if when.get("when_role"):
        said.append(f"role {when['when_role']}")
    if when.get("when_measure") and when.get("when_amount"):
        said.append(
            f"{dict(MEASURES)[when['when_measure']].removeprefix('the ')} "
            f"{dict(OPERATORS).get(when.get('when_op') or 'gt')} {when['when_amount']}"
        )
    if when.get("when_yaml"):
        said.append(when["when_yaml"])
    parts.append("when " + ", ".join(said) if said else "every order")
    required = cstruct.get("required")
    if required not in (None, colander.null, ""):
        parts.append(f"{required} approval{'s' if str(required) != '1' else ''}")
    approvers = cstruct.get("approvers") if isinstance(cstruct.get("approvers"), dict) else {}
    picks = approvers.get("approvers_pick")
    if picks:
        parts.append("from " + ", ".join(labels.get(k, k) for k in sorted(picks, key=_pick_order)))
    elif approvers.get("approvers_yaml"):
        parts.append("from " + approvers["approvers_yaml"])
    return " · ".join(parts)


# ------------------------------------------------------------------ arranging the rule-set form


def _fold(node: colander.SchemaNode, name: str, title: str, members: list[str]) -> None:
    """Move ``members`` of ``node`` under a collapsed mapping ``name`` (data stays flat)."""
    present = [child for child in node.children if child.name in members]
    if not present:
        return
    position = node.children.index(present[0])
    fold = colander.SchemaNode(
        colander.Mapping(unknown="ignore"),
        name=name,
        title=title,
        missing=colander.null,
        widget=deform.widget.MappingWidget(template="ar_mapping_details"),
        json_kind="fold",
    )
    for child in present:
        node.children.remove(child)
        fold.add(child)
    node.children.insert(position, fold)


def _arrange_object(node: colander.SchemaNode) -> None:
    for name, title, members in FOLDS.get(getattr(node, "json_defname", None) or "", ()):
        _fold(node, name, title, members)
    for child in node.children:
        arrange(child, top=False)


def arrange(node: colander.SchemaNode, top: bool = True) -> None:
    """Lay the generated rule-set schema out for a merchant (in place, once per process):
    folds, collapsed sections, step cards and the step template."""
    kind = getattr(node, "json_kind", None)
    if kind == "object":
        if getattr(node, "json_defname", None) == "step":
            node.widget = deform.widget.MappingWidget(template="ar_mapping_plain")
        if getattr(node, "json_defname", None) == "approval":
            names = [child.name for child in node.children]
            if "steps" in names:
                node.children.insert(names.index("steps") + 1, step_template_node())
        _arrange_object(node)
    elif kind in ("array", "map"):
        if node.name == "steps":
            node.widget = deform.widget.SequenceWidget(
                item_template="ar_step_item",
                add_subitem_text_template="Add an empty step",
                orderable=False,
                category="structural",
            )
        for child in node.children:
            arrange(child, top=False)
    if top:
        for child in node.children:
            if child.name not in COLLAPSED:
                continue
            if getattr(child, "json_kind", None) == "object":
                child.widget = deform.widget.MappingWidget(template="ar_mapping_details")
            elif getattr(child, "json_kind", None) in ("array", "map"):
                child.widget = deform.widget.SequenceWidget(
                    template="ar_sequence_details",
                    add_subitem_text_template=node_add_text(child),
                    orderable=False,
                    category="structural",
                )


def node_add_text(node: colander.SchemaNode) -> str:
    """The add button's words of a list: "Add role", "Add bypass rule"."""
    return f"Add {node.children[0].title}" if node.children else "Add"
