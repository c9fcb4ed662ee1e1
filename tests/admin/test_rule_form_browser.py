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
