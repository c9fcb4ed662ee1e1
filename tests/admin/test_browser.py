"""The admin in a real browser (Debian's chromium, driven by Playwright).

Serves the app with waitress on a free local port, logs in, changes a
threshold in the rule form, sees the validation error, fixes it,
publishes, opens the diff, then adds and removes a step with deform's
sequence widget (JavaScript).  A failing test leaves a screenshot under
tests/admin/screenshots/.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).parent / "screenshots"

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None


def _skip_reason() -> str | None:
    if sync_playwright is None:
        return (
            "playwright is not installed: .venv/bin/pip install playwright "
            "(never `playwright install`)"
        )
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing: apt-get install -y chromium"
    return None


@pytest.fixture
def server(admin_app, fresh_db):
    """The admin app on http://127.0.0.1:<free port>, in a thread."""
    from waitress.server import create_server

    httpd = create_server(admin_app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=httpd.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.effective_port}"
    httpd.close()
    thread.join(timeout=5)


@pytest.fixture
def page(server, request):
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context(
            base_url=server, viewport={"width": 1024, "height": 768}
        )  # a tablet, landscape
        page = context.new_page()
        page.set_default_timeout(10_000)
        yield page
        if getattr(request.node, "failed", False):
            SCREENSHOTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
        context.close()
        browser.close()


def log_in(page, login="eddie", password="editor-password"):
    page.goto("/admin/login")
    page.get_by_label("Tenant").fill("demo")
    page.get_by_label("Login").fill(login)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Rule sets")).to_be_visible()


def steps_sequence(page):
    return (
        page.locator("div.deform-seq")
        .filter(has=page.locator("a.deform-seq-add", has_text="Add an empty step"))
        .first
    )


def test_threshold_error_fix_publish_and_diff(page):
    log_in(page)
    page.goto("/admin/rulesets/acme/form")
    marketing = steps_sequence(page).locator(".step-card").first
    marketing.locator(":scope > summary").click()
    amount = marketing.locator("input[name=when_amount]")
    expect(amount).to_have_value("500")

    amount.fill("5x0")
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_text("nothing was published or saved")).to_be_visible()
    error = page.locator(".invalid-feedback, .error").filter(has_text="an amount, e.g. 500")
    expect(error.first).to_be_visible()

    steps_sequence(page).locator("input[name=when_amount]").first.fill("600")
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_text("Published version 2 of acme.")).to_be_visible()
    expect(page.locator("svg.chain")).to_contain_text("total > 600")

    page.get_by_role("navigation", name="Rule set").get_by_role("link", name="Diff").click()
    expect(page.get_by_role("heading", name=re.compile("version 1 .* version 2"))).to_be_visible()
    expect(page.locator("table.diff")).to_contain_text("600")
    expect(page.get_by_role("heading", name="What changes in decisions")).to_be_visible()


def test_add_and_remove_a_step_with_the_sequence_widget(page):
    log_in(page)
    page.goto("/admin/rulesets/acme/form")
    steps = steps_sequence(page)
    expect(steps.locator(".deform-seq-item")).to_have_count(2)
    steps.locator("a.deform-seq-add", has_text="Add an empty step").click()
    expect(steps.locator(".deform-seq-item")).to_have_count(3)
    new_step = steps.locator(".deform-seq-item").nth(2)
    new_step.locator("input[name=name]").fill("big-orders")
    new_step.locator("select[name=when_measure]").select_option("total")
    new_step.locator("input[name=when_amount]").fill("20000")
    new_step.get_by_label("A master of the company").check()
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_text("Draft saved.")).to_be_visible()

    page.goto("/admin/rulesets/acme/yaml")
    text = page.get_by_label("YAML of acme").input_value()
    assert "- name: big-orders" in text and "{total: {gt: 20000}}" in text

    page.goto("/admin/rulesets/acme/form")
    steps = steps_sequence(page)
    expect(steps.locator(".deform-seq-item")).to_have_count(3)
    steps.locator(".deform-seq-item").nth(2).locator(":scope > summary").click()
    steps.locator(".deform-seq-item").nth(2).get_by_role(
        "button", name=re.compile("^Remove")
    ).click()
    expect(steps.locator(".deform-seq-item")).to_have_count(2)
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_text("No change from the published version")).to_be_visible()
    page.goto("/admin/rulesets/acme/yaml")
    text = page.get_by_label("YAML of acme").input_value()
    assert "big-orders" not in text and "- name: ops" in text
