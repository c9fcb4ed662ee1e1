"""The merchant's own endpoints in the OpenAPI document: held orders, the key, the directory."""

from __future__ import annotations

from .openapi_parts import WHOLE
from .openapi_parts import error_responses as _error_responses


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def merchant_paths() -> dict:
    """The paths of /api/v1/held-orders..., /api/v1/key and /api/v1/directory."""
    order_id = {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "The storefront's order id (it may contain '/', as in /api/v1/orders).",
        "x-may-contain-slash": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": 100},
    }
    held_order = {
        "type": "object",
        "required": ["id", "status", "total", "currency", "buyer", "held_since"],
        "properties": {
            "id": {"type": "string"},
            "status": {"const": "held"},
            "total": {"type": "string"},
            "currency": {"type": "string"},
            "type": {"type": "string"},
            "buyer": {"type": "object"},
            "company": {"type": ["string", "null"]},
            "held_since": {"type": "string"},
            "reasons": {"type": "array", "items": {"type": "object"}},
        },
    }
    paths: dict = {
        "/api/v1/held-orders": {
            "get": {
                "summary": "The merchant's queue: orders held by hold_orders, oldest first "
                "(merchant keys only)",
                "parameters": [
                    {"name": n, "in": "query", "required": False, "schema": WHOLE}
                    for n in ("page", "per_page")
                ],
                "responses": {
                    "200": {
                        "description": "A page of held orders",
                        **_json(
                            {
                                "type": "object",
                                "properties": {
                                    "items": {"type": "array", "items": held_order},
                                    "page": {"type": "integer"},
                                    "per_page": {"type": "integer"},
                                    "total": {"type": "integer"},
                                },
                            }
                        ),
                    },
                    **_error_responses(401, 422),
                },
            }
        }
    }
    comment_body = {
        "required": False,
        **_json(
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "comment": {
                        "type": "string",
                        "maxLength": 5000,
                        "description": "Shown to the buyer in the e-mail and kept in the audit.",
                    }
                },
            }
        ),
    }
    for action, summary in (
        (
            "lift",
            "Let a held order proceed (lift the hold): it is decided again without the hold, "
            "under the version it was submitted under (approved, pending with its approval "
            "request, or blocked). Not 'released', which means fulfilment started.",
        ),
        ("cancel", "Cancel a held order: its status becomes cancelled; the buyer is told"),
    ):
        paths[f"/api/v1/held-orders/{{id}}/{action}"] = {
            "post": {
                "summary": summary,
                "parameters": [order_id],
                "requestBody": comment_body,
                "responses": {
                    "200": {
                        "description": "The order",
                        **_json({"$ref": "#/components/schemas/OrderRecord"}),
                    },
                    **_error_responses(401, 404, 409, 422),
                },
            }
        }
    paths["/api/v1/key"] = {
        "get": {
            "summary": "The calling API key: its tenant, name, prefix, scope and rate (any scope)",
            "responses": {
                "200": {
                    "description": "The key (never its secret)",
                    **_json(
                        {
                            "type": "object",
                            "required": ["tenant", "prefix", "scope"],
                            "properties": {
                                "tenant": {"type": "string"},
                                "name": {"type": "string"},
                                "prefix": {"type": "string"},
                                "scope": {"enum": ["storefront", "merchant", "read_only"]},
                                "rate_per_minute": {
                                    "type": "integer",
                                    "description": "requests a minute this key may make: its "
                                    "own limit, else the service's default (0: no limit)",
                                },
                            },
                        }
                    ),
                },
                **_error_responses(401),
            },
        }
    }
    paths["/api/v1/directory"] = {
        "get": {
            "summary": "The tenant's whole directory as a directory document "
            "(schemas/directory.schema.json: companies with groups, accounts with memberships, "
            "assignments, delegations), as `approvalrules load` reads it; for tools such as "
            "the remote diff",
            "responses": {
                "200": {"description": "The directory", **_json({"type": "object"})},
                **_error_responses(401),
            },
        }
    }
    return paths
