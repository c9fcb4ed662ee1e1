"""Bounded work in the engine (issue 15, defects 1 and 3).

* ``guard_problems``: the loader's guards (size, depth, aliases, encoding) refuse a
  text whatever it is for; other loading problems are returned, for a draft to keep;
* problem lists stop at ``MAX_PROBLEMS`` and end with "... and N more" (a 400 KB
  ``steps: [1, 1, ...]`` listed 199,991 problems in a 28 MB body after 8 s of CPU);
* the hints of a problem list at most ``HINT_NAMES`` names.

Times are measured by ``bench/hostile.py``, not here.
"""

from __future__ import annotations

import pytest

from approvalrules.engine import check_ruleset, guard_problems, load_document
from approvalrules.engine.check import HINT_NAMES
from approvalrules.engine.load import MAX_BYTES, MAX_NODES
from approvalrules.engine.schema import MAX_COUNTED, MAX_PROBLEMS, MAX_SCHEMA_WORK
from approvalrules.errors import DocumentError, DocumentTooLarge

BOMB = (
    "ruleset: bomb\n"
    'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    + "".join(f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]\n" for n in range(1, 9))
)


def problems_of(text: str) -> list:
    with pytest.raises(DocumentError) as refused:
        check_ruleset(text, "hostile")
    return refused.value.problems


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (BOMB, "too_many_nodes"),
        ("ruleset: x\nd: " + "[" * 40 + "]" * 40 + "\n", "too_deep"),
        ("ruleset: x\ndescription: " + "x" * MAX_BYTES + "\n", "document_too_large"),
        ("ruleset: x\na: &x [*x]\n", "recursive_alias"),
        ("ruleset: x\ndescription: \ud800\n", "invalid_character"),
    ],
)
def test_the_guards_refuse_a_text_whatever_it_is_for(text, code):
    with pytest.raises(DocumentError) as refused:
        guard_problems(text, "draft")
    assert refused.value.problems[0].code == code
    if code == "document_too_large":
        assert isinstance(refused.value, DocumentTooLarge)


def test_other_loading_problems_are_returned_for_a_draft_to_keep():
    assert guard_problems("ruleset: x\nroles: [unclosed\n")[0].code == "yaml_syntax"
    assert guard_problems("ruleset: x\nroles: 3\n") == []  # a schema problem: not the loader's


def test_too_many_values_is_found_in_one_pass_with_its_path():
    text = "ruleset: x\napproval:\n  steps: [" + ",".join(["1"] * (MAX_NODES + 10)) + "]\n"
    with pytest.raises(DocumentError) as refused:
        load_document(text, "big.yaml")
    problem = refused.value.problems[0]
    assert (problem.code, problem.line, problem.source) == ("too_many_nodes", 3, "big.yaml")
    # counted before the failing item: 3 maps and lists, 3 keys, 1 value
    assert problem.path == f"approval.steps[{MAX_NODES - 7}]"


def test_a_huge_problem_list_stops_at_the_cap_and_says_how_many_more():
    text = "ruleset: hostile\napproval:\n  steps: [" + ",".join(["1"] * 199_990) + "]\n"
    problems = problems_of(text)
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1].code == "too_many_problems"
    assert f"more than {MAX_COUNTED:,} more problems" in problems[-1].message


def test_a_counted_remainder_is_exact():
    text = "ruleset: hostile\napproval:\n  steps: [" + ",".join(["1"] * 150) + "]\n"
    problems = problems_of(text)
    assert problems[-1].code == "too_many_problems"
    assert problems[-1].message.startswith("... and 50 more problems")
    assert len(problems) == MAX_PROBLEMS + 1


def test_semantic_problems_are_capped_and_hints_are_short():
    roles = "".join(f"  r{n}: {{label: R{n}, permissions: [approve_orders]}}\n" for n in range(90))
    steps = "".join(
        f"    - {{name: s{n}, approvers: {{any_of: [{{role: missing{n}}}]}}}}\n" for n in range(300)
    )
    problems = problems_of(f"ruleset: hostile\nroles:\n{roles}approval:\n  steps:\n{steps}")
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[0].code == "undefined_role"
    assert "... (90 in all)" in problems[0].message
    assert problems[0].message.count(", ") <= HINT_NAMES
    assert problems[-1].message.startswith("... and 200 more problems")


def test_unique_items_still_finds_duplicates():
    text = "ruleset: x\nroles:\n  a: {label: A, permissions: [approve_orders, approve_orders]}\n"
    assert any("non-unique" in p.message for p in problems_of(text))


def test_the_schema_check_stops_after_its_work_budget_with_a_real_problem():
    """5,001 valid steps break maxItems only: jsonschema would walk every step to say so;
    it stops after MAX_SCHEMA_WORK checks, and the fast validator's first error stands in."""
    steps = "".join(
        f"    - {{name: s{n}, approvers: {{any_of: [{{role: r}}]}}}}\n" for n in range(5_001)
    )
    problems = problems_of(f"ruleset: x\nroles:\n  r: {{label: R}}\napproval:\n  steps:\n{steps}")
    assert [p.code for p in problems] == ["invalid_value", "check_stopped"]
    assert problems[0].path == "approval.steps"
    assert problems[0].message == "5,001 items; at most 5,000 are allowed"
    assert f"stopped after {MAX_SCHEMA_WORK:,} checks" in problems[1].message


def test_a_problem_past_the_work_budget_is_still_found_by_the_fast_validator():
    steps = "".join(
        f"    - {{name: s{n}, approvers: {{any_of: [{{role: r}}]}}}}\n" for n in range(3_000)
    )
    steps += "    - {name: last, approvers: {any_of: [{role: r}]}, required: 0}\n"
    problems = problems_of(f"ruleset: x\nroles:\n  r: {{label: R}}\napproval:\n  steps:\n{steps}")
    assert [p.code for p in problems] == ["invalid_value", "check_stopped"]
    assert problems[0].path == "approval.steps[3000].required"
    assert problems[0].line == 3_006 and "approval.steps[3000].required" in problems[0].message


def test_the_work_budget_binds_only_the_rule_set_check():
    """The API validates directory bodies with the same validators: no budget there."""
    from approvalrules.engine.schema import validator

    problems_of("ruleset: hostile\napproval:\n  steps: [" + ",".join(["1"] * 50_000) + "]\n")
    many = [{"label": "x"}] * (2 * MAX_SCHEMA_WORK)
    role = {"$ref": "ruleset.schema.json#/$defs/role"}
    errors = list(
        validator("ruleset").evolve(schema={"type": "array", "items": role}).iter_errors(many)
    )
    assert errors == []
