"""The contract every :class:`~approvalrules.engine.directory.Directory` must keep.

Kinto-style: subclass :class:`DirectoryContract` in a test module, name the
subclass ``Test...`` and implement :meth:`DirectoryContract.make_directory`;
every test below then runs against that implementation.  The in-memory
directory (``tests/test_directory_memory.py``) and the SQL one on SQLite and
PostgreSQL (``tests/store/test_sql_directory.py``) run the same tests, which
is what proves they agree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .directory import Account, Assignment, Company, Directory, Group, Membership

#: a small org with every feature the directory exposes; ids are chosen so
#: that byte order and a database's collation would sort them differently
FIXTURE: dict[str, Any] = {
    "companies": {
        "acme": {
            "name": "Acme Corp",
            "ruleset": "acme-purchasing",
            "attributes": {"erp": "A-100", "tier": 2},
            "groups": {
                "ops": {"name": "Operations"},
                "Marketing": {"name": "Marketing"},
                "empty": {},
            },
        },
        "acme-labs": {"name": "Acme Labs", "parent": "acme"},
        "acme-labs-eu": {"name": "Acme Labs EU", "parent": "acme-labs", "ruleset": "labs-eu"},
        "zeta": {"name": "Zeta"},
    },
    "accounts": {
        "master": {
            "name": "Acme Master",
            "email": "master@acme.test",
            "memberships": [{"company": "acme", "role": "admin", "master": True, "default": True}],
        },
        "ann": {
            "name": "Ann",
            "email": "ann@acme.test",
            "memberships": [
                {
                    "company": "acme",
                    "role": "approver",
                    "group": "Marketing",
                    "settings": {"limit": 500},
                },
                {
                    "company": "zeta",
                    "role": "buyer",
                    "default": True,
                    "attributes": {"cost_centre": "Z1"},
                },
            ],
        },
        "Bob": {
            "name": "Bob",
            "email_enabled": False,
            "memberships": [{"company": "acme", "role": "requisitioner", "group": "Marketing"}],
        },
        "cid": {
            "name": "Cid",
            "memberships": [{"company": "acme", "role": "approver", "group": "ops"}],
        },
        "eve": {
            "name": "Eve",
            "memberships": [
                {"company": "acme", "role": "requisitioner", "group": "ops", "status": "invited"}
            ],
        },
        "gone": {
            "name": "Gone",
            "active": False,
            "memberships": [{"company": "acme-labs", "role": "buyer", "status": "inactive"}],
        },
        "xena": {
            "name": "Xena",
            "memberships": [
                {"company": "acme", "role": "buyer"},
                {"company": "zeta", "role": "buyer"},
            ],
        },
        "loner": {"name": "Loner"},
    },
    "assignments": [
        {"approver": "cid", "account": "eve", "company": "acme"},
        {
            "approver": "ann",
            "account": "Bob",
            "company": "acme",
            "threshold": 1000,
            "limit": "5000.50",
        },
        {
            "approver": "ann",
            "account": "Bob",
            "company": "acme",
            "threshold": 5000,
            "step": "finance",
        },
        {"approver": "master", "account": "Bob", "company": "acme", "limit": 999999.99},
        {"approver": "ann", "account": "xena", "company": "zeta"},
    ],
}


class DirectoryContract:
    """Tests every Directory implementation must pass; see the module docstring."""

    fixture: Mapping[str, Any] = FIXTURE

    def make_directory(self, data: Mapping[str, Any]) -> Directory:
        """Build the implementation under test from a fixture dict."""
        raise NotImplementedError

    @property
    def directory(self) -> Directory:
        cached = getattr(self, "_contract_directory", None)
        if cached is None:
            cached = self._contract_directory = self.make_directory(self.fixture)
        return cached

    # companies

    def test_company_fields(self):
        company = self.directory.company("acme")
        assert company == Company(
            id="acme", name="Acme Corp", ruleset="acme-purchasing", attributes=company.attributes
        )
        assert dict(company.attributes) == {"erp": "A-100", "tier": 2}

    def test_subsidiary_names_its_parent(self):
        assert self.directory.company("acme-labs").parent_id == "acme"
        assert self.directory.company("acme").parent_id is None

    def test_unknown_company_is_none(self):
        assert self.directory.company("nope") is None

    def test_company_chain_nearest_first(self):
        chain = self.directory.company_chain("acme-labs-eu")
        assert [c.id for c in chain] == ["acme-labs-eu", "acme-labs", "acme"]
        assert self.directory.company_chain("nope") == ()

    def test_ruleset_is_inherited_from_the_nearest_ancestor(self):
        assert self.directory.ruleset_name_for("acme-labs") == "acme-purchasing"
        assert self.directory.ruleset_name_for("acme-labs-eu") == "labs-eu"
        assert self.directory.ruleset_name_for("zeta") is None

    # accounts

    def test_account_fields(self):
        assert self.directory.account("ann") == Account(id="ann", name="Ann", email="ann@acme.test")
        bob = self.directory.account("Bob")
        assert (bob.email, bob.email_enabled, bob.active) == (None, False, True)
        assert self.directory.account("gone").active is False

    def test_unknown_account_is_none(self):
        assert self.directory.account("nobody") is None

    def test_account_ids_sorted_and_complete(self):
        ids = self.directory.account_ids()
        assert list(ids) == sorted(ids)
        assert {"ann", "Bob", "gone"} <= set(ids)
        assert all(self.directory.account(i) is not None for i in ids)

    # memberships

    def test_memberships_of_account_ordered_by_company(self):
        memberships = self.directory.memberships_of_account("ann")
        assert [m.company_id for m in memberships] == ["acme", "zeta"]
        acme, zeta = memberships
        assert (acme.role, acme.group, acme.master, acme.default, acme.status) == (
            "approver",
            "Marketing",
            False,
            False,
            "active",
        )
        assert dict(acme.settings) == {"limit": 500} and dict(acme.attributes) == {}
        assert zeta.default is True and dict(zeta.attributes) == {"cost_centre": "Z1"}

    def test_memberships_of_company_ordered_by_account_in_any_status(self):
        memberships = self.directory.memberships_of_company("acme")
        assert [m.account_id for m in memberships] == sorted(
            ["master", "ann", "Bob", "cid", "eve", "xena"]
        )
        statuses = {m.account_id: m.status for m in memberships}
        assert statuses["eve"] == "invited"
        assert [m.active for m in memberships if m.account_id == "eve"] == [False]

    def test_master_membership(self):
        (membership,) = self.directory.memberships_of_account("master")
        assert membership.master is True and membership.group is None and membership.default is True

    def test_unknown_ids_give_empty_tuples(self):
        assert self.directory.memberships_of_account("nobody") == ()
        assert self.directory.memberships_of_account("loner") == ()
        assert self.directory.memberships_of_company("nope") == ()
        assert self.directory.groups_of_company("nope") == ()
        assert self.directory.assignments_for("nobody", "acme") == ()
        assert self.directory.assignments_by("ann", "nope") == ()

    def test_membership_in_named_company(self):
        assert self.directory.membership("ann", "zeta").role == "buyer"
        assert self.directory.membership("ann", "acme-labs") is None

    def test_membership_default_resolution(self):
        assert self.directory.membership("ann").company_id == "zeta"  # flagged default
        assert self.directory.membership("cid").company_id == "acme"  # the only one
        assert self.directory.membership("xena") is None  # two, none flagged
        assert self.directory.membership("loner") is None

    # groups

    def test_groups_of_company_ordered_by_id(self):
        groups = self.directory.groups_of_company("acme")
        assert [g.id for g in groups] == sorted(["ops", "Marketing", "empty"])
        assert Group(id="ops", company_id="acme", name="Operations") in groups
        assert [g.name for g in groups if g.id == "empty"] == ["empty"]
        assert self.directory.groups_of_company("zeta") == ()

    # assignments

    def test_assignments_for_account(self):
        assignments = self.directory.assignments_for("Bob", "acme")
        assert [(a.approver_id, a.step) for a in assignments] == [
            ("ann", None),
            ("ann", "finance"),
            ("master", None),
        ]
        plain, finance, master = assignments
        assert plain.threshold == Decimal("1000") and plain.limit == Decimal("5000.50")
        assert finance.threshold == Decimal("5000") and finance.limit is None
        assert master.limit == Decimal("999999.99") and master.threshold is None
        assert all(isinstance(a.threshold, (Decimal, type(None))) for a in assignments)

    def test_assignments_are_per_company(self):
        assert self.directory.assignments_for("xena", "acme") == ()
        assert self.directory.assignments_for("xena", "zeta") == (
            Assignment("ann", "xena", "zeta"),
        )

    def test_assignments_by_approver(self):
        assignments = self.directory.assignments_by("ann", "acme")
        assert [(a.account_id, a.step) for a in assignments] == [("Bob", None), ("Bob", "finance")]
        assert [a.account_id for a in self.directory.assignments_by("cid", "acme")] == ["eve"]

    # records

    def test_records_are_immutable(self):
        company = self.directory.company("acme")
        membership = self.directory.memberships_of_account("ann")[0]
        for record, field in (
            (company, "name"),
            (membership, "role"),
            (self.directory.account("ann"), "email"),
        ):
            try:
                setattr(record, field, "x")
            except dataclasses.FrozenInstanceError:
                pass
            else:  # pragma: no cover - the failure case
                raise AssertionError(f"{type(record).__name__}.{field} could be changed")
        try:
            company.attributes["erp"] = "changed"  # type: ignore[index]
        except TypeError:
            pass
        else:  # pragma: no cover
            raise AssertionError("company attributes could be changed")
        assert isinstance(membership, Membership)

    def test_same_answer_twice(self):
        assert self.directory.memberships_of_company(
            "acme"
        ) == self.directory.memberships_of_company("acme")
        assert self.directory.company("acme") == self.directory.company("acme")
