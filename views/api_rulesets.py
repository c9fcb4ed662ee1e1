"""Rule sets over the API: list, read, save a draft, publish, roll back, list versions, diff.

YAML travels as the raw body (``Content-Type: application/yaml`` or text);
publishing validates first, so an invalid or hostile document answers 422
(413 when too large) with every problem's line and path, and nothing is saved.
"""

from __future__ import annotations

from pyramid.view import view_config, view_defaults
from sqlalchemy import select

from approvalrules.engine.durations import isoformat
from approvalrules.engine.load import MAX_BYTES
from approvalrules.errors import ApprovalRulesError, NotFound
from approvalrules.store import versions
from approvalrules.store.directory import SqlDirectory
from approvalrules.store.models import RuleSet
from approvalrules.workflow import service


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
        from approvalrules.errors import DocumentTooLarge, Problem

        raise DocumentTooLarge(
            [
                Problem(
                    "document_too_large",
                    f"the document is {len(request.body):,} bytes; the limit is {MAX_BYTES:,} bytes",
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

    @view_config(route_name="api_rulesets", request_method="GET")
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

    @view_config(route_name="api_ruleset", request_method="GET")
    def get(self):
        ruleset = self._ruleset()
        active = ruleset.active_version
        return {
            "name": ruleset.name,
            "active": version_view(active) if active else None,
            "text": active.text if active else None,
            "draft": ruleset.draft_text,
        }

    @view_config(route_name="api_ruleset_draft", request_method="PUT")
    def save_draft(self):
        text = yaml_body(self.request)
        versions.save_draft(self.session, self.tenant.id, self.name, text, author="api")
        return {"name": self.name, "draft": True}

    @view_config(route_name="api_ruleset_publish", request_method="POST")
    def publish(self):
        text = yaml_body(self.request) if self.request.body else None
        version = versions.publish(
            self.session,
            self.tenant.id,
            self.name,
            author="api",
            text=text,
            source=f"{self.name}.yaml",
        )
        pending = service.on_publish(self.session, self.tenant, self.name, actor="api")
        self.request.response.status_int = 201
        return {**version_view(version), "pending": pending}

    @view_config(route_name="api_ruleset_rollback", request_method="POST")
    def rollback(self):
        number = _version_number(self.request.params.get("to", ""))
        version = versions.rollback(self.session, self.tenant.id, self.name, number, author="api")
        pending = service.on_publish(self.session, self.tenant, self.name, actor="api")
        return {**version_view(version), "pending": pending}

    @view_config(route_name="api_ruleset_versions", request_method="GET")
    def list_versions(self):
        self._ruleset()
        return {
            "versions": [
                version_view(v)
                for v in versions.list_versions(self.session, self.tenant.id, self.name)
            ]
        }

    @view_config(route_name="api_ruleset_diff", request_method="GET")
    def diff(self):
        from approvalrules.diff import diff_versions

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
            SqlDirectory(self.session, self.tenant.id),
            resolve=versions.resolver(self.session, self.tenant.id),
            old_name=f"{self.name}@{old.number}",
            new_name=f"{self.name}@{new.number}",
        )


def _version_number(text: str) -> int:
    if not text.isdigit() or len(text) > 9:
        raise ApprovalRulesError("invalid_version", "name versions by number, e.g. ?from=1&to=2")
    return int(text)
