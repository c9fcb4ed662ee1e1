"""Directory request bodies are checked by the directory schema's ``$defs/*_body`` definitions."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from approvalrules.engine import schema
from approvalrules.errors import OrderError
from approvalrules.views.api import directory_body

BODIES = (
    "company_body",
    "account_body",
    "group_body",
    "membership_body",
    "assignment_body",
    "delegation_body",
)


def request_with(body: dict):
    return SimpleNamespace(body=json.dumps(body).encode())


def problem(definition: str, body: dict) -> tuple[str, str, str]:
    with pytest.raises(OrderError) as info:
        directory_body(request_with(body), definition)
    return info.value.code, info.value.message, info.value.path


@pytest.mark.parametrize("definition", BODIES)
def test_every_body_is_defined_in_the_directory_schema(definition):
    assert schema("directory")["$defs"][definition]["additionalProperties"] is False


def test_a_valid_body_comes_back_as_sent():
    body = {"name": "Acme", "parent": None, "attributes": {"erp": "A-1"}}
    assert directory_body(request_with(body), "company_body") == body


def test_an_unknown_field_names_the_allowed_ones():
    assert problem("account_body", {"name": "Ann", "colour": "red"}) == (
        "unknown_key",
        "unknown field 'colour'; allowed: active, email, email_enabled, name",
        "colour",
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"active": "yes"}, "active must be boolean"),
        ({"email": 7}, "email must be string or null"),
        ({"name": True}, "name must be string"),
    ],
)
def test_a_field_of_the_wrong_type(body, message):
    key = next(iter(body))
    assert problem("account_body", body) == ("wrong_type", message, key)


def test_a_boolean_is_not_an_amount():
    body = {"approver": "tom", "account": "bob", "company": "acme", "limit": True}
    assert problem("assignment_body", body)[::2] == ("wrong_type", "limit")


def test_problems_come_in_the_order_of_the_body_then_missing_fields():
    assert problem("delegation_body", {"step": 1, "colour": "red"})[::2] == ("wrong_type", "step")
    assert problem("delegation_body", {"colour": "red", "step": 1})[::2] == (
        "unknown_key",
        "colour",
    )
    assert problem("delegation_body", {"delegator": "tom"}) == (
        "missing_key",
        "delegate is required",
        "delegate",
    )
