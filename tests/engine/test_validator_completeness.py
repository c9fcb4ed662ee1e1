"""The validator catches every mistake it can see in a rule set, says where and what to write,
and reports all of them at once; warnings name configurations that can never take effect."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest

from approvalrules import cli
from approvalrules.engine import check_ruleset, compile_ruleset, directory_problems
from approvalrules.engine.money import fits_minor_units, minor_units

from .conftest import BASE_DIRECTORY, NOW, checked, make_directory, problems_of, ruleset, to_yaml

MANAGERS = {"any_of": [{"role": "manager"}]}


def _step(**fields) -> dict:
    return {"name": "mgr", "when": {"total": {"gt": 100}}, "approvers": MANAGERS, **fields}


def _with_steps(*steps, **fields) -> str:
    return to_yaml(ruleset(approval={"steps": list(steps)}, **fields))


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _codes(problems) -> list[str]:
    return [p.code for p in problems]


def _warnings(text: str) -> list:
    return checked(text).warnings


# ------------------------------------------------------------ references


def test_an_escalation_to_an_undefined_role_is_refused_with_its_line():
    text = _with_steps(_step(escalate_after="P1D", escalate_to={"role": "boss"}))
    [problem] = problems_of(text)
    assert problem.code == "undefined_escalation_role"
    assert problem.path == "approval.steps[0].escalate_to.role"
    assert problem.line == _line_of(text, "role: boss")
    assert "'boss'" in problem.message and "defined: admin, manager, user, viewer" in (
        problem.message
    )


def test_every_escalation_role_of_a_list_is_checked():
    text = _with_steps(_step(escalate_to={"role": ["manager", "ghost", "phantom"]}))
    assert [p.message.split(",")[0] for p in problems_of(text)] == [
        "step 'mgr' escalates to role 'ghost'",
        "step 'mgr' escalates to role 'phantom'",
    ]


# ------------------------------------------------------------ keys a step kind ignores


@pytest.mark.parametrize("key, value", [("required", 2), ("fallback", "parent_company")])
def test_keys_an_assignment_tiers_step_ignores_are_refused(key, value):
    step = {"name": "tiers", "kind": "assignment_tiers", key: value}
    text = _with_steps(step)
    [problem] = problems_of(text)
    assert problem.code == "ignored_key"
    assert problem.path == f"approval.steps[0].{key}"
    assert problem.line == _line_of(text, f"{key}:")
    assert "assignment_tiers" in problem.message and "remove it" in problem.message


def test_escalate_to_without_escalation_on_timeout_is_refused():
    text = _with_steps(_step(on_timeout="cancel", escalate_to={"role": "manager"}))
    [problem] = problems_of(text)
    assert (problem.code, problem.path) == ("ignored_key", "approval.steps[0].escalate_to")
    assert "on_timeout is cancel" in problem.message


# ------------------------------------------------------------ tests' now


@pytest.mark.parametrize("now", ["yesterday", "2026-02-30T10:00:00Z", "15/01/2026"])
def test_a_test_time_that_is_not_a_date_time_is_refused(now):
    data = ruleset(
        tests=[{"name": "t", "now": now, "order": {"buyer": "sam", "total": 5}, "expect": {}}]
    )
    data["tests"][0]["expect"] = {"outcome": "approved"}
    text = to_yaml(data)
    [problem] = problems_of(text)
    assert (problem.code, problem.path) == ("invalid_test_time", "tests[0].now")
    assert problem.line == _line_of(text, "now:")
    assert "write one like 2026-01-15T12:00:00Z" in problem.message


def test_a_test_time_with_an_offset_is_accepted():
    data = ruleset(
        tests=[
            {
                "name": "t",
                "now": "2026-01-15T12:00:00+01:00",
                "order": {"buyer": "sam", "total": 5},
                "expect": {"outcome": "approved"},
            }
        ]
    )
    assert checked(to_yaml(data)).warnings == []


# ------------------------------------------------------------ all problems at once


def test_every_unknown_key_of_an_object_is_reported():
    text = _with_steps(_step(bogus=1, other=2, third=3))
    problems = problems_of(text)
    assert [(p.code, p.path) for p in problems] == [
        ("unknown_key", "approval.steps[0].bogus"),
        ("unknown_key", "approval.steps[0].other"),
        ("unknown_key", "approval.steps[0].third"),
    ]
    assert [p.line for p in problems] == [
        _line_of(text, "bogus:"),
        _line_of(text, "other:"),
        _line_of(text, "third:"),
    ]


def test_semantic_problems_are_reported_beside_schema_problems_in_line_order():
    text = _with_steps(
        _step(approvers={"any_of": [{"role": "ghost"}]}),
        {"name": "b", "approvers": MANAGERS, "colour": "red"},
        settings={"no_approval_below": "five hundred"},
    )
    problems = problems_of(text)
    assert [(p.code, p.path) for p in problems] == [
        ("undefined_role", "approval.steps[0].approvers.any_of[0].role"),
        ("unknown_key", "approval.steps[1].colour"),
        ("invalid_amount", "settings.no_approval_below"),
    ]
    assert [p.line for p in problems] == sorted(p.line for p in problems)


def test_a_shape_the_semantic_checks_cannot_read_leaves_the_schema_problems():
    # steps is not a list: the semantic checks cannot run, the schema's problem stands alone
    text = to_yaml(ruleset(approval={"steps": {"name": "x"}}))
    assert _codes(problems_of(text)) == ["wrong_type"]


# ------------------------------------------------------------ amounts and minor units


def test_minor_units_are_iso_4217():
    assert [minor_units(c) for c in ("USD", "EUR", "JPY", "KRW", "HUF", "IDR", "COP")] == [
        2,
        2,
        0,
        0,
        2,
        2,
        2,
    ]
    assert fits_minor_units(Decimal("100.50"), "USD")
    assert fits_minor_units(Decimal("100.500"), "USD")
    assert not fits_minor_units(Decimal("100.125"), "USD")
    assert not fits_minor_units(Decimal("1000.5"), "JPY")


def test_three_decimals_in_dollars_are_refused_saying_what_to_write():
    text = to_yaml(ruleset(limits={"order_limit": {"amount": 100.125}}))
    [problem] = problems_of(text)
    assert (problem.code, problem.path) == ("amount_precision", "limits.order_limit.amount")
    assert problem.line == _line_of(text, "amount: 100.125")
    assert problem.message == (
        "100.125 USD: USD amounts have at most 2 decimals (ISO 4217); write 100.12 or 100.13"
    )


def test_fractions_of_a_yen_are_refused_in_thresholds_and_budgets():
    text = to_yaml(
        ruleset(
            currency="JPY",
            limits={"budgets": [{"name": "b", "period": "month", "amount": "50000.5"}]},
            approval={"steps": [_step(when={"total": {"gt": 1000.25}})]},
        )
    )
    problems = problems_of(text)
    assert [(p.code, p.path) for p in problems] == [
        ("amount_precision", "limits.budgets[0].amount"),
        ("amount_precision", "approval.steps[0].when.total.gt"),
    ]
    assert "JPY has no minor unit" in problems[0].message
    assert "write 50000 or 50001" in problems[0].message


def test_per_currency_amounts_are_held_to_their_own_currency():
    text = to_yaml(
        ruleset(
            currencies=["JPY"],
            limits={"max_order_total": {"USD": "999.99", "JPY": "150000.5"}},
        )
    )
    [problem] = problems_of(text)
    assert problem.path == "limits.max_order_total.JPY"
    assert problem.message.startswith("150000.5 JPY:")


def test_conversion_rates_keep_their_own_precision():
    data = ruleset(conversion={"EUR": "0.92345678", "JPY": 149.12345})
    assert checked(to_yaml(data)).warnings == []


PUBLISHED_ONCE = to_yaml(
    ruleset(
        approval={"steps": [_step(when={"total": {"gt": 100.125}})]},
    )
)


def test_a_published_version_the_stricter_rule_refuses_still_loads_and_evaluates_with_a_warning():
    problems = problems_of(PUBLISHED_ONCE)
    assert _codes(problems) == ["amount_precision"]
    loaded = check_ruleset(PUBLISHED_ONCE, "t.yaml", published=True)
    assert [(w.code, w.severity) for w in loaded.warnings] == [("amount_precision", "warning")]
    assert "the next version must fix it" in loaded.warnings[0].message
    policy = compile_ruleset(PUBLISHED_ONCE, "t.yaml", version=3, published=True)
    directory = make_directory(copy.deepcopy(BASE_DIRECTORY))
    assert policy.evaluate({"buyer": "sam", "total": 100.13}, directory, now=NOW).outcome == (
        "pending"
    )
    assert policy.evaluate({"buyer": "sam", "total": 100.12}, directory, now=NOW).outcome == (
        "approved"
    )


def test_other_new_refusals_are_warnings_in_a_published_version():
    text = _with_steps(
        {"name": "tiers", "kind": "assignment_tiers", "required": 2},
        _step(name="esc", escalate_to={"role": "boss"}),
        tests=[
            {
                "name": "t",
                "now": "yesterday",
                "order": {"buyer": "sam", "total": 5},
                "expect": {"outcome": "approved"},
            }
        ],
    )
    assert set(_codes(problems_of(text))) == {
        "ignored_key",
        "undefined_escalation_role",
        "invalid_test_time",
    }
    loaded = check_ruleset(text, "t.yaml", published=True)
    assert {(w.code, w.severity) for w in loaded.warnings} >= {
        ("ignored_key", "warning"),
        ("undefined_escalation_role", "warning"),
        ("invalid_test_time", "warning"),
    }


# ------------------------------------------------------------ wrong kinds of value


@pytest.mark.parametrize(
    "value, message",
    [
        ('"1,000"', 'write an amount like 1000, not "1,000"'),
        ('"1 000"', 'write an amount like 1000, not "1 000"'),
        ("five hundred", '"five hundred" is not an amount: write a number like 1000 or 999.99'),
        ("inf", '"inf" is not an amount: write a number like 1000'),
        (".inf", '".inf" is not an amount: write a number like 1000'),
        (".nan", '".nan" is not an amount: write a number like 1000'),
        ("1e16", "1e+16 is too large: amounts go up to 1,000,000,000,000,000"),
        ("true", "true is not an amount: write a number like 1000"),
    ],
)
@pytest.mark.parametrize(
    "where, path",
    [
        ("settings:\n  max_order_total: {}\n", "settings.max_order_total"),
        ("settings:\n  no_approval_below: {}\n", "settings.no_approval_below"),
        ("limits:\n  order_limit: {{amount: {}}}\n", "limits.order_limit.amount"),
    ],
)
def test_an_amount_of_the_wrong_kind_says_what_to_write(value, message, where, path):
    text = "ruleset: x\n" + where.format(value)
    [problem] = problems_of(text)
    assert problem.path == path
    assert problem.line == 3
    assert problem.message.startswith(message), problem.message
    for schema_speak in ("expected object", "expected null", "expected number"):
        assert schema_speak not in problem.message


@pytest.mark.parametrize("rate", ["0", "-1.5", "0.0"])
def test_a_zero_or_negative_conversion_rate_says_what_a_rate_is(rate):
    [problem] = problems_of(f"ruleset: x\nconversion:\n  EUR: {rate}\n")
    assert problem.path == "conversion.EUR"
    assert problem.line == 3
    assert "write a rate above 0 like 1.08" in problem.message
    assert "expected number or string" not in problem.message


# ------------------------------------------------------------ warnings: never takes effect


def test_an_approving_role_without_the_approve_permission_is_warned():
    text = _with_steps(_step(approvers={"any_of": [{"role": "user"}]}))
    [warning] = _warnings(text)
    assert (warning.code, warning.severity) == ("role_cannot_approve", "warning")
    assert warning.path == "approval.steps[0].approvers.any_of[0].role"
    assert "add approve_orders to roles.user.permissions" in warning.message


def test_an_all_of_group_naming_a_role_that_cannot_approve_is_warned():
    step = _step(approvers={"all_of": [{"any_of": [{"role": "manager"}]}, MANAGERS_OF("viewer")]})
    [warning] = _warnings(_with_steps(step))
    assert warning.path == "approval.steps[0].approvers.all_of[1].any_of[0].role"


def MANAGERS_OF(role: str) -> dict:  # noqa: N802 - reads like the data it builds
    return {"any_of": [{"role": role}]}


@pytest.mark.parametrize(
    "fields, says",
    [
        ({"escalate_after": "P1D", "on_timeout": "escalate"}, "names nobody to escalate to"),
        ({"escalate_to": {"mode": "replace"}}, "names no role and no accounts"),
        ({"escalate_to": {"role": "user"}}, "escalates only to 'user', which cannot approve"),
    ],
)
def test_escalation_to_nobody_is_warned(fields, says):
    [warning] = _warnings(_with_steps(_step(**fields)))
    assert (warning.code, warning.severity) == ("escalates_to_nobody", "warning")
    assert says in warning.message


def test_escalation_to_accounts_or_an_approving_role_is_not_warned():
    assert _warnings(_with_steps(_step(escalate_to={"role": "admin"}))) == []
    assert _warnings(_with_steps(_step(escalate_to={"role": "user", "accounts": ["boss"]}))) == []


def test_a_step_above_the_default_blocking_maximum_is_warned():
    text = _with_steps(_step(when={"total": {"gt": 6000}}), settings={"max_order_total": 5000})
    [warning] = _warnings(text)
    assert warning.code == "unreachable_step"
    assert "orders above 5000 are blocked (settings.max_order_total)" in warning.message


def test_a_default_maximum_a_role_raises_is_no_reason_to_warn():
    data = ruleset(
        settings={"max_order_total": 5000},
        approval={"steps": [_step(when={"total": {"gt": 6000}})]},
    )
    data["roles"] = copy.deepcopy(data["roles"])
    data["roles"]["admin"]["settings"] = {"max_order_total": None}
    assert _warnings(to_yaml(data)) == []


@pytest.mark.parametrize("order_type", ["quote", ["quote"]])
def test_a_quote_only_step_is_warned(order_type):
    text = _with_steps(_step(when={"order_type": order_type, "total": {"gt": 5}}))
    [warning] = _warnings(text)
    assert warning.code == "unreachable_step"
    assert "applies only to quotes" in warning.message
    assert warning.line == _line_of(text, "order_type:")


def test_a_step_for_quotes_and_orders_is_not_warned():
    assert _warnings(_with_steps(_step(when={"order_type": ["quote", "bulk"]}))) == []


# ------------------------------------------------------------ with a directory


def test_required_above_the_possible_approvers_is_warned_with_a_directory():
    data = ruleset(approval={"steps": [_step(required=3)]})
    loaded = checked(to_yaml(data))
    assert loaded.warnings == []  # nothing to count without a directory
    directory = make_directory(copy.deepcopy(BASE_DIRECTORY))
    [warning] = directory_problems(loaded, directory)
    assert (warning.code, warning.severity) == ("too_few_approvers", "warning")
    assert warning.path == "approval.steps[0].required"
    assert "needs 3 approvals, but the directory has only 2 in acme (mgr-ops, mgr-sales)" in (
        warning.message
    )


def test_two_approvers_for_required_two_are_enough():
    loaded = checked(to_yaml(ruleset(approval={"steps": [_step(required=2)]})))
    assert directory_problems(loaded, make_directory(copy.deepcopy(BASE_DIRECTORY))) == []


def test_an_all_of_group_nobody_in_the_directory_can_give_is_warned():
    step = _step(approvers={"all_of": [MANAGERS, {"any_of": [{"accounts": ["mgr-ops", "lou"]}]}]})
    loaded = checked(to_yaml(ruleset(approval={"steps": [step]})))
    directory = make_directory(copy.deepcopy(BASE_DIRECTORY))
    assert directory_problems(loaded, directory) == []  # mgr-ops can approve group 2
    step["approvers"]["all_of"][1] = {"any_of": [{"accounts": ["lou", "ghost"]}]}
    loaded = checked(to_yaml(ruleset(approval={"steps": [step]})))
    problems = directory_problems(loaded, directory)
    assert [(p.code, p.path) for p in problems] == [
        ("unknown_account", "approval.steps[0].approvers.all_of[1].any_of[0].accounts"),
        ("too_few_approvers", "approval.steps[0].approvers.all_of[1].any_of"),
    ]
    assert "group 2 of step 'mgr' needs 1 approval" in problems[1].message


def test_accounts_the_directory_lacks_are_warned_wherever_they_are_named():
    data = ruleset(
        approval={
            "steps": [
                _step(
                    when={"buyer_account": ["sam", "nobody"]},
                    escalate_to={"accounts": ["ghost"]},
                )
            ]
        },
        bypass=[{"name": "b", "when": {"buyer_account": "phantom"}}],
    )
    problems = directory_problems(
        checked(to_yaml(data)), make_directory(copy.deepcopy(BASE_DIRECTORY))
    )
    assert [(p.code, p.path, p.message.split(",")[0]) for p in problems] == [
        ("unknown_account", "approval.steps[0].when", "step 'mgr' tests buyer_account 'nobody'"),
        (
            "unknown_account",
            "approval.steps[0].escalate_to.accounts",
            "step 'mgr' escalates to account 'ghost'",
        ),
        ("unknown_account", "bypass[0].when", "bypass rule 'b' tests buyer_account 'phantom'"),
    ]


def test_cli_validate_with_a_directory_warns_and_checks_the_directory(write, capsys):
    rules = write("r.yaml", to_yaml(ruleset(approval={"steps": [_step(required=3)]})))
    good = write("d.yaml", to_yaml(BASE_DIRECTORY))
    assert cli.main(["validate", str(rules), "--directory", str(good)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{rules}: ok (t, 1 steps)\n"
    line = _line_of(rules.read_text(), "required: 3")
    assert err.startswith(f"{rules}:{line}: approval.steps[0].required: warning: step 'mgr' needs")
    broken = copy.deepcopy(BASE_DIRECTORY)
    broken["companies"]["acme"]["parent"] = "acme"
    bad = write("bad.yaml", to_yaml(broken))
    assert cli.main(["validate", str(rules), "--directory", str(bad)]) == 2
    err = capsys.readouterr().err
    line = _line_of(bad.read_text(), "parent: acme")
    assert f"{bad}:{line}: companies.acme.parent: company 'acme' names itself as its parent" in err


def test_a_test_drawing_on_an_undefined_budget_is_refused():
    data = ruleset(
        limits={"budgets": [{"name": "monthly", "period": "month", "amount": 1000}]},
        tests=[
            {
                "name": "t",
                "budgets_spent": {"montly": 500},
                "order": {"buyer": "sam", "total": 5},
                "expect": {"outcome": "approved"},
            }
        ],
    )
    [problem] = problems_of(to_yaml(data))
    assert (problem.code, problem.path) == ("undefined_budget", "tests[0].budgets_spent.montly")
    assert "the rule set's budgets: monthly" in problem.message


def test_directory_roles_and_groups_the_rule_set_does_not_know_are_warned():
    directory = copy.deepcopy(BASE_DIRECTORY)
    directory["accounts"]["lou"]["memberships"][0]["role"] = "buyer"
    data = ruleset(groups={"sales": {"label": "Sales"}, "marketing": {"label": "Marketing"}})
    problems = directory_problems(checked(to_yaml(data)), make_directory(directory))
    assert [(p.code, p.path) for p in problems] == [
        ("undefined_role", "roles"),
        ("unknown_group", "groups.marketing"),
    ]
    assert "gives role 'buyer' to lou in acme" in problems[0].message
    assert "group 'marketing' is not a group of acme" in problems[1].message


def test_cli_validate_lists_warnings_beside_errors_in_line_order(write, capsys):
    text = _with_steps(
        _step(on_timeout="escalate"),
        limits={"max_order_total": 1000.001},
    )
    path = write("both.yaml", text)
    assert cli.main(["validate", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(": ", 2)[1] for line in lines] == [
        "approval.steps[0].on_timeout",
        "limits.max_order_total",
    ]
    assert lines[0].startswith(f"{path}:{_line_of(text, 'on_timeout')}: ")
    assert ": warning: step 'mgr' escalates on timeout but names nobody" in lines[0]
    assert "1000.001 USD: USD amounts have at most 2 decimals" in lines[1]


def test_a_directory_file_checked_as_a_rule_set_says_how_to_check_it(write, capsys):
    path = write("dir.yaml", to_yaml(BASE_DIRECTORY))
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"{path}:1: (root): this is a directory file (companies, accounts), not a rule set: "
        "check it with `approvalrules validate RULESET.yaml --directory FILE`\n"
    )
