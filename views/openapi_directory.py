"""The directory endpoints in the OpenAPI document: upserts by external id (``PUT``), each
honouring ``If-Match`` and answering the record's ``ETag``."""

from __future__ import annotations

from .openapi_parts import DIRECTORY_ID, ETAG_HEADER, IF_MATCH, TEXT_100
from .openapi_parts import error_responses as _error_responses


def directory_paths() -> dict:
    """The paths of /api/v1/directory/..."""
    paths: dict = {}

    def upsert(summary: str, properties: dict, *path_params: str, required: tuple = ()) -> dict:
        return {
            "summary": summary,
            "parameters": [
                {"name": n, "in": "path", "required": True, "schema": DIRECTORY_ID}
                for n in path_params
            ]
            + [IF_MATCH],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": properties,
                            "required": list(required),
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "Upserted; ETag is the record's new tag",
                    "headers": ETAG_HEADER,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                **_error_responses(400, 401, 404, 409, 412, 422),
            },
        }

    text, flag, nullable_text = (
        {"type": "string"},
        {"type": "boolean"},
        {"type": ["string", "null"]},
    )
    amount = {"oneOf": [{"$ref": "#/components/schemas/money"}, {"type": "null"}]}
    paths["/api/v1/directory/companies/{company}"] = {
        "put": upsert(
            "Upsert a company by external id",
            {
                "name": text,
                "parent": nullable_text,
                "ruleset": nullable_text,
                "attributes": {"type": "object"},
                "locations": {
                    "description": "When given, the company's locations become exactly these.",
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["id"],
                        "properties": {"id": text, "name": text, "address": text},
                    },
                },
                "contacts": {
                    "description": "When given, the company's contacts become exactly these.",
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["account", "kind"],
                        "properties": {
                            "account": text,
                            "kind": {"enum": ["primary", "billing", "logistics"]},
                        },
                    },
                },
            },
            "company",
        )
    }
    paths["/api/v1/directory/companies/{company}/groups/{group}"] = {
        "put": upsert("Upsert a purchasing group", {"name": text}, "company", "group"),
        "delete": {
            "summary": "Delete a group; members per the tenant's policy (or ?policy=)",
            "parameters": [
                {"name": n, "in": "path", "required": True, "schema": DIRECTORY_ID}
                for n in ("company", "group")
            ]
            + [
                {
                    "name": "policy",
                    "in": "query",
                    "required": False,
                    "schema": {"enum": ["remove_members", "move_to_company", "refuse_if_members"]},
                },
                IF_MATCH,
            ],
            "responses": {
                "200": {
                    "description": "Deleted",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                **_error_responses(401, 404, 409, 412),
            },
        },
    }
    paths["/api/v1/directory/accounts/{account}"] = {
        "put": upsert(
            "Upsert an account by external id",
            {"name": text, "email": nullable_text, "email_enabled": flag, "active": flag},
            "account",
        )
    }
    paths["/api/v1/directory/accounts/{account}/memberships/{company}"] = {
        "put": upsert(
            "Upsert a membership (role, group, master, settings); `move` moves between groups",
            {
                "role": text,
                "group": nullable_text,
                "master": flag,
                "default": flag,
                "status": {"enum": ["active", "invited", "declined", "inactive"]},
                "settings": {"type": "object"},
                "attributes": {"type": "object"},
                "move": flag,
            },
            "account",
            "company",
        )
    }
    paths["/api/v1/directory/delegations"] = {
        "put": upsert(
            "Upsert a delegation (out of office): delegate approves for delegator in a period; "
            "loops refused",
            {
                "delegator": text,
                "delegate": text,
                "valid_from": {"type": "string", "format": "date"},
                "valid_until": {"type": "string", "format": "date"},
                "company": nullable_text,
                "step": nullable_text,
            },
            required=("delegator", "delegate", "valid_from", "valid_until"),
        ),
        "delete": {
            "summary": "Revoke a delegation, named by delegator, delegate and its optional "
            "company and step; requests already pending keep their approvers",
            "parameters": [
                {
                    "name": n,
                    "in": "query",
                    "required": n in ("delegator", "delegate"),
                    "schema": TEXT_100,
                }
                for n in ("delegator", "delegate", "company", "step")
            ]
            + [IF_MATCH],
            "responses": {
                "200": {
                    "description": "Revoked",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                **_error_responses(400, 401, 404, 409, 412, 422),
            },
        },
    }
    paths["/api/v1/directory/assignments"] = {
        "put": upsert(
            "Upsert an assignment approver -> account",
            {
                "approver": text,
                "account": text,
                "company": text,
                "threshold": amount,
                "limit": amount,
                "step": nullable_text,
            },
            required=("approver", "account", "company"),
        )
    }
    return paths
