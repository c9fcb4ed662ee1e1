"""Schema and semantic validation of rule sets, `extends`, and the CLI on good and bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from approvalrules import cli
from approvalrules.engine import folder_resolver, schema

from .conftest import (
    BASE_DIRECTORY,
    BASE_ROLES,
    checked,
    only_problem,
    problems_of,
    ruleset,
    to_yaml,
)

STEP_OK = "      approvers: {any_of: [{relation: company}]}\n"


def steps_yaml(*steps: str) -> str:
    return "ruleset: x\napproval:\n  steps:\n" + "".join(steps)


# ------------------------------------------------------------- wrong types


@pytest.mark.parametrize(
    "text, line, path, expected",
    [
        ("ruleset: x\nroles: [a, b]\n", 2, "roles", "expected object"),
        ("ruleset: x\napproval:\n  steps: {name: a}\n", 3, "approval.steps", "expected array"),
        (
            "ruleset: x\napproval:\n  steps:\n    - name: a\n      required: two\n" + STEP_OK,
            5,
            "approval.steps[0].required",
            "expected integer",
        ),
        ("ruleset: x\nsettings:\n  may_order: 1\n", 3, "settings.may_order", "expected boolean"),
        ("ruleset: 42\n", 1, "ruleset", "expected"),
    ],
)
def test_wrong_types(text, line, path, expected):
    p = only_problem(text)
    assert (p.code, p.line, p.path) == ("wrong_type", line, path)
    assert expected in p.message
    assert p.format() == f"t.yaml:{line}: {path}: {p.message}"


def test_not_a_mapping():
    for text in ("just text\n", "- a\n- b\n", ""):
        p = only_problem(text)
        assert p.code == "not_a_mapping"
        assert p.format().startswith("t.yaml:1: (root): a rule set is a YAML mapping")


def test_missing_ruleset_name():
    p = only_problem("currency: USD\n")
    assert p.code == "missing_key"
    assert "'ruleset'" in p.message


def test_every_problem_is_reported_at_once():
    text = "ruleset: x\ncurrency: USS\nsettings:\n  may_order: no\nlimts: {}\n"
    problems = problems_of(text)
    assert {(p.code, p.line, p.path) for p in problems} == {
        ("invalid_value", 2, "currency"),
        ("wrong_type", 4, "settings.may_order"),
        ("unknown_key", 5, "limts"),
    }


# ----------------------------------------------------------- unknown keys


def test_unknown_top_level_key_names_the_allowed_keys():
    p = only_problem("ruleset: x\nlimts: {}\n")
    assert (p.code, p.line, p.path) == ("unknown_key", 2, "limts")
    assert p.format() == (
        "t.yaml:2: limts: unknown key 'limts'; allowed here: approval, bulk_orders, bypass, "
        "conversion, currencies, currency, deny, description, "
        "extends, groups, limits, notifications, pending_on_new_version, roles, ruleset, "
        "settings, tests, time_zone, visibility"
    )


def test_unknown_nested_key_names_the_key_and_allowed_keys():
    p = only_problem("ruleset: x\napproval:\n  self_aproval: true\n")
    assert (p.code, p.line, p.path) == ("unknown_key", 3, "approval.self_aproval")
    assert "'self_aproval'" in p.message
    assert (
        "allowed here: expiry, merchant_review, reminders, reversal, scope, self_approval, steps"
        in p.message
    )


def test_unknown_key_in_a_selector():
    text = steps_yaml(
        "    - name: a\n      approvers:\n        any_of:\n"
        "          - {role: admin, relaton: assigned}\n"
    )
    p = problems_of(text)[0]
    assert (p.code, p.line, p.path) == (
        "unknown_key",
        7,
        "approval.steps[0].approvers.any_of[0].relaton",
    )
    assert "allowed here: accounts, attributes, relation, role" in p.message


def test_ref_key_is_an_unknown_key():
    p = only_problem("ruleset: x\n$ref: other.yaml\n")
    assert (p.code, p.line, p.path) == ("unknown_key", 2, "$ref")
    assert "unknown key '$ref'" in p.message


def test_ref_inside_a_step_is_an_unknown_key():
    problems = problems_of(steps_yaml("    - $ref: '#/$defs/step'\n"))
    assert ("unknown_key", 4, "approval.steps[0].$ref") in [
        (p.code, p.line, p.path) for p in problems
    ]


# ------------------------------------------------------- money, currency


@pytest.mark.parametrize(
    "text, line, path",
    [
        ("ruleset: x\nsettings:\n  no_approval_below: -5\n", 3, "settings.no_approval_below"),
        ("ruleset: x\nsettings:\n  no_approval_below: '-5'\n", 3, "settings.no_approval_below"),
        ("ruleset: x\nlimits:\n  max_order_total: -5\n", 3, "limits.max_order_total"),
        (
            "ruleset: x\nlimits:\n  budgets:\n    - {name: b, period: month, amount: -10}\n",
            4,
            "limits.budgets[0].amount",
        ),
        ("ruleset: x\nlimits:\n  order_limit: {amount: -1}\n", 3, "limits.order_limit.amount"),
        (
            steps_yaml("    - name: a\n      when: {total: {gt: -1}}\n" + STEP_OK),
            5,
            "approval.steps[0].when.total.gt",
        ),
    ],
)
def test_negative_amounts_are_errors_naming_line_and_path(text, line, path):
    p = only_problem(text)
    assert (p.line, p.path) == (line, path)
    assert p.format().startswith(f"t.yaml:{line}: {path}: ")


@pytest.mark.parametrize(
    "text",
    [
        "ruleset: x\nsettings:\n  no_approval_below: -5\n",
        "ruleset: x\nlimits:\n  max_order_total: -5\n",
        "ruleset: x\nlimits:\n  budgets:\n    - {name: b, period: month, amount: -10}\n",
    ],
)
def test_negative_amounts_say_negative(text):
    p = only_problem(text)
    assert p.code == "negative_amount"
    assert "negative" in p.message


def test_amount_as_text_that_is_not_a_number():
    p = only_problem("ruleset: x\nsettings:\n  no_approval_below: abc\n")
    assert (p.line, p.path) == (3, "settings.no_approval_below")
    assert p.message.startswith('"abc" is not an amount: write a number like 1000')


def test_decimal_strings_are_accepted_as_money():
    policy_data = checked("ruleset: x\nlimits:\n  max_order_total: '999999.99'\n").resolved
    assert policy_data["limits"]["max_order_total"] == "999999.99"


def test_unknown_currency():
    p = only_problem("ruleset: x\ncurrency: USS\n")
    assert (p.code, p.line, p.path) == ("invalid_value", 2, "currency")
    assert p.message.startswith("'USS' is not one of: AED, AUD")


def test_unknown_currency_in_a_condition():
    p = only_problem(steps_yaml("    - name: a\n      when: {currency: [EUR, XXX]}\n" + STEP_OK))
    assert p.line == 5
    assert p.path.startswith("approval.steps[0].when.currency")


def test_lowercase_currency_is_unknown():
    assert only_problem("ruleset: x\ncurrency: usd\n").code == "invalid_value"


# --------------------------------------------------- undefined references


def test_undefined_role_in_a_selector():
    text = (
        "ruleset: x\nroles:\n  boss: {label: Boss}\napproval:\n  steps:\n"
        "    - name: a\n      approvers: {any_of: [{role: manager}]}\n"
    )
    p = only_problem(text)
    assert (p.code, p.line, p.path) == (
        "undefined_role",
        7,
        "approval.steps[0].approvers.any_of[0].role",
    )
    assert p.format() == (
        "t.yaml:7: approval.steps[0].approvers.any_of[0].role: "
        "role 'manager' is not defined; defined: boss"
    )


def test_undefined_role_in_a_list_of_roles():
    data = ruleset(
        approval={"steps": [{"name": "a", "approvers": {"any_of": [{"role": ["admin", "chef"]}]}}]}
    )
    p = only_problem(to_yaml(data))
    assert p.code == "undefined_role"
    assert "'chef'" in p.message and "admin, manager, user, viewer" in p.message


def test_undefined_group_in_a_condition():
    text = steps_yaml(
        "    - name: a\n      when:\n        any:\n          - buyer_group: sales\n" + STEP_OK
    )
    p = only_problem(text)
    assert (p.code, p.line, p.path) == ("undefined_group", 5, "approval.steps[0].when")
    assert p.format() == (
        "t.yaml:5: approval.steps[0].when: "
        "group 'sales' is not defined; the rule set defines no groups"
    )


def test_undefined_role_inside_not_condition():
    text = (
        "ruleset: x\nroles:\n  a: {label: A}\napproval:\n  steps:\n"
        "    - name: s\n      when: {not: {buyer_role: b}}\n"
        "      approvers: {any_of: [{role: a}]}\n"
    )
    p = only_problem(text)
    assert (p.code, p.line) == ("undefined_role", 7)


def test_undefined_viewer_role():
    p = only_problem("ruleset: x\nvisibility:\n  viewer_roles: [auditor]\n")
    assert (p.code, p.line, p.path) == ("undefined_role", 3, "visibility.viewer_roles")


def test_exceeds_needs_the_limit_defined():
    p = only_problem(steps_yaml("    - name: a\n      when: {exceeds: budget}\n" + STEP_OK))
    assert (p.code, p.line, p.path) == ("undefined_limit", 5, "approval.steps[0].when")


def test_standard_step_without_approvers():
    p = only_problem(steps_yaml("    - name: a\n      when: {total: {gt: 5}}\n"))
    assert (p.code, p.line, p.path) == ("missing_approvers", 4, "approval.steps[0]")


def test_test_expecting_an_unknown_step():
    data = ruleset(
        approval={"steps": [{"name": "a", "approvers": {"any_of": [{"role": "admin"}]}}]},
        tests=[
            {
                "name": "t",
                "order": {"buyer": "sam", "total": 1},
                "expect": {"steps": [{"name": "nope"}]},
            }
        ],
    )
    p = only_problem(to_yaml(data))
    assert (p.code, p.path) == ("undefined_step", "tests[0].expect.steps[0].name")


# ------------------------------------------------- YAML 1.1 in the schema


@pytest.mark.parametrize(
    "text, path",
    [
        ("ruleset: x\napproval:\n  self_approval: no\n", "approval.self_approval"),
        ("ruleset: x\nsettings:\n  may_order: on\n", "settings.may_order"),
        ("ruleset: x\nsettings:\n  email: off\n", "settings.email"),
        (
            "ruleset: x\nnotifications:\n  master_confirmation: yes\n",
            "notifications.master_confirmation",
        ),
    ],
)
def test_yaml_1_1_booleans_are_schema_errors(text, path):
    p = only_problem(text)
    assert (p.code, p.line, p.path) == ("wrong_type", 3, path)
    assert "expected boolean" in p.message


def test_sexagesimal_is_not_an_amount():
    p = only_problem("ruleset: x\nsettings:\n  no_approval_below: 1:30\n")
    assert (p.line, p.path) == (3, "settings.no_approval_below")
    assert '"1:30" is not an amount' in p.message


def test_bare_date_stays_a_string():
    assert checked("ruleset: x\ndescription: 2026-01-01\n").data["description"] == "2026-01-01"
    p = only_problem(
        "ruleset: x\ntests:\n  - name: t\n    now: 2026-01-01\n    order: {buyer: a, total: 1}\n"
        "    expect: {outcome: approved}\n    extra: 1\n"
    )
    assert p.code == "unknown_key"  # `now` itself was accepted as the string "2026-01-01"


def test_huge_integer_in_a_rule_set():
    p = only_problem("ruleset: x\nlimits:\n  max_order_total: " + "1" * 5000 + "\n")
    assert (p.code, p.line, p.path) == ("number_too_large", 3, "limits.max_order_total")


def test_amount_above_the_schema_maximum():
    p = only_problem("ruleset: x\nlimits:\n  max_order_total: " + "9" * 25 + "\n")
    assert (p.line, p.path) == (3, "limits.max_order_total")


# ---------------------------------------------------------------- steps


def test_duplicate_step_names():
    text = steps_yaml("    - name: a\n" + STEP_OK, "    - name: a\n" + STEP_OK)
    p = only_problem(text)
    assert (p.code, p.line, p.path) == ("duplicate_step", 6, "approval.steps[1].name")
    assert p.format() == "t.yaml:6: approval.steps[1].name: step name 'a' is used by step 0 too"


def test_duplicate_budget_names():
    text = (
        "ruleset: x\nlimits:\n  budgets:\n"
        "    - {name: b, period: month, amount: 1}\n    - {name: b, period: year, amount: 2}\n"
    )
    p = only_problem(text)
    assert (p.code, p.line, p.path) == ("duplicate_budget", 5, "limits.budgets[1].name")


# ------------------------------------------------------------- warnings


def test_contradictory_limits_are_a_warning_not_an_error():
    result = checked(
        "ruleset: x\nlimits:\n  max_order_total: 100\nsettings:\n  no_approval_below: 200\n"
    )
    (w,) = result.warnings
    assert (w.code, w.severity, w.line, w.path) == (
        "contradictory_limits",
        "warning",
        5,
        "settings.no_approval_below",
    )
    assert w.format() == (
        "t.yaml:5: settings.no_approval_below: warning: settings.no_approval_below (200) is above "
        "limits.max_order_total (100): no order could ever need approval"
    )


def test_order_limit_not_below_max_total_is_a_warning():
    result = checked("ruleset: x\nlimits:\n  max_order_total: 100\n  order_limit: {amount: 100}\n")
    assert [(w.code, w.path) for w in result.warnings] == [
        ("contradictory_limits", "limits.order_limit.amount")
    ]


def test_empty_total_range_is_an_unreachable_step_warning():
    result = checked(
        steps_yaml("    - name: a\n      when: {total: {gt: 200, lt: 100}}\n" + STEP_OK)
    )
    (w,) = result.warnings
    assert (w.code, w.severity, w.line, w.path) == (
        "unreachable_step",
        "warning",
        5,
        "approval.steps[0].when",
    )
    assert "can never apply" in w.message


def test_step_above_max_total_is_an_unreachable_step_warning():
    text = (
        "ruleset: x\nlimits:\n  max_order_total: 100\napproval:\n  steps:\n"
        "    - name: a\n      when: {all: [{total: {gt: 500}}]}\n" + STEP_OK
    )
    (w,) = checked(text).warnings
    assert (w.code, w.line, w.path) == ("unreachable_step", 7, "approval.steps[0].when")
    assert "above 500" in w.message and "above 100 are blocked" in w.message


def test_step_below_no_approval_below_is_an_unreachable_step_warning():
    text = (
        "ruleset: x\nsettings:\n  no_approval_below: 100\napproval:\n  steps:\n"
        "    - name: a\n      when: {total: {lte: 50}}\n" + STEP_OK
    )
    (w,) = checked(text).warnings
    assert (w.code, w.path) == ("unreachable_step", "approval.steps[0].when")


def test_reachable_steps_have_no_warning():
    text = (
        "ruleset: x\nlimits:\n  max_order_total: 1000\napproval:\n  steps:\n"
        "    - name: a\n      when: {total: {gt: 100, lte: 1000}}\n" + STEP_OK
    )
    assert checked(text).warnings == []


def test_strictly_empty_total_range_is_unreachable():
    result = checked(
        steps_yaml("    - name: a\n      when: {total: {gt: 100, lt: 100}}\n" + STEP_OK)
    )
    assert [w.code for w in result.warnings] == ["unreachable_step"]


def test_gte_max_total_is_reachable():
    text = (
        "ruleset: x\nlimits:\n  max_order_total: 1000\napproval:\n  steps:\n"
        "    - name: a\n      when: {total: {gte: 1000}}\n" + STEP_OK
    )
    assert checked(text).warnings == []


def test_warnings_do_not_block_compilation():
    from .conftest import make_policy

    policy = make_policy(
        "ruleset: x\nlimits:\n  max_order_total: 100\nsettings:\n  no_approval_below: 200\n"
    )
    assert policy.max_order_total == 100


# -------------------------------------------------------------- extends


PARENT = {
    "ruleset": "base",
    "currency": "EUR",
    "roles": BASE_ROLES,
    "approval": {
        "steps": [
            {"name": "a", "approvers": {"any_of": [{"role": "manager"}]}},
            {"name": "b", "approvers": {"any_of": [{"role": "manager"}]}},
        ]
    },
}


def resolver(**docs):
    texts = {name: (d if isinstance(d, str) else to_yaml(d)) for name, d in docs.items()}
    return texts.get


def test_extends_unknown_parent():
    p = only_problem("ruleset: child\nextends: nowhere\n", resolve=resolver())
    assert (p.code, p.line, p.path) == ("unknown_parent", 2, "extends")
    assert (
        p.format() == "t.yaml:2: extends: extends 'nowhere', but no rule set of that name is known"
    )


def test_extends_without_a_resolver_is_an_unknown_parent():
    assert only_problem("ruleset: child\nextends: base\n").code == "unknown_parent"


def test_extends_itself():
    p = only_problem("ruleset: me\nextends: me\n", resolve=resolver())
    assert (p.code, p.line, p.path) == ("extends_cycle", 2, "extends")
    assert "me -> me" in p.message


def test_extends_cycle_of_three():
    r = resolver(b="ruleset: b\nextends: c\n", c="ruleset: c\nextends: a\n")
    p = only_problem("ruleset: a\nextends: b\n", resolve=r)
    assert p.code == "extends_cycle"
    assert p.path == "extends" and p.line == 2
    assert "a -> b -> c -> a" in p.message


def test_extends_too_deep():
    r = resolver(**{f"r{i}": f"ruleset: r{i}\nextends: r{i + 1}\n" for i in range(10)})
    p = only_problem("ruleset: start\nextends: r0\n", resolve=r)
    assert p.code == "extends_too_deep"


def test_invalid_parent_reports_the_parents_problem():
    r = resolver(base="ruleset: base\ncurrency: USS\n")
    p = only_problem("ruleset: child\nextends: base\n", resolve=r)
    assert (p.code, p.source, p.line, p.path) == ("invalid_value", "base", 2, "currency")


def test_child_may_use_parents_roles():
    child = (
        "ruleset: child\nextends: base\napproval:\n  steps:\n"
        "    - name: c\n      approvers: {any_of: [{role: admin}]}\n"
    )
    result = checked(child, resolve=resolver(base=PARENT))
    assert [s["name"] for s in result.resolved["approval"]["steps"]] == ["a", "b", "c"]
    assert result.resolved["currency"] == "EUR"
    assert result.parent.name == "base"


def test_folder_resolver(tmp_path):
    (tmp_path / "base.yaml").write_text(to_yaml(PARENT))
    (tmp_path / "other-name.yaml").write_text(to_yaml({**PARENT, "ruleset": "renamed"}))
    resolve = folder_resolver(tmp_path)
    assert resolve("base").data["ruleset"] == "base"
    assert resolve("renamed").data["ruleset"] == "renamed"
    assert resolve("missing") is None


def test_duplicate_step_names_in_a_child():
    child = (
        "ruleset: child\nextends: base\napproval:\n  steps:\n"
        "    - name: c\n      approvers: {any_of: [{role: manager}]}\n"
        "    - name: c\n      when: {total: {gt: 5}}\n"
        "      approvers: {any_of: [{role: manager}]}\n"
    )
    p = only_problem(child, resolve=resolver(base=PARENT))
    assert (p.code, p.line) == ("duplicate_step", 7)


def test_child_problem_names_the_childs_own_line():
    child = (
        "ruleset: child\nextends: base\napproval:\n  steps:\n"
        "    - name: b\n      approvers: {any_of: [{role: nobody}]}\n"
        "    - name: c\n      approvers: {any_of: [{role: manager}]}\n"
    )
    p = only_problem(child, resolve=resolver(base=PARENT))
    assert p.code == "undefined_role"
    assert p.line == 6


# ------------------------------------------------------------------ CLI

GOOD = {
    **ruleset(),
    "approval": {
        "steps": [
            {
                "name": "big",
                "when": {"total": {"gt": 500}},
                "approvers": {"any_of": [{"role": "manager", "relation": "same_group"}]},
            }
        ]
    },
    "tests": [
        {
            "name": "small",
            "order": {"buyer": "sam", "total": 100},
            "expect": {"outcome": "approved"},
        },
        {
            "name": "big",
            "order": {"buyer": "sam", "total": 900},
            "expect": {"outcome": "pending", "approvers": ["mgr-sales"]},
        },
    ],
}


def bad_files():
    from .test_loader import BILLION_LAUGHS

    return [
        ("malformed", "ruleset: x\nroles: {a: [\n", "malformed YAML"),
        ("duplicate", "ruleset: x\nruleset: y\n", ":2: ruleset: duplicate key"),
        ("bomb", BILLION_LAUGHS, "alias"),
        ("deep", "ruleset: x\ndescription: " + "[" * 50 + "]" * 50 + "\n", ":2: description[0]"),
        ("wrongtype", "ruleset: x\nroles: [a]\n", ":2: roles: expected object"),
        ("unknown", "ruleset: x\nlimts: {}\n", ":2: limts: unknown key 'limts'"),
        (
            "negative",
            "ruleset: x\nsettings:\n  no_approval_below: -1\n",
            ":3: settings.no_approval_below: ",
        ),
        ("currency", "ruleset: x\ncurrency: USS\n", ":2: currency: 'USS' is not one of"),
        (
            "undefrole",
            (
                "ruleset: x\napproval:\n  steps:\n"
                "    - name: a\n      approvers: {any_of: [{role: boss}]}\n"
            ),
            ":5: approval.steps[0].approvers.any_of[0].role: role 'boss' is not defined",
        ),
        ("python", "ruleset: !!python/object:os.system x\n", ":1: ruleset: tag"),
        (
            "yaml11",
            "ruleset: x\napproval: {self_approval: no}\n",
            ":2: approval.self_approval: expected boolean",
        ),
        (
            "bigint",
            "ruleset: x\nlimits: {max_order_total: " + "9" * 5000 + "}\n",
            ":2: limits.max_order_total: number with 5,000 digits",
        ),
        ("cycle", "ruleset: x\nextends: x\n", ":2: extends: `extends` forms a cycle"),
        (
            "dupstep",
            steps_yaml("    - name: a\n" + STEP_OK, "    - name: a\n" + STEP_OK),
            ":6: approval.steps[1].name: step name 'a'",
        ),
    ]


@pytest.mark.parametrize("name, text, expected", bad_files(), ids=[b[0] for b in bad_files()])
def test_cli_validate_bad_file_exits_2(name, text, expected, write, capsys):
    path = write(f"{name}.yaml", text)
    assert cli.main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    first = err.splitlines()[0]
    assert first.startswith(f"{path}:")
    assert expected in first


def test_cli_validate_ten_megabytes(write, capsys):
    path = write("big.yaml", "ruleset: x\ndescription: '" + "x" * (10 * 1024 * 1024) + "'\n")
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}: (root): the file is 10,485,")


def test_cli_validate_missing_file(tmp_path, capsys):
    assert cli.main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "error:" in capsys.readouterr().err


def test_cli_validate_good_file(write, capsys):
    path = write("good.yaml", GOOD)
    assert cli.main(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: ok (t, 1 steps)\n"
    assert err == ""


def test_cli_validate_prints_warnings_and_exits_0(write, capsys):
    path = write(
        "warn.yaml",
        "ruleset: x\nlimits:\n  max_order_total: 100\nsettings:\n  no_approval_below: 200\n",
    )
    assert cli.main(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err.startswith(f"{path}:5: settings.no_approval_below: warning: ")
    assert "ok (x, 0 steps)" in out


def test_cli_validate_many_files_exits_2_if_one_is_bad(write, capsys):
    good = write("good.yaml", GOOD)
    bad = write("bad.yaml", "ruleset: x\nlimts: 1\n")
    assert cli.main(["validate", str(good), str(bad)]) == 2
    out, err = capsys.readouterr()
    assert "good.yaml: ok" in out
    assert f"{bad}:2: limts:" in err


def test_cli_validate_resolves_extends_in_the_same_folder(write, capsys):
    write("base.yaml", PARENT)
    child = write("child.yaml", "ruleset: child\nextends: base\n")
    assert cli.main(["validate", str(child)]) == 0
    assert "ok (child, 2 steps)" in capsys.readouterr().out


def test_cli_test_passes(write, capsys):
    path = write("acme.yaml", GOOD)
    write("directories/acme.yaml", BASE_DIRECTORY)
    assert cli.main(["test", str(path), "-v"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "2 passed, 0 failed"
    assert f"PASS {path}:" in out


def test_cli_test_failing_expectation_exits_1(write, capsys):
    wrong = json.loads(json.dumps(GOOD))
    wrong["tests"][1]["expect"] = {"outcome": "approved"}  # deliberately wrong: 900 needs approval
    path = write("acme.yaml", wrong)
    write("directories/acme.yaml", BASE_DIRECTORY)
    assert cli.main(["test", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "1 passed, 1 failed"
    assert f"FAIL {path}:" in out and ": big: outcome: expected approved, got pending" in out


def test_cli_test_explicit_directory(write, capsys):
    path = write("acme.yaml", GOOD)
    d = write("elsewhere.yaml", BASE_DIRECTORY)
    assert cli.main(["test", str(path), "--directory", str(d)]) == 0
    assert capsys.readouterr().out.endswith("2 passed, 0 failed\n")


def test_cli_test_invalid_rule_set_exits_2(write, capsys):
    path = write("bad.yaml", "ruleset: x\nlimts: 1\n")
    assert cli.main(["test", str(path)]) == 2
    out, err = capsys.readouterr()
    assert f"{path}:2: limts: unknown key" in err
    assert out.splitlines()[-1] == "0 passed, 0 failed"


def test_cli_test_without_directory_exits_2(write, capsys):
    path = write("acme.yaml", GOOD)
    assert cli.main(["test", str(path)]) == 2
    assert "no directory for its tests" in capsys.readouterr().err


def test_cli_test_invalid_directory_exits_2(write, capsys):
    path = write("acme.yaml", GOOD)
    write("directories/acme.yaml", "companies: {acme: {nmae: x}}\n")
    assert cli.main(["test", str(path)]) == 2
    assert "directories/acme.yaml:1: companies.acme.nmae: unknown key" in capsys.readouterr().err


def test_cli_evaluate_prints_json(write, capsys):
    path = write("acme.yaml", GOOD)
    d = write("dir.yaml", BASE_DIRECTORY)
    o = write("order.json", json.dumps({"id": "o1", "buyer": "sam", "total": 900}))
    assert (
        cli.main(
            [
                "evaluate",
                str(path),
                "--directory",
                str(d),
                "--order",
                str(o),
                "--now",
                "2026-01-15T12:00:00Z",
            ]
        )
        == 0
    )
    decision = json.loads(capsys.readouterr().out)
    assert decision["outcome"] == "pending"
    assert [a["account"] for a in decision["steps"][0]["approvers"]] == ["mgr-sales"]
    assert decision["order"] == {"id": "o1", "total": "900", "currency": "USD", "type": "regular"}
    assert decision["ruleset"]["name"] == "t"
    assert any(
        t["rule"] == "approval.steps.big" and t["result"] == "matched" for t in decision["trace"]
    )


def test_cli_evaluate_no_trace(write, capsys):
    path = write("acme.yaml", GOOD)
    d = write("dir.yaml", BASE_DIRECTORY)
    o = write("order.yaml", "buyer: sam\ntotal: 10\n")
    assert (
        cli.main(
            [
                "evaluate",
                str(path),
                "--directory",
                str(d),
                "--order",
                str(o),
                "--no-trace",
                "--now",
                "2026-01-15T12:00:00Z",
            ]
        )
        == 0
    )
    decision = json.loads(capsys.readouterr().out)
    assert decision["outcome"] == "approved" and "trace" not in decision


def test_cli_evaluate_bad_order_exits_2(write, capsys):
    path = write("acme.yaml", GOOD)
    d = write("dir.yaml", BASE_DIRECTORY)
    o = write("order.yaml", "buyer: nobody\ntotal: 10\n")
    assert cli.main(["evaluate", str(path), "--directory", str(d), "--order", str(o)]) == 2
    out, err = capsys.readouterr()
    assert (
        out == "" and err == "error: order.buyer: buyer 'nobody' is not an account of this tenant\n"
    )


def test_cli_schema_prints_the_schema(capsys):
    assert cli.main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == schema("ruleset")
    assert printed["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert cli.main(["schema", "order"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "approvalrules order"


def test_cli_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["frobnicate"])
    assert info.value.code == 2


def test_the_beyond_tenants_rule_sets_pass_their_own_tests(capsys):
    """tests/api/beyond/*.yaml (issue 9's workflow rule sets), as `approvalrules test` runs them:
    each finds directories/<stem>.yaml, and the folder's tenants.yaml is skipped, not checked."""
    folder = Path(__file__).resolve().parents[1] / "api" / "beyond"
    files = sorted(str(p) for p in folder.glob("*.yaml"))
    assert any(f.endswith("tenants.yaml") for f in files)
    assert cli.main(["test", *files]) == 0
    out = capsys.readouterr().out
    assert " 0 failed" in out and int(out.split(" passed")[0].split()[-1]) >= 15
