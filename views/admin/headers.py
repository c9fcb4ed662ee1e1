"""Security headers on every admin page, and a Content-Security-Policy that the admin keeps.

Scripts run only from our own origin or with the page's nonce. Our templates and Deform's
widget templates write a few inline ``<script>`` blocks; they are ours (every value Chameleon
puts in a page is escaped, so a visitor's text can never become a tag), so each gets the nonce
as the page leaves. Deform's sequence widget also writes two ``onclick`` attributes, which a
nonce cannot cover: they are allowed by their hashes (``'unsafe-hashes'``), read from Deform's
own templates at start-up so an upgrade of Deform that changes them cannot break the admin.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from pathlib import Path

import deform
from pyramid.events import NewResponse

#: where the admin lives: the headers go on these responses (and the pages below)
ADMIN_PREFIX = "/admin"
#: pages outside the admin that get the same headers: the home page, the API reference
OTHER_PAGES = ("/", "/api/v1/docs")

_INLINE_HANDLER = re.compile(rb'\son[a-z]+="([^"]*)"')
_SCRIPT_TAG = re.compile(rb"<script(?![^>]*\bnonce=)")


def _handler_hashes() -> tuple[str, ...]:
    """CSP hashes of the inline event handlers in Deform's widget templates."""
    folder = Path(deform.__file__).resolve().parent / "templates"
    handlers = {
        match.group(1)
        for template in sorted(folder.glob("*.pt"))
        for match in _INLINE_HANDLER.finditer(template.read_bytes())
    }
    return tuple(
        f"'sha256-{base64.b64encode(hashlib.sha256(handler).digest()).decode()}'"
        for handler in sorted(handlers)
    )


def content_security_policy(nonce: str, handler_hashes: tuple[str, ...]) -> str:
    """The admin's policy: own origin only, inline scripts by nonce, no framing, no plugins.

    ``'unsafe-eval'`` stays out: jQuery evaluates the scripts inside a Deform sequence item's
    prototype only when a widget inside it has a callback, which the admin's forms avoid.
    """
    scripts = " ".join(("'self'", f"'nonce-{nonce}'", "'unsafe-hashes'", *handler_hashes))
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src {scripts}",
            # Deform's widgets carry style attributes; styles cannot run code
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def csp_nonce(request) -> str:
    """A fresh nonce for this request's page (``request.csp_nonce``)."""
    return secrets.token_urlsafe(16)


def _is_admin_page(request) -> bool:
    # the raw WSGI path: request.path raises on a path that is not UTF-8 (refused with a 400)
    path = request.environ.get("PATH_INFO", "")
    return path in OTHER_PAGES or path.startswith(ADMIN_PREFIX)


def add_security_headers(event) -> None:
    """NewResponse subscriber: headers on admin pages, nonces on their inline scripts."""
    request, response = event.request, event.response
    if not _is_admin_page(request):
        return
    nonce = request.csp_nonce
    headers = response.headers
    headers["Content-Security-Policy"] = content_security_policy(
        nonce, request.registry.csp_handler_hashes
    )
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"
    if response.content_type == "text/html":
        body = response.body
        if b"<script" in body:
            response.body = _SCRIPT_TAG.sub(b'<script nonce="' + nonce.encode() + b'"', body)


def includeme(config) -> None:
    """Register the nonce and the subscriber (included by the admin's ``includeme``)."""
    config.registry.csp_handler_hashes = _handler_hashes()
    config.add_request_method(csp_nonce, "csp_nonce", reify=True)
    config.add_subscriber(add_security_headers, NewResponse)
