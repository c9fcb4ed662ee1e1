"""The OpenAPI ``webhooks`` section: one entry per event type, built from
schemas/webhook.schema.json (what the outbox sends, ``workflow.outbox.webhook_body``)."""

from __future__ import annotations

import copy

from approvalrules.engine import schema

#: the signature and id headers of every delivery (workflow/outbox.py)
DELIVERY_HEADERS = {
    "X-Approvalrules-Event": "The event type.",
    "X-Approvalrules-Event-Id": "The event's id, the same on every retry: de-duplicate by it.",
    "X-Approvalrules-Signature": "sha256=<hex HMAC-SHA256 of the raw body, keyed with the "
    "tenant's webhook secret>; compare in constant time before trusting the body.",
}


def _component(name: str) -> str:
    return "Webhook" + "".join(part.capitalize() for part in name.split("_"))


def _to_components(node):
    """Point ``#/$defs/x`` references at the components built from them."""
    if isinstance(node, dict):
        return {
            key: (
                "#/components/schemas/" + _component(value.rsplit("/", 1)[-1])
                if key == "$ref" and value.startswith("#/$defs/")
                else _to_components(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_to_components(value) for value in node]
    return node


def webhook_components() -> dict:
    """``components.schemas`` entries: the order summary and each event's ``data``, plus one
    envelope per event type."""
    source = schema("webhook")
    components = {
        _component(name): _to_components(copy.deepcopy(definition))
        for name, definition in source["$defs"].items()
    }
    for event in source["properties"]["type"]["enum"]:
        envelope = copy.deepcopy(source["properties"])
        envelope["type"] = {"const": event}
        envelope["data"] = {"$ref": f"#/components/schemas/{_component(event)}"}
        components[_component(event) + "Delivery"] = {
            "type": "object",
            "additionalProperties": False,
            "required": source["required"],
            "description": source["description"],
            "properties": envelope,
        }
    return components


def webhooks() -> dict:
    """The ``webhooks`` section: what the tenant's webhook URL receives, per event type."""
    source = schema("webhook")
    parameters = [
        {
            "name": name,
            "in": "header",
            "required": True,
            "description": text,
            "schema": {"type": "string"},
        }
        for name, text in DELIVERY_HEADERS.items()
    ]
    return {
        event: {
            "post": {
                "summary": source["$defs"][event]["description"],
                "description": "Delivered at least once, with exponential backoff on failure "
                "(up to 10 attempts): answer 2xx once stored; de-duplicate by id.",
                "parameters": parameters,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{_component(event)}Delivery"}
                        }
                    },
                },
                "responses": {
                    "2XX": {"description": "Received; any other answer is retried later"}
                },
            }
        }
        for event in source["properties"]["type"]["enum"]
    }
