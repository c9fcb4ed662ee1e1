"""Company slices: the part of a tenant's directory that one decision reads.

An order is decided against its buyer's company, the company's ancestors (the
fall-back approvers of ``with_fallback``) and their people.  A
:class:`~approvalrules.engine.directory.MemoryDirectory` holding only those
records (a *slice*) answers every question the engine asks while evaluating
that order:

* the chain of companies (``company``, ``ruleset_name_for``);
* the memberships of every company of the chain, with their accounts
  (approver pools, masters, the buyer's own membership);
* the groups and assignments of those companies;
* the delegations whose delegator is a member of the chain (a delegate counts only
  when it is an active member of the order's company, so a chain of delegations
  never leaves the slice) and the accounts of their delegates.

So evaluating costs the same in a tenant of 100 accounts and in one of 50,000.

Slices are cached per process, per (database, tenant, company), in a
:class:`ByteBudgetCache` bounded by an approximate size in bytes
(``approvalrules.cache.max_bytes``), least recently used first out.  An
entry remembers the ``Tenant.directory_version`` at which it was last known
current: while the tenant's version has not moved, it is used with no query.
After a directory change of the tenant, the next evaluation for a company asks
whether a company of the slice's chain changed since the slice was last known current.
Each company and account has a slice version (``store/slice_versions.py``, which notes
every change of a company's rows, of its members' accounts and of their delegations, and
writes at commit the tenant's version the commit ends at, so a version only grows).  The
process keeps, per tenant, what changed since it first saw the tenant (:class:`Changes`):
when the tenant's version moves, one query reads the rows whose version is above the one
it knew, and every slice and buyer of the tenant is answered from that, with no query of
its own.  A slice checked before what those changes reach back to (they were evicted, or
started again past :data:`~.slice_versions.CHANGES_KEPT` rows) reads its own chain's
versions instead (one small query).  Unchanged: the slice is current, nothing else is read.
Changed (the company, an ancestor, a parent moved, a company deleted, a member's account
or delegation): the slice's rows are read again (a handful of small queries, the size of
the company tree, never of the tenant) and compared with the cached records; the same
records keep the same directory object (the engine's per-directory pools stay warm),
different ones build a new slice.  So a change in one company costs a re-read of the
slices that hold it, not of every slice of the tenant.

The buyer's company (an order that names none) is remembered per account the same way:
by the account's slice version, which every change of its memberships moves.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..engine import directory as d
from ..engine.buyer import resolve_buyer
from .cache_budget import ByteBudgetCache, budgeted_cache, entry_size
from .db import database_key
from .directory import (
    _CHANGED,
    _PARENT,
    SqlDirectory,
    company_record,
    read_assignments,
    read_groups,
)
from .models import Account, Company, Delegation, Membership, SliceVersion, Tenant
from .slice_versions import (
    Changes,
    account_version,
    company_version_join,
    company_versions,
)


class SliceRecords(NamedTuple):
    """The rows of one company slice, each kind sorted, so two reads compare equal."""

    companies: tuple[d.Company, ...]
    accounts: tuple[d.Account, ...]
    memberships: tuple[d.Membership, ...]
    groups: tuple[d.Group, ...]
    assignments: tuple[d.Assignment, ...]
    delegations: tuple[d.Delegation, ...]

    def row_count(self) -> int:
        return sum(len(kind) for kind in self)


class CompanySlice:
    """A cached slice: its records, the directory built from them, the tenant's directory
    version at which they were last known current, and the slice versions of its chain of
    companies (internal id -> version) as they were read before the rows."""

    __slots__ = ("records", "directory", "checked_at", "versions")

    def __init__(self, records: SliceRecords, checked_at: int, versions: dict[int, int]):
        self.records = records
        self.directory = d.MemoryDirectory(*records)
        self.checked_at = checked_at
        self.versions = versions


class SliceStats:
    """What the slice cache did in this process: ``checks`` of a slice's company versions
    that found them unchanged (no re-read), ``reads`` of a slice's rows, ``builds`` of a new
    slice directory (a read whose rows differ from the cached ones, or a first read)."""

    def __init__(self) -> None:
        self.checks = 0
        self.reads = 0
        self.builds = 0


_SLICES = budgeted_cache("company_slices")
#: (database, tenant, buyer, company named) -> (directory version, the account's internal id
#: and slice version, the buyer's company)
_BUYERS = budgeted_cache("buyer_companies")
#: about what one entry of ``_BUYERS`` holds: its key, its tuple, its place in the map
BYTES_PER_BUYER = 400
#: (database, tenant) -> the tenant's :class:`Changes` as this process last read them
_CHANGES = budgeted_cache("slice_changes")
#: about what one changed row costs in a :class:`Changes`
BYTES_PER_CHANGE = 200
STATS = SliceStats()
_STATS_LOCK = threading.Lock()


def slice_cache() -> ByteBudgetCache:
    """The per-process cache of company slices (for metrics and tests)."""
    return _SLICES


def company_directory(session: Session, tenant: Tenant, company_id: str) -> d.Directory:
    """The directory an order of ``company_id`` is evaluated against, in this session.

    The company's slice (see the module's docstring), or the live
    :class:`SqlDirectory` while the session's transaction is changing the tenant's
    directory (what it has not committed must not be cached).
    """
    if tenant.id in session.info.get(_CHANGED, ()):
        return SqlDirectory(session, tenant.id)
    key = (database_key(session), tenant.id, company_id)
    version = tenant.directory_version or 0
    entry = _SLICES.get(key)
    if entry is not None and entry.checked_at == version:
        return entry.directory
    changes = _changes(session, tenant)
    if entry is not None and entry.versions and _unchanged(session, changes, entry):
        entry.checked_at = version
        with _STATS_LOCK:
            STATS.checks += 1
        return entry.directory
    records, versions = _read_slice(session, tenant.id, company_id)
    with _STATS_LOCK:
        STATS.reads += 1
    if entry is not None and entry.records == records:
        # the rows read now are at least as new as ``version``: the entry is current there
        entry.versions = versions
        entry.checked_at = version
        return entry.directory
    built = CompanySlice(records, version, versions)
    with _STATS_LOCK:
        STATS.builds += 1
    # a slice read at an older version than a concurrent request's only costs that one a
    # second read: an entry is never older than the version it is marked current at
    _SLICES.put(key, built, entry_size(records.row_count()))
    return built.directory


def _changes(session: Session, tenant: Tenant) -> Changes:
    """What changed in the tenant up to its version in this request: read once per process
    for each version the tenant moves to (one query), then shared by every slice."""
    key = (database_key(session), tenant.id)
    version = tenant.directory_version or 0
    changes = _CHANGES.get(key)
    if changes is None or version < changes.since:
        # first seen here (or a database whose versions started again): nothing is known
        # of what came before, slices checked earlier ask their own versions
        changes = Changes(version, version, {})
    elif version > changes.upto:
        changes = changes.newer(session, tenant.id, version)
    else:
        return changes
    _CHANGES.put(key, changes, BYTES_PER_CHANGE * (1 + len(changes.changed)))
    return changes


def _unchanged(session: Session, changes: Changes, entry: CompanySlice) -> bool:
    """Whether no company of the slice's chain changed since it was last known current."""
    unchanged = changes.unchanged("company", entry.versions, entry.checked_at)
    if unchanged is None:
        # read after the tenant's row: versions at least as new as its version; the same
        # ones say that no change of the slice's companies committed since its rows were read
        unchanged = company_versions(session, entry.versions) == entry.versions
    return unchanged


def directory_for_order(session: Session, tenant: Tenant, order) -> d.Directory:
    """The directory that decides ``order`` (an engine ``Order``): its company's slice.

    The company is the order's, else the buyer's default one, found with the
    buyer's memberships alone (one query, remembered until the directory changes).  An
    order whose buyer is unknown, not a member, or without a default company raises the
    same ``OrderError`` as the whole directory would.
    """
    directory = directory_for_member(session, tenant, order.buyer, order.company)
    resolve_buyer(directory, order)
    return directory


def directory_for_member(
    session: Session, tenant: Tenant, account_id: str, company_id: str | None = None
) -> d.Directory:
    """The directory of what ``account_id`` does in ``company_id`` (its default company
    without one): that company's slice.  When no company can be told (no such account, not
    a member, no default), the live :class:`SqlDirectory`, in which the caller's own
    membership check finds what is missing."""
    if tenant.id in session.info.get(_CHANGED, ()):
        return SqlDirectory(session, tenant.id)
    if company_id:
        directory = company_directory(session, tenant, company_id)
        if (
            directory.account(account_id) is not None
            and directory.membership(account_id, company_id) is not None
        ):
            return directory
    company = _member_company(session, tenant, account_id, company_id)
    if company is None:
        return SqlDirectory(session, tenant.id)
    return company_directory(session, tenant, company)


def _member_company(
    session: Session, tenant: Tenant, account_id: str, company_id: str | None
) -> str | None:
    """The company of ``account_id``'s membership (``company_id``'s, else its default one),
    from the account's own rows, remembered until the account's slice version moves."""
    key = (database_key(session), tenant.id, account_id, company_id)
    version = tenant.directory_version or 0
    found = _BUYERS.get(key)
    if found is not None and found[0] == version:
        return found[3]
    changes = _changes(session, tenant)
    if (
        found is not None
        and found[1] is not None
        and changes.unchanged("account", [found[1]], found[0])
    ):
        _BUYERS.put(key, (version, *found[1:]), BYTES_PER_BUYER)
        return found[3]
    # the account's version before its memberships: a change committed in between makes
    # the next check read them again, never keeps what it changed
    account = account_version(session, tenant.id, account_id)
    if found is not None and found[1:3] == account:
        company = found[3]
    else:
        rows = SqlDirectory(session, tenant.id)
        rows.memberships_of_account(account_id)  # one query, which brings the account along
        membership = rows.membership(account_id, company_id) if rows.account(account_id) else None
        company = membership.company_id if membership is not None else None
    _BUYERS.put(key, (version, *account, company), BYTES_PER_BUYER)
    return company


def accounts_by_id(
    session: Session, tenant: Tenant, ids, company_id: str | None = None
) -> dict[str, d.Account]:
    """The accounts of ``ids`` that exist: from ``company_id``'s slice (no query while it is
    current), the others in one query; never the whole tenant's directory."""
    wanted = set(ids)
    found: dict[str, d.Account] = {}
    if company_id and wanted:
        directory = company_directory(session, tenant, company_id)
        for account_id in wanted:
            account = directory.account(account_id)
            if account is not None:
                found[account_id] = account
    missing = wanted - found.keys()
    if missing:
        for row in session.scalars(
            select(Account).where(Account.tenant_id == tenant.id, Account.external_id.in_(missing))
        ):
            found[row.external_id] = SqlDirectory._account_record(row)
    return found


def clear() -> None:
    """Forget every slice, buyer's company and tenant's changes of this process (tests)."""
    _SLICES.clear()
    _BUYERS.clear()
    _CHANGES.clear()


def read_slice(session: Session, tenant_id: int, company_id: str) -> SliceRecords:
    """The rows of the slice of ``company_id``: the company, its ancestors and their people."""
    return _read_slice(session, tenant_id, company_id)[0]


def _read_slice(
    session: Session, tenant_id: int, company_id: str
) -> tuple[SliceRecords, dict[int, int]]:
    """The slice's rows, and the slice versions of its companies (internal id -> version),
    each read in the same statement as its company's row, before the other rows."""
    sql = SqlDirectory(session, tenant_id)
    parent = _PARENT
    companies: list[d.Company] = []
    versions: dict[int, int] = {}
    current: str | None = company_id
    while current is not None and current not in {c.id for c in companies}:
        row = session.execute(
            select(Company, parent.external_id, SliceVersion.version)
            .outerjoin(parent, Company.parent_id == parent.id)
            .outerjoin(SliceVersion, company_version_join())
            .where(Company.tenant_id == tenant_id, Company.external_id == current)
        ).first()
        if row is None:
            break
        company, parent_id, version = row
        versions[company.id] = version or 0
        companies.append(company_record(company, parent_id))
        current = parent_id
    if not versions:
        # no such company: nothing to check a version of, so read again after a change
        return SliceRecords((), (), (), (), (), ()), {}
    ids = list(versions)
    memberships = sql._memberships(Company.id.in_(ids))
    groups = read_groups(session, Company.id.in_(ids))
    assignments = read_assignments(session, Company.id.in_(ids))
    members = select(Membership.account_id).where(Membership.company_id.in_(ids))
    delegations = sql._delegations(Delegation.delegator_id.in_(members))
    # _memberships put each member's account in the memo; delegates may be outsiders
    accounts = {key[1]: value for key, value in sql._memo.items() if key[0] == "account"}
    missing = {x.delegate_id for x in delegations} - accounts.keys()
    if missing:
        for row in session.scalars(
            select(Account).where(Account.tenant_id == tenant_id, Account.external_id.in_(missing))
        ):
            accounts[row.external_id] = sql._account_record(row)
    records = SliceRecords(
        tuple(sorted(companies, key=lambda c: c.id)),
        tuple(accounts[k] for k in sorted(accounts)),
        tuple(sorted(memberships, key=lambda m: (m.company_id, m.account_id))),
        tuple(sorted(groups, key=lambda g: (g.company_id, g.id))),
        tuple(
            sorted(
                assignments,
                key=lambda a: (a.company_id, a.approver_id, a.account_id, a.step or ""),
            )
        ),
        delegations,  # sorted by _delegations
    )
    return records, versions
