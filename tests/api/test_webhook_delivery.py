"""A real webhook delivery, received by the suite's HTTP receiver: its signature verifies with
docs/api.md's own code, its body matches the OpenAPI document's ``webhooks`` entry, and a
retry after a failed attempt sends the same id and the same bytes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from approvalrules.workflow import outbox

from .conftest import WEBHOOK_SECRET

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def docs_verifier():
    """``verified_event`` as docs/api.md's Webhooks section defines it."""
    section = DOC.read_text().split("\n## Webhooks", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"^```python\n(.*?)^```$", section, re.S | re.M)
    namespace: dict = {}
    exec(compile(code, "docs/api.md: Webhooks", "exec"), namespace)  # noqa: S102
    return namespace["verified_event"]


def test_a_retried_delivery_verifies_and_matches_the_documented_schema(api, order_id, world):
    oid = order_id("hooksig")
    world.webhooks.fail = True
    try:
        api.post_json("/api/v1/orders", {"id": oid, "buyer": "bob", "total": 100})
        world.run(lambda session: outbox.dispatch(session, world.settings))
    finally:
        world.webhooks.fail = False
    first = [(h, b) for h, b in world.webhooks.refused if oid in b.decode()]
    assert first, "the receiver was down: the first attempt was refused"
    later = datetime.now(UTC) + timedelta(hours=2)
    world.run(lambda session: outbox.dispatch(session, world.settings, now=later))
    delivered = [(h, b) for h, b in world.webhooks.received if oid in b.decode()]
    # at least once, same id, same bytes: what a receiver de-duplicates on
    assert sorted(b for _, b in delivered) == sorted(b for _, b in first)

    verified_event = docs_verifier()
    document = api.get("/api/v1/openapi.json").json
    for headers, body in delivered:
        event = verified_event(WEBHOOK_SECRET, body, headers)
        assert event["id"] == headers["X-Approvalrules-Event-Id"]
        operation = document["webhooks"][event["type"]]["post"]
        reference = operation["requestBody"]["content"]["application/json"]["schema"]
        jsonschema.validate(event, {**reference, "components": document["components"]})
    assert {json.loads(b)["type"] for _, b in delivered} >= {"order_approved"}

    headers, body = delivered[0]
    with pytest.raises(ValueError, match="signature mismatch"):
        verified_event(WEBHOOK_SECRET, body.replace(b'"100', b'"900'), headers)
    with pytest.raises(ValueError, match="signature mismatch"):
        verified_event("another tenant's secret", body, headers)
