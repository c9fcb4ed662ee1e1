"""The rule form and drafts in a real browser (Debian's chromium, driven by Playwright).

A merchant picks approvers from a list, adds a step from a template, reorders and saves,
publishes; discards a draft; and, when a raised threshold breaks embedded tests, reviews
their updated expectations as a diff and saves them.  Every page is checked for console
errors, and the acme form for its first height at a laptop's width.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from .test_browser import CHROMIUM, _skip_reason, log_in, server  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None

#: where the tests leave screenshots to look at (``RULEFORM_SHOTS=/tmp/x pytest ...``)
SHOTS = Path(os.environ.get("RULEFORM_SHOTS", Path(__file__).parent / "screenshots"))


@pytest.fixture
def browser_page(server, request):  # noqa: F811 (the fixture above)
    """A laptop-sized page (1366 px wide) that records every console error and page error."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context(base_url=server, viewport={"width": 1366, "height": 768})
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.set_default_navigation_timeout(90_000)  # the first form compiles its templates
        page.console_errors = []
        page.on(
            "console",
            lambda m: page.console_errors.append(m.text) if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: page.console_errors.append(str(e)))
        yield page
        if getattr(request.node, "failed", False):
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / f"{request.node.name}.png"), full_page=True)
        context.close()
        browser.close()


#: what Chromium logs for a page answered 422 (a refused publish): the status is meant
REFUSED_PAGE = "Failed to load resource: the server responded with a status of 422"


def script_errors(page) -> list[str]:
    """The console errors of ``page`` other than the 422 of a refused publish."""
    return [e for e in page.console_errors if not e.startswith(REFUSED_PAGE)]


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_the_acme_form_is_short_and_error_free(browser_page):
    page = browser_page
    log_in(page)
    page.goto("/admin/rulesets/acme/form")
    height = page.evaluate("document.documentElement.scrollHeight")
    shot(page, "form-acme")
    assert height < 8000, height
    assert page.console_errors == []


def steps(page):
    return (
        page.locator(".deform-seq")
        .filter(has=page.locator("a.deform-seq-add", has_text="Add an empty step"))
        .first.locator(".step-card")
    )


def step_names(page) -> list[str]:
    return steps(page).locator("summary .step-name").all_inner_texts()


def test_pick_template_reorder_save_and_publish(browser_page):
    page = browser_page
    log_in(page)
    page.goto("/admin/rulesets/acme/form")
    assert step_names(page) == ["marketing", "ops"]

    # a step from the template: orders above 5000 need 2 approvals from Ann and the masters
    template = page.locator("fieldset.step-template")
    template.get_by_label("Orders above").fill("5000")
    template.get_by_label("need this many approvals").fill("2")
    template.get_by_label("Ann (ann)").check()
    template.get_by_label("Role: Master").check()
    shot(page, "form-template-filled")
    template.get_by_role("button", name="Add this step").click()
    expect(page.get_by_text("Step over-5000 added")).to_be_visible()
    assert step_names(page) == ["marketing", "ops", "over-5000"]
    expect(steps(page).nth(2).locator(".step-summary")).to_contain_text(
        "order total more than 5000 · 2 approvals · from Role: Master, Ann (ann)"
    )

    # reorder: the new step goes before ops
    steps(page).nth(2).locator(":scope > summary").click()
    steps(page).nth(2).get_by_role("button", name="Move up").click()
    assert step_names(page) == ["marketing", "over-5000", "ops"]

    # pick an approver from the list on an existing step
    ops = steps(page).nth(2)
    ops.locator(":scope > summary").click()
    ops.get_by_label("Dee (dee)").check()
    shot(page, "form-step-open")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_text("Draft saved.")).to_be_visible()
    assert step_names(page) == ["marketing", "over-5000", "ops"]

    page.goto("/admin/rulesets/acme/yaml")
    text = page.get_by_label("YAML of acme").input_value()
    names = re.findall(r"^    - name: (\S+)", text, re.M)
    assert names == ["marketing", "over-5000", "ops"]
    assert "when: {total: {gt: 5000}}" in text
    assert "approvers: {any_of: [{role: master}, {accounts: [ann]}]}" in text
    assert (
        "approvers: {any_of: [{relation: group_master}, {role: approver}, {accounts: [dee]}]}"
        in text
    )
    # the lines no one touched are the published ones, comments included
    assert text.startswith("# yaml-language-server: $schema=../schemas/ruleset.schema.json\n#\n")

    page.goto("/admin/rulesets/acme/form")
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_text("Published version 2 of acme.")).to_be_visible()
    assert page.console_errors == []


def test_discard_draft_asks_first(browser_page):
    page = browser_page
    log_in(page)
    page.goto("/admin/rulesets/acme/form")
    steps(page).first.locator(":scope > summary").click()
    steps(page).first.locator("input[name=when_amount]").fill("650")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_text("Draft saved.")).to_be_visible()

    page.goto("/admin/rulesets/acme")
    expect(page.get_by_text("There is an unpublished draft")).to_be_visible()
    questions = []
    page.once("dialog", lambda d: (questions.append(d.message), d.dismiss()))
    page.get_by_role("button", name="Discard draft").click()
    assert questions and questions[0].startswith("Discard the draft of acme?")
    expect(page.get_by_text("There is an unpublished draft")).to_be_visible()  # kept

    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Discard draft").click()
    expect(page.get_by_text("Draft discarded")).to_be_visible()
    expect(page.get_by_text("There is an unpublished draft")).to_have_count(0)
    page.goto("/admin/rulesets/acme/form")
    steps(page).first.locator(":scope > summary").click()
    expect(steps(page).first.locator("input[name=when_amount]")).to_have_value("500")
    assert page.console_errors == []


def test_failing_tests_updated_from_current_decisions_after_review(browser_page):
    page = browser_page
    log_in(page)
    page.goto("/admin/rulesets/acme/form")
    steps(page).first.locator(":scope > summary").click()
    steps(page).first.locator("input[name=when_amount]").fill("1000")
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_text("7 embedded test(s) fail")).to_be_visible()
    expect(page.locator("ul.failed-tests > li")).to_have_count(7)
    shot(page, "publish-tests-fail")
    page.get_by_role("button", name=re.compile("Update the expected outcomes of 7 test")).click()

    expect(page.get_by_role("heading", name="Rule set acme: update failing tests")).to_be_visible()
    expect(page.locator("ul.updated-tests li")).to_have_count(7)
    expect(page.locator("table.diff")).to_contain_text("approved")
    shot(page, "tests-update-review")
    page.get_by_role("button", name="Save as draft with these tests updated").click()
    expect(page.get_by_text("expected outcomes of 7 test(s) updated")).to_be_visible()

    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_text("Published version 2 of acme.")).to_be_visible()
    assert script_errors(page) == []


ADMIN_PAGES = (
    "/admin",
    "/admin/rulesets",
    "/admin/rulesets/acme",
    "/admin/rulesets/acme/form",
    "/admin/rulesets/tenant-default/form",
    "/admin/rulesets/acme/yaml",
    "/admin/rulesets/acme/versions",
    "/admin/rulesets/acme/versions/1",
    "/admin/rulesets/acme/diff",
    "/admin/directory/companies",
    "/admin/directory/companies/acme",
    "/admin/directory/accounts",
    "/admin/directory/accounts/ann",
    "/admin/directory/memberships",
    "/admin/directory/groups",
    "/admin/directory/assignments",
    "/admin/directory/delegations",
    "/admin/approvals",
    "/admin/evaluate",
    "/admin/audit",
)


def test_no_admin_page_logs_a_console_error(browser_page):
    page = browser_page
    log_in(page, "olive", "owner-password")
    for path in ADMIN_PAGES:
        response = page.goto(path)
        assert response.status == 200, path
        assert page.console_errors == [], (path, page.console_errors)
    # Deform's sequences work: their callbacks ran, adding an item runs no blocked script
    page.goto("/admin/rulesets/acme/form")
    page.locator("a.deform-seq-add", has_text="Add an empty step").click()
    page.locator("summary", has_text="Roles").click()
    page.locator("a.deform-seq-add", has_text="Add role").click()
    expect(page.locator(".step-card")).to_have_count(3)
    assert page.console_errors == []
