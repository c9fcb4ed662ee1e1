"""The org facts an evaluation needs, behind one interface.

The engine never reaches into a database: it asks a :class:`Directory` for
companies, accounts, memberships, groups and assignments.  This module holds
the interface, the immutable records it returns, and :class:`MemoryDirectory`,
built from a YAML/dict fixture, which the engine's tests and the CLI use.  The
store supplies a SQL implementation of the same interface, and
``approvalrules.engine.directory_contract`` holds the contract tests both must pass.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from ..errors import DirectoryError
from .money import parse_amount

EMPTY: Mapping[str, Any] = MappingProxyType({})

#: membership statuses; only ``active`` memberships relate an account to its
#: company and group (an invited member's orders have no relation to the group).
MEMBERSHIP_STATUSES = ("active", "invited", "declined", "inactive")


@dataclass(frozen=True, slots=True)
class Company:
    """A B2B customer of the tenant; ``parent_id`` links a subsidiary."""

    id: str
    name: str
    parent_id: str | None = None
    ruleset: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=lambda: EMPTY)


@dataclass(frozen=True, slots=True)
class Account:
    """A person who orders or approves."""

    id: str
    name: str
    email: str | None = None
    email_enabled: bool = True
    active: bool = True


@dataclass(frozen=True, slots=True)
class Membership:
    """Account x company: role, group, master flag and per-membership settings.

    ``settings`` holds only what this membership overrides; the rule set and
    the group supply the rest (see ``Policy.effective_settings``).
    """

    account_id: str
    company_id: str
    role: str
    group: str | None = None
    master: bool = False
    default: bool = False
    status: str = "active"
    settings: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    attributes: Mapping[str, Any] = field(default_factory=lambda: EMPTY)

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True, slots=True)
class Group:
    """A purchasing group inside a company; its settings live in the rule set."""

    id: str
    company_id: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class Assignment:
    """Approver -> account within a company.

    ``threshold``: orders above it need this approver (spending-limit tiers);
    ``limit``: the most this approver may approve for that account;
    ``step``: restricts the assignment to one named approval step.
    """

    approver_id: str
    account_id: str
    company_id: str
    threshold: Decimal | None = None
    limit: Decimal | None = None
    step: str | None = None


@dataclass(frozen=True, slots=True)
class Delegation:
    """Out of office: ``delegate`` approves for ``delegator`` between two dates.

    From ``valid_from`` to ``valid_until``, both inclusive.
    ``company`` / ``step`` optionally restrict the delegation to one company
    or one named approval step.
    """

    delegator_id: str
    delegate_id: str
    valid_from: date
    valid_until: date
    company_id: str | None = None
    step: str | None = None

    def active_on(self, day: date) -> bool:
        return self.valid_from <= day <= self.valid_until


@dataclass(frozen=True, slots=True)
class Contact:
    """An account assigned to a company as its ``primary``, ``billing`` or ``logistics`` contact."""

    company_id: str
    account_id: str
    kind: str


@dataclass(frozen=True, slots=True)
class Location:
    """A physical location of a company (a site, a warehouse): an id, a name, an address."""

    company_id: str
    id: str
    name: str = ""
    address: str = ""


#: the kinds of company contact (Emporix's contact assignments)
CONTACT_KINDS = ("primary", "billing", "logistics")

#: at most this many hops of delegation are followed (joe -> ann -> bob -> cid)
MAX_DELEGATION_DEPTH = 3


class Directory(abc.ABC):
    """Read-only org facts for one tenant.

    Every method returns immutable records; implementations may cache.
    Methods return ``None`` or an empty tuple for unknown ids rather than
    raising, so the engine can explain a missing fact in its decision.
    """

    @abc.abstractmethod
    def company(self, company_id: str) -> Company | None:
        """The company with this id, or None."""

    @abc.abstractmethod
    def account(self, account_id: str) -> Account | None:
        """The account with this id, or None."""

    @abc.abstractmethod
    def account_ids(self) -> tuple[str, ...]:
        """Every account id, sorted: what QA's behavioural diff enumerates."""

    @abc.abstractmethod
    def memberships_of_account(self, account_id: str) -> tuple[Membership, ...]:
        """Every membership of the account, in any status."""

    @abc.abstractmethod
    def memberships_of_company(self, company_id: str) -> tuple[Membership, ...]:
        """Every membership in the company, in any status, ordered by account id."""

    @abc.abstractmethod
    def groups_of_company(self, company_id: str) -> tuple[Group, ...]:
        """The company's purchasing groups, ordered by id."""

    @abc.abstractmethod
    def assignments_for(self, account_id: str, company_id: str) -> tuple[Assignment, ...]:
        """Assignments whose ``account_id`` is this account within this company."""

    @abc.abstractmethod
    def assignments_by(self, approver_id: str, company_id: str) -> tuple[Assignment, ...]:
        """Assignments whose approver is this account within this company."""

    def delegations_of(self, delegator_id: str) -> tuple[Delegation, ...]:
        """Delegations whose delegator is this account, in any period.

        Not abstract: a directory without delegation facts (the SQL store,
        until it has a table for them) has none.
        """
        return ()

    # Derived facts: one definition here, shared by every implementation.

    def membership(self, account_id: str, company_id: str | None = None) -> Membership | None:
        """The account's membership in ``company_id``, or its default one.

        With no company named, the membership flagged ``default`` wins; an
        account with a single membership needs no flag.
        """
        memberships = self.memberships_of_account(account_id)
        if company_id is not None:
            for membership in memberships:
                if membership.company_id == company_id:
                    return membership
            return None
        for membership in memberships:
            if membership.default:
                return membership
        return memberships[0] if len(memberships) == 1 else None

    def company_chain(self, company_id: str) -> tuple[Company, ...]:
        """The company and its ancestors, nearest first (cycles are cut)."""
        chain: list[Company] = []
        seen: set[str] = set()
        current = self.company(company_id)
        while current is not None and current.id not in seen:
            chain.append(current)
            seen.add(current.id)
            current = self.company(current.parent_id) if current.parent_id else None
        return tuple(chain)

    def ruleset_name_for(self, company_id: str) -> str | None:
        """The rule set governing a company: its own, else the nearest ancestor's."""
        for company in self.company_chain(company_id):
            if company.ruleset:
                return company.ruleset
        return None


class MemoryDirectory(Directory):
    """A directory held in memory, indexed once at construction."""

    def __init__(
        self,
        companies: Iterable[Company] = (),
        accounts: Iterable[Account] = (),
        memberships: Iterable[Membership] = (),
        groups: Iterable[Group] = (),
        assignments: Iterable[Assignment] = (),
        delegations: Iterable[Delegation] = (),
        contacts: Iterable[Contact] = (),
        locations: Iterable[Location] = (),
    ) -> None:
        # kept for whoever reads the fixture back; no evaluation depends on them
        self.contacts: tuple[Contact, ...] = tuple(contacts)
        self.locations: tuple[Location, ...] = tuple(locations)
        self._companies = {c.id: c for c in companies}
        self._accounts = {a.id: a for a in accounts}
        self._memberships_by_account: dict[str, list[Membership]] = {}
        self._memberships_by_company: dict[str, list[Membership]] = {}
        for m in memberships:
            self._memberships_by_account.setdefault(m.account_id, []).append(m)
            self._memberships_by_company.setdefault(m.company_id, []).append(m)
        self._groups: dict[str, list[Group]] = {}
        for g in groups:
            self._groups.setdefault(g.company_id, []).append(g)
        self._assignments_for: dict[tuple[str, str], list[Assignment]] = {}
        self._assignments_by: dict[tuple[str, str], list[Assignment]] = {}
        for a in assignments:
            self._assignments_for.setdefault((a.account_id, a.company_id), []).append(a)
            self._assignments_by.setdefault((a.approver_id, a.company_id), []).append(a)
        self._delegations: dict[str, list[Delegation]] = {}
        for d in delegations:
            self._delegations.setdefault(d.delegator_id, []).append(d)
        self._freeze()

    def _freeze(self) -> None:
        def frozen(index, key):
            return {k: tuple(sorted(v, key=key)) for k, v in index.items()}

        self._memberships_by_account = frozen(self._memberships_by_account, lambda m: m.company_id)
        self._memberships_by_company = frozen(self._memberships_by_company, lambda m: m.account_id)
        self._groups = frozen(self._groups, lambda g: g.id)
        by_pair = lambda a: (a.approver_id, a.account_id, a.step or "")  # noqa: E731
        self._assignments_for = frozen(self._assignments_for, by_pair)
        self._assignments_by = frozen(self._assignments_by, by_pair)
        self._delegations = frozen(
            self._delegations,
            lambda d: (d.delegate_id, d.valid_from, d.company_id or "", d.step or ""),
        )

    def company(self, company_id):
        return self._companies.get(company_id)

    def account(self, account_id):
        return self._accounts.get(account_id)

    def account_ids(self):
        return tuple(sorted(self._accounts))

    def memberships_of_account(self, account_id):
        return self._memberships_by_account.get(account_id, ())

    def memberships_of_company(self, company_id):
        return self._memberships_by_company.get(company_id, ())

    def groups_of_company(self, company_id):
        return self._groups.get(company_id, ())

    def assignments_for(self, account_id, company_id):
        return self._assignments_for.get((account_id, company_id), ())

    def assignments_by(self, approver_id, company_id):
        return self._assignments_by.get((approver_id, company_id), ())

    def delegations_of(self, delegator_id):
        return self._delegations.get(delegator_id, ())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MemoryDirectory:
        """Build from the fixture format of ``schemas/directory.schema.json``.

        The caller validates ``data`` against the schema first (see
        ``approvalrules.engine.schema.check_directory``); this only converts.
        """
        return cls(**records_from_dict(data))


#: (code, message, path) of one problem of a directory fixture; the path as a tuple of keys
#: and indexes, so that a loader can name its line
StructureProblem = tuple[str, str, tuple]


def structure_problems(data: Mapping[str, Any]) -> list[StructureProblem]:
    """What the directory schema cannot say, every problem at once (the data passed the
    schema): a company that is its own parent or an ancestor of itself, an account with more
    than one default membership, delegation dates that are not dates or end before they
    start."""
    problems: list[StructureProblem] = []
    companies = data.get("companies") or {}
    problems.extend(_parent_cycles(companies))
    for account_id, account in (data.get("accounts") or {}).items():
        defaults = [
            (index, m["company"])
            for index, m in enumerate((account or {}).get("memberships") or ())
            if m.get("default")
        ]
        if len(defaults) > 1:
            first = defaults[0][1]
            for index, company in defaults[1:]:
                problems.append(
                    (
                        "several_defaults",
                        f"account {account_id!r} already has {first!r} as its default "
                        f"membership; {company!r} cannot be a default too: keep "
                        "`default: true` on one membership only",
                        ("accounts", account_id, "memberships", index, "default"),
                    )
                )
    for index, d in enumerate(data.get("delegations") or ()):
        days = {}
        for key in ("valid_from", "valid_until"):
            try:
                days[key] = date.fromisoformat(str(d[key]))
            except ValueError:
                problems.append(
                    (
                        "invalid_date",
                        f"{d[key]!r} is not a date: write a calendar date like 2026-12-24 "
                        "(year-month-day)",
                        ("delegations", index, key),
                    )
                )
        if len(days) == 2 and days["valid_until"] < days["valid_from"]:
            problems.append(
                (
                    "invalid_delegation",
                    f"valid_until {days['valid_until']} is before valid_from "
                    f"{days['valid_from']}: the delegation would never hold; swap the dates",
                    ("delegations", index, "valid_until"),
                )
            )
    return problems


def _parent_cycles(companies: Mapping[str, Any]) -> list[StructureProblem]:
    """A company that names itself as parent, and each loop of parents, once."""
    parent_of = {cid: (c or {}).get("parent") for cid, c in companies.items()}
    problems: list[StructureProblem] = []
    seen_loops: set[frozenset] = set()
    for start in companies:
        if parent_of[start] == start:
            problems.append(
                (
                    "company_cycle",
                    f"company {start!r} names itself as its parent: remove `parent`, or name "
                    "the company above it",
                    ("companies", start, "parent"),
                )
            )
            continue
        path, current = [], start
        while current in parent_of and current not in path:
            path.append(current)
            current = parent_of[current]
        if current != start or len(path) < 2:
            continue  # no loop, or a loop further up that its own members report
        loop = frozenset(path)
        if loop in seen_loops:
            continue
        seen_loops.add(loop)
        problems.append(
            (
                "company_cycle",
                f"companies form a loop of parents: {' -> '.join(path + [start])}; a company "
                "cannot be above itself: remove one of these parents",
                ("companies", start, "parent"),
            )
        )
    return problems


def records_from_dict(data: Mapping[str, Any]) -> dict[str, list]:
    """Convert a directory fixture into lists of records, keyed like MemoryDirectory's arguments.

    Shared by the in-memory directory and the store's importer so both read
    fixtures identically.  Raises :class:`DirectoryError` for the first of
    :func:`structure_problems` (``approvalrules.engine.schema.check_directory`` reports all
    of them, with lines, first).
    """
    for code, message, path in structure_problems(data)[:1]:
        raise DirectoryError(code, message, path=".".join(map(str, path)))
    companies, accounts, memberships, groups, assignments = [], [], [], [], []
    contacts, locations = [], []
    for company_id, c in (data.get("companies") or {}).items():
        companies.append(
            Company(
                id=company_id,
                name=c.get("name", company_id),
                parent_id=c.get("parent"),
                ruleset=c.get("ruleset"),
                attributes=MappingProxyType(dict(c.get("attributes") or {})),
            )
        )
        for group_id, g in (c.get("groups") or {}).items():
            groups.append(
                Group(id=group_id, company_id=company_id, name=(g or {}).get("name", group_id))
            )
        contacts.extend(
            Contact(company_id=company_id, account_id=x["account"], kind=x["kind"])
            for x in c.get("contacts") or ()
        )
        locations.extend(
            Location(
                company_id=company_id,
                id=x["id"],
                name=x.get("name", ""),
                address=x.get("address", ""),
            )
            for x in c.get("locations") or ()
        )
    for account_id, a in (data.get("accounts") or {}).items():
        accounts.append(
            Account(
                id=account_id,
                name=a.get("name", account_id),
                email=a.get("email"),
                email_enabled=a.get("email_enabled", True),
                active=a.get("active", True),
            )
        )
        for m in a.get("memberships") or ():
            memberships.append(
                Membership(
                    account_id=account_id,
                    company_id=m["company"],
                    role=m["role"],
                    group=m.get("group"),
                    master=m.get("master", False),
                    default=m.get("default", False),
                    status=m.get("status", "active"),
                    settings=MappingProxyType(dict(m.get("settings") or {})),
                    attributes=MappingProxyType(dict(m.get("attributes") or {})),
                )
            )
    for a in data.get("assignments") or ():
        assignments.append(
            Assignment(
                approver_id=a["approver"],
                account_id=a["account"],
                company_id=a["company"],
                threshold=parse_amount(a["threshold"], "threshold")
                if a.get("threshold") is not None
                else None,
                limit=parse_amount(a["limit"], "limit") if a.get("limit") is not None else None,
                step=a.get("step"),
            )
        )
    delegations = []
    for d in data.get("delegations") or ():
        delegations.append(
            Delegation(
                delegator_id=d["delegator"],
                delegate_id=d["delegate"],
                # structure_problems found them dates, the first before the second
                valid_from=date.fromisoformat(str(d["valid_from"])),
                valid_until=date.fromisoformat(str(d["valid_until"])),
                company_id=d.get("company"),
                step=d.get("step"),
            )
        )
    _check_references(companies, accounts, memberships, groups, assignments)
    _check_company_parts(contacts, locations, {a.id for a in accounts})
    check_delegations(delegations, {c.id for c in companies}, {a.id for a in accounts})
    records = dict(
        companies=companies,
        accounts=accounts,
        memberships=memberships,
        groups=groups,
        assignments=assignments,
    )
    # only when present, so a fixture without them reads as before
    for name, found in (
        ("delegations", delegations),
        ("contacts", contacts),
        ("locations", locations),
    ):
        if found:
            records[name] = found
    return records


def _check_company_parts(contacts, locations, account_ids) -> None:
    """A contact names an account of the fixture; a location id appears once per company."""
    for x in contacts:
        if x.account_id not in account_ids:
            raise DirectoryError(
                "unknown_account",
                f"company {x.company_id!r}: {x.kind} contact {x.account_id!r} is not an account "
                "of this directory; define it under accounts",
                path=f"companies.{x.company_id}.contacts",
            )
    seen: set[tuple[str, str]] = set()
    for x in locations:
        if (x.company_id, x.id) in seen:
            raise DirectoryError(
                "duplicate_location",
                f"company {x.company_id!r} lists location {x.id!r} twice",
                path=f"companies.{x.company_id}.locations",
            )
        seen.add((x.company_id, x.id))


def check_delegations(delegations, company_ids, account_ids) -> None:
    """Every account and company exists; the delegation graph has no loop (whatever the dates)."""
    edges: dict[str, set[str]] = {}
    for index, d in enumerate(delegations):
        where = f"delegations[{index}]"
        for who in (d.delegator_id, d.delegate_id):
            if who not in account_ids:
                raise DirectoryError(
                    "unknown_account",
                    f"delegation {d.delegator_id!r} -> {d.delegate_id!r}: "
                    f"account {who!r} is not defined",
                    path=where,
                )
        if d.company_id and d.company_id not in company_ids:
            raise DirectoryError(
                "unknown_company",
                f"delegation {d.delegator_id!r} -> {d.delegate_id!r}: "
                f"company {d.company_id!r} is not defined",
                path=where,
            )
        edges.setdefault(d.delegator_id, set()).add(d.delegate_id)
    # depth-first search for a cycle, reporting it as a path
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                stack = path + [node]
                loop = stack[stack.index(nxt) :] + [nxt]
                raise DirectoryError(
                    "delegation_loop",
                    f"delegations form a loop: {' -> '.join(loop)}",
                    path="delegations",
                )
            if state.get(nxt) is None:
                visit(nxt, path + [node])
        state[node] = 2

    for node in sorted(edges):
        if state.get(node) is None:
            visit(node, [])


def _check_references(companies, accounts, memberships, groups, assignments) -> None:
    company_ids = {c.id for c in companies}
    account_ids = {a.id for a in accounts}
    group_ids = {(g.company_id, g.id) for g in groups}
    for c in companies:
        if c.parent_id and c.parent_id not in company_ids:
            raise DirectoryError(
                "unknown_company",
                f"company {c.id!r}: parent {c.parent_id!r} is not a company",
                path=f"companies.{c.id}.parent",
            )
    seen: set[tuple[str, str]] = set()
    position: dict[str, int] = {}  # memberships come in file order, account by account
    for m in memberships:
        index = position[m.account_id] = position.get(m.account_id, -1) + 1
        where = f"accounts.{m.account_id}.memberships.{index}"
        if m.company_id not in company_ids:
            raise DirectoryError(
                "unknown_company",
                f"account {m.account_id!r}: company {m.company_id!r} is not defined",
                path=where,
            )
        if (m.account_id, m.company_id) in seen:
            raise DirectoryError(
                "duplicate_membership",
                f"account {m.account_id!r} is a member of {m.company_id!r} twice",
                path=where,
            )
        seen.add((m.account_id, m.company_id))
        if m.group and (m.company_id, m.group) not in group_ids:
            raise DirectoryError(
                "unknown_group",
                f"account {m.account_id!r}: group {m.group!r} is not a group of {m.company_id!r}",
                path=where,
            )
        if m.master and m.group:
            raise DirectoryError(
                "master_and_member",
                f"account {m.account_id!r} is master of {m.company_id!r} "
                f"and member of group {m.group!r}; an account is master or member, never both",
                path=where,
            )
    for a in assignments:
        for who in (a.approver_id, a.account_id):
            if who not in account_ids:
                raise DirectoryError(
                    "unknown_account",
                    f"assignment {a.approver_id!r} -> {a.account_id!r}: "
                    f"account {who!r} is not defined",
                    path="assignments",
                )
