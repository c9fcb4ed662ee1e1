"""The merchant's own API: held orders (merchant keys), the calling key, and the directory read
(read-only and merchant keys).

Held orders are the merchant's decision, never the storefront's: a storefront key gets 403
``insufficient_scope`` here (the ``api_grant`` of each view; views/api.py).
"""

from __future__ import annotations

from pyramid.view import view_config, view_defaults

from approvalrules.engine.durations import isoformat
from approvalrules.engine.money import format_amount
from approvalrules.errors import NotFound
from approvalrules.store.directory_export import export_directory
from approvalrules.store.models import Order
from approvalrules.workflow import held

from .api import _page, json_body, order_view
from .limits import default_rate


def held_order_view(order: Order) -> dict:
    """A held order as the queue lists it: who, for how much, since when, and why."""
    buyer = order.decision.get("buyer") or {}
    return {
        "id": order.external_id,
        "status": order.status,
        "total": format_amount(order.total),
        "currency": order.currency,
        "type": order.type,
        "buyer": {"account": buyer.get("account"), "name": buyer.get("name")},
        "company": buyer.get("company"),
        "held_since": isoformat(order.created_at),
        "reasons": order.decision.get("reasons") or [],
    }


def api_actor(request) -> str:
    """How the audit log names an API caller: its key's prefix (never the secret)."""
    return f"api_key:{request.api_key.prefix}"


@view_defaults(renderer="json")
class MerchantApi:
    def __init__(self, request):
        self.request = request
        self.session = request.dbsession
        self.tenant = request.tenant

    @view_config(route_name="api_held_orders", request_method="GET", api_grant="merchant")
    def held_orders(self):
        """The queue of held orders, oldest first."""
        page, per_page = _page(self.request.params)
        query = held.held_orders_query(self.tenant.id)
        total = held.count_held(self.session, self.tenant)
        rows = self.session.scalars(query.offset((page - 1) * per_page).limit(per_page))
        return {
            "items": [held_order_view(o) for o in rows],
            "page": page,
            "per_page": per_page,
            "total": total,
        }

    @view_config(route_name="api_held_order_action", request_method="POST", api_grant="merchant")
    def held_order_action(self):
        """``lift`` lets the order proceed as its rules decide; ``cancel`` cancels it."""
        action = self.request.matchdict["action"]
        handlers = {"lift": held.lift_hold, "cancel": held.cancel_held}
        if action not in handlers:
            raise NotFound("unknown_action", f"no held-order action {action!r}; use lift or cancel")
        body = json_body(self.request) if self.request.body else {}
        order = handlers[action](
            self.session,
            self.tenant,
            self.request.matchdict["id"],
            api_actor(self.request),
            body.get("comment"),
        )
        return order_view(self.session, order)

    @view_config(route_name="api_key", request_method="GET", api_grant="any")
    def key(self):
        """Whose key this is and what it may do (the remote diff checks the tenant with it)."""
        key = self.request.api_key
        return {
            "tenant": self.tenant.slug,
            "name": key.name,
            "prefix": key.prefix,
            "scope": key.scope,
            # the limit that applies: the key's own, else the service's default
            "rate_per_minute": key.rate_per_minute or default_rate(self.request.registry.settings),
        }

    @view_config(route_name="api_directory", request_method="GET", api_grant="read")
    def directory(self):
        """The whole directory as a directory document (schemas/directory.schema.json)."""
        return export_directory(self.session, self.tenant)
