"""Held orders: the merchant's queue, with "let proceed" (lift the hold) and "cancel", each with
a comment.

Reading needs ``view``; deciding needs ``review`` (owners and editors, as the merchant's
review of approved orders).  Both decisions go through :mod:`approvalrules.workflow.held`, as
the API's ``POST /api/v1/held-orders/{id}/lift|cancel`` does, audited as ``admin:<login>``.
"""

from __future__ import annotations

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.view import view_config

from approvalrules.errors import ApprovalRulesError
from approvalrules.workflow import held

from . import words
from .common import flash, paginate, template

#: the two decisions, as the form posts them, and what the page then says was done
DECISIONS = {
    "lift": (held.lift_hold, "Order {order} may proceed: it is now {status}."),
    "cancel": (held.cancel_held, "Order {order} is cancelled."),
}


def _page(request, error: str | None = None, failed: str | None = None, comment: str = "") -> dict:
    page = paginate(
        request.dbsession, held.held_orders_query(request.admin_tenant.id), request.params
    )
    return {
        "page": page,
        "amount": words.money,
        "can_decide": request.has_permission("review"),
        "error": error,
        "failed": failed,
        "comment": comment,
    }


@view_config(
    route_name="admin_held_orders",
    request_method="GET",
    permission="view",
    renderer=template("held_orders"),
)
def held_orders(request):
    return _page(request)


@view_config(
    route_name="admin_held_orders",
    request_method="POST",
    permission="review",
    renderer=template("held_orders"),
)
def decide(request):
    """Let one held order proceed, or cancel it, with the merchant's comment."""
    order_id = request.POST.get("order", "")
    decision = request.POST.get("decision")
    comment = request.POST.get("comment", "")
    if decision not in DECISIONS:
        request.response.status_int = 422
        return _page(request, "Choose Let proceed or Cancel order.", order_id, comment)
    action, done = DECISIONS[decision]
    try:
        order = action(
            request.dbsession, request.admin_tenant, order_id, request.admin_actor, comment
        )
        request.dbsession.flush()
    except ApprovalRulesError as exc:
        request.response.status_int = 409 if exc.code == "not_held" else 422
        return _page(request, str(exc), order_id, comment)
    flash(request, done.format(order=order.external_id, status=order.status), "success")
    return HTTPSeeOther(request.route_url("admin_held_orders"))
