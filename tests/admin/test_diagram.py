"""The chain diagram tells how the engine decides: forks for steps that exclude each other,
all_of groups side by side, tiers, checks before the chain, merchant review, timeouts."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import pytest

from approvalrules.engine import check_ruleset, folder_resolver
from approvalrules.views.admin.diagram import chain_svg, selector_text, stages

RULES = Path(__file__).resolve().parents[2] / "rules"
NS = "{http://www.w3.org/2000/svg}"


def resolved(name: str) -> dict:
    path = RULES / f"{name}.yaml"
    return check_ruleset(path.read_text("utf-8"), str(path), folder_resolver(RULES)).resolved


def svg_of(data) -> ElementTree.Element:
    return ElementTree.fromstring(chain_svg(data))


def groups(root, css: str) -> list[ElementTree.Element]:
    """Every <g> whose class list holds ``css``."""
    return [g for g in root.iter(f"{NS}g") if css in (g.get("class") or "").split()]


def words(element) -> str:
    """The texts of an element, wrapped lines joined again."""
    return " ".join(" ".join(t.text or "" for t in element.iter(f"{NS}text")).split())


def test_acmes_marketing_and_ops_are_branches_of_one_fork_not_a_sequence():
    root = svg_of(resolved("acme"))
    (fork,) = groups(root, "branches")
    assert fork.get("data-steps") == "marketing ops"
    branches = [g for g in groups(fork, "branch") if "none" not in g.get("class")]
    assert [b.get("data-step") for b in branches] == ["marketing", "ops"]
    assert "when buyer group is marketing and total > 500" in words(branches[0])
    assert "when buyer group is ops" in words(branches[1])
    assert "2 approvals from: a master of the company; or Approver" in words(branches[1])
    (none,) = groups(fork, "none")
    assert "no step" in words(none)
    # no step is drawn outside the fork, so nothing reads "1 -> 2 -> approved"
    assert len(groups(root, "step")) == 2
    assert "undecided 7 days after submission" in words(root)


def test_initechs_role_steps_exclude_each_other_and_fork():
    (fork,) = groups(svg_of(resolved("initech")), "branches")
    assert fork.get("data-steps") == "user-approval manager-approval"


def test_steps_that_may_both_apply_stay_in_sequence_with_a_way_past_each():
    root = svg_of(resolved("worldwide"))
    assert not groups(root, "branches")
    assert [g.get("data-step") for g in groups(root, "skip")] == ["approver", "director"]
    assert "applies when total >= 5000 USD / 4500.00 EUR; otherwise skipped" in words(root)


def test_an_all_of_step_shows_its_groups_side_by_side_with_their_approvers():
    root = svg_of(resolved("beyond"))
    (step,) = [g for g in groups(root, "step") if g.get("data-step") == "dual-control"]
    assert "all-of" in step.get("class")
    boxes = groups(step, "group")
    assert [b.get("data-group") for b in boxes] == ["1", "2"]
    assert "Finance" in words(boxes[0]) and "Company Admin" in words(boxes[1])
    ys = {b.find(f"{NS}rect").get("y") for b in boxes}
    assert len(ys) == 1, "parallel: the groups stand on one row"
    assert "inherited" not in words(root) and "required: 1" not in words(root)


def test_deny_and_bypass_rules_come_before_the_chain_with_their_exits():
    root = svg_of(resolved("beyond"))
    gates = groups(root, "gate")
    kinds = [g.get("class").split()[1] for g in gates]
    assert kinds == ["limit", "deny", "bypass", "bypass"]
    assert "total above 100,000.00 USD" in words(gates[0])
    assert "weapons may not be ordered through this store" in words(gates[1])
    assert "for a buyer who is Trusted Buyer" in words(gates[2])
    exits = [g.get("class") for g in groups(root, "exit")]
    assert exits == ["exit blocked", "exit blocked", "exit approved", "exit approved"]
    # every check is drawn above the first step
    first_step = groups(root, "step")[0].find(f"{NS}rect")
    assert all(float(g.find(f"{NS}rect").get("y")) < float(first_step.get("y")) for g in gates)


def test_assignment_tiers_show_their_levels():
    root = svg_of(resolved("max"))
    (step,) = groups(root, "tiers")
    assert step.get("data-step") == "authorizers"
    assert [b.get("data-level") for b in groups(step, "group")] == ["1", "2", "more"]
    assert "approvers are reminded after 1 day, then every day" in words(root)


def test_merchant_review_escalation_and_timeouts_are_drawn():
    data = {
        "roles": {"boss": {"label": "Boss"}},
        "approval": {
            "merchant_review": True,
            "steps": [
                {
                    "name": "manager",
                    "approvers": {"any_of": [{"role": "boss"}]},
                    "escalate_after": "P2D",
                    "escalate_to": {"role": "cfo", "mode": "replace"},
                },
                {
                    "name": "auto",
                    "approvers": {"any_of": [{"accounts": ["x"]}]},
                    "escalate_after": "PT12H",
                    "on_timeout": "approve",
                },
                {
                    "name": "late",
                    "approvers": {"any_of": [{"role": "boss"}]},
                    "escalate_after": "P1DT6H",
                },
            ],
        },
    }
    root = svg_of(data)
    steps = groups(root, "step")
    assert [s.get("data-step") for s in steps[:3]] == ["manager", "auto", "late"]
    assert (
        "after 2 days without a decision: escalated to role cfo (they replace the approvers)"
        in words(steps[0])
    )
    assert "after 12 hours without a decision: approved by the system" in words(steps[1])
    assert "after 1 day 6 hours without a decision: cancelled as expired" in words(steps[2])
    (review,) = groups(root, "merchant-review")
    assert "approves and releases, or rejects" in words(review)
    assert float(review.find(f"{NS}rect").get("y")) > float(steps[2].find(f"{NS}rect").get("y"))
    assert "no expiry: a request waits until it is decided" in words(root)


@pytest.mark.parametrize("path", sorted(RULES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_rule_set_in_rules_draws_every_step_once_in_words(path):
    data = resolved(path.stem)
    root = svg_of(data)
    steps = (data.get("approval") or {}).get("steps") or []
    drawn = [g.get("data-step") for g in groups(root, "step")]
    assert drawn == [s["name"] for s in steps]
    text = words(root)
    for repr_mark in ("{", "[", "':", "None", "True", "False"):  # words, never Python reprs
        assert repr_mark not in text, repr_mark
    assert "approved" in text


def test_stages_fork_only_over_runs_of_mutually_exclusive_steps():
    steps = [
        {"name": "a", "when": {"buyer_group": "x"}},
        {"name": "b", "when": {"buyer_group": "y"}},
        {"name": "c", "when": {"total": {"gt": 10}}},
        {"name": "d", "when": {"total": {"lte": 10}}},
        {"name": "e"},
    ]
    assert [[s["name"] for s in stage] for stage in stages(steps)] == [
        ["a", "b"],
        ["c", "d"],
        ["e"],
    ]


def test_selectors_read_as_words_with_the_rule_sets_labels():
    from approvalrules.views.admin.diagram import Labels

    labels = Labels({"roles": {"manager": {"label": "Company Manager"}}})
    assert (
        selector_text({"role": "manager", "relation": "unassigned"}, labels)
        == "Company Manager, when the buyer has no assigned approver"
    )
    assert (
        selector_text({"relation": "assigned", "attributes": {"approve": ["assigned", "all"]}})
        == "the buyer's assigned approver, with approve assigned or all"
    )
    assert selector_text({"accounts": ["cfo"]}) == "account cfo"
