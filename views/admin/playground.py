"""Evaluate playground: an order form -> decision and trace, in words.

The form is generated from ``schemas/order.schema.json``; the buyer and the company
are picked from the directory, and the rules from the rule sets' versions and drafts
("what would this order get under version 3, or under my draft?").

Evaluation is a dry run (``workflow.deciding.evaluate`` / ``evaluate_under``): nothing
is written, so viewers may use it too.
"""

from __future__ import annotations

from decimal import Decimal

import colander
import deform
from pyramid.view import view_config
from sqlalchemy import select

from approvalrules.errors import ApprovalRulesError
from approvalrules.store import versions
from approvalrules.store.models import Account, Company, RuleSet, RuleSetVersion
from approvalrules.workflow import deciding

from . import schema_forms
from .common import template
from .forms import document_schema, form_resources, make_form

#: the most accounts or companies a picker lists; a larger directory keeps a text field
MAX_CHOICES = 2000
#: the rules choice meaning "the active rule set that governs the buyer's company"
ACTIVE = ""
DRAFT = "draft"

OUTCOME_WORDS = {
    "approved": "Approved: the order goes ahead, no approval needed.",
    "pending": "Pending: the order waits for approval.",
    "blocked": "Blocked: the order cannot be placed.",
    "held": "Held: the order waits for the merchant.",
}


def order_body(data: dict) -> dict:
    """The form's data as the JSON body the storefront would send (amounts as decimal strings)."""

    def plain(value):
        if isinstance(value, Decimal):
            return format(value, "f")
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return plain(data)


def rules_choices(session, tenant_id: int) -> list[tuple[str, str]]:
    """(value, label) of every rule set an order can be tried against: the active rules of the
    buyer's company first, then each rule set's draft and versions, newest first."""
    choices = [(ACTIVE, "the active rule set of the buyer's company")]
    rulesets = session.scalars(
        select(RuleSet).where(RuleSet.tenant_id == tenant_id).order_by(RuleSet.name)
    )
    numbers = {}
    for ruleset_id, number in session.execute(
        select(RuleSetVersion.ruleset_id, RuleSetVersion.number).order_by(
            RuleSetVersion.number.desc()
        )
    ):
        numbers.setdefault(ruleset_id, []).append(number)
    for ruleset in rulesets:
        if ruleset.draft_text is not None:
            choices.append((f"{ruleset.name}@{DRAFT}", f"{ruleset.name}: draft (unpublished)"))
        active = ruleset.active_version.number if ruleset.active_version else None
        for number in numbers.get(ruleset.id, ()):
            note = " (active)" if number == active else ""
            choices.append((f"{ruleset.name}@{number}", f"{ruleset.name}: version {number}{note}"))
    return choices


def directory_choices(session, tenant_id: int, model) -> list[tuple[str, str]] | None:
    """(id, "Name (id)") of the tenant's accounts or companies, by name; None when there are
    more than a picker can list."""
    rows = session.execute(
        select(model.external_id, model.name)
        .where(model.tenant_id == tenant_id)
        .order_by(model.name, model.external_id)
        .limit(MAX_CHOICES + 1)
    ).all()
    if len(rows) > MAX_CHOICES:
        return None
    return [(external_id, f"{name} ({external_id})") for external_id, name in rows]


def _form(request):
    schema = document_schema("order", request)
    session, tenant_id = request.dbsession, request.admin_tenant.id
    accounts = directory_choices(session, tenant_id, Account)
    companies = directory_choices(session, tenant_id, Company)
    if accounts is not None:
        schema["buyer"].widget = deform.widget.SelectWidget(
            values=[("", "- pick the buyer -"), *accounts]
        )
        schema["buyer"].title = "Buyer"
    if companies is not None:
        schema["company"].widget = deform.widget.SelectWidget(
            values=[("", "the buyer's default company"), *companies]
        )
        schema["company"].title = "Company"
    rules = rules_choices(session, tenant_id)
    schema.insert(
        0,
        colander.SchemaNode(
            colander.String(),
            name="rules",
            title="Rules",
            description="Try the order against the draft or any version, not only the "
            "active rules.",
            missing=ACTIVE,
            default=ACTIVE,
            validator=colander.OneOf([value for value, _ in rules]),
            widget=deform.widget.SelectWidget(values=rules),
            json_kind="skip",
        ),
    )
    return schema, make_form(
        schema, request, (deform.Button("evaluate", "Evaluate"),), "order-form"
    )


def evaluate_order(request, body: dict, rules: str = ACTIVE) -> tuple[dict | None, str | None]:
    """(decision as a dict with its trace and the rules it was made under, None) or (None, the
    error message)."""
    session, tenant = request.dbsession, request.admin_tenant
    try:
        if rules == ACTIVE:
            decision, version = deciding.evaluate(session, tenant, body)
            under = f"{versions.ruleset_name(version)}, version {version.number} (active)"
        else:
            name, _, which = rules.rpartition("@")
            number = None if which == DRAFT else int(which)
            decision = deciding.evaluate_under(session, tenant, body, name, number)
            under = f"{name}, draft" if number is None else f"{name}, version {number}"
    except ApprovalRulesError as exc:
        return None, str(exc)
    result = decision.as_dict(trace=True)
    result["_under"] = under
    result["_summary"] = OUTCOME_WORDS.get(decision.outcome, decision.outcome)
    return result, None


@view_config(
    route_name="admin_evaluate",
    request_method="GET",
    permission="view",
    renderer=template("evaluate"),
)
def playground(request):
    schema, form = _form(request)
    return {
        "form": form.render(),
        "resources": form_resources(form),
        "decision": None,
        "error": None,
    }


@view_config(
    route_name="admin_evaluate",
    request_method="POST",
    permission="view",
    renderer=template("evaluate"),
)
def evaluate(request):
    schema, form = _form(request)
    try:
        appstruct = form.validate(list(request.POST.items()))
    except deform.ValidationFailure as failure:
        request.response.status_int = 422
        return {
            "form": failure.render(),
            "resources": form_resources(form),
            "decision": None,
            "error": "Fix the highlighted fields.",
        }
    body = order_body(schema_forms.from_form(schema, appstruct) or {})
    decision, error = evaluate_order(request, body, appstruct.get("rules") or ACTIVE)
    if error:
        request.response.status_int = 422
    return {
        "form": form.render(appstruct),
        "resources": form_resources(form),
        "decision": decision,
        "error": error,
    }
