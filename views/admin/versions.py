"""Versions of a rule set: list (who published what when), view any, diff any two."""

from __future__ import annotations

import difflib
import logging

from pyramid.httpexceptions import HTTPNotFound
from pyramid.view import view_config
from sqlalchemy import select

from approvalrules.diff import diff_versions
from approvalrules.errors import ApprovalRulesError
from approvalrules.store import versions
from approvalrules.store.directory import directory_for
from approvalrules.store.models import AuditEvent

from .common import int_or_404, ruleset_or_404, template
from .diagram import chain_svg
from .rulesets import check_text, numbered_lines

log = logging.getLogger(__name__)

DRAFT = "draft"


def history(request, name: str) -> list[AuditEvent]:
    """The audit entries about a rule set, newest first."""
    return list(
        request.dbsession.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.tenant_id == request.admin_tenant.id,
                AuditEvent.subject_type == "ruleset",
                AuditEvent.subject_id == name,
            )
            .order_by(AuditEvent.id.desc())
            .limit(100)
        )
    )


def version_text(request, ruleset, ref: str) -> tuple[str, str]:
    """(text, label) of ``ref``: a version number or ``draft``; 404 when there is none."""
    if ref == DRAFT:
        if ruleset.draft_text is None:
            raise HTTPNotFound(f"rule set {ruleset.name!r} has no draft")
        return ruleset.draft_text, "draft"
    number = int_or_404(ref, "version")
    try:
        version = versions.get_version(
            request.dbsession, request.admin_tenant.id, ruleset.name, number
        )
    except ApprovalRulesError:
        raise HTTPNotFound(f"rule set {ruleset.name!r} has no version {number}") from None
    return version.text, f"version {number}"


def default_pair(ruleset, all_versions) -> tuple[str, str]:
    """What to compare when nothing is asked: the draft against the active version, else the last two."""
    numbers = [v.number for v in all_versions]
    active = (
        ruleset.active_version.number
        if ruleset.active_version
        else (numbers[-1] if numbers else None)
    )
    if ruleset.draft_text is not None and active is not None:
        return str(active), DRAFT
    if len(numbers) >= 2:
        return str(numbers[-2]), str(numbers[-1])
    return (str(active), str(active)) if active is not None else (DRAFT, DRAFT)


def behavioural(
    request, old_text: str, new_text: str, old_label: str, new_label: str
) -> tuple[dict | None, str | None]:
    """The behavioural diff (``approvalrules.diff``) or why there is none.

    The text diff never depends on it.
    """
    session, tenant = request.dbsession, request.admin_tenant
    try:
        result = diff_versions(
            old_text,
            new_text,
            directory_for(session, tenant),
            resolve=versions.resolver(session, tenant.id),
            old_name=old_label,
            new_name=new_label,
        )
    except ApprovalRulesError as exc:
        return None, f"cannot compare behaviour: {exc}"
    except Exception as exc:  # a bug there must not take the text diff down with it
        log.exception("behavioural diff failed")
        return None, f"the behavioural diff failed ({exc.__class__.__name__})"
    return result, None


def side_by_side(old_text: str, new_text: str, old_label: str, new_label: str) -> str:
    """An HTML table of the two texts side by side (difflib), changes in context."""
    table = difflib.HtmlDiff(tabsize=2, wrapcolumn=70).make_table(
        old_text.splitlines(), new_text.splitlines(), old_label, new_label, context=True, numlines=3
    )
    return table.replace(
        '<table class="diff"', '<table class="diff" aria-label="Text differences, side by side"'
    )


@view_config(
    route_name="admin_versions",
    request_method="GET",
    permission="view",
    renderer=template("versions"),
)
def version_list(request):
    ruleset = ruleset_or_404(request, request.matchdict["name"])
    return {
        "ruleset": ruleset,
        "versions": list(
            reversed(
                versions.list_versions(request.dbsession, request.admin_tenant.id, ruleset.name)
            )
        ),
        "history": history(request, ruleset.name),
        "can_publish": request.has_permission("publish"),
    }


@view_config(
    route_name="admin_version",
    request_method="GET",
    permission="view",
    renderer=template("version"),
)
def version_view(request):
    ruleset = ruleset_or_404(request, request.matchdict["name"])
    number = int_or_404(request.matchdict["number"], "version")
    try:
        version = versions.get_version(
            request.dbsession, request.admin_tenant.id, ruleset.name, number
        )
    except ApprovalRulesError:
        raise HTTPNotFound(f"rule set {ruleset.name!r} has no version {number}") from None
    check = check_text(request, ruleset.name, version.text)
    return {
        "ruleset": ruleset,
        "version": version,
        "check": check,
        "lines": numbered_lines(version.text, check.problems),
        "svg": chain_svg(
            check.checked.resolved if check.checked else None, f"Approval chain of version {number}"
        ),
        "can_publish": request.has_permission("publish"),
    }


@view_config(
    route_name="admin_diff", request_method="GET", permission="view", renderer=template("diff")
)
def diff_view(request):
    ruleset = ruleset_or_404(request, request.matchdict["name"])
    all_versions = versions.list_versions(request.dbsession, request.admin_tenant.id, ruleset.name)
    old_ref, new_ref = default_pair(ruleset, all_versions)
    old_ref = request.params.get("old") or old_ref
    new_ref = request.params.get("new") or new_ref
    if not all_versions and ruleset.draft_text is None:
        raise HTTPNotFound(f"rule set {ruleset.name!r} has nothing to compare")
    old_text, old_label = version_text(request, ruleset, old_ref)
    new_text, new_label = version_text(request, ruleset, new_ref)
    result, unavailable = behavioural(request, old_text, new_text, old_label, new_label)
    old_check, new_check = (
        check_text(request, ruleset.name, old_text),
        check_text(request, ruleset.name, new_text),
    )
    return {
        "ruleset": ruleset,
        "choices": [str(v.number) for v in all_versions]
        + ([DRAFT] if ruleset.draft_text is not None else []),
        "old_ref": old_ref,
        "new_ref": new_ref,
        "old_label": old_label,
        "new_label": new_label,
        "same": old_text == new_text,
        "table": side_by_side(old_text, new_text, old_label, new_label),
        "result": result,
        "unavailable": unavailable,
        "old_svg": chain_svg(
            old_check.checked.resolved if old_check.checked else None,
            f"Approval chain, {old_label}",
        ),
        "new_svg": chain_svg(
            new_check.checked.resolved if new_check.checked else None,
            f"Approval chain, {new_label}",
        ),
    }
