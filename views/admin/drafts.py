"""Drafts: discard one, and rewrite failing embedded tests from today's decisions after review.

Publishing refuses a text whose own tests fail (``workflow.publishing``, TestsFailed).  When
the change is intended (a threshold raised on purpose), the tests are what is out of date:
the merchant is offered their expected outcomes as the current decisions give them, sees
the change as a diff, and saves it as the draft; both steps are audited.
"""

from __future__ import annotations

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.view import view_config

from approvalrules.errors import DocumentError
from approvalrules.store import versions
from approvalrules.store.models import RuleSet
from approvalrules.workflow import publishing

from . import schema_forms
from .common import flash, ruleset_or_404, template
from .versions import side_by_side

# -- discard the draft ------------------------------------------------------------------------


@view_config(route_name="admin_ruleset_discard", request_method="POST", permission="edit")
def discard_draft(request):
    """Throw the draft away (the page asked for confirmation first); audited."""
    ruleset = ruleset_or_404(request, request.matchdict["name"])
    if versions.discard_draft(
        request.dbsession, request.admin_tenant.id, ruleset.name, author=request.admin_actor
    ):
        active = ruleset.active_version
        flash(
            request,
            f"Draft discarded: the form and the YAML editor show version {active.number} again."
            if active is not None
            else "Draft discarded.",
            "success",
        )
    else:
        flash(request, "There was no draft to discard.", "info")
    return HTTPSeeOther(request.route_url("admin_ruleset", name=ruleset.name))


# -- failing embedded tests: update their expected outcomes, after review ---------------------


def text_with_expectations(text: str, updates: dict[int, dict]) -> str:
    """``text`` with the ``expect`` block of each test in ``updates`` replaced; every other
    line (and every comment) kept byte for byte."""
    data = schema_forms.to_plain(schema_forms.load_round_trip(text))
    for index, expect in updates.items():
        data["tests"][index]["expect"] = expect
    return schema_forms.save_into_yaml(text, data)


def _proposed_update(request, ruleset: RuleSet, text: str):
    """(the updated text, the names of the tests it rewrites), or raise DocumentError."""
    updates = publishing.expectation_updates(
        request.dbsession, request.admin_tenant, ruleset.name, text
    )
    if not updates:
        return text, []
    data = schema_forms.to_plain(schema_forms.load_round_trip(text))
    names = [data["tests"][i]["name"] for i in sorted(updates)]
    return text_with_expectations(text, updates), names


@view_config(
    route_name="admin_ruleset_update_tests",
    request_method="POST",
    permission="edit",
    renderer=template("tests_update"),
)
def update_tests(request):
    """Show (``review``) or save (``save``) the failing tests rewritten from today's decisions.

    The page posts the candidate text (the one that failed to publish, saved nowhere yet);
    the update is computed from it again on save, so what is saved is what was reviewed.
    """
    ruleset = ruleset_or_404(request, request.matchdict["name"])
    text = request.POST.get("text", "").replace("\r\n", "\n")
    try:
        updated, names = _proposed_update(request, ruleset, text)
    except DocumentError as exc:
        request.response.status_int = 422
        return {"ruleset": ruleset, "text": text, "names": [], "problems": exc.problems}
    if request.POST.get("action") == "save" and names:
        publishing.save_updated_tests(
            request.dbsession,
            request.admin_tenant,
            ruleset.name,
            updated,
            names,
            author=request.admin_actor,
        )
        flash(
            request,
            f"Draft saved with the expected outcomes of {len(names)} test(s) updated; "
            "publish it when ready.",
            "success",
        )
        return HTTPSeeOther(request.route_url("admin_ruleset_yaml", name=ruleset.name))
    table, notes = side_by_side(text, updated, "before", "with the tests updated")
    return {
        "ruleset": ruleset,
        "text": text,
        "names": names,
        "problems": [],
        "table": table,
        "notes": notes,
    }
