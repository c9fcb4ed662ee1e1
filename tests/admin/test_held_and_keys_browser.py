"""Held orders and API keys in a real browser (Debian's chromium through Playwright).

An editor lets one held order proceed and cancels another, each with a comment; an owner
creates a key (its secret shown once), rotates it and revokes it.  No page logs a console
error.  Screenshots go to /tmp/scopes-shots/ (or $APPROVALRULES_SHOTS) for a person to judge.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from approvalrules.store.models import Order
from approvalrules.store.services import find_api_key

from .test_browser import log_in, page, server  # noqa: F401  (fixtures: waitress, chromium)
from .test_held_and_access import hold

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("APPROVALRULES_SHOTS", "/tmp/scopes-shots"))


@pytest.fixture
def console(page):  # noqa: F811
    """Every console error and uncaught exception of the page, as text."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


def shot(page, name: str) -> None:  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def status_of(admin_db_path, order_id: str) -> str:
    engine = create_engine(f"sqlite:///{admin_db_path}")
    with Session(engine) as session:
        status = session.scalar(select(Order.status).where(Order.external_id == order_id))
    engine.dispose()
    return status


def test_an_editor_lets_one_held_order_proceed_and_cancels_another(
    page,  # noqa: F811
    console,
    admin_db_path,
):
    hold(admin_db_path, "E4b", 100)
    hold(admin_db_path, "E4-dup", 250)
    log_in(page)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Held orders").click()
    expect_heading = page.get_by_role("heading", name="Held orders")
    expect_heading.wait_for()
    rows = page.locator("#held-orders tbody tr")
    assert rows.count() == 2
    assert "100.00 USD" in rows.filter(has_text="E4b").inner_text()
    shot(page, "held-orders")

    row = rows.filter(has_text="E4b")
    row.get_by_label("Comment for the buyer").fill("Checked with the buyer by phone.")
    row.get_by_role("button", name="Let order E4b proceed").click()
    page.get_by_text("Order E4b may proceed: it is now approved.").wait_for()
    assert status_of(admin_db_path, "E4b") == "approved"

    row = page.locator("#held-orders tbody tr").filter(has_text="E4-dup")
    row.get_by_label("Comment for the buyer").fill("Duplicate of E4b.")
    row.get_by_role("button", name="Cancel order E4-dup").click()
    page.get_by_text("Order E4-dup is cancelled.").wait_for()
    page.get_by_text("No order is on hold.").wait_for()
    assert status_of(admin_db_path, "E4-dup") == "cancelled"
    shot(page, "held-orders-done")

    assert console == []


def test_an_owner_creates_rotates_and_revokes_a_key(page, console, admin_db_path):  # noqa: F811
    log_in(page, "olive", "owner-password")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API keys").click()
    page.get_by_role("heading", name="API keys").wait_for()
    page.get_by_label("Name").fill("QA remote diff")
    page.get_by_label("Scope").select_option("read_only")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("Key", exact=True).input_value()
    assert re.fullmatch(r"ar_[0-9a-f]{8}_[\w-]{40,}", secret)
    shot(page, "keys-created")
    prefix = secret.split("_")[1]

    page.goto("/admin/keys")  # the secret is never shown again
    assert secret not in page.content()
    row = page.locator(f"#key-{prefix}")
    assert "read-only" in row.inner_text() and "active" in row.inner_text()

    row.get_by_role("button", name=re.compile("^Rotate key")).click()
    rotated = page.get_by_label("Key", exact=True).input_value()
    assert rotated != secret
    new_prefix = rotated.split("_")[1]
    assert "revoked" in page.locator(f"#key-{prefix}").inner_text()

    page.locator(f"#key-{new_prefix}").get_by_role("button", name=re.compile("^Revoke")).click()
    page.get_by_text(f"Key {new_prefix} (QA remote diff) is revoked").wait_for()
    shot(page, "keys-revoked")
    engine = create_engine(f"sqlite:///{admin_db_path}")
    with Session(engine) as session:
        assert find_api_key(session, secret) is None and find_api_key(session, rotated) is None
    engine.dispose()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    page.get_by_label("Login").fill("nina")
    page.get_by_label("Password (at least 10 characters)").fill("a long password")
    page.get_by_label("Role", exact=True).select_option("viewer")
    page.get_by_role("button", name="Add user").click()
    page.get_by_text("Admin user nina (viewer) can now log in.").wait_for()
    shot(page, "users")
    assert console == []


def test_an_editor_has_no_keys_or_users_links(page, console):  # noqa: F811
    log_in(page)
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="API keys").count() == 0
    response = page.goto("/admin/keys")
    assert response.status == 403
    assert "may not do this" in page.content()
