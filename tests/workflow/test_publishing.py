"""Publishing: the rule set's own tests decide whether a text is published."""

from __future__ import annotations

import pytest

from approvalrules.errors import DocumentError, TestsFailed
from approvalrules.store import versions
from approvalrules.workflow import publishing

from .conftest import SHOP


def test_a_failing_embedded_test_blocks_the_publish_and_lists_the_test(session, shop):
    before = versions.active_version(session, shop.id, "shop")
    raised = SHOP.replace("gt: 500", "gt: 1000")  # 800 needs nobody now; its test says otherwise
    with pytest.raises(TestsFailed) as failed:
        publishing.publish(session, shop, "shop", raised, author="tests")
    assert failed.value.code == "tests_failed"
    [test] = failed.value.details["tests"]
    assert test["name"] == "800 needs the manager" and test["line"] == 13
    assert test["failures"][0].startswith("outcome: expected pending, got approved")
    assert [r.passed for r in failed.value.results] == [False, True]
    assert versions.active_version(session, shop.id, "shop").id == before.id
    assert len(versions.list_versions(session, shop.id, "shop")) == 1


def test_a_passing_text_is_published_and_the_draft_cleared(session, shop):
    raised = SHOP.replace("gt: 500", "gt: 1000").replace("total: 800}", "total: 1200}")
    versions.save_draft(session, shop.id, "shop", "ruleset: shop\n# half done\n", author="tests")
    published = publishing.publish(session, shop, "shop", raised, author="tests")
    assert published.version.number == 2 and [t.passed for t in published.tests] == [True, True]
    assert published.pending["mode"] == "keep"
    assert versions.get_ruleset(session, shop.id, "shop").draft_text is None


def test_a_text_naming_another_rule_set_is_refused(session, shop):
    with pytest.raises(DocumentError) as refused:
        publishing.publish(
            session, shop, "shop", SHOP.replace("ruleset: shop", "ruleset: x"), author="tests"
        )
    assert refused.value.code == "name_mismatch"
