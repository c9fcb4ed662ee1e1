"""Unit tests of the admin's pure parts.

The schema walker, the YAML round trip, the chain diagram.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import colander
import pytest

from approvalrules.errors import DocumentError, Problem
from approvalrules.views.admin import schema_forms as sf
from approvalrules.views.admin.diagram import chain_svg, selector_text

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "rules").glob("*.yaml"))


@pytest.fixture(scope="module")
def schema():
    return sf.build_schema("ruleset")


def child(node, *names):
    """The descendant by names; folded fields ("More options") are found through their fold."""
    for name in names:
        node = next(c for c in _unfolded(node) if c.name == name)
    return node


def _unfolded(node):
    for c in node.children:
        if getattr(c, "json_kind", None) == "fold":
            yield from c.children
        else:
            yield c


def test_the_schema_maps_to_widgets(schema):
    assert child(schema, "bulk_orders").json_kind == "string"  # enum -> select
    assert (
        child(schema, "roles").json_kind == "map"
    )  # additionalProperties -> sequence of {key, value}
    assert child(schema, "approval", "steps").json_kind == "array"
    step = child(schema, "approval", "steps").children[0]
    assert child(step, "when").json_kind == "condition"  # a builder, with YAML for the rest
    assert child(step, "approvers").json_kind == "approvers"  # a picker, with YAML for the rest
    assert any(c.json_kind == "fold" for c in step.children)  # advanced fields fold away
    assert child(step, "self_approval").json_kind == "tristate"  # no documented default
    assert child(schema, "visibility", "masters_see_group_orders").json_kind == "boolean"
    assert (
        child(schema, "limits", "max_order_total").json_kind == "amount"
    )  # anyOf [amount, null]: money or per currency
    assert (
        child(schema, "roles").children[0].children[1].children[1].json_kind == "set"
    )  # permissions
    assert child(schema, "settings", "restricted_skus").json_kind == "lines"


def test_every_sample_round_trips_unchanged(schema):
    for path in SAMPLES:
        text = path.read_text()
        data = sf.to_plain(sf.load_round_trip(text))
        appstruct = schema.deserialize(schema.serialize(sf.to_form(schema, data)))
        assert sf.save_into_yaml(text, sf.from_form(schema, appstruct, data)) == text, path.name


def test_changed_values_replace_only_their_line():
    text = "# head\nruleset: x   # name\nlimits:\n  max_order_total: 100  # cap\n"
    out = sf.save_into_yaml(text, {"ruleset": "x", "limits": {"max_order_total": 250}})
    assert out == "# head\nruleset: x   # name\nlimits:\n  max_order_total: 250  # cap\n"


def test_money_equal_in_value_is_not_rewritten(schema):
    node = child(schema, "limits", "max_order_total")
    assert sf.from_form(node, "999999.99", "999999.99") == "999999.99"
    assert sf.from_form(node, "500.0", 500) == 500
    assert sf.from_form(node, "", None) is None
    assert sf.from_form(node, "", sf.MISSING) is sf.MISSING


def test_optional_object_requires_its_keys_only_once_filled(schema):
    order_limit = child(schema, "limits", "order_limit")
    empty = order_limit.deserialize({"amount": "", "on_exceed": ""})
    assert (empty["amount"], empty["on_exceed"]) == (colander.null, colander.null)
    with pytest.raises(colander.Invalid):
        order_limit.deserialize({"amount": "", "on_exceed": "block"})


def test_problems_land_on_fields(schema):
    invalid, unplaced = sf.field_errors(
        schema,
        [
            Problem("x", "too small", "approval.steps[1].required", 3),
            Problem("y", "somewhere", "nowhere.at.all", 1),
        ],
    )
    assert invalid.asdict()["approval.steps.1.required"].endswith("too small")
    assert [p.code for p in unplaced] == ["y"]


def test_the_chain_is_well_formed_svg():
    data = {
        "approval": {
            "steps": [
                {
                    "name": "a<b",
                    "when": {"total": {"gt": 100}},
                    "approvers": {"any_of": [{"role": ["m", "n"]}]},
                    "required": 2,
                }
            ]
        }
    }
    svg = chain_svg(data)
    root = ElementTree.fromstring(svg)
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "1. a<b" in texts and "total > 100" in texts and "2 approvals from: m or n" in texts
    assert ElementTree.fromstring(chain_svg(None)) is not None
    assert (
        selector_text({"relation": "assigned", "attributes": {"approve": "all"}})
        == "the buyer's assigned approver, with approve all"
    )


def test_the_round_trip_loader_reads_through_the_safe_loader_first():
    """Issue 15: ruamel expands aliases; a billion-laughs text never reaches it."""
    bomb = 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
        f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]\n" for n in range(1, 9)
    )
    with pytest.raises(DocumentError) as refused:
        sf.load_round_trip(bomb)
    assert refused.value.code == "too_many_nodes"
