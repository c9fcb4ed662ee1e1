"""Versions of a rule set: list (who published what when), view any, diff any two."""

from __future__ import annotations

import difflib
import hashlib
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

#: characters of a line the text diff shows; a longer line is cut and marked with its
#: length and a hash, so that lines still compare equal exactly when they are equal
DIFF_LINE_CHARS = 400
#: lines of each text the text diff compares; past them the page says what it left out
DIFF_MAX_LINES = 3_000


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
    """What to compare when nothing is asked.

    The draft against the active version, else the last two versions.
    """
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


def shown_line(line: str) -> str:
    """``line`` as the diff shows it: whole up to :data:`DIFF_LINE_CHARS`, else cut.

    The cut line ends with the full length and a hash of the whole line, so two long lines
    that differ anywhere still differ here, and difflib never compares, highlights or wraps
    more than a few hundred characters (its wrapping recursed once per 70 characters: a
    line of a million overflowed the stack).
    """
    if len(line) <= DIFF_LINE_CHARS:
        return line
    digest = hashlib.sha256(line.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{line[:DIFF_LINE_CHARS]} ... [line cut: {len(line):,} characters, sha256 {digest}]"


def diff_lines(text: str) -> tuple[list[str], list[str]]:
    """(the lines the diff compares, notes on what was left out) of one text."""
    notes = []
    lines = text.splitlines()
    if len(lines) > DIFF_MAX_LINES:
        notes.append(f"only the first {DIFF_MAX_LINES:,} of its {len(lines):,} lines are compared")
        lines = lines[:DIFF_MAX_LINES]
    long_lines = sum(1 for line in lines if len(line) > DIFF_LINE_CHARS)
    if long_lines:
        notes.append(
            f"{long_lines:,} line(s) longer than {DIFF_LINE_CHARS} characters are cut "
            "(a hash of the whole line tells whether it changed)"
        )
    return [shown_line(line) for line in lines], notes


def side_by_side(
    old_text: str, new_text: str, old_label: str, new_label: str
) -> tuple[str, list[str]]:
    """An HTML table of the two texts side by side (difflib), changes in context, and notes
    on what it left out: the work is bounded by :data:`DIFF_MAX_LINES` and
    :data:`DIFF_LINE_CHARS`, whatever the texts."""
    old_lines, old_notes = diff_lines(old_text)
    new_lines, new_notes = diff_lines(new_text)
    notes = [f"{old_label}: {n}" for n in old_notes] + [f"{new_label}: {n}" for n in new_notes]
    table = difflib.HtmlDiff(tabsize=2, wrapcolumn=70).make_table(
        old_lines, new_lines, old_label, new_label, context=True, numlines=3
    )
    table = table.replace(
        '<table class="diff"', '<table class="diff" aria-label="Text differences, side by side"'
    )
    return table, notes


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
    table, table_notes = side_by_side(old_text, new_text, old_label, new_label)
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
        "table": table,
        "table_notes": table_notes,
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
