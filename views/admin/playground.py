"""Evaluate playground: an order form -> decision and trace.

The form is generated from ``schemas/order.schema.json``.

Evaluation is a dry run (``workflow.deciding.evaluate``): nothing is written, so
viewers may use it too.
"""

from __future__ import annotations

from decimal import Decimal

import deform
from pyramid.view import view_config

from approvalrules.errors import ApprovalRulesError
from approvalrules.workflow import deciding

from . import schema_forms
from .common import template
from .forms import document_schema, form_resources, make_form


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


def evaluate_order(request, body: dict) -> tuple[dict | None, str | None]:
    """(decision as a dict with its trace and version, None) or (None, the error message)."""
    try:
        decision, version = deciding.evaluate(request.dbsession, request.admin_tenant, body)
    except ApprovalRulesError as exc:
        return None, str(exc)
    result = decision.as_dict(trace=True)
    result["_version"] = {"ruleset": version.ruleset.name, "number": version.number}
    return result, None


def _form(request):
    schema = document_schema("order", request)
    return schema, make_form(
        schema, request, (deform.Button("evaluate", "Evaluate"),), "order-form"
    )


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
    decision, error = evaluate_order(request, body)
    if error:
        request.response.status_int = 422
    return {
        "form": form.render(appstruct),
        "resources": form_resources(form),
        "decision": decision,
        "error": error,
    }
