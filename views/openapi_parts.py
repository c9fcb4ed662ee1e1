"""The building blocks of the OpenAPI document: parameter limits and error responses.

views/inputs.py checks each request against the same limits, before any database work.
"""

from __future__ import annotations

ERROR = {"$ref": "#/components/schemas/Error"}

# The limits of every path, query and header parameter, declared once: views/inputs.py checks
# each request against them before any database work.
#: database ids (32-bit)
MAX_ID = 2**31 - 1
WHOLE = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
#: the directory's ids (schemas/directory.schema.json#/$defs/id)
DIRECTORY_ID = {"type": "string", "maxLength": 100, "pattern": "^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$"}
#: an id or filter given as free text
TEXT_100 = {"type": "string", "maxLength": 100}
#: rule-set names (schemas/ruleset.schema.json#/$defs/identifier)
RULESET_NAME = {"type": "string", "maxLength": 64, "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"}
#: printable ASCII, as HTTP header values travel
HEADER_TOKEN = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[!-~]+$"}


#: the optional If-Match header of a write that honours it (store/etags.py)
IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": "The ETag you read; the write is refused with 412 if it changed since",
    "schema": {"type": "string", "minLength": 1, "maxLength": 1000},
}
#: the ETag header of a read or a write's answer
ETAG_HEADER = {"ETag": {"description": "The resource's entity tag", "schema": {"type": "string"}}}


def error_responses(*statuses: int) -> dict:
    """The documented error responses for these statuses, in our error format."""
    text = {
        400: "Malformed request, or a parameter outside its documented limits (invalid_parameter)",
        401: "Missing, wrong or revoked API key",
        403: "Not allowed: the API key's scope does not cover this operation "
        "(insufficient_scope), or the acting account may not do this",
        404: "Not found (or another tenant's)",
        409: "Conflicts with the current state",
        412: "If-Match names an ETag the resource no longer has (precondition_failed): it "
        "changed since you read it; read it again and retry",
        405: "Method not allowed on this path; the Allow header lists the allowed ones",
        413: "Too large",
        422: "Invalid order or document, or a rule set whose own tests fail (tests_failed)",
        429: "Over the API key's requests a minute, or its tenant's (rate_limited); the "
        "message names the limit, Retry-After the seconds to the next minute's window",
        503: "Database unavailable",
    }
    responses = {
        str(s): {"description": text[s], "content": {"application/json": {"schema": ERROR}}}
        for s in statuses
    }
    if "429" in responses:
        responses["429"]["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
    return responses


#: which scopes may call an operation needing each grant (store/services.py GRANT_SCOPES)
SCOPES_TEXT = (
    "Every API key has a scope. `storefront`: evaluate, orders and approvals. `merchant`: "
    "everything a storefront key may do, and held orders, rule-set changes (draft, publish, "
    "roll back) and directory changes. `read_only`: rule sets, their versions and the "
    "directory, read only (QA's remote diff). Each operation's `security` lists the scopes "
    "that may call it; a key of another scope gets 403 `insufficient_scope`. Keys of before "
    "scopes existed are merchant keys."
)


def grant_for(path: str, method: str) -> str:
    """The grant an operation needs (the ``api_grant`` of its view; a test keeps them equal)."""
    if path.startswith("/api/v1/directory/accounts/") and path.endswith("/summary"):
        return "any"  # a shop shows it on the buyer's own page
    if path.startswith(("/api/v1/rulesets", "/api/v1/directory")):
        return "read" if method == "get" else "merchant"
    if path.startswith("/api/v1/held-orders"):
        return "merchant"
    if path == "/api/v1/key":
        return "any"
    return "storefront"


def security_for(grant: str, scopes_of: dict) -> list[dict]:
    """OpenAPI 3.1 security requirements: one per scope that may call (any one will do)."""
    if grant == "any":
        return [{"apiKey": []}]
    return [{"apiKey": [scope]} for scope in scopes_of[grant]]


#: where a step of an approval request stands (views/api.py step_state)
STEP_STATES = ("done", "current", "waiting", "rejected", "expired", "withdrawn", "not_reached")
