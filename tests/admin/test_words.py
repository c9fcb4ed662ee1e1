"""Admin pages show values in words: no Python repr, amounts with their currency's minor units."""

from __future__ import annotations

import re
from decimal import Decimal

from approvalrules.views.admin.words import money, payer, text

REPR = re.compile(r"\{'|'\}|': |\bNone\b|Decimal\(")


def test_stored_values_read_as_words():
    assert text({"previous": None}) == "previous: none"
    assert text({"reasons": ["approval_required"], "version": 3, "merchant_review": True}) == (
        "reasons: approval_required; version: 3; merchant review: yes"
    )
    assert text({"changes": {"sku": "A", "to": "2"}}) == "changes: (sku: A, to: 2)"
    assert text(Decimal("1000.0000")) == "1000"
    assert text([]) == "none" and text({}) == "none"


def test_payers_and_amounts_in_words():
    assert payer({"kind": "company", "id": "acme"}) == "the company acme (its billing account)"
    assert payer({"kind": "buyer", "id": "eve"}) == "the buyer eve"
    assert payer(None).startswith("nobody")
    assert money(Decimal("800.0000"), "USD") == "800.00 USD"
    assert money(Decimal("800.0000"), "JPY") == "800 JPY"
    assert money(None, "USD") == ""


def test_audit_details_and_totals_are_words_on_the_pages(owner):
    audit = owner.get("/admin/audit")
    details = [td.get_text() for td in audit.html.select("table.list tbody td:nth-of-type(5)")]
    assert any(d.strip() for d in details)
    for d in details:
        assert not REPR.search(d), d
    approvals = owner.get("/admin/approvals")
    assert "800.00 USD" in approvals.text and "800.0000" not in approvals.text
    link = approvals.html.select_one("a[href*='/admin/approvals/']")["href"]
    approval = owner.get(link)
    assert "800.00 USD" in approval.text and "800.0000" not in approval.text
