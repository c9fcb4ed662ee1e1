"""Directory management in a real Chromium: each directory page's create, edit and deactivate
(or remove) flow, with zero console errors; and a merchant building Scenario A's Acme in an
empty tenant through the admin alone, which the storefront API then decides as in A2.

Screenshots of every step are saved under /tmp/diradmin-shots/ to look at.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from approvalrules.store.db import create_engine_for_url
from approvalrules.store.services import create_admin_user, ensure_api_key, ensure_tenant
from approvalrules.store.versions import publish

from .test_browser import _skip_reason, page, server  # noqa: F401 (fixtures)

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - depends on the environment
    expect = None

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path("/tmp/diradmin-shots")
SHOP_KEY = "ar_5e0f1a2b_" + "s" * 24


@pytest.fixture
def console_errors(page):  # noqa: F811 (the fixture imported above)
    """Every console error and uncaught exception of the page; the test asserts none."""
    errors: list[str] = []
    # the first visit of a page compiles its templates: slow on a busy machine
    page.set_default_timeout(60_000)
    expect.set_options(timeout=30_000)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield errors
    expect.set_options(timeout=5_000)


def shot(tab, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def log_in(tab, tenant="demo", login="eddie", password="editor-password"):
    tab.goto("/admin/login")
    tab.get_by_label("Tenant").fill(tenant)
    tab.get_by_label("Login").fill(login)
    tab.get_by_label("Password").fill(password)
    tab.get_by_role("button", name="Log in").click()
    expect(tab.get_by_role("heading", name="Rule sets")).to_be_visible()


def flash(tab):
    return tab.locator(".flash").first


def test_companies_create_edit_contacts_and_locations(page, console_errors):  # noqa: F811
    log_in(page)
    page.goto("/admin/directory/companies")
    form = page.locator("form#company-create")
    form.get_by_label("Company id", exact=True).fill("hooli")
    form.get_by_label("Name", exact=True).fill("Hooli")
    form.get_by_label("Parent company", exact=True).select_option("globex")
    form.get_by_role("button", name="Create company").click()
    expect(flash(page)).to_contain_text("Company Hooli (hooli) created.")
    expect(page.locator(".facts")).to_contain_text("inherited from the parent: globex")

    edit = page.locator("form#company-edit")
    edit.get_by_label("Name", exact=True).fill("Hooli Inc")
    edit.get_by_label("Rule set", exact=True).select_option("globex")
    edit.get_by_role("button", name="Save company").click()
    expect(page.get_by_role("heading", name=re.compile("Company Hooli Inc"))).to_be_visible()

    contact = page.locator("form#contact-add")
    contact.get_by_label("Account", exact=True).select_option("gia")
    contact.get_by_label("Contact for", exact=True).select_option("billing")
    contact.get_by_role("button", name="Add contact").click()
    expect(page.locator("table[aria-labelledby=contacts-title]")).to_contain_text("Billing contact")
    location = page.locator("form#location-save")
    location.get_by_label("Location id", exact=True).fill("hooli-hq")
    location.get_by_label("Name", exact=True).fill("Hooli HQ")
    location.get_by_label("Address", exact=True).fill("1 Hacker Way")
    location.get_by_role("button", name="Save location").click()
    locations = page.locator("table[aria-labelledby=locations-title]")
    expect(locations).to_contain_text("1 Hacker Way")
    shot(page, "company-hooli")
    page.get_by_role("button", name="Remove location hooli-hq").click()
    expect(flash(page)).to_contain_text("Location hooli-hq of hooli removed.")
    expect(page.locator("table[aria-labelledby=locations-title]")).to_have_count(0)

    page.goto("/admin/directory/companies/globex")
    expect(page.locator("table[aria-labelledby=contacts-title]")).to_contain_text("Gia")
    expect(page.locator("table[aria-labelledby=locations-title]")).to_contain_text(
        "Globex Warehouse"
    )
    shot(page, "company-globex")
    assert console_errors == []


def test_accounts_create_edit_deactivate_and_the_pending_rule(page, console_errors):  # noqa: F811
    log_in(page)
    page.goto("/admin/directory/accounts")
    form = page.locator("form#account-create")
    form.get_by_label("Account id", exact=True).fill("zoe")
    form.get_by_label("Name", exact=True).fill("Zoe")
    form.get_by_label("E-mail address", exact=True).fill("zoe@acme")
    form.get_by_role("button", name="Create account").click()
    expect(page.locator("form#account-create")).to_contain_text("name@example.com")
    page.locator("form#account-create").get_by_label("E-mail address", exact=True).fill(
        "zoe@acme.test"
    )
    page.locator("form#account-create").get_by_role("button", name="Create account").click()
    expect(flash(page)).to_contain_text("Account Zoe (zoe) created")

    edit = page.locator("form#account-edit")
    edit.get_by_label("Name", exact=True).fill("Zoe Zed")
    edit.get_by_label("Receives e-mail", exact=True).uncheck()
    edit.get_by_role("button", name="Save account").click()
    expect(page.locator(".facts")).to_contain_text("zoe@acme.test (off)")
    page.get_by_role("button", name="Deactivate account").click()
    expect(page.locator("#account-active")).to_contain_text("no")
    page.get_by_role("button", name="Activate account").click()
    expect(page.locator("#account-active")).to_have_text("yes")

    page.goto("/admin/directory/accounts/ann")
    page.get_by_role("button", name="Deactivate account").click()
    expect(flash(page)).to_contain_text("PO-800")
    expect(page.locator("#account-active")).to_have_text("yes")
    shot(page, "account-ann-refused")
    assert console_errors == []


def test_memberships_add_settings_and_deactivate(page, console_errors):  # noqa: F811
    log_in(page)
    page.goto("/admin/directory/memberships")
    form = page.locator("form#membership-create")
    form.get_by_label("Account", exact=True).select_option("rita")
    form.get_by_label("Company", exact=True).select_option("acme")
    role = form.get_by_label("Role", exact=True)
    expect(role.locator("option", has_text="Group Viewer (viewer)")).to_have_count(1)
    role.select_option("requisitioner")
    form.get_by_label("Purchasing group", exact=True).select_option("ops")
    form.get_by_role("button", name="Add membership").click()
    expect(flash(page)).to_contain_text("rita joined acme as requisitioner, group ops.")

    page.goto("/admin/directory/accounts/bill/memberships/abc1234")
    edit = page.locator("form#membership-edit")
    expect(edit.get_by_label("Maximum order value (USD)", exact=True)).to_have_value("5000")
    edit.get_by_label("Approves carts", exact=True).select_option("assigned")
    edit.get_by_label("No approval below (USD)", exact=True).fill("250")
    edit.get_by_label("Hold orders created", exact=True).select_option("yes")
    edit.get_by_label("Cost centres", exact=True).fill("CC-100\nCC-200")
    edit.get_by_role("button", name="Save membership").click()
    expect(flash(page)).to_contain_text("Membership of bill in abc1234 saved.")
    edit = page.locator("form#membership-edit")
    expect(edit.get_by_label("No approval below (USD)", exact=True)).to_have_value("250")
    expect(edit.get_by_label("Cost centres", exact=True)).to_have_value("CC-100\nCC-200")
    shot(page, "membership-bill")

    # an undefined role is refused on its field (a stale form): nothing saved
    edit.get_by_label("Role", exact=True).evaluate(
        "select => { select.add(new Option('Emperor', 'emperor')); select.value = 'emperor'; }"
    )
    edit.get_by_role("button", name="Save membership").click()
    expect(page.locator("form#membership-edit")).to_contain_text(
        "'emperor' is not defined by rule set 'abc1234'"
    )
    page.goto("/admin/directory/accounts/bill/memberships/abc1234")
    edit = page.locator("form#membership-edit")
    expect(edit.get_by_label("Role", exact=True)).to_have_value("shopper")
    edit.get_by_label("Status", exact=True).select_option("inactive")
    edit.get_by_role("button", name="Save membership").click()
    expect(page.locator("#membership-status")).to_have_text("Inactive")
    assert console_errors == []


def test_groups_create_move_members_rename_and_delete(page, console_errors):  # noqa: F811
    log_in(page)
    page.goto("/admin/directory/groups")
    form = page.locator("form#group-create")
    form.get_by_label("Company", exact=True).select_option("acme")
    form.get_by_label("Group id", exact=True).fill("sales")
    form.get_by_label("Name", exact=True).fill("Sales")
    form.get_by_role("button", name="Create group").click()
    expect(flash(page)).to_contain_text("Group Sales created in acme")

    member = page.locator("form#group-member")
    member.get_by_label("Account", exact=True).select_option("bob")
    member.get_by_role("button", name="Put in this group").click()
    refused = page.locator("form#group-member .item-move")
    expect(refused).to_contain_text("already in group 'marketing'")
    page.locator("form#group-member").get_by_label("Move from another group", exact=True).check()
    page.locator("form#group-member").get_by_role("button", name="Put in this group").click()
    expect(page.locator("#member-bob")).to_contain_text("Requisitioner")

    # Ann must still decide PO-800: the pending-orders rule keeps her, its message on the field
    member = page.locator("form#group-member")
    member.get_by_label("Account", exact=True).select_option("ann")
    member.get_by_label("Move from another group", exact=True).check()
    member.get_by_role("button", name="Put in this group").click()
    expect(page.locator("form#group-member .item-move")).to_contain_text("PO-800")
    shot(page, "group-sales-pending-rule")

    page.get_by_role("button", name="Take bob out of the group").click()
    expect(flash(page)).to_contain_text("bob left group sales")
    page.locator("form#group-edit").get_by_label("Name", exact=True).fill("Sales team")
    page.locator("form#group-edit").get_by_role("button", name="Save group").click()
    expect(page.get_by_role("heading", name=re.compile("Group Sales team"))).to_be_visible()
    page.locator("form#group-delete").get_by_role("button", name="Delete group").click()
    expect(flash(page)).to_contain_text("Group sales of acme deleted.")
    assert console_errors == []


def test_assignments_create_change_and_remove(page, console_errors):  # noqa: F811
    log_in(page)
    page.goto("/admin/directory/assignments")
    form = page.locator("form#assignment-save")
    form.get_by_label("Company", exact=True).select_option("abc1234")
    form.get_by_label("Approver", exact=True).select_option("jane")
    form.get_by_label("Approves for", exact=True).select_option("mary")
    form.get_by_label("Threshold", exact=True).fill("250")
    form.get_by_label("Approval limit", exact=True).fill("1000")
    form.get_by_role("button", name="Save assignment").click()
    expect(flash(page)).to_contain_text("jane approves for mary in abc1234.")
    row = page.locator("tr", has_text="mary").filter(has_text="jane")
    expect(row).to_contain_text("1,000.00 USD")
    row.get_by_role("link", name="Change").click()
    page.locator("form#assignment-save").get_by_label("Approval limit", exact=True).fill("2000")
    page.locator("form#assignment-save").get_by_role("button", name="Save assignment").click()
    row = page.locator("tr", has_text="mary").filter(has_text="jane")
    expect(row).to_contain_text("2,000.00 USD")
    shot(page, "assignments")
    row.get_by_role("button", name="Remove jane as approver of mary").click()
    expect(flash(page)).to_contain_text("jane no longer approves for mary in abc1234.")
    assert console_errors == []


# -- Scenario A built in the browser -------------------------------------------------------


@pytest.fixture
def empty_shop(admin_db_path, fresh_db):
    """Tenant ``shop``: the acme rule set published (and its parent), an owner, an API key;
    no company, account or group."""
    engine = create_engine_for_url(f"sqlite:///{admin_db_path}")
    with Session(engine) as session:
        shop = ensure_tenant(session, "shop", "Shop")
        for name in ("tenant-default", "acme"):
            publish(
                session, shop.id, name, "setup", text=(ROOT / "rules" / f"{name}.yaml").read_text()
            )
        create_admin_user(session, shop, "sam", "shop-owner-password", "owner")
        ensure_api_key(session, shop, SHOP_KEY)
        session.commit()
    engine.dispose()
    return "shop"


def create_account(tab, account_id, name, email):
    tab.goto("/admin/directory/accounts")
    form = tab.locator("form#account-create")
    form.get_by_label("Account id", exact=True).fill(account_id)
    form.get_by_label("Name", exact=True).fill(name)
    form.get_by_label("E-mail address", exact=True).fill(email)
    form.get_by_role("button", name="Create account").click()
    expect(flash(tab)).to_contain_text(f"({account_id}) created")


def join(tab, role, group=None, master=False):
    form = tab.locator("form#membership-add")
    form.get_by_label("Company", exact=True).select_option("acme")
    form.get_by_label("Role", exact=True).select_option(role)
    if group:
        form.get_by_label("Purchasing group", exact=True).select_option(group)
    if master:
        form.get_by_label("Master of the company", exact=True).check()
    form.get_by_role("button", name="Add to company").click()
    expect(flash(tab)).to_contain_text("joined acme")


def evaluate(server_url: str, order: dict, status: int = 200) -> dict:
    """POST /api/v1/evaluate as the shop's storefront; the body, after checking the status."""
    request = urllib.request.Request(
        f"{server_url}/api/v1/evaluate",
        data=json.dumps(order).encode(),
        headers={"Authorization": f"Bearer {SHOP_KEY}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            code, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        code, body = error.code, error.read()
    assert code == status, body[:500]
    return json.loads(body)


def approver_ids(step: dict) -> list[str]:
    entries = step.get("approvers") or step.get("eligible") or []
    return sorted(e if isinstance(e, str) else e.get("account") for e in entries)


def test_a_merchant_builds_acme_in_the_admin_and_bob_at_800_is_pending(
    page,  # noqa: F811
    server,  # noqa: F811
    empty_shop,
    console_errors,
):
    before = evaluate(server, {"id": "A2-before", "buyer": "bob", "total": 800}, status=422)
    assert "bob" in before["error"]["message"], "nothing of Acme exists yet"

    log_in(page, "shop", "sam", "shop-owner-password")
    page.goto("/admin/directory/companies")
    form = page.locator("form#company-create")
    form.get_by_label("Company id", exact=True).fill("acme")
    form.get_by_label("Name", exact=True).fill("Acme")
    form.get_by_label("Rule set", exact=True).select_option("acme")
    form.get_by_role("button", name="Create company").click()
    expect(flash(page)).to_contain_text("Company Acme (acme) created.")

    group = page.locator("form#group-create")
    group.get_by_label("Group id", exact=True).fill("marketing")
    group.get_by_label("Name", exact=True).fill("Marketing")
    group.get_by_role("button", name="Create group").click()
    expect(flash(page)).to_contain_text("Group Marketing created in acme")

    create_account(page, "acme-master", "Acme (master contact)", "purchasing@acme.test")
    join(page, "master", master=True)
    create_account(page, "ann", "Ann", "ann@acme.test")
    join(page, "approver", group="marketing")
    create_account(page, "bob", "Bob", "bob@acme.test")
    join(page, "requisitioner", group="marketing")

    page.goto("/admin/directory/companies/acme/groups/marketing")
    expect(page.locator(".facts")).to_contain_text("Acme (master contact)")
    expect(page.locator("#member-ann")).to_contain_text("Approver")
    expect(page.locator("#member-bob")).to_contain_text("Requisitioner")
    shot(page, "acme-marketing-built-in-the-admin")
    assert console_errors == []

    decision = evaluate(server, {"id": "A2-1", "buyer": "bob", "total": 800})
    assert decision["outcome"] == "pending"
    (step,) = decision["steps"]
    assert step["name"] == "marketing" and step["required"] == 1
    assert approver_ids(step) == ["acme-master", "ann"]
    assert evaluate(server, {"id": "A1-1", "buyer": "bob", "total": 200})["outcome"] == "approved"
