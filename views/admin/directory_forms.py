"""The directory's forms: fields a merchant reads, pickers fed from the directory and rule sets.

Colander schemas with titles and descriptions in words; pickers (Deform's
``SelectWidget``) for companies, accounts, groups, rule sets and the roles a rule set
defines, shown by their labels; amounts with the currency of the governing rule
set.  The forms only shape input: every rule (a defined role, one group at a time,
pending orders, a valid e-mail address...) is the directory service's to check, as
for the API; :func:`failure_html` puts its refusal on the field it is about.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import colander
import deform
from sqlalchemy import select

from approvalrules.engine.directory import CONTACT_KINDS, MEMBERSHIP_STATUSES
from approvalrules.engine.money import format_amount
from approvalrules.errors import DirectoryError
from approvalrules.store.directory_checks import RuleSetNames
from approvalrules.store.directory_service import GROUP_DELETE_POLICIES
from approvalrules.store.models import Account, Company, Group

from .forms import with_csrf

#: the directory's ids (schemas/directory.schema.json#/$defs/id)
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")
ID_RULE = "letters, digits and . _ @ - (no spaces), starting with a letter or digit, like acme-hq"
AMOUNT_PATTERN = re.compile(r"^[0-9]{1,15}(\.[0-9]{1,4})?$")

#: the most entries a picker lists (a tenant with more types the id: see ``id_or_pick``)
MAX_CHOICES = 2000

INHERIT = (("", "As the rule set says"), ("yes", "Yes"), ("no", "No"))

CONTACT_KIND_WORDS = {
    "primary": "Primary contact",
    "billing": "Billing contact",
    "logistics": "Logistics contact",
}
STATUS_WORDS = {
    "active": "Active",
    "invited": "Invited (joins when accepted)",
    "declined": "Declined the invitation",
    "inactive": "Inactive",
}
APPROVE_WORDS = (
    ("", "No approver flag"),
    ("assigned", "Approve assigned: carts of the shoppers assigned to this contact"),
    ("all", "Approve all: carts of every shopper of this company"),
)
DELETE_POLICY_WORDS = {
    "refuse_if_members": "Refuse while the group has members",
    "move_to_company": "Members stay in the company, in no group",
    "remove_members": "Members leave the company (made inactive)",
}

#: PointForce's per-contact settings (CM10), as membership settings: (key, title, help)
FLAG_SETTINGS = (
    ("may_order", "May place orders", "No blocks every order of this contact here."),
    ("may_approve", "May approve orders", "No: never an eligible approver here."),
    (
        "email",
        "Receives e-mail here",
        "The default of the two e-mail flags below: no, and this contact's orders and approvals "
        "at this company only appear in its lists.",
    ),
    (
        "email_as_approver",
        "E-Mail Approver (as approver)",
        "PointForce's E-Mail Approver on an approver's record: e-mails asking this contact to "
        "approve. No: it watches its list of carts to approve instead.",
    ),
    (
        "email_to_approvers",
        "E-Mail Approver (as shopper)",
        "PointForce's E-Mail Approver on a shopper's record: this shopper's carts e-mail its "
        "approvers (both flags must be on where the rule set asks for both).",
    ),
    (
        "email_as_buyer",
        "E-mail about own orders",
        "Submitted, confirmed, approved, cancelled, held.",
    ),
    (
        "hold_orders",
        "Hold orders created",
        "Orders wait, held, until the merchant lets them proceed.",
    ),
    (
        "favourites_only",
        "Restricted to the favourites list",
        "Only the products of the favourites list below may be ordered.",
    ),
    ("allow_future_ship_dates", "Allow future ship dates", "A requested date after today."),
    ("allow_manual_ship_to", "Allow a manual ship-to address", ""),
    (
        "summary_invoicing",
        "Summary invoicing",
        "Every order must name one of the cost centres below.",
    ),
)
AMOUNT_SETTINGS = (
    (
        "no_approval_below",
        "No approval below",
        "Orders below this total need no approval. Empty: as the rule set says.",
    ),
    (
        "max_order_total",
        "Maximum order value",
        "Orders above it are refused (cart value too high), whoever approves. "
        "Empty: as the rule set says.",
    ),
    (
        "approval_limit",
        "Approval limit",
        "The largest order this contact may approve. Empty: as the rule set says.",
    ),
)
LIST_SETTINGS = (
    ("restricted_skus", "Restricted products", "Product codes (SKUs) this contact may not order."),
    ("favourites", "Favourites list", "Product codes of the favourites list."),
    ("cost_centres", "Cost centres", "The cost centres an order may name."),
)


def stored_amount(text: str) -> int | str:
    """A typed amount as the directory stores it: a whole number, else its decimal text."""
    value = format_amount(Decimal(text))
    return int(value) if value.isdigit() else value


# -- choices ------------------------------------------------------------------------------


@dataclass
class Choices:
    """What the pickers offer, read once per request for the admin's tenant."""

    companies: list[tuple[str, str]] = field(default_factory=list)
    accounts: list[tuple[str, str]] = field(default_factory=list)
    rulesets: list[str] = field(default_factory=list)
    #: rule set -> [(role, label)]
    roles: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    #: company -> [(group, name)]
    groups: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    currencies: dict[str, str] = field(default_factory=dict)

    def company_values(self, empty: str | None = None) -> list:
        values = [(cid, f"{name} ({cid})" if name != cid else cid) for cid, name in self.companies]
        return ([("", empty)] if empty is not None else []) + values

    def account_values(self, empty: str | None = None) -> list:
        values = [(aid, f"{name} ({aid})" if name != aid else aid) for aid, name in self.accounts]
        return ([("", empty)] if empty is not None else []) + values

    def role_values(self, ruleset: str | None = None) -> list:
        """One rule set's roles by label; without one, every rule set's, grouped."""
        if ruleset:
            return [("", "Choose a role")] + list(self.roles.get(ruleset, ()))
        return [("", "Choose a role")] + [
            deform.widget.OptGroup(f"Rule set {name}", *roles)
            for name, roles in sorted(self.roles.items())
        ]

    def group_values(self, company: str | None = None, empty: str = "No group") -> list:
        if company is not None:
            return [("", empty)] + list(self.groups.get(company, ()))
        return [("", empty)] + [
            deform.widget.OptGroup(f"Company {cid}", *groups)
            for cid, groups in sorted(self.groups.items())
            if groups
        ]


def role_label(role: str, label: str) -> str:
    return label if label.lower() == role.lower() else f"{label} ({role})"


def load_choices(session, tenant, names: RuleSetNames | None = None) -> Choices:
    """Companies, accounts, published rule sets with their roles' labels, groups by company."""
    names = names or RuleSetNames(session, tenant.id)
    choices = Choices()
    choices.companies = [
        (r.external_id, r.name)
        for r in session.execute(
            select(Company.external_id, Company.name)
            .where(Company.tenant_id == tenant.id)
            .order_by(Company.name, Company.external_id)
            .limit(MAX_CHOICES)
        )
    ]
    choices.accounts = [
        (r.external_id, r.name)
        for r in session.execute(
            select(Account.external_id, Account.name)
            .where(Account.tenant_id == tenant.id)
            .order_by(Account.name, Account.external_id)
            .limit(MAX_CHOICES)
        )
    ]
    choices.rulesets = sorted(names.active())
    for name in choices.rulesets:
        policy = names.policy(name)
        choices.roles[name] = [
            (role, role_label(role, spec.label)) for role, spec in policy.roles.items()
        ]
        choices.currencies[name] = policy.currency
    for company_id, group_id, group_name in session.execute(
        select(Company.external_id, Group.external_id, Group.name)
        .join(Company, Group.company_id == Company.id)
        .where(Company.tenant_id == tenant.id)
        .order_by(Company.external_id, Group.external_id)
        .limit(MAX_CHOICES)
    ):
        choices.groups.setdefault(company_id, []).append((group_id, group_name or group_id))
    return choices


# -- fields -------------------------------------------------------------------------------


def _stripped(value):
    """Surrounding blanks are never part of a value; a blank field is an empty one."""
    return (value.strip() or colander.null) if isinstance(value, str) else value


def _valid_id(node, value):
    if not ID_PATTERN.match(value):
        raise colander.Invalid(node, f"{value[:40]!r} cannot be an id: use {ID_RULE}")


def id_node(title: str, description: str, **kw) -> colander.SchemaNode:
    return colander.SchemaNode(
        colander.String(),
        title=title,
        description=description,
        preparer=_stripped,
        validator=_valid_id,
        **kw,
    )


def text_node(title: str, description: str = "", max_length: int = 200, **kw):
    return colander.SchemaNode(
        colander.String(),
        title=title,
        description=description,
        preparer=_stripped,
        validator=colander.Length(max=max_length),
        **kw,
    )


def select_node(title: str, values, description: str = "", **kw) -> colander.SchemaNode:
    return colander.SchemaNode(
        colander.String(),
        title=title,
        description=description,
        widget=deform.widget.SelectWidget(values=values),
        **kw,
    )


def flag_node(title: str, description: str = "", **kw) -> colander.SchemaNode:
    return colander.SchemaNode(
        colander.Boolean(), title=title, description=description, missing=False, **kw
    )


def _valid_amount(node, value):
    if not AMOUNT_PATTERN.match(value):
        raise colander.Invalid(
            node, f"{value[:40]!r} is not an amount: write digits, like 500 or 1250.50"
        )


def amount_node(title: str, currency: str | None, description: str, **kw):
    """An amount field titled with its currency (``Threshold (USD)``)."""
    return colander.SchemaNode(
        colander.String(),
        title=f"{title} ({currency})" if currency else title,
        description=description,
        preparer=lambda v: _stripped(v.replace(",", "")) if isinstance(v, str) else v,
        validator=_valid_amount,
        missing=None,
        widget=deform.widget.TextInputWidget(attributes={"inputmode": "decimal"}),
        **kw,
    )


def lines_node(title: str, description: str, **kw):
    return colander.SchemaNode(
        colander.String(),
        title=title,
        description=description + " One per line.",
        missing="",
        validator=colander.Length(max=20000),
        widget=deform.widget.TextAreaWidget(rows=2),
        **kw,
    )


def split_lines(text: str) -> list[str]:
    """The entries of a one-per-line (or comma separated) field, blanks dropped, once each."""
    return list(dict.fromkeys(x.strip() for x in re.split(r"[\n,]", text or "") if x.strip()))


# -- schemas ------------------------------------------------------------------------------


def company_schema(choices: Choices, creating: bool, company_id: str | None = None):
    schema = colander.Schema()
    if creating:
        schema.add(id_node("Company id", f"How the storefront names it: {ID_RULE}.", name="id"))
    schema.add(text_node("Name", "The company's name as people read it.", name="name"))
    parents = [v for v in choices.company_values("No parent") if v[0] != company_id]
    schema.add(
        select_node(
            "Parent company",
            parents,
            "Make it a subsidiary of another company; it then inherits that company's rule set "
            "unless it names its own.",
            name="parent",
            missing=None,
        )
    )
    schema.add(
        select_node(
            "Rule set",
            [("", "Inherited from the parent company")] + [(n, n) for n in choices.rulesets],
            "The published rule set that decides this company's orders.",
            name="ruleset",
            missing=None,
        )
    )
    return schema


def contact_schema(choices: Choices):
    schema = colander.Schema()
    schema.add(select_node("Account", choices.account_values("Choose an account"), name="account"))
    schema.add(
        select_node(
            "Contact for",
            [(k, CONTACT_KIND_WORDS[k]) for k in CONTACT_KINDS],
            "Emporix's contact assignments: one account may be several kinds.",
            name="kind",
        )
    )
    return schema


def location_schema(editing: bool = False):
    schema = colander.Schema()
    schema.add(
        id_node(
            "Location id",
            "Saving an existing id changes that location.",
            name="id",
        )
    )
    schema.add(text_node("Name", "Like: Globex Warehouse.", name="name", missing=""))
    schema.add(text_node("Address", "As one line.", name="address", missing=""))
    return schema


def account_schema(creating: bool):
    schema = colander.Schema()
    if creating:
        schema.add(
            id_node("Account id", f"How the storefront names this person: {ID_RULE}.", name="id")
        )
    schema.add(text_node("Name", "The person's name.", name="name"))
    schema.add(
        text_node(
            "E-mail address",
            "Where notifications go; empty for none.",
            max_length=254,
            name="email",
            missing=None,
        )
    )
    schema.add(
        flag_node(
            "Receives e-mail",
            "Off: no e-mail at all for this person (orders still appear in their lists).",
            name="email_enabled",
        )
    )
    return schema


def _add_placement(
    schema: colander.Schema, choices: Choices, company: str | None, ruleset: str | None = None
) -> None:
    """The fields that place a member: its role (the rule set's, or every rule set's by
    label), its purchasing group, and whether to move it from another group."""
    schema.add(
        select_node(
            "Role",
            choices.role_values(ruleset),
            "The roles the company's rule set defines, by their labels.",
            name="role",
        )
    )
    schema.add(
        select_node(
            "Purchasing group",
            choices.group_values(company),
            "A member is in one group at a time.",
            name="group",
            missing=None,
        )
    )
    schema.add(
        flag_node(
            "Move from another group",
            "If the account is in another group now, move it instead of refusing.",
            name="move",
        )
    )


def membership_add_schema(choices: Choices, account_fixed: bool, company: str | None = None):
    """Add an account to a company: with a role, optionally a group, master, or by invitation."""
    schema = colander.Schema()
    if not account_fixed:
        schema.add(
            select_node("Account", choices.account_values("Choose an account"), name="account")
        )
    if company is None:
        schema.add(
            select_node("Company", choices.company_values("Choose a company"), name="company")
        )
    _add_placement(schema, choices, company)
    schema.add(
        flag_node(
            "Master of the company",
            "Masters see and approve the groups' orders; a master is in no group.",
            name="master",
        )
    )
    schema.add(
        flag_node(
            "Default account of this person",
            "Used when an order names no company.",
            name="default",
        )
    )
    schema.add(
        flag_node(
            "Invite (pending until the person accepts)",
            "An invited member's orders have no relation to the company or group until "
            "the invitation is accepted.",
            name="invite",
        )
    )
    return schema


def membership_schema(choices: Choices, company: str, ruleset: str | None):
    """One membership: role, group, master, default, status, and the per-contact settings."""
    currency = choices.currencies.get(ruleset or "")
    schema = colander.Schema()
    _add_placement(schema, choices, company, ruleset)
    schema.add(flag_node("Master of the company", "A master is in no group.", name="master"))
    schema.add(
        flag_node(
            "Default account of this person", "Used when an order names no company.", name="default"
        )
    )
    schema.add(
        select_node(
            "Status",
            [(s, STATUS_WORDS[s]) for s in MEMBERSHIP_STATUSES],
            "Only an active membership relates the person to the company and its group.",
            name="status",
        )
    )
    schema.add(
        select_node(
            "Approves carts",
            list(APPROVE_WORDS),
            "PointForce's Approve Assigned / Approve All (read by rule sets whose approvers "
            "name attributes: {approve: ...}).",
            name="approve",
            missing="",
        )
    )
    schema.add(
        flag_node(
            "In the company's approval group",
            "Emporix's approval groups (read by rule sets whose approvers name "
            "attributes: {approval_group: true}).",
            name="approval_group",
        )
    )
    settings = colander.Schema(
        name="settings",
        title="Approval settings of this contact",
        description="Each empty or 'as the rule set says' field keeps the rule set's value.",
    )
    for key, title, description in AMOUNT_SETTINGS:
        settings.add(amount_node(title, currency, description, name=key))
    for key, title, description in FLAG_SETTINGS:
        settings.add(select_node(title, INHERIT, description, name=key, missing=""))
    for key, title, description in LIST_SETTINGS:
        settings.add(lines_node(title, description, name=key))
    schema.add(settings)
    return schema


def group_schema(choices: Choices, creating: bool, company: str | None = None):
    schema = colander.Schema()
    if creating and company is None:
        schema.add(
            select_node("Company", choices.company_values("Choose a company"), name="company")
        )
    if creating:
        schema.add(
            id_node(
                "Group id",
                f"As the rule set names it (e.g. marketing): {ID_RULE}.",
                name="id",
            )
        )
    schema.add(text_node("Name", "Like: Marketing.", name="name", missing=""))
    return schema


def group_member_schema(choices: Choices, company: str, ruleset: str | None):
    schema = colander.Schema()
    schema.add(select_node("Account", choices.account_values("Choose an account"), name="account"))
    schema.add(
        select_node(
            "Role",
            [("", "Keep a member's current role")] + choices.role_values(ruleset)[1:],
            "Requisitioners place orders; approvers also approve. Needed for a new member; "
            "empty keeps a member's role.",
            name="role",
            missing=None,
        )
    )
    schema.add(
        flag_node(
            "Move from another group",
            "If the account is in another group now, move it instead of refusing.",
            name="move",
        )
    )
    return schema


def group_delete_schema(default_policy: str):
    schema = colander.Schema()
    schema.add(
        select_node(
            "Its members",
            [(p, DELETE_POLICY_WORDS[p]) for p in GROUP_DELETE_POLICIES],
            "What happens to the group's members.",
            name="policy",
            default=default_policy,
        )
    )
    return schema


def assignment_schema(choices: Choices, currency: str | None = None):
    schema = colander.Schema()
    schema.add(select_node("Company", choices.company_values("Choose a company"), name="company"))
    schema.add(
        select_node("Approver", choices.account_values("Choose the approver"), name="approver")
    )
    schema.add(
        select_node("Approves for", choices.account_values("Choose the buyer"), name="account")
    )
    schema.add(
        amount_node(
            "Threshold",
            currency,
            "Orders of this buyer above it need this approver (a spending-limit tier). "
            "Empty: every order the rule set sends to assigned approvers.",
            name="threshold",
        )
    )
    schema.add(
        amount_node(
            "Approval limit",
            currency,
            "The largest order of this buyer this approver may approve. Empty: no limit.",
            name="limit",
        )
    )
    schema.add(
        text_node(
            "Only for the step",
            "Optional: the name of one approval step; empty for every step.",
            name="step",
            missing=None,
        )
    )
    return schema


# -- forms and their errors ---------------------------------------------------------------


def field_counter(request) -> itertools.count:
    """One numbering of form fields per request: a page holds several forms, and the ids of
    their fields (``deformField<n>``), which their labels point to, must not repeat."""
    if not hasattr(request, "_deform_field_counter"):
        request._deform_field_counter = itertools.count(1)
    return request._deform_field_counter


def directory_form(
    request,
    schema,
    formid: str,
    action: str,
    button: str,
    *,
    button_name: str = "save",
    css_class: str = "",
) -> deform.Form:
    """A Deform form posting to ``action`` with the session's CSRF token."""
    return deform.Form(
        with_csrf(schema, request),
        buttons=(deform.Button(button_name, button, css_class=css_class),),
        formid=formid,
        action=action,
        css_class="directory-form",
        counter=field_counter(request),
    )


def _field_node(schema: colander.SchemaNode, dotted: str):
    """The node at ``settings.max_order_total`` (or its nearest existing parent), with its path."""
    node, path = schema, []
    for part in dotted.split("."):
        child = next((c for c in node.children if c.name == part), None)
        if child is None:
            break
        node = child
        path.append(child)
    return path


def failure_html(form: deform.Form, errors: Mapping[str, str], summary: str) -> str:
    """The submitted form again, with each message on its field (``""``: the whole form)."""
    invalid = colander.Invalid(form.schema, errors.get("") or summary)
    for name, message in errors.items():
        path = _field_node(form.schema, name) if name else []
        if not path:
            continue
        parent_invalid, parent = invalid, form.schema
        for depth, node in enumerate(path):
            last = depth == len(path) - 1
            child = colander.Invalid(node, message if last else None)
            parent_invalid.add(child, parent.children.index(node))
            parent_invalid, parent = child, node
    form.widget.handle_error(form, invalid)
    return deform.ValidationFailure(form, form.cstruct, invalid).render()


def refusal_field(exc: DirectoryError, fields: Mapping[str, str], form: deform.Form) -> str:
    """The field a refusal of the directory service is about: its ``path`` when the form has
    that field, else the field ``fields`` names for its code, else the whole form (``""``)."""
    path = getattr(exc, "path", None)
    if path:
        candidate = str(path).split("[")[0]
        if _field_node(form.schema, candidate):
            return candidate
    return fields.get(exc.code, "")


def settings_to_form(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Stored membership settings as the form's values (absent: as the rule set says)."""
    values: dict[str, Any] = {}
    for key, *_ in AMOUNT_SETTINGS:
        value = settings.get(key)
        values[key] = (
            format_amount(Decimal(str(value)))
            if isinstance(value, (int, float, str, Decimal)) and str(value) != ""
            else colander.null
        )
    for key, *_ in FLAG_SETTINGS:
        value = settings.get(key)
        values[key] = "" if value is None else ("yes" if value else "no")
    for key, *_ in LIST_SETTINGS:
        values[key] = "\n".join(map(str, settings.get(key) or ()))
    return values


def settings_from_form(values: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """The form's values as membership settings; keys the form does not show are kept."""
    shown = {k for k, *_ in AMOUNT_SETTINGS + FLAG_SETTINGS + LIST_SETTINGS}
    settings = {k: v for k, v in current.items() if k not in shown}
    for key, *_ in AMOUNT_SETTINGS:
        if values.get(key):
            try:
                settings[key] = stored_amount(values[key])
            except InvalidOperation:  # the field's validator refused it already
                continue
    for key, *_ in FLAG_SETTINGS:
        if values.get(key) in ("yes", "no"):
            settings[key] = values[key] == "yes"
    for key, *_ in LIST_SETTINGS:
        entries = split_lines(values.get(key, ""))
        if entries:
            settings[key] = entries
    return settings
