"""The directory endpoints in the OpenAPI document: upserts by external id (``PUT``), each
honouring ``If-Match`` and answering the record's ``ETag``."""

from __future__ import annotations

from approvalrules.store.directory_records import FILTERS, MAX_LIMIT

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
    _add_reads(paths)
    _add_sync(paths)
    return paths


def _add_sync(paths: dict) -> None:
    """Bulk sync and export (store/directory_sync.py)."""
    fmt = {
        "name": "format",
        "in": "query",
        "required": False,
        "description": "json or csv (default: from the body's Content-Type; export: json)",
        "schema": {"enum": ["json", "csv"]},
    }
    company = {
        "name": "company",
        "in": "query",
        "required": False,
        "description": "Only this company: its rows (export), or a sync that refuses others",
        "schema": TEXT_100,
    }
    report = {
        "type": "object",
        "required": ["dry_run", "atomic", "applied", "counts", "rows"],
        "properties": {
            "dry_run": _FLAG,
            "atomic": {"enum": ["all", "company"]},
            "applied": _FLAG,
            "directory_version": {"type": ["integer", "null"]},
            "counts": {"type": "object"},
            "rows": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["line", "action"],
                    "properties": {
                        "line": {"type": "integer"},
                        "kind": _TEXT,
                        "key": _TEXT,
                        "action": {
                            "enum": ["created", "updated", "unchanged", "error", "rolled_back"]
                        },
                        "changes": {"type": "array", "items": _TEXT},
                        "error": _OBJECT,
                    },
                },
            },
        },
    }
    body = {"type": "string", "description": "The records (see docs/api.md, Bulk sync)"}
    paths["/api/v1/directory/sync"] = {
        "post": {
            "summary": "Import a company's or the tenant's directory (JSON or CSV) in one call: "
            "row-by-row report with line numbers, dry run, atomic or per company, one "
            "directory version",
            "parameters": [
                fmt,
                company,
                {
                    "name": "dry_run",
                    "in": "query",
                    "required": False,
                    "description": "true: report what would change, keep nothing",
                    "schema": {"enum": ["true", "false"]},
                },
                {
                    "name": "atomic",
                    "in": "query",
                    "required": False,
                    "description": "all (default): one bad row refuses everything; company: "
                    "each company's rows stand or fall together",
                    "schema": {"enum": ["all", "company"]},
                },
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "text/csv": {"schema": body},
                },
            },
            "responses": {
                "200": {
                    "description": "The report (applied, or a dry run)",
                    "content": {"application/json": {"schema": report}},
                },
                **_error_responses(400, 401, 409, 413, 422),
            },
        }
    }
    paths["/api/v1/directory/export"] = {
        "get": {
            "summary": "The directory (or one company's) as JSON or CSV, as the sync reads it",
            "parameters": [fmt, company],
            "responses": {
                "200": {
                    "description": "The records",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "text/csv": {"schema": {"type": "string"}},
                    },
                },
                **_error_responses(400, 401),
            },
        }
    }


_TEXT, _FLAG, _NULL_TEXT = {"type": "string"}, {"type": "boolean"}, {"type": ["string", "null"]}
_AMOUNT = {"type": ["string", "null"], "description": "A decimal amount as text"}
_OBJECT = {"type": "object"}
_ETAG = {"type": "string", "description": "This record's ETag: send it as If-Match on its PUT"}

#: what a read shows of each kind (store/directory_records.py), keys first
RECORDS = {
    "companies": {
        "id": _TEXT,
        "name": _TEXT,
        "parent": _NULL_TEXT,
        "ruleset": _NULL_TEXT,
        "attributes": _OBJECT,
    },
    "accounts": {
        "id": _TEXT,
        "name": _TEXT,
        "email": _NULL_TEXT,
        "email_enabled": _FLAG,
        "active": _FLAG,
    },
    "groups": {"company": _TEXT, "id": _TEXT, "name": _TEXT},
    "memberships": {
        "account": _TEXT,
        "company": _TEXT,
        "role": _TEXT,
        "group": _NULL_TEXT,
        "master": _FLAG,
        "default": _FLAG,
        "status": {"enum": ["active", "invited", "declined", "inactive"]},
        "settings": _OBJECT,
        "attributes": _OBJECT,
    },
    "assignments": {
        "approver": _TEXT,
        "account": _TEXT,
        "company": _TEXT,
        "threshold": _AMOUNT,
        "limit": _AMOUNT,
        "step": _NULL_TEXT,
    },
    "delegations": {
        "delegator": _TEXT,
        "delegate": _TEXT,
        "valid_from": {"type": "string", "format": "date"},
        "valid_until": {"type": "string", "format": "date"},
        "company": _NULL_TEXT,
        "step": _NULL_TEXT,
    },
}

#: the filters of each listing (store/directory_records.FILTERS), with what each matches
FILTER_TEXT = {
    "parent": "companies whose parent is this company id",
    "ruleset": "companies governed by this rule set",
    "company": "by company id",
    "active": "true or false",
    "email": "by e-mail address (any case)",
    "account": "by account id",
    "group": "by group id",
    "role": "by role name",
    "status": "by membership status",
    "approver": "by approver account id",
    "delegator": "by delegator account id",
    "delegate": "by delegate account id",
}


def _record(kind: str, with_etag: bool) -> dict:
    properties = dict(RECORDS[kind])
    if with_etag:
        properties["etag"] = _ETAG
    return {
        "type": "object",
        "required": list(properties),
        "additionalProperties": False,
        "properties": properties,
    }


def _read(summary: str, schema: dict, parameters: list) -> dict:
    return {
        "summary": summary,
        "parameters": parameters
        + [
            {
                "name": "If-None-Match",
                "in": "header",
                "required": False,
                "description": "The ETag you have: 304 without a body while it is current",
                "schema": {"type": "string", "maxLength": 1000},
            }
        ],
        "responses": {
            "200": {
                "description": summary,
                "headers": ETAG_HEADER,
                "content": {"application/json": {"schema": schema}},
            },
            "304": {"description": "Not modified: the ETag you sent is current"},
            **_error_responses(400, 401, 404, 422),
        },
    }


def _add_reads(paths: dict) -> None:
    """GET for every kind of record: listings with filters and a cursor, one record by key,
    and the buyer summary."""
    for kind, filters in FILTERS.items():
        parameters = [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": FILTER_TEXT[name],
                "schema": {"enum": ["true", "false"]} if name == "active" else TEXT_100,
            }
            for name in filters
        ] + [
            {
                "name": "cursor",
                "in": "query",
                "required": False,
                "description": "next_cursor of the previous page; absent: the first page",
                "schema": {"type": "string", "maxLength": 100},
            },
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "description": "records per page (default 50)",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            },
        ]
        page = {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": _record(kind, True)},
                "next_cursor": {
                    "type": ["string", "null"],
                    "description": "Pass as ?cursor= for the next page; null on the last",
                },
            },
        }
        paths.setdefault(f"/api/v1/directory/{kind}", {})["get"] = _read(
            f"List {kind}, filtered, in creation order, a page at a time", page, parameters
        )

    def key(*names: str) -> list:
        return [{"name": n, "in": "path", "required": True, "schema": DIRECTORY_ID} for n in names]

    for template, kind, names in (
        ("/api/v1/directory/companies/{company}", "companies", ("company",)),
        ("/api/v1/directory/accounts/{account}", "accounts", ("account",)),
        ("/api/v1/directory/companies/{company}/groups/{group}", "groups", ("company", "group")),
        (
            "/api/v1/directory/accounts/{account}/memberships/{company}",
            "memberships",
            ("account", "company"),
        ),
    ):
        paths[template]["get"] = _read(f"One of the {kind}", _record(kind, False), key(*names))
    paths["/api/v1/directory/accounts/{account}/summary"] = {
        "get": _read(
            "A buyer's summary for a shop's 'my account' page: per company its role, group, "
            "approvers (assigned, and per step of the rule set), limits, and budgets spent and "
            "left this period",
            {
                "type": "object",
                "required": ["account", "companies"],
                "properties": {
                    "account": _OBJECT,
                    "companies": {"type": "array", "items": _OBJECT},
                },
            },
            key("account"),
        )
    }
