"""The outbox: every e-mail and webhook event of the tenant, delivered or not, with the reason
of the last failure, and a retry for owners and editors (CSRF-checked by Pyramid, audited by
``workflow.outbox.retry``)."""

from __future__ import annotations

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.view import view_config

from approvalrules.workflow import outbox

from .common import flash, int_or_404, paginate, template


def recipients_text(event) -> str:
    """``bob (bob@acme.test, email); ann (inbox)``: who an event goes to."""
    parts = []
    for r in event.recipients or ():
        how = ", ".join(x for x in (r.get("email"), r.get("channel")) if x)
        parts.append(f"{r.get('account') or r.get('company') or '?'} ({how})")
    return "; ".join(parts) or "webhook only"


@view_config(
    route_name="admin_outbox", request_method="GET", permission="view", renderer=template("outbox")
)
def outbox_page(request):
    state = request.params.get("state", "")
    state = state if state in outbox.EVENT_STATES else ""
    page = paginate(
        request.dbsession, outbox.events_query(request.admin_tenant.id, state), request.params
    )
    return {
        "page": page,
        "state": state,
        "states": outbox.EVENT_STATES,
        "state_of": outbox.event_state,
        "recipients_text": recipients_text,
        "can_retry": request.has_permission("edit"),
    }


@view_config(route_name="admin_outbox_retry", request_method="POST", permission="edit")
def retry(request):
    """Deliver one undelivered event now; the page then says how it went."""
    event_id = int_or_404(request.matchdict["id"], "outbox event")
    back = HTTPSeeOther(
        request.route_url("admin_outbox", _query={"state": request.params.get("state", "")})
    )
    try:
        report = outbox.retry(
            request.dbsession,
            request.admin_tenant,
            event_id,
            request.admin_actor,
            request.registry.settings,
        )
    except outbox.MailConfigurationError as exc:
        # this process cannot send (e.g. no SMTP password in its environment): say so, and
        # leave the event as it was for the dispatch job
        request.tm.doom()
        flash(request, f"Not retried: {exc.message}", "error")
        return back
    if report.failed:
        reason = report.failures[0].describe() if report.failures else "it failed again"
        flash(request, f"Retried: delivery failed again: {reason}", "error")
    elif report.delivered:
        flash(request, f"Retried: delivered ({report.summary()}).", "success")
    else:
        flash(request, "Nothing to deliver: another dispatcher is delivering it now.", "info")
    return back
