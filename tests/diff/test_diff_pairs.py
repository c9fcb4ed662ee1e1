"""Version pairs the behavioural diff once missed: deny and bypass totals, converted currencies,
line conditions, a rewrite that changes nothing; and the CLI's exit codes and determinism.

Each pair starts from ``acme.yaml`` beside this file; the sentences are written out in full.
"""

from __future__ import annotations

import argparse
import json
import shutil
from decimal import Decimal

import pytest
from test_diff import BASE, DIRECTORY_TEXT, HERE, run_cli

from approvalrules import diff
from approvalrules.cli import diff as diff_cli
from approvalrules.engine import Order, check_ruleset, compile_ruleset, load_directory
from approvalrules.errors import DocumentError

DENY_MID = BASE.replace(
    "notifications:",
    "deny:\n  - {name: mid, when: {total: {gt: 2000, lt: 3000}}, reason: no mid orders}\n"
    "notifications:",
)
DENY_OPS = BASE.replace(
    "notifications:",
    "deny:\n  - {name: big-ops, when: {buyer_group: ops, total: {gte: 4000}}, reason: too big}\n"
    "notifications:",
)
BYPASS = BASE.replace(
    "notifications:", "bypass:\n  - {name: small, when: {total: {lte: 5000}}}\nnotifications:"
)
CONVERTED = BASE.replace("total: {gt: 500}", "total: {gt: 1000}").replace(
    "notifications:", "conversion: {EUR: 1.08}\nnotifications:"
)
LINE_COUNT = BASE.replace(
    "when: {buyer_group: ops}", "when: {buyer_group: ops, line_count: {gt: 3}}"
)

#: name -> (old text, new text, structural sentences, behavioural sentences)
PAIRS = {
    "deny added": (
        BASE,
        DENY_MID,
        [
            "deny rule mid added: blocks orders when total > 2000 and total < 3000 "
            "(reason 'no mid orders')"
        ],
        [
            (
                "orders over 2000 and below 3000 by buyers with role Master: "
                "approved -> blocked (denied)"
            ),
            "quote orders over 2000 and below 3000 by all buyers: blocked: reasons +denied",
            (
                "orders over 2000 and below 3000 by Marketing members and Ops members: "
                "pending -> blocked (denied)"
            ),
        ],
    ),
    "deny from 4000 for one group": (
        BASE,
        DENY_OPS,
        [
            "deny rule big-ops added: blocks orders when buyer group is ops and total >= 4000 "
            "(reason 'too big')"
        ],
        [
            "orders from 4000 by Ops members: pending -> blocked (denied)",
            "quote orders from 4000 by Ops members: blocked: reasons +denied",
            (
                "regular, bulk and subscription orders over 50000 by Ops members: "
                "blocked: reasons +denied"
            ),
        ],
    ),
    "bypass narrowed": (
        BYPASS,
        BYPASS.replace("lte: 5000", "lte: 3000"),
        ["bypass rule small: condition 'total <= 5000' -> 'total <= 3000'"],
        [
            "orders over 3000 up to 5000 by buyers with role Master: reasons -bypassed",
            "orders over 3000 up to 5000 by Marketing members and Ops members: approved -> pending",
        ],
    ),
    "conversion rate changed": (
        CONVERTED,
        CONVERTED.replace("EUR: 1.08", "EUR: 1.10"),
        ["conversion: EUR 1.08 -> 1.10"],
        [
            "orders in EUR from 909.10 up to 925.93 by Marketing members: approved -> pending",
            # the budget (50000) and the maximum (100000) move with the rate too
            (
                "orders in EUR over 45454.55 by buyers with role Master: "
                "approved -> blocked (budget_exceeded, currency_converted)"
            ),
            (
                "orders in EUR over 45454.55 by Marketing members and Ops members: "
                "pending -> blocked (budget_exceeded, currency_converted)"
            ),
            (
                "quote orders in EUR from 90909.10 and below 92592.60 by all buyers: "
                "blocked: reasons +max_order_total_exceeded"
            ),
            (
                "regular, bulk and subscription orders in EUR from 90909.10 and below 92592.60 "
                "by all buyers: blocked: reasons +max_order_total_exceeded -budget_exceeded"
            ),
        ],
    ),
    "line-count threshold raised": (
        LINE_COUNT,
        LINE_COUNT.replace("line_count: {gt: 3}", "line_count: {gt: 5}"),
        ["step ops: condition 'line count > 3' -> 'line count > 5'"],
        ["all orders with 4 to 5 lines by Ops members: pending -> approved"],
    ),
    "a rewrite that cancels out": (
        LINE_COUNT,
        LINE_COUNT.replace("line_count: {gt: 3}", "not: {line_count: {lt: 4}}"),
        [
            "step ops: condition 'buyer group is ops and line count > 3' -> "
            "'buyer group is ops and not line count < 4'"
        ],
        [],
    ),
}


@pytest.fixture(scope="module")
def directory():
    return load_directory(DIRECTORY_TEXT, "directories/acme.yaml")


@pytest.mark.parametrize("name", list(PAIRS))
def test_version_pair(name, directory):
    old_text, new_text, structural, behavioural = PAIRS[name]
    result = diff.diff_versions(old_text, new_text, directory)
    assert [c["text"] for c in result["structural"]] == structural
    assert sorted(c["text"] for c in result["behavioural"]["changes"]) == sorted(behavioural)
    assert result["changed"]["behaviour"] is bool(behavioural)
    # every dimension explored, and no note that one was not
    assert result["behavioural"]["unexplored"] == []
    assert not any("lines" in note for note in result["behavioural"]["notes"])


def test_evaluate_agrees_with_the_deny_band(directory):
    """The issue's case: evaluate at 2500 changes pending -> blocked; 2000 and 3000 do not."""
    old, new = compile_ruleset(BASE), compile_ruleset(DENY_MID)
    outcomes = {
        total: (
            old.evaluate(Order("bob", total), directory, now=diff.DEFAULT_NOW).outcome,
            new.evaluate(Order("bob", total), directory, now=diff.DEFAULT_NOW).outcome,
        )
        for total in (2000, 2500, 3000)
    }
    assert outcomes == {
        2000: ("pending", "pending"),
        2500: ("pending", "blocked"),
        3000: ("pending", "pending"),
    }


def test_conversion_band_edges_are_the_last_and_first_changing_cents(directory):
    old, new = compile_ruleset(CONVERTED), compile_ruleset(CONVERTED.replace("1.08", "1.10"))

    def outcome(policy, total):
        order = Order("bob", total, currency="EUR")
        return policy.evaluate(order, directory, now=diff.DEFAULT_NOW).outcome

    assert [outcome(old, Decimal(t)) for t in ("909.09", "909.10", "925.93", "925.94")] == [
        "approved",
        "approved",
        "approved",
        "pending",
    ]
    assert [outcome(new, Decimal(t)) for t in ("909.09", "909.10", "925.93", "925.94")] == [
        "approved",
        "pending",
        "pending",
        "pending",
    ]


def test_a_class_that_loses_a_member_says_whom(directory):
    """Dee's own orders differ from Cid's: Dee gets a class, the rest is named without her."""
    new = BASE.replace("notifications:", "").replace(
        "      required: 2\n",
        "      required: 2\n    - name: second\n      when: {buyer_group: ops}\n"
        "      approvers: {any_of: [{accounts: [dee]}]}\nnotifications:",
    )
    report = diff.behavioural_diff(compile_ruleset(BASE), compile_ruleset(new), directory)
    names = {c.name: c.members for c in report.classes}
    assert names["buyers with role Approver in Ops other than Dee"] == ["cid"]
    assert names["Dee (buyers with role Approver in Ops)"] == ["dee"]
    assert "buyers with role Approver in Ops" not in names
    assert not any("Approvers" in n or "Masters" in n for n in names)


# --------------------------------------------------------------------- CLI


@pytest.fixture
def folder(tmp_path):
    shutil.copy(HERE / "acme.yaml", tmp_path / "acme.yaml")
    (tmp_path / "directories").mkdir()
    (tmp_path / "directories" / "acme.yaml").write_text(DIRECTORY_TEXT, "utf-8")
    return tmp_path


def test_cli_deny_added_fails_the_gate(folder):
    (folder / "deny.yaml").write_text(DENY_MID, "utf-8")
    code, out, _ = run_cli(folder / "acme.yaml", folder / "deny.yaml")
    assert code == 1
    assert "  * quote orders over 2000 and below 3000 by all buyers: blocked: reasons +denied" in (
        out.splitlines()
    )
    assert (
        "  + deny rule mid added: blocks orders when total > 2000 and total < 3000 "
        "(reason 'no mid orders')  [deny[mid]]"
    ) in out.splitlines()


def test_cli_line_change_needs_no_replay(folder):
    (folder / "lines-old.yaml").write_text(LINE_COUNT, "utf-8")
    (folder / "lines-new.yaml").write_text(LINE_COUNT.replace("gt: 3}", "gt: 5}"), "utf-8")
    code, out, _ = run_cli(
        folder / "lines-old.yaml",
        folder / "lines-new.yaml",
        "--directory",
        folder / "directories" / "acme.yaml",
    )
    assert code == 1
    assert (
        "  * all orders with 4 to 5 lines by Ops members: pending -> approved" in out.splitlines()
    )
    assert "replay" not in out


def test_cli_exits_3_when_a_dimension_cannot_be_explored(folder):
    """Too many line tests to combine: no change found is not "no changes" (exit 3, not 0)."""
    skus = ", ".join(f"S{n}" for n in range(12))
    text = BASE.replace("when: {buyer_group: ops}", f"when: {{lines: {{sku: [{skus}]}}}}")
    (folder / "many.yaml").write_text(text, "utf-8")
    code, out, _ = run_cli(
        folder / "many.yaml",
        folder / "many.yaml",
        "--directory",
        folder / "directories" / "acme.yaml",
    )
    assert code == 3
    assert "behaviour: no changes found, but not everything was explored" in out
    assert any(line.startswith("  not explored: lines:") for line in out.splitlines())
    code, out, _ = run_cli(
        folder / "many.yaml",
        folder / "many.yaml",
        "--directory",
        folder / "directories" / "acme.yaml",
        "--format",
        "json",
    )
    assert code == 3 and json.loads(out)["behavioural"]["unexplored"]


def test_cli_json_is_byte_identical_run_to_run_replay_included(folder):
    (folder / "v2.yaml").write_text(BASE.replace("gt: 500}", "gt: 1000}"), "utf-8")
    orders = folder / "orders.jsonl"
    orders.write_text(
        "\n".join(json.dumps({"buyer": "bob", "total": t}) for t in range(100, 3000, 7)), "utf-8"
    )
    args = (folder / "acme.yaml", folder / "v2.yaml", "--format", "json", "--replay", orders)
    first, second = run_cli(*args), run_cli(*args)
    assert first[0] == 1 and first[1] == second[1]
    assert "seconds" not in json.loads(first[1])["replay"]
    # the time taken is for a reader: the text output shows it
    code, out, _ = run_cli(folder / "acme.yaml", folder / "v2.yaml", "--replay", orders)
    assert any(line.startswith("replay: ") and line.endswith(" s)") for line in out.splitlines())


def test_cli_help_documents_exit_codes():
    parser = argparse.ArgumentParser(prog="approvalrules diff")
    diff_cli.add_arguments(parser)
    text = parser.format_help()
    for code in (
        "0  no behaviour change",
        "1  behaviour changed",
        "2  error",
        "3  no change found",
    ):
        assert code in text


def test_a_restricted_product_is_explored_with_a_line_of_it(directory):
    """Restricted products are line tests too: the orders holding one are named."""
    new = BASE.replace("notifications:", "settings: {restricted_skus: [TNT-1]}\nnotifications:")
    report = diff.behavioural_diff(compile_ruleset(BASE), compile_ruleset(new), directory)
    assert (
        "all orders with a line with sku TNT-1 by Ops members: "
        "pending -> blocked (restricted_products)"
    ) in report.lines()
    assert all("TNT-1" in line for line in report.lines())


def test_a_version_published_before_a_stricter_check_can_still_be_diffed():
    """Amounts finer than cents were allowed once: such a stored version is still compared
    (its problem a warning), where a check of it as a new file refuses it."""
    finer = (
        "ruleset: purchasing\ncurrency: USD\nroles:\n"
        "  manager: {label: Manager, permissions: [approve_orders]}\n"
        "  user: {label: User, permissions: [place_orders]}\n"
        "approval:\n  steps:\n"
        "    - {name: mgr, when: {total: {gt: 100.125}}, approvers: {any_of: [{role: manager}]}}\n"
    )
    with pytest.raises(DocumentError):
        check_ruleset(finer, "old")
    result = diff.diff_versions(finer, finer.replace("100.125", "200"), None)
    assert result["structural"], result
