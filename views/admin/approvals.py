"""Approvals: pending and decided requests with the API's filters, deciding on an approver's
behalf, and the merchant's own review.

Acting for an approver calls the workflow (``approve`` / ``reject``) exactly as
the storefront would, then adds an audit entry naming the admin, so the log
says who really clicked.  A request waiting in the ``merchant-review`` step
(``approval.merchant_review: true``) is decided by an owner or editor with
``workflow.actions.merchant_decide``, audited as ``approval.merchant_approved`` /
``approval.merchant_rejected`` by ``admin:<login>``.
"""

from __future__ import annotations

from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.view import view_config
from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from approvalrules.engine.durations import parse_instant
from approvalrules.errors import ApprovalRulesError
from approvalrules.store.models import REQUEST_STATUSES, ApprovalEligibility, ApprovalRequest, Order
from approvalrules.store.services import audit
from approvalrules.workflow import actions, queries

from .common import flash, int_or_404, like, paginate, template

FILTERS = ("status", "approver", "q", "from", "to")


def approvals_query(tenant_id: int, params) -> tuple[object, list[str]]:
    """The filtered query and any filter errors.

    The filters are the API's: status, approver, q, from, to.
    """
    query = (
        select(ApprovalRequest)
        .join(Order, ApprovalRequest.order_id == Order.id)
        .where(ApprovalRequest.tenant_id == tenant_id)
    )
    problems = []
    if params.get("status") in REQUEST_STATUSES:
        query = query.where(ApprovalRequest.status == params["status"])
    elif params.get("status") == "decided":
        query = query.where(ApprovalRequest.status != "pending")
    if params.get("approver"):
        eligible = select(ApprovalEligibility.request_id).where(
            ApprovalEligibility.tenant_id == tenant_id,
            ApprovalEligibility.account_id == params["approver"],
        )
        query = query.where(ApprovalRequest.id.in_(eligible))
    if params.get("q"):
        query = query.where(Order.external_id.ilike(like(params["q"]), escape="\\"))
    for name, op in (("from", "__ge__"), ("to", "__le__")):
        if params.get(name):
            try:
                query = query.where(
                    getattr(ApprovalRequest.created_at, op)(parse_instant(params[name], name))
                )
            except ApprovalRulesError:
                problems.append(f"{name}: give an ISO 8601 date-time such as 2026-01-15T00:00:00Z")
    return query.order_by(ApprovalRequest.created_at.desc(), ApprovalRequest.id.desc()), problems


def current_approvers(request_row: ApprovalRequest) -> list[dict]:
    """The eligible approvers of the request's current step (empty once decided)."""
    if request_row.status != "pending" or not request_row.steps:
        return []
    return list(request_row.steps[request_row.current_step].get("approvers") or [])


def act(request, request_id: int, action: str, approver: str, comment: str | None):
    """Approve or reject for ``approver``; audited as the admin. Raises the workflow's errors."""
    session, tenant = request.dbsession, request.admin_tenant
    if action == "approve":
        row = actions.approve(session, tenant, request_id, approver, comment=comment)
    else:
        row = actions.reject(session, tenant, request_id, approver, comment=comment)
    session.flush()
    done = {"approve": "approved", "reject": "rejected"}[action]
    audit(
        session,
        tenant.id,
        request.admin_actor,
        f"admin.approval.{done}_on_behalf",
        "order",
        row.order.external_id,
        {"approver": approver, "request": request_id, "comment": comment},
    )
    return row


@view_config(
    route_name="admin_approvals",
    request_method="GET",
    permission="view",
    renderer=template("approvals"),
)
def approvals(request):
    params = {k: request.params.get(k, "") for k in FILTERS}
    if "status" not in request.params:
        params["status"] = "pending"
    query, problems = approvals_query(request.admin_tenant.id, params)
    page = paginate(request.dbsession, query, {**params, "page": request.params.get("page", "1")})
    page.params = params
    return {
        "filters": params,
        "statuses": ("pending", "decided") + REQUEST_STATUSES[1:],
        "page": page,
        "problems": problems,
    }


def _request_or_404(request) -> ApprovalRequest:
    try:
        return queries.get_request(
            request.dbsession,
            request.admin_tenant,
            int_or_404(request.matchdict["id"], "approval request"),
        )
    except ApprovalRulesError:
        raise HTTPNotFound(f"no approval request {request.matchdict['id']!r}") from None


def in_merchant_review(request_row: ApprovalRequest) -> bool:
    """The request waits for the merchant: pending in the ``merchant-review`` step."""
    return (
        request_row.status == "pending"
        and bool(request_row.steps)
        and bool(request_row.steps[request_row.current_step].get("merchant"))
    )


def _page(
    request, row: ApprovalRequest, error: str | None = None, review_error: str | None = None
) -> dict:
    return {
        "row": row,
        "order": row.order,
        "approvers": current_approvers(row),
        "can_decide": request.has_permission("decide"),
        "error": error,
        "merchant_review": in_merchant_review(row),
        "can_review": request.has_permission("review"),
        "review_error": review_error,
    }


@view_config(
    route_name="admin_approval",
    request_method="GET",
    permission="view",
    renderer=template("approval"),
)
def approval(request):
    return _page(request, _request_or_404(request))


@view_config(
    route_name="admin_approval_review",
    request_method="POST",
    permission="review",
    renderer=template("approval"),
)
def merchant_review(request):
    """The merchant's review decision (owners and editors): release the order or cancel it."""
    row = _request_or_404(request)
    decision = request.POST.get("decision")
    comment = request.POST.get("comment", "").strip() or None
    error = None
    if decision not in ("approve", "reject"):
        error = "Choose approve or reject."
    elif comment and len(comment) > 5000:
        error = "The comment is longer than 5,000 characters."
    else:
        try:
            actions.merchant_decide(
                request.dbsession,
                request.admin_tenant,
                row.id,
                request.identity.login,
                decision == "approve",
                comment,
            )
            request.dbsession.flush()
        except (ApprovalRulesError, StaleDataError) as exc:
            error = (
                str(exc)
                if isinstance(exc, ApprovalRulesError)
                else "Someone else decided at the same moment; reload and try again."
            )
    if error:
        request.response.status_int = 422
        return _page(request, row, review_error=error)
    flash(
        request,
        f"Merchant review: order {row.order.external_id} "
        f"{'released as approved' if decision == 'approve' else 'rejected'}.",
        "success",
    )
    return HTTPSeeOther(request.route_url("admin_approval", id=row.id))


@view_config(
    route_name="admin_approval",
    request_method="POST",
    permission="decide",
    renderer=template("approval"),
)
def approval_action(request):
    row = _request_or_404(request)
    action = request.POST.get("action")
    approver = request.POST.get("approver", "").strip()
    comment = request.POST.get("comment", "").strip() or None
    error = None
    if action not in ("approve", "reject"):
        error = "Choose approve or reject."
    elif not approver:
        error = "Choose the approver you act for."
    elif comment and len(comment) > 5000:
        error = "The comment is longer than 5,000 characters."
    else:
        try:
            act(request, row.id, action, approver, comment)
        except (ApprovalRulesError, StaleDataError) as exc:
            error = (
                str(exc)
                if isinstance(exc, ApprovalRulesError)
                else "Someone else decided at the same moment; reload and try again."
            )
    if error:
        request.response.status_int = 422
        return _page(request, row, error=error)
    flash(
        request, f"{'Approved' if action == 'approve' else 'Rejected'} for {approver}.", "success"
    )
    return HTTPSeeOther(request.route_url("admin_approval", id=row.id))
