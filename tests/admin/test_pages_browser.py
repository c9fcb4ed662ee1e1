"""Every admin page in Chromium without a console error (pages found from the app's routes),
and the playground and the chain diagram as a merchant uses them."""

from __future__ import annotations

import os

import pytest

from .gallery import (
    CHROMIUM,
    CHROMIUM_ARGS,
    FILE,
    NOT_PAGES,
    ConsoleErrors,
    admin_get_routes,
    admin_pages,
    log_in,
    served,
    sync_playwright,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def browser_page(admin_app, fresh_db):
    """A logged-out Chromium page on the admin app, with its console errors collected."""
    if sync_playwright is None:
        pytest.skip("playwright is not installed: .venv/bin/pip install playwright")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with served(admin_app) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=base, viewport={"width": 1366, "height": 900})
        page = context.new_page()
        page.set_default_timeout(90_000)
        yield page, ConsoleErrors(page)
        context.close()
        browser.close()


def test_the_page_list_comes_from_the_apps_routes(admin_app):
    names = [name for name, _ in admin_pages(admin_app)]
    assert {"admin_rulesets", "admin_evaluate", "admin_outbox", "admin_company"} <= set(names)
    assert "admin_outbox_retry" not in names, "POST-only routes are not pages"
    assert "/admin/directory/companies/acme" in dict(admin_pages(admin_app)).values()
    routes = admin_get_routes(admin_app)
    not_pages = [name for name, pattern in routes if name in NOT_PAGES or FILE.search(pattern)]
    assert len(not_pages) <= 5, not_pages  # a new route is a page unless said otherwise
    assert len(names) == len(routes) - len(not_pages)


# Not marked slow: it is the proof that no admin page throws in a real browser, and no
# smaller version would prove it for every page.
def test_every_admin_page_opens_without_a_console_error(browser_page, admin_app):
    page, console = browser_page
    page.goto("/admin/login")
    log_in(page)
    opened = []
    for name, path in admin_pages(admin_app):
        response = page.goto(path)
        assert response is not None and response.ok, f"{name} {path}: {response.status}"
        opened.append(name)
    assert len(opened) >= 20
    assert not console.errors, "\n".join(console.errors)


def test_the_playground_picks_the_buyer_and_reads_in_words(browser_page):
    page, console = browser_page
    log_in(page)
    page.goto("/admin/evaluate")
    page.locator("select[name=buyer]").select_option("bob")
    page.locator("input[name=total]").fill("800")
    page.get_by_role("button", name="Evaluate").click()
    decision = page.locator("#decision")
    decision.wait_for()
    text = decision.inner_text()
    assert "Pending: the order waits for approval." in text
    assert "800.00 USD" in text and "the company acme (its billing account)" in text

    page.locator("select[name=buyer]").select_option("val")
    page.locator("input[name=total]").fill("10")
    page.get_by_role("button", name="Evaluate").click()
    text = page.locator("#decision").inner_text()
    assert "Blocked: the order cannot be placed." in text
    assert "No approval needed" not in text
    assert not console.errors, "\n".join(console.errors)


def test_the_diagram_draws_acmes_groups_as_branches(browser_page):
    page, console = browser_page
    log_in(page)
    page.goto("/admin/rulesets/acme")
    fork = page.locator("svg.chain g.branches")
    assert fork.count() == 1
    branches = fork.locator("g.branch[data-step]")
    assert branches.count() == 2
    marketing, ops = branches.nth(0).bounding_box(), branches.nth(1).bounding_box()
    assert marketing["width"] > 0 and ops["width"] > 0
    # side by side: the same height on the page, one beside the other
    assert abs(marketing["y"] - ops["y"]) < 40 and ops["x"] >= marketing["x"] + marketing["width"]
    words = " ".join(" ".join(fork.locator("text").all_text_contents()).split())
    assert "when buyer group is ops" in words and "none of these: no step" in words
    assert not console.errors, "\n".join(console.errors)
