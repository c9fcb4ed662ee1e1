"""The API reference page (/api/v1/docs) in a real browser, cut off from every other host.

Swagger UI's assets come from the app itself: the page must render the served OpenAPI
document with every path, and the browser console must stay free of errors (a CSP
violation, a missing asset or a blocked outside request would each log one).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .test_browser import page, server  # noqa: F401  (fixtures: the app in waitress, chromium)

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("APPROVALRULES_SHOTS", "/tmp/integrators-shots"))


def test_the_reference_page_lists_every_path_offline(page, server):  # noqa: F811
    outside: list[str] = []

    def local_only(route):
        if route.request.url.startswith(server):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", local_only)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    response = page.goto("/api/v1/docs")
    assert response.status == 200
    assert (
        "'unsafe-inline'"
        not in response.headers["content-security-policy"]
        .split("script-src", 1)[1]
        .split(";", 1)[0]
    )
    document = page.request.get("/api/v1/openapi.json").json()
    # every path, and every webhook (Swagger UI lists them under their event type)
    expected = {
        (method.upper(), name)
        for section in ("paths", "webhooks")
        for name, item in document[section].items()
        for method in item
    }
    assert len(document["webhooks"]) >= 14
    # Swagger UI renders the whole document at once: slow on a busy machine
    page.locator(".opblock").first.wait_for(timeout=60_000)
    shown = page.eval_on_selector_all(
        ".opblock",
        """blocks => blocks.map(b => [
            b.querySelector('.opblock-summary-method').textContent.trim(),
            b.querySelector('.opblock-summary-path').dataset.path])""",
    )
    assert {tuple(pair) for pair in shown} == expected
    assert len(shown) == len(expected)
    assert page.get_by_text("Three main flows").is_visible()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "api-docs.png"))
    assert outside == []
    assert problems == []


def test_the_home_page_links_to_the_reference(page):  # noqa: F811
    page.goto("/")
    page.get_by_role("link", name="API reference").click()
    page.wait_for_url("**/api/v1/docs")
