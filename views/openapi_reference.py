"""The parts of the OpenAPI document a reader meets first: its description (the three main
flows, versioning, webhooks in short) and the reference page that renders it."""

from __future__ import annotations

#: ``info.description``: Markdown, shown at the top of /api/v1/docs
DESCRIPTION = """\
The storefront's API: evaluate carts, submit orders and follow them, act on approvals, keep the
company directory in sync, manage rule sets. Send the tenant's API key as
`Authorization: Bearer <key>`. Errors are `{"error": {"code", "message", "details",
"request_id"}}`. Every answer carries `X-Request-Id` (yours when you send one of at most 128
characters of `A-Za-z0-9._:-`, else a new one): quote it when reporting a problem.

**Three main flows** (runnable curl and Python examples: `docs/api.md`):

1. *Evaluate at checkout*: `POST /api/v1/evaluate` with the cart; the decision says
   `approved`, `pending` (who must approve), `blocked` (why) or `held`. Nothing is written.
2. *Submit and follow an order*: `POST /api/v1/orders` (idempotent on the order id; send an
   `Idempotency-Key` too), then `GET /api/v1/orders/{id}`, or wait for the webhooks
   (`order_approved`, `order_rejected`, ...). Report fulfilment with
   `POST /api/v1/orders/{id}/released`.
3. *Approve from an inbox*: `GET /api/v1/approvals?approver=ID&status=pending`, then
   `POST /api/v1/approvals/{id}/approve` with `{"approver": "ID"}` and `If-Match` set to the
   request's `ETag`.

**Concurrency**: reads of rule sets (their draft) and directory records carry an `ETag`;
send it back as `If-Match` on the write: 412 `precondition_failed` says someone changed it
meanwhile (read again, then retry). Approval actions take the request's `ETag` the same way
and answer 409 `stale_version`.

**Webhooks** (see `webhooks` below): delivered at least once, signed with
`X-Approvalrules-Signature: sha256=<HMAC-SHA256 of the raw body>`; de-duplicate by the event's
`id`.

**Versioning**: within `/api/v1` changes only add (new paths, new optional fields and
parameters, new event types and fields, new error codes); nothing is removed or renamed and
no field changes meaning. Ignore fields you do not know. See `CHANGELOG.md`.
"""


def reference_paths() -> dict:
    """The reference page itself, /api/v1/docs."""
    return {
        "/api/v1/docs": {
            "get": {
                "summary": "This reference, as an HTML page (Swagger UI, served by the app: "
                "works offline); needs no API key",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The page",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        }
    }
