"""Every admin page carries the security headers, and its Content-Security-Policy fits the page."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

PAGES = [
    "/admin/rulesets",
    "/admin/rulesets/acme/form",
    "/admin/rulesets/acme/yaml",
    "/admin/rulesets/acme/chain.svg",
    "/admin/directory/delegations",
    "/admin/evaluate",
    "/admin/approvals",
]


def _policy(response) -> dict[str, str]:
    header = response.headers["Content-Security-Policy"]
    return dict(part.strip().partition(" ")[::2] for part in header.split(";"))


@pytest.mark.parametrize("url", PAGES)
def test_admin_pages_send_the_security_headers(owner, url):
    response = owner.get(url)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    policy = _policy(response)
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]


def test_the_login_page_is_covered_before_anyone_logs_in(app):
    response = app.get("/admin/login")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    "url", ["/admin/rulesets/acme/form", "/admin/evaluate", "/admin/directory/delegations"]
)
def test_every_inline_script_carries_the_pages_nonce(owner, url):
    response = owner.get(url)
    nonce = re.search(r"'nonce-([^']+)'", _policy(response)["script-src"]).group(1)
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", response.text)
    assert inline, "these pages run Deform, which writes inline scripts"
    assert all(f'nonce="{nonce}"' in attributes for attributes in inline)


def test_the_nonce_changes_with_every_page(owner):
    first = _policy(owner.get("/admin/rulesets"))["script-src"]
    second = _policy(owner.get("/admin/rulesets"))["script-src"]
    assert first != second


def test_deforms_inline_handlers_are_allowed_by_their_hashes(owner):
    response = owner.get("/admin/rulesets/acme/form")
    handlers = set(re.findall(r'\son[a-z]+="([^"]*)"', response.text))
    assert handlers, "the rule-set form has sequence widgets with add and remove buttons"
    script_src = _policy(response)["script-src"]
    for handler in handlers:
        digest = base64.b64encode(hashlib.sha256(handler.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in script_src, handler


def test_the_storefront_api_gets_no_admin_policy(app):
    response = app.get("/health")
    assert "Content-Security-Policy" not in response.headers
