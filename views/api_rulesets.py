"""Rule sets over the API: list, read, save a draft, publish, roll back, list versions, diff.

YAML travels as the raw body (``Content-Type: application/yaml`` or text);
publishing validates first, so an invalid or hostile document answers 422
(413 when too large) with every problem's line and path, and nothing is saved.
Publishing runs the rule set's own tests as the admin does (``workflow.publishing``):
a failing test answers 422 ``tests_failed``, listing the failing tests.
"""

from __future__ import annotations

from pyramid.view import view_config, view_defaults
from sqlalchemy import select

from approvalrules.diff import diff_versions
from approvalrules.engine.durations import isoformat
from approvalrules.engine.load import MAX_BYTES
from approvalrules.errors import (
    ApprovalRulesError,
    DocumentError,
    DocumentTooLarge,
    NotFound,
    Problem,
)
from approvalrules.store import versions
from approvalrules.store.directory import directory_for
from approvalrules.store.models import RuleSet
from approvalrules.workflow import publishing


def version_view(version) -> dict:
    return {
        "number": version.number,
        "status": version.status,
        "content_hash": version.content_hash,
        "author": version.author,
        "published_at": isoformat(version.published_at) if version.published_at else None,
        "extends": version.extends,
    }


def yaml_body(request) -> str:
    """The request body as text; the loader then applies its own limits."""
    if len(request.body) > MAX_BYTES:
        raise DocumentTooLarge(
            [
                Problem(
                    "document_too_large",
                    f"the document is {len(request.body):,} bytes; "
                    f"the limit is {MAX_BYTES:,} bytes",
                )
            ]
        )
    try:
        return request.body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApprovalRulesError(
            "not_utf8", f"the document is not UTF-8 text (byte {exc.start})"
        ) from None


@view_defaults(renderer="json")
class RuleSetApi:
    def __init__(self, request):
        self.request = request
        self.session = request.dbsession
        self.tenant = request.tenant
        self.name = request.matchdict.get("name")

    @view_config(route_name="api_rulesets", request_method="GET", api_grant="read")
    def list(self):
        rulesets = self.session.scalars(
            select(RuleSet).where(RuleSet.tenant_id == self.tenant.id).order_by(RuleSet.name)
        ).all()
        return {
            "rulesets": [
                {
                    "name": r.name,
                    "extends": r.extends,
                    "active": version_view(r.active_version) if r.active_version else None,
                    "has_draft": r.draft_text is not None,
                }
                for r in rulesets
            ]
        }

    def _ruleset(self) -> RuleSet:
        ruleset = versions.get_ruleset(self.session, self.tenant.id, self.name)
        if ruleset is None:
            raise NotFound("unknown_ruleset", f"no rule set {self.name!r}")
        return ruleset

    def _if_match(self) -> str | None:
        return self.request.headers.get("If-Match")

    def _tag(self) -> None:
        """The rule set's current ETag on the answer (``If-Match`` it on the next write)."""
        tag = versions.ruleset_etag(versions.get_ruleset(self.session, self.tenant.id, self.name))
        if tag is not None:
            self.request.response.headers["ETag"] = tag

    @view_config(route_name="api_ruleset", request_method="GET", api_grant="read")
    def get(self):
        ruleset = self._ruleset()
        self._tag()
        active = ruleset.active_version
        return {
            "name": ruleset.name,
            "active": version_view(active) if active else None,
            "text": active.text if active else None,
            "draft": ruleset.draft_text,
        }

    @view_config(route_name="api_ruleset_draft", request_method="PUT", api_grant="merchant")
    def save_draft(self):
        """Save the body as the draft: refused (413/422) when it fails the loader's guards
        (size, depth, aliases); kept otherwise, with its other problems listed (at most
        ``MAX_PROBLEMS`` and a last "... and N more")."""
        text = yaml_body(self.request)
        versions.save_draft(
            self.session, self.tenant.id, self.name, text, author="api", if_match=self._if_match()
        )
        self.session.flush()
        self._tag()
        try:
            checked = publishing.check(
                self.session, self.tenant, self.name, text, source=f"{self.name}.yaml"
            )
        except DocumentError as exc:
            problems = exc.problems
        else:
            problems = checked.warnings
        return {
            "name": self.name,
            "draft": True,
            "problems": [p.as_dict() for p in problems],
        }

    @view_config(route_name="api_ruleset_publish", request_method="POST", api_grant="merchant")
    def publish(self):
        text = yaml_body(self.request) if self.request.body else None
        published = publishing.publish(
            self.session,
            self.tenant,
            self.name,
            text,
            author="api",
            source=f"{self.name}.yaml",
            if_match=self._if_match(),
        )
        self.request.response.status_int = 201
        self._tag()
        return {**version_view(published.version), "pending": published.pending}

    @view_config(route_name="api_ruleset_rollback", request_method="POST", api_grant="merchant")
    def rollback(self):
        number = _version_number(self.request.params.get("to", ""))
        published = publishing.rollback(
            self.session, self.tenant, self.name, number, author="api", if_match=self._if_match()
        )
        self._tag()
        return {**version_view(published.version), "pending": published.pending}

    @view_config(route_name="api_ruleset_versions", request_method="GET", api_grant="read")
    def list_versions(self):
        self._ruleset()
        return {
            "versions": [
                version_view(v)
                for v in versions.list_versions(self.session, self.tenant.id, self.name)
            ]
        }

    @view_config(route_name="api_ruleset_version", request_method="GET", api_grant="read")
    def get_version(self):
        """One version with its text, verbatim (``number``: a version number or ``active``)."""
        which = self.request.matchdict["number"]
        if which == "active":
            version = self._ruleset().active_version
            if version is None:
                raise NotFound("unknown_version", f"rule set {self.name!r} has no active version")
        else:
            version = versions.get_version(
                self.session, self.tenant.id, self.name, _version_number(which)
            )
        return {"name": self.name, **version_view(version), "text": version.text}

    @view_config(route_name="api_ruleset_diff", request_method="GET", api_grant="read")
    def diff(self):
        old = versions.get_version(
            self.session,
            self.tenant.id,
            self.name,
            _version_number(self.request.params.get("from", "")),
        )
        new = versions.get_version(
            self.session,
            self.tenant.id,
            self.name,
            _version_number(self.request.params.get("to", "")),
        )
        return diff_versions(
            old.text,
            new.text,
            directory_for(self.session, self.tenant),
            resolve=versions.resolver(self.session, self.tenant.id),
            old_name=f"{self.name}@{old.number}",
            new_name=f"{self.name}@{new.number}",
        )


def _version_number(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise ApprovalRulesError("invalid_version", "name versions by number, e.g. ?from=1&to=2")
    return int(text)
