"""Rule sets: list, view (with the approval chain), YAML editor, schema form, publish, roll back.

The views parse the request, call the store for drafts and versions and
``workflow.publishing`` to publish and roll back (as the API does), and render.
Publishing validates first and runs the rule set's own tests: an invalid text
or a failing test publishes nothing and saves nothing.  The helpers at the top
check a text for display (problems on their lines, the tests' results).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import deform
from pyramid.httpexceptions import HTTPForbidden, HTTPNotFound, HTTPSeeOther
from pyramid.response import Response
from pyramid.view import view_config
from sqlalchemy import func, select

from approvalrules.engine import GUARD_CODES, check_ruleset, load_document
from approvalrules.errors import (
    ApprovalRulesError,
    DocumentError,
    DocumentTooLarge,
    Problem,
    TestsFailed,
)
from approvalrules.store import versions
from approvalrules.store.models import Company, RuleSet, RuleSetVersion
from approvalrules.workflow import publishing, queries
from approvalrules.workflow.publishing import Published

from . import form_layout, schema_forms
from .common import ascii_number, flash, int_or_404, ruleset_or_404, template
from .diagram import chain_svg
from .forms import document_schema, form_resources, make_form

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


# -- checking for display ---------------------------------------------------------------------


@dataclass
class Check:
    """The outcome of checking a text: the validated rule set or its problems, and test results."""

    checked: object | None = None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    tests: list | None = None

    @property
    def ok(self) -> bool:
        return self.checked is not None and not self.problems

    @property
    def failed_tests(self) -> list:
        return [t for t in self.tests or () if not t.passed]


def editing_text(ruleset: RuleSet) -> str:
    """What the editors start from: the draft, else the active version's text."""
    if ruleset.draft_text is not None:
        return ruleset.draft_text
    return (
        ruleset.active_version.text
        if ruleset.active_version is not None
        else f"ruleset: {ruleset.name}\n"
    )


def check_text(request, name: str, text: str, run_tests: bool = False) -> Check:
    """Validate ``text`` as rule set ``name`` of the admin's tenant; optionally run its tests."""
    result = Check()
    try:
        checked = check_ruleset(
            text, name, versions.resolver(request.dbsession, request.admin_tenant.id)
        )
    except DocumentError as exc:
        result.problems = list(exc.problems)
        return result
    result.checked = checked
    result.warnings = list(checked.warnings)
    mismatch = publishing.name_mismatch(checked, name)
    if mismatch is not None:
        result.problems = [mismatch]
    if run_tests:
        result.tests = publishing.run_embedded_tests(
            request.dbsession, request.admin_tenant, checked
        )
    return result


def publish_text(request, name: str, text: str) -> tuple[RuleSetVersion | None, Check]:
    """Publish ``text`` through ``workflow.publishing``: (version, check) on success, (None, the
    check with its problems or failing tests) when nothing was published."""
    try:
        published = publishing.publish(
            request.dbsession, request.admin_tenant, name, text, author=request.admin_actor
        )
    except TestsFailed as exc:
        result = check_text(request, name, text)
        result.tests = exc.results
        return None, result
    except DocumentError as exc:
        result = check_text(request, name, text, run_tests=True)
        if not result.problems:  # valid now; a parent changed meanwhile
            result.problems = list(exc.problems)
        return None, result
    _flash_reevaluated(request, published)
    result = Check(published.version, [], published.warnings, published.tests)
    return published.version, result


def _flash_reevaluated(request, published: Published) -> None:
    """Say how many pending requests were decided again under the new version (see
    docs/ruleset.md, ``pending_on_new_version``)."""
    pending = published.pending
    if pending["reevaluated"] or pending["skipped"]:
        flash(
            request,
            "Pending requests decided again under the new version: "
            f"{len(pending['reevaluated'])} re-evaluated, {len(pending['skipped'])} skipped.",
            "info",
        )


def save_draft(request, ruleset: RuleSet, text: str) -> Check | None:
    """Save ``text`` as the draft and say so; None when done, else the check of a refused draft.

    A draft may be invalid, but never one that fails the loader's guards (over the size
    cap, too deep, an alias bomb): ``versions.save_draft`` refuses it, and the page
    answers 413 or 422 with the problem.  A text equal to the active version's leaves no
    draft (``publishing.save_draft``): nothing is left unpublished.
    """
    try:
        kept = publishing.save_draft(
            request.dbsession,
            request.admin_tenant,
            ruleset.name,
            text,
            author=request.admin_actor,
        )
    except DocumentError as exc:
        request.response.status_int = 413 if isinstance(exc, DocumentTooLarge) else 422
        return Check(problems=list(exc.problems))
    if not kept:
        flash(request, "No change from the published version: there is no draft.", "info")
        return None
    check = check_text(request, ruleset.name, text)
    flash(
        request,
        "Draft saved."
        if check.ok
        else f"Draft saved, with {len(check.problems)} problem(s) to fix before publishing.",
        "success" if check.ok else "warning",
    )
    return None


def numbered_lines(text: str, problems: list[Problem]) -> list[dict]:
    """The text's lines with their numbers and the problems reported on each."""
    by_line: dict[int, list[str]] = {}
    for p in problems:
        if p.line is not None:
            by_line.setdefault(p.line, []).append(f"{p.path or '(root)'}: {p.message}")
    return [
        {"number": n, "text": line, "problems": by_line.get(n, [])}
        for n, line in enumerate(text.split("\n"), start=1)
    ]


def ruleset_rows(request) -> list[dict]:
    """Every rule set of the tenant with its active version and how many companies use it."""
    session, tenant = request.dbsession, request.admin_tenant
    used = dict(
        session.execute(
            select(Company.ruleset_name, func.count())
            .where(Company.tenant_id == tenant.id)
            .group_by(Company.ruleset_name)
        ).all()
    )
    rows = session.execute(
        select(RuleSet, RuleSetVersion)
        .outerjoin(RuleSetVersion, RuleSet.active_version_id == RuleSetVersion.id)
        .where(RuleSet.tenant_id == tenant.id)
        .order_by(RuleSet.name)
    ).all()
    return [{"ruleset": r, "active": v, "companies": used.get(r.name, 0)} for r, v in rows]


def _require(request, permission: str) -> None:
    if not request.has_permission(permission):
        raise HTTPForbidden()


# -- list and view ----------------------------------------------------------------------------


@view_config(
    route_name="admin_rulesets",
    request_method="GET",
    permission="view",
    renderer=template("rulesets"),
)
def ruleset_list(request):
    return {"rows": ruleset_rows(request), "error": None, "new_name": ""}


@view_config(
    route_name="admin_rulesets",
    request_method="POST",
    permission="edit",
    renderer=template("rulesets"),
)
def ruleset_create(request):
    name = request.POST.get("name", "").strip()
    exists = versions.get_ruleset(request.dbsession, request.admin_tenant.id, name) is not None
    if not NAME_RE.match(name) or exists:
        request.response.status_int = 422
        error = (
            f"A rule set {name!r} exists already."
            if exists
            else "A name is 1 to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit."
        )
        return {"rows": ruleset_rows(request), "error": error, "new_name": name}
    versions.save_draft(
        request.dbsession,
        request.admin_tenant.id,
        name,
        f'ruleset: {name}\ndescription: ""\n',
        author=request.admin_actor,
    )
    flash(request, f"Rule set {name} created as a draft.")
    return HTTPSeeOther(request.route_url("admin_ruleset_yaml", name=name))


@view_config(
    route_name="admin_ruleset",
    request_method="GET",
    permission="view",
    renderer=template("ruleset"),
)
def ruleset_view(request):
    ruleset = ruleset_or_404(request, request.matchdict["name"])
    active = ruleset.active_version
    check = check_text(request, ruleset.name, active.text) if active is not None else Check()
    draft = (
        check_text(request, ruleset.name, ruleset.draft_text)
        if ruleset.draft_text is not None
        else None
    )
    return {
        "ruleset": ruleset,
        "active": active,
        "check": check,
        "draft": draft,
        "svg": chain_svg(
            check.checked.resolved if check.checked else None, f"Approval chain of {ruleset.name}"
        ),
        "lines": numbered_lines(active.text, check.problems) if active is not None else [],
        "versions": versions.list_versions(
            request.dbsession, request.admin_tenant.id, ruleset.name
        ),
    }


@view_config(route_name="admin_ruleset_chain", request_method="GET", permission="view")
def ruleset_chain(request):
    """The chain picture alone, e.g. for an <img>; ``?version=N`` or the active version."""
    ruleset = ruleset_or_404(request, request.matchdict["name"])
    number = request.params.get("version", "")
    if number:
        try:
            text = versions.get_version(
                request.dbsession,
                request.admin_tenant.id,
                ruleset.name,
                int_or_404(number, "version"),
            ).text
        except ApprovalRulesError:
            raise HTTPNotFound() from None
    else:
        text = ruleset.active_version.text if ruleset.active_version else editing_text(ruleset)
    check = check_text(request, ruleset.name, text)
    svg = chain_svg(
        check.checked.resolved if check.checked else None, f"Approval chain of {ruleset.name}"
    )
    return Response(svg, content_type="image/svg+xml", charset="utf-8")


# -- YAML editor ------------------------------------------------------------------------------


def _yaml_page(
    request, ruleset: RuleSet, text: str, check: Check, action: str | None = None
) -> dict:
    return {
        "ruleset": ruleset,
        "text": text,
        "check": check,
        "lines": numbered_lines(text, check.problems),
        "action": action,
        "can_edit": request.has_permission("edit"),
        "can_publish": request.has_permission("publish"),
    }


@view_config(
    route_name="admin_ruleset_yaml",
    request_method="GET",
    permission="view",
    renderer=template("yaml"),
)
def yaml_editor(request):
    ruleset = ruleset_or_404(request, request.matchdict["name"])
    text = editing_text(ruleset)
    return _yaml_page(request, ruleset, text, check_text(request, ruleset.name, text))


@view_config(
    route_name="admin_ruleset_yaml",
    request_method="POST",
    permission="edit",
    renderer=template("yaml"),
)
def yaml_submit(request):
    ruleset = ruleset_or_404(request, request.matchdict["name"])
    # browsers post CRLF from a textarea; the stored text keeps the file's LF
    text = request.POST.get("text", "").replace("\r\n", "\n")
    action = request.POST.get("action", "save")
    if action == "test":
        check = check_text(request, ruleset.name, text, run_tests=True)
        return _yaml_page(request, ruleset, text, check, action)
    if action == "publish":
        _require(request, "publish")
        version, check = publish_text(request, ruleset.name, text)
        if version is None:
            request.response.status_int = 422
            return _yaml_page(request, ruleset, text, check, action)
        flash(request, f"Published version {version.number} of {ruleset.name}.", "success")
        return HTTPSeeOther(request.route_url("admin_ruleset", name=ruleset.name))
    refused = save_draft(request, ruleset, text)
    if refused is not None:
        if request.response.status_int == 413:
            text = editing_text(ruleset)  # never echo an oversized text back into the page
        return _yaml_page(request, ruleset, text, refused, "save")
    return HTTPSeeOther(request.route_url("admin_ruleset_yaml", name=ruleset.name))


# -- the form generated from the schema -------------------------------------------------------

FORM_BUTTONS = (deform.Button("save", "Save draft"), deform.Button("publish", "Publish"))

#: values (maps, lists, scalars) a text may hold and still be edited in the form: each is
#: a widget or more, and a page of 200,000 widgets helps nobody
FORM_MAX_VALUES = 5_000


def form_refusal(text: str) -> str | None:
    """Why the form cannot edit ``text``, or None.

    The safe loader goes first, with its guards (size, depth, aliases): ruamel, which
    the form saves through, expands every alias, and a 467-byte billion-laughs draft
    took it 36 s and 3.5 GB.  Only a text the safe loader accepts whole, and small
    enough for a page of widgets, reaches ruamel.
    """
    try:
        data = load_document(text, "draft").data
    except DocumentError as exc:
        first = exc.problems[0]
        what = "cannot be loaded safely" if first.code in GUARD_CODES else "is not valid YAML"
        return f"The draft {what} (line {first.line}: {first.message}); fix it in the YAML editor."
    values = _count_values(data)
    if values > FORM_MAX_VALUES:
        return (
            f"The draft holds {values:,} values, more than the form shows "
            f"({FORM_MAX_VALUES:,}); edit it in the YAML editor."
        )
    return None


def _count_values(data) -> int:
    count, stack = 0, [data]
    while stack:
        value = stack.pop()
        count += 1
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return count


def _form_page(
    request,
    ruleset,
    form,
    check: Check | None,
    unplaced=(),
    status: int = 200,
    yaml_error: str | None = None,
    html: str | None = None,
    candidate: str | None = None,
) -> dict:
    request.response.status_int = status
    return {
        "ruleset": ruleset,
        "form": html if html is not None else (form.render() if form is not None else ""),
        "resources": form_resources(form) if form is not None else {"js": [], "css": []},
        "check": check or Check(),
        "unplaced": list(unplaced),
        "yaml_error": yaml_error,
        "can_edit": request.has_permission("edit"),
        "candidate": candidate,
    }


def form_choices(request, ruleset: RuleSet, text: str) -> form_layout.FormChoices:
    """What the form's pickers offer: the rule set's roles, groups and currency (its parents'
    included when the text is valid) and the accounts and groups of the directory."""
    check = check_text(request, ruleset.name, text)
    data: dict = {}
    if check.checked is not None:
        data = check.checked.resolved
    else:
        try:
            loaded = load_document(text, "draft").data
        except DocumentError:
            loaded = None
        data = loaded if isinstance(loaded, dict) else {}
    roles = data.get("roles") if isinstance(data.get("roles"), dict) else {}
    groups = data.get("groups") if isinstance(data.get("groups"), dict) else {}
    accounts, directory_groups = queries.ruleset_directory_choices(
        request.dbsession, request.admin_tenant, ruleset.name
    )
    group_choices = {
        str(key): str((value or {}).get("label") or key) if isinstance(value, dict) else str(key)
        for key, value in groups.items()
    }
    for key, name in directory_groups:
        group_choices.setdefault(key, name)
    return form_layout.FormChoices(
        currency=str(data.get("currency") or "USD"),
        roles=[
            (str(k), str(v.get("label") or k) if isinstance(v, dict) else str(k))
            for k, v in roles.items()
        ],
        groups=sorted(group_choices.items()),
        accounts=accounts,
    )


def _form_for(request, ruleset, text: str):
    buttons = (
        FORM_BUTTONS
        if request.has_permission("publish")
        else FORM_BUTTONS[:1]
        if request.has_permission("edit")
        else ()
    )
    schema = document_schema("ruleset", request)
    form_layout.tailor(schema, form_choices(request, ruleset, text))
    return schema, make_form(schema, request, buttons, "ruleset-form")


def _show_problems(form, schema, check: Check) -> list:
    """Put the engine's problems on the form's fields; return those no field could take."""
    problems = list(check.problems) + [
        Problem(
            "test_failed", f"test {t.name!r} fails: {'; '.join(t.failures)}", f"tests[{i}]", t.line
        )
        for i, t in enumerate(check.tests or ())
        if not t.passed
    ]
    invalid, unplaced = schema_forms.field_errors(schema, problems)
    if invalid is not None:
        form.widget.handle_error(form, invalid)
    return unplaced


@view_config(
    route_name="admin_ruleset_form",
    request_method="GET",
    permission="view",
    renderer=template("form"),
)
def form_editor(request):
    ruleset = ruleset_or_404(request, request.matchdict["name"])
    text = editing_text(ruleset)
    refusal = form_refusal(text)
    if refusal is not None:
        return _form_page(request, ruleset, None, None, yaml_error=refusal)
    schema, form = _form_for(request, ruleset, text)
    try:
        data = schema_forms.to_plain(schema_forms.load_round_trip(text))
    except Exception as exc:  # ruamel raises many kinds; all mean "not YAML"
        return _form_page(
            request,
            ruleset,
            None,
            None,
            yaml_error=(
                f"The draft is not valid YAML ({exc.__class__.__name__}); "
                "fix it in the YAML editor."
            ),
        )
    form.set_appstruct(schema_forms.to_form(schema, data if isinstance(data, dict) else {}))
    check = check_text(request, ruleset.name, text)
    unplaced = _show_problems(form, schema, check)
    return _form_page(request, ruleset, form, check, unplaced)


@view_config(
    route_name="admin_ruleset_form",
    request_method="POST",
    permission="edit",
    renderer=template("form"),
)
def form_submit(request):
    ruleset = ruleset_or_404(request, request.matchdict["name"])
    original = editing_text(ruleset)
    refusal = form_refusal(original)
    if refusal is not None:
        return _form_page(request, ruleset, None, None, status=422, yaml_error=refusal)
    schema, form = _form_for(request, ruleset, original)
    try:
        appstruct = form.validate(list(request.POST.items()))
    except deform.ValidationFailure as failure:
        return _form_page(
            request,
            ruleset,
            form,
            None,
            status=422,
            html=failure.render(),
            yaml_error="Some fields below need a fix; nothing was published or saved.",
        )
    old = schema_forms.to_plain(schema_forms.load_round_trip(original))
    new_data = schema_forms.from_form(schema, appstruct, old if isinstance(old, dict) else {})
    new_data = new_data if isinstance(new_data, dict) else {}
    if "add_step" in request.POST:
        try:
            added = _add_templated_step(
                new_data, appstruct, form_choices(request, ruleset, original)
            )
        except ValueError as exc:
            return _form_page(
                request, ruleset, form, None, status=422, html=form.render(), yaml_error=str(exc)
            )
        flash(request, f"Step {added} added after the other steps: move it where it belongs.")
    text = schema_forms.save_into_yaml(original, new_data)
    if "publish" in request.POST:
        _require(request, "publish")
        version, check = publish_text(request, ruleset.name, text)
        if version is None:
            unplaced = _show_problems(form, schema, check)
            return _form_page(request, ruleset, form, check, unplaced, status=422, candidate=text)
        flash(request, f"Published version {version.number} of {ruleset.name}.", "success")
        return HTTPSeeOther(request.route_url("admin_ruleset", name=ruleset.name))
    refused = save_draft(request, ruleset, text)
    if refused is not None:
        status = request.response.status_int
        return _form_page(request, ruleset, form, refused, refused.problems, status=status)
    return HTTPSeeOther(request.route_url("admin_ruleset_form", name=ruleset.name))


def _add_templated_step(data: dict, appstruct: dict, choices: form_layout.FormChoices) -> str:
    """Append the step the form's template describes to ``data``; its name (ValueError when
    the template is incomplete)."""
    approval = data.setdefault("approval", {})
    steps = approval.setdefault("steps", [])
    taken = {step.get("name") for step in steps if isinstance(step, dict)}
    values = (appstruct.get("approval") or {}).get("step_template") or {}
    step = form_layout.step_from_template(values, taken, choices.currency)
    steps.append(step)
    return step["name"]


# -- roll back --------------------------------------------------------------------------------


@view_config(route_name="admin_ruleset_rollback", request_method="POST", permission="publish")
def rollback(request):
    ruleset = ruleset_or_404(request, request.matchdict["name"])
    number = request.POST.get("number", "")
    try:
        if ascii_number(number) is None:
            raise DocumentError([Problem("invalid_version", "choose a version number")])
        published = publishing.rollback(
            request.dbsession,
            request.admin_tenant,
            ruleset.name,
            ascii_number(number),
            author=request.admin_actor,
        )
        _flash_reevaluated(request, published)
    except ApprovalRulesError as exc:
        flash(request, f"Nothing rolled back: {exc}", "error")
    else:
        flash(
            request,
            f"Version {number} is active again, published as version {published.version.number}.",
            "success",
        )
    return HTTPSeeOther(request.route_url("admin_versions", name=ruleset.name))
