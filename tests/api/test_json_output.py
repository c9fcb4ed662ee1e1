"""JSON as the service writes it (views/json_output.py): compact, UTF-8, the same reading as
before, from evaluate's own response and from the ``json`` renderer alike."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from pyramid import testing
from pyramid.renderers import render

from approvalrules.views.json_output import json_bytes


class Priced:
    def __init__(self, amount: Decimal):
        self.amount = amount

    def __json__(self, request):
        return {"amount": str(self.amount)}


def test_json_is_compact_utf8_and_reads_as_the_standard_library_wrote_it():
    data = {"id": "PO-Ä", "lines": [{"sku": "ß", "quantity": 2}], "none": None, "ok": True}
    written = json_bytes(data)
    expected = '{"id":"PO-Ä","lines":[{"sku":"ß","quantity":2}],"none":null,"ok":true}'
    assert written == expected.encode()
    assert json.loads(written) == json.loads(json.dumps(data))


def test_the_renderer_writes_objects_by_their_json_method_and_integer_keys_as_text():
    with testing.testConfig() as config:
        config.include("approvalrules.views.json_output")
        written = render("json", {"price": Priced(Decimal("1.50")), 7: "seven"})
    assert json.loads(written) == {"price": {"amount": "1.50"}, "7": "seven"}


def test_an_integer_over_64_bits_is_written_as_the_standard_library_writes_it():
    data = {"n": 2**64, "m": -(2**70), "text": "ä"}
    assert json_bytes(data) == json.dumps(data, separators=(",", ":")).encode()
    with testing.testConfig() as config:
        config.include("approvalrules.views.json_output")
        assert json.loads(render("json", data)) == data


def test_what_json_cannot_write_still_fails():
    with pytest.raises(TypeError):
        json_bytes({"n": 2**64, "when": object()})


def test_a_directory_record_holding_a_big_integer_reads_back(api):
    attributes = {"erp_id": 123456789012345678901234567890, "note": "ü"}
    path = f"/api/v1/directory/companies/big-int-{uuid.uuid4().hex[:8]}"
    api.put_json(path, {"name": "Big", "attributes": attributes})
    assert api.get(path).json["attributes"] == attributes


def test_evaluate_and_rendered_views_answer_compact_utf8_json(api, order_id):
    oid = order_id("jsön")
    evaluated = api.post_json("/api/v1/evaluate", {"id": oid, "buyer": "bob", "total": 200})
    listed = api.get("/api/v1/rulesets")
    for response in (evaluated, listed):
        assert response.content_type == "application/json"
        assert b'": ' not in response.body and b'", "' not in response.body
    assert oid.encode() in evaluated.body  # as UTF-8, not as \u escapes
    assert evaluated.json["order"]["id"] == oid
    assert evaluated.json["outcome"] == "approved"
