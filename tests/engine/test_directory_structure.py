"""Directory files: structure problems the schema cannot see are refused, all at once, each at
its line, saying how to fix it."""

from __future__ import annotations

import pytest

from approvalrules.engine import load_directory
from approvalrules.engine.directory import records_from_dict
from approvalrules.errors import DirectoryError, DocumentError

GOOD = """\
companies:
  acme: {name: Acme}
  acme-east: {name: Acme East, parent: acme}
accounts:
  sam:
    memberships:
      - {company: acme, role: user, default: true}
      - {company: acme-east, role: user}
"""


def _problems(text: str) -> list:
    with pytest.raises(DocumentError) as info:
        load_directory(text, "dir.yaml")
    return info.value.problems


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_well_formed_directory_loads():
    directory = load_directory(GOOD, "dir.yaml")
    assert [c.id for c in directory.company_chain("acme-east")] == ["acme-east", "acme"]


def test_a_company_that_is_its_own_parent_is_refused_at_its_line():
    text = GOOD.replace("acme: {name: Acme}", "acme: {name: Acme, parent: acme}")
    [problem] = _problems(text)
    assert (problem.code, problem.path, problem.line) == (
        "company_cycle",
        "companies.acme.parent",
        2,
    )
    assert "names itself as its parent" in problem.message
    assert problem.format().startswith("dir.yaml:2: companies.acme.parent: ")


def test_a_loop_of_parents_is_refused_once_naming_the_loop():
    text = """\
companies:
  a: {parent: c}
  b: {parent: a}
  c: {parent: b}
  d: {parent: a}
"""
    [problem] = _problems(text)
    assert (problem.code, problem.line) == ("company_cycle", 2)
    assert "a -> c -> b -> a" in problem.message


def test_two_default_memberships_of_one_account_are_refused_at_the_second():
    text = GOOD.replace(
        "{company: acme-east, role: user}", "{company: acme-east, role: user, default: true}"
    )
    [problem] = _problems(text)
    assert problem.code == "several_defaults"
    assert problem.path == "accounts.sam.memberships[1].default"
    assert problem.line == _line_of(text, "acme-east, role: user")
    assert "keep `default: true` on one membership only" in problem.message


DELEGATIONS = """\
companies:
  acme: {name: Acme}
accounts:
  sam: {memberships: [{company: acme, role: user}]}
  lou: {memberships: [{company: acme, role: user}]}
delegations:
  - delegator: sam
    delegate: lou
    valid_from: 2026-02-30
    valid_until: 2026-03-01
  - delegator: lou
    delegate: sam
    valid_from: 2026-03-10
    valid_until: 2026-03-01
"""


def test_bad_delegation_dates_are_refused_each_at_its_line():
    problems = _problems(DELEGATIONS)
    assert [(p.code, p.path, p.line) for p in problems] == [
        ("invalid_date", "delegations[0].valid_from", 9),
        ("invalid_delegation", "delegations[1].valid_until", 14),
    ]
    assert "'2026-02-30' is not a date: write a calendar date like 2026-12-24" in (
        problems[0].message
    )
    assert "swap the dates" in problems[1].message


def test_every_structure_problem_is_reported_at_once():
    text = DELEGATIONS.replace("acme: {name: Acme}", "acme: {name: Acme, parent: acme}")
    assert [p.code for p in _problems(text)] == [
        "company_cycle",
        "invalid_date",
        "invalid_delegation",
    ]


def test_the_importers_conversion_refuses_the_same_structures():
    with pytest.raises(DirectoryError) as info:
        records_from_dict({"companies": {"a": {"parent": "a"}}})
    assert info.value.code == "company_cycle"
    assert info.value.path == "companies.a.parent"


def test_a_reference_problem_found_while_loading_keeps_its_line():
    text = GOOD.replace("{company: acme-east, role: user}", "{company: nowhere, role: user}")
    [problem] = _problems(text)
    assert problem.code == "unknown_company"
    assert problem.path == "accounts.sam.memberships[1]"
    assert problem.line == _line_of(text, "nowhere")
