"""The rule-set endpoints and the readiness probe, in the OpenAPI document."""

from __future__ import annotations

from .openapi_parts import ETAG_HEADER, IF_MATCH, RULESET_NAME, WHOLE
from .openapi_parts import error_responses as _error_responses


def ruleset_paths() -> dict:
    """The paths of /api/v1/rulesets/... and /ready."""
    paths: dict = {}
    name = {"name": "name", "in": "path", "required": True, "schema": RULESET_NAME}
    yaml_body = {
        "required": True,
        "content": {
            "application/yaml": {
                "schema": {
                    "type": "string",
                    "description": "A rule set (schemas/ruleset.schema.json)",
                }
            }
        },
    }
    anything = {"content": {"application/json": {"schema": {"type": "object"}}}}
    paths["/api/v1/rulesets"] = {
        "get": {
            "summary": "The tenant's rule sets with their active versions",
            "responses": {"200": {"description": "Rule sets", **anything}, **_error_responses(401)},
        }
    }
    paths["/api/v1/rulesets/{name}"] = {
        "get": {
            "summary": "A rule set: active text and draft, with its ETag",
            "parameters": [name],
            "responses": {
                "200": {"description": "The rule set", "headers": ETAG_HEADER, **anything},
                **_error_responses(401, 404),
            },
        }
    }
    paths["/api/v1/rulesets/{name}/draft"] = {
        "put": {
            "summary": "Save a draft (kept even when invalid, listing its problems; refused "
            "when it fails the loader's guards: 413 over the size cap, 422 too deep or an "
            "alias bomb)",
            "parameters": [name, IF_MATCH],
            "requestBody": yaml_body,
            "responses": {
                "200": {"description": "Saved", "headers": ETAG_HEADER, **anything},
                **_error_responses(400, 401, 412, 413, 422),
            },
        }
    }
    paths["/api/v1/rulesets/{name}/publish"] = {
        "post": {
            "summary": "Validate and publish the body (or the draft) as the next version",
            "parameters": [name, IF_MATCH],
            "requestBody": {**yaml_body, "required": False},
            "responses": {
                "201": {"description": "The new version", "headers": ETAG_HEADER, **anything},
                **_error_responses(400, 401, 404, 409, 412, 413, 422),
            },
        }
    }
    paths["/api/v1/rulesets/{name}/rollback"] = {
        "post": {
            "summary": "Publish an old version's text anew",
            "parameters": [
                name,
                {"name": "to", "in": "query", "required": True, "schema": WHOLE},
                IF_MATCH,
            ],
            "responses": {
                "200": {"description": "The new version", "headers": ETAG_HEADER, **anything},
                **_error_responses(400, 401, 404, 412),
            },
        }
    }
    paths["/api/v1/rulesets/{name}/versions"] = {
        "get": {
            "summary": "Every version: number, status, hash, author, time",
            "parameters": [name],
            "responses": {
                "200": {"description": "Versions", **anything},
                **_error_responses(401, 404),
            },
        }
    }
    paths["/api/v1/rulesets/{name}/versions/{number}"] = {
        "get": {
            "summary": "One version with its text, byte for byte as published (number, or "
            "`active`); read-only keys may read it (the remote diff)",
            "parameters": [
                name,
                {
                    "name": "number",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^([1-9][0-9]{0,8}|active)$"},
                },
            ],
            "responses": {
                "200": {"description": "The version and its text", **anything},
                **_error_responses(400, 401, 404),
            },
        }
    }
    paths["/api/v1/rulesets/{name}/diff"] = {
        "get": {
            "summary": "Structural, behavioural and unified diff of two versions",
            "parameters": [name]
            + [
                {"name": n, "in": "query", "required": True, "schema": WHOLE}
                for n in ("from", "to")
            ],
            "responses": {
                "200": {"description": "The diff", **anything},
                **_error_responses(400, 401, 404, 422),
            },
        }
    }
    paths["/ready"] = {
        "get": {
            "summary": "Readiness: the database answers a fresh connection's SELECT 1 within "
            "approvalrules.db.ready_timeout (liveness is /health, which never touches it)",
            "security": [],
            "responses": {
                "200": {
                    "description": "Ready",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["status", "database"],
                                "properties": {
                                    "status": {"const": "ready"},
                                    "database": {"const": "ok"},
                                    "version": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "503": {
                    **_error_responses(503)["503"],
                    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                },
            },
        }
    }
    return paths
