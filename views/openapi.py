"""The OpenAPI 3.1 document of the storefront API.

Built from the same JSON Schemas the engine validates with.
"""

from __future__ import annotations

import copy
import functools

from pyramid.view import view_config

from approvalrules.engine import schema
from approvalrules.store.models import REQUEST_STATUSES
from approvalrules.store.services import GRANT_SCOPES

from .openapi_directory import directory_paths
from .openapi_merchant import merchant_paths
from .openapi_operations import operations_paths
from .openapi_parts import (  # noqa: F401  (the limits are part of this module's API)
    DIRECTORY_ID,
    ERROR,
    ETAG_HEADER,
    HEADER_TOKEN,
    IF_MATCH,
    MAX_ID,
    RULESET_NAME,
    SCOPES_TEXT,
    STEP_STATES,
    TEXT_100,
    WHOLE,
    grant_for,
    security_for,
)
from .openapi_parts import error_responses as _error_responses
from .openapi_reference import DESCRIPTION, reference_paths
from .openapi_rulesets import ruleset_paths
from .openapi_webhooks import webhook_components, webhooks

#: a step of a decision or of an approval request, as both answer it
STEP = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "required": {"type": "integer"},
        "state": {
            "enum": list(STEP_STATES),
            "description": "done, current, waiting (a later step of a pending "
            "request); the step a closed request ended in says how it ended "
            "(rejected, expired, withdrawn) and later steps are not_reached.",
        },
    },
}


def _rewrite_refs(node):
    """Point the order schema's references to the rule-set schema at components."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and value.startswith("ruleset.schema.json#/$defs/"):
                out[key] = "#/components/schemas/" + value.rsplit("/", 1)[-1]
            elif key not in ("$schema", "$id"):
                out[key] = _rewrite_refs(value)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


@functools.cache
def document() -> dict:
    ruleset_defs = schema("ruleset")["$defs"]
    components = {
        name: copy.deepcopy(ruleset_defs[name])
        for name in ("money", "currency", "order_type", "payer")
    }
    components["Order"] = _rewrite_refs(schema("order"))
    components["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "details": {},
                    "request_id": {
                        "type": "string",
                        "description": "The X-Request-Id of the request: quote it when "
                        "reporting a problem",
                    },
                },
            }
        },
    }
    components["Decision"] = {
        "type": "object",
        "required": ["outcome", "reasons", "steps", "notifications", "ruleset", "buyer"],
        "properties": {
            "outcome": {"enum": ["approved", "pending", "blocked", "held"]},
            "reasons": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "details": {"type": "object"},
                    },
                },
            },
            "payer": {"type": ["object", "null"]},
            "steps": {"type": "array", "items": STEP},
            "expires_at": {"type": ["string", "null"]},
            "notifications": {"type": "array", "items": {"type": "object"}},
            "ruleset": {"type": "object"},
            "buyer": {"type": "object"},
            "order": {"type": "object"},
            "trace": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "rule": {"type": "string"},
                        "result": {"type": "string"},
                        "why": {"type": "string"},
                    },
                },
            },
        },
    }
    components["OrderRecord"] = {
        "type": "object",
        "required": ["id", "status", "total", "currency", "decision"],
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string"},
            "total": {"type": "string"},
            "currency": {"type": "string"},
            "type": {"type": "string"},
            "released_at": {"type": ["string", "null"]},
            "ruleset_version": {"type": ["integer", "null"]},
            "decision": {"$ref": "#/components/schemas/Decision"},
            "approval": {"$ref": "#/components/schemas/Approval"},
            "previous_decisions": {
                "type": "array",
                "items": {"type": "object"},
                "description": "Decisions before a re-evaluation (new rule-set version, "
                "approver edit), oldest first.",
            },
        },
    }
    components["Approval"] = {
        "type": "object",
        "required": ["id", "order", "status", "version", "steps"],
        "properties": {
            "id": {"type": "integer"},
            "order": {"type": "string"},
            "status": {"enum": list(REQUEST_STATUSES)},
            "version": {"type": "integer"},
            "current_step": {"type": "integer"},
            "steps": {"type": "array", "items": STEP},
            "expires_at": {"type": ["string", "null"]},
            "created_at": {"type": "string"},
            "decided_at": {"type": ["string", "null"]},
            "history": {"type": "array", "items": {"type": "object"}},
            "order_detail": {"type": "object"},
        },
    }
    components.update(webhook_components())
    components["ApprovalAction"] = {
        "type": "object",
        "required": ["approver"],
        "properties": {
            "approver": {"type": "string", "description": "The acting account's id."},
            "comment": {"type": "string", "maxLength": 5000},
            "version": {"type": "integer"},
        },
    }

    def json_of(ref: str) -> dict:
        return {
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}
        }

    order_id = {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "The storefront's order id. It may contain '/' (ERP numbers like "
        "2026/PO/17): send it as is (/api/v1/orders/2026/PO/17) or with %2F; "
        "the order actions take the last segment (/api/v1/orders/2026/PO/17/withdraw).",
        "x-may-contain-slash": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": 100},
    }
    approval_id = {"name": "id", "in": "path", "required": True, "schema": WHOLE}
    paths = {
        "/api/v1/evaluate": {
            "post": {
                "summary": "Dry run: the decision for a cart, with its trace; writes nothing",
                "requestBody": {"required": True, **json_of("Order")},
                "responses": {
                    "200": {"description": "The decision", **json_of("Decision")},
                    **_error_responses(400, 401, 404, 413, 422, 429, 503),
                },
            }
        },
        "/api/v1/orders": {
            "get": {
                "summary": "The orders an account may see, per the rule set's visibility (own, "
                "group, eligible, company)",
                "parameters": [
                    {"name": n, "in": "query", "required": n == "viewer", "schema": t}
                    for n, t in (
                        ("viewer", TEXT_100),
                        ("company", TEXT_100),
                        ("page", WHOLE),
                        ("per_page", WHOLE),
                    )
                ],
                "responses": {
                    "200": {
                        "description": "A page of orders",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "items": {"type": "array", "items": {"type": "object"}},
                                        "page": {"type": "integer"},
                                        "per_page": {"type": "integer"},
                                        "total": {"type": "integer"},
                                    },
                                }
                            }
                        },
                    },
                    **_error_responses(401, 404, 422),
                },
            },
            "post": {
                "summary": "Submit an order (idempotent on order id and Idempotency-Key)",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": HEADER_TOKEN,
                    }
                ],
                "requestBody": {"required": True, **json_of("Order")},
                "responses": {
                    "201": {"description": "Recorded", **json_of("OrderRecord")},
                    "200": {
                        "description": "Already recorded with this body",
                        **json_of("OrderRecord"),
                    },
                    **_error_responses(400, 401, 409, 413, 422, 503),
                },
            },
        },
        "/api/v1/orders/{id}": {
            "get": {
                "summary": "An order with its decision and approval progress",
                "parameters": [order_id],
                "responses": {
                    "200": {"description": "The order", **json_of("OrderRecord")},
                    **_error_responses(401, 404),
                },
            }
        },
    }
    for action, summary in (
        ("withdraw", "The buyer withdraws a pending order"),
        ("released", "Fulfilment started: closes the reversal window"),
        ("convert", "Convert a quote into an order and evaluate it"),
    ):
        paths[f"/api/v1/orders/{{id}}/{action}"] = {
            "post": {
                "summary": summary,
                "parameters": [order_id],
                "responses": {
                    "200": {"description": "The order", **json_of("OrderRecord")},
                    **_error_responses(401, 404, 409, 422),
                },
            }
        }
    paths["/api/v1/approvals"] = {
        "get": {
            "summary": "Approver inbox and history with counts per status",
            "parameters": [
                {"name": n, "in": "query", "required": False, "schema": t}
                for n, t in (
                    ("approver", TEXT_100),
                    ("status", {"type": "string", "enum": list(REQUEST_STATUSES)}),
                    ("from", {"type": "string", "maxLength": 40}),
                    ("to", {"type": "string", "maxLength": 40}),
                    ("q", TEXT_100),
                    ("page", WHOLE),
                    ("per_page", WHOLE),
                )
            ],
            "responses": {
                "200": {
                    "description": "A page of approval requests",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "items": {
                                        "type": "array",
                                        "items": {
                                            "allOf": [
                                                {"$ref": "#/components/schemas/Approval"},
                                                {
                                                    "type": "object",
                                                    "description": "whose order of how much",
                                                    "properties": {
                                                        "buyer": {"type": ["string", "null"]},
                                                        "company": {"type": ["string", "null"]},
                                                        "total": {"type": "string"},
                                                        "currency": {"type": "string"},
                                                    },
                                                },
                                            ]
                                        },
                                    },
                                    "page": {"type": "integer"},
                                    "per_page": {"type": "integer"},
                                    "total": {"type": "integer"},
                                    "counts": {"type": "object"},
                                },
                            }
                        }
                    },
                },
                **_error_responses(400, 401, 422),
            },
        }
    }
    paths["/api/v1/approvals/bulk"] = {
        "post": {
            "summary": "Approve or reject several requests; each is checked on its own, "
            "results per request",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["action", "approver", "requests"],
                            "properties": {
                                "action": {"enum": ["approve", "reject"]},
                                "approver": {"type": "string"},
                                "comment": {"type": "string"},
                                "requests": {
                                    "type": "array",
                                    "items": {
                                        "type": "integer",
                                        "minimum": 1,
                                        "maximum": 4611686018427387903,
                                    },
                                    "minItems": 1,
                                    "maxItems": 100,
                                },
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "One result per request",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "results": {"type": "array", "items": {"type": "object"}}
                                },
                            }
                        }
                    },
                },
                **_error_responses(400, 401, 422),
            },
        }
    }
    paths["/api/v1/approvals/{id}"] = {
        "get": {
            "summary": "Steps, progress, who approved or declined, comments",
            "parameters": [approval_id],
            "responses": {
                "200": {"description": "The approval request", **json_of("Approval")},
                **_error_responses(401, 404),
            },
        }
    }
    for action, summary in (
        ("approve", "Approve the current step (N-of-M)"),
        ("reject", "Decline; the order is cancelled"),
        ("reverse", "Reverse an approval or a decline while the order is not released"),
    ):
        paths[f"/api/v1/approvals/{{id}}/{action}"] = {
            "post": {
                "summary": summary,
                "parameters": [
                    approval_id,
                    {
                        "name": "If-Match",
                        "in": "header",
                        "required": False,
                        "schema": HEADER_TOKEN,
                    },
                ],
                "requestBody": {"required": True, **json_of("ApprovalAction")},
                "responses": {
                    "200": {"description": "The approval request", **json_of("Approval")},
                    **_error_responses(400, 401, 403, 404, 409, 422),
                },
            }
        }
    paths["/api/v1/approvals/{id}/edit"] = {
        "post": {
            "summary": "An eligible approver lowers quantities or removes lines; the order is "
            "re-evaluated and the buyer told",
            "parameters": [
                approval_id,
                {
                    "name": "If-Match",
                    "in": "header",
                    "required": False,
                    "schema": HEADER_TOKEN,
                },
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["approver", "lines"],
                            "properties": {
                                "approver": {"type": "string"},
                                "comment": {"type": "string", "maxLength": 5000},
                                "version": {"type": ["integer", "string"]},
                                "lines": {
                                    "type": "array",
                                    "description": "The complete new list of lines: a line "
                                    "left out is removed",
                                    "items": {
                                        "type": "object",
                                        "required": ["sku"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "sku": {"type": "string"},
                                            "quantity": {"$ref": "#/components/schemas/money"},
                                        },
                                    },
                                },
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": {"description": "The approval request", **json_of("Approval")},
                **_error_responses(400, 401, 403, 404, 409, 422),
            },
        }
    }

    paths.update(directory_paths())
    paths.update(ruleset_paths())
    paths.update(merchant_paths())
    paths.update(reference_paths())
    paths.update(operations_paths())
    for path, item in paths.items():
        for method, operation in item.items():
            # every operation checks its parameters and refuses other methods
            operation["responses"] = {**_error_responses(400, 405), **operation["responses"]}
            if operation.get("security") != []:  # [] is public (/ready)
                grant = grant_for(path, method)
                operation["security"] = security_for(grant, GRANT_SCOPES)
                if grant != "any":
                    operation["responses"] = {**_error_responses(403), **operation["responses"]}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "approvalrules storefront API",
            "version": "1",
            "description": DESCRIPTION + "\n**Scopes**: " + SCOPES_TEXT,
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The tenant's API key: `Authorization: Bearer ar_<prefix>_"
                    "<token>`. " + SCOPES_TEXT,
                }
            },
        },
        "security": [{"apiKey": []}],
        "paths": paths,
        "webhooks": webhooks(),
    }


@view_config(route_name="api_openapi", renderer="json")
def openapi(request):
    return document()
