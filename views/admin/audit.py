"""The audit log of the admin's tenant, newest first, filtered by actor, action and subject."""

from __future__ import annotations

from pyramid.view import view_config
from sqlalchemy import select

from approvalrules.store.models import AuditEvent

from .common import like, paginate, template

FILTERS = ("actor", "action", "subject")


def audit_query(tenant_id: int, filters: dict):
    query = select(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
    if filters.get("actor"):
        query = query.where(AuditEvent.actor.ilike(like(filters["actor"]), escape="\\"))
    if filters.get("action"):
        # "ruleset" finds ruleset.published, ruleset.draft_saved, ...
        query = query.where(AuditEvent.action.ilike(like(filters["action"]), escape="\\"))
    if filters.get("subject"):
        query = query.where(AuditEvent.subject_id.ilike(like(filters["subject"]), escape="\\"))
    return query.order_by(AuditEvent.id.desc())


@view_config(
    route_name="admin_audit", request_method="GET", permission="audit", renderer=template("audit")
)
def audit_log(request):
    filters = {k: request.params.get(k, "").strip() for k in FILTERS}
    page = paginate(
        request.dbsession,
        audit_query(request.admin_tenant.id, filters),
        request.params,
        per_page=50,
    )
    return {"filters": filters, "page": page}
