"""The engine's :class:`~approvalrules.engine.directory.Directory`, read from the database.

:func:`directory_for` is the one place that chooses which implementation a
tenant's orders are evaluated against: the per-process snapshot, or the live
:class:`SqlDirectory` while the current transaction is changing the directory.

Ids handed to the engine are the external ids; records are the frozen
dataclasses of ``approvalrules.engine.directory``.  Each answer is memoised for the
life of the object, which is meant to live for one request or one evaluation.
Ordering is done in Python so that it matches :class:`MemoryDirectory`
whatever the database collation.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Any, TypeVar

from sqlalchemy import event, select, true
from sqlalchemy.orm import Session, aliased

from ..engine import directory as d
from .cache_budget import ByteBudgetCache, budgeted_cache, entry_size
from .db import TenantCache, database_key, transaction_memo
from .models import Account, Assignment, Company, Delegation, Group, Membership, Tenant

T = TypeVar("T")


#: the aliases the queries join through, made once: a new ``aliased()`` per query costs
#: SQLAlchemy more than the query itself (adapting every column anew)
_PARENT = aliased(Company)
_APPROVER, _ASSIGNED = aliased(Account), aliased(Account)
_DELEGATOR, _DELEGATE = aliased(Account), aliased(Account)


def _frozen(mapping: Any) -> Any:
    return MappingProxyType(dict(mapping or {}))


class SqlDirectory(d.Directory):
    def __init__(self, session: Session, tenant_id: int):
        self.session = session
        self.tenant_id = tenant_id
        self._memo: dict[tuple, Any] = {}

    def _cached(self, key: tuple, compute: Callable[[], T]) -> T:
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def company(self, company_id):
        return self._cached(("company", company_id), lambda: self._company(company_id))

    def _company(self, company_id: str) -> d.Company | None:
        parent = _PARENT
        row = self.session.execute(
            select(Company, parent.external_id)
            .outerjoin(parent, Company.parent_id == parent.id)
            .where(Company.tenant_id == self.tenant_id, Company.external_id == company_id)
        ).first()
        if row is None:
            return None
        return company_record(*row)

    def account(self, account_id):
        return self._cached(("account", account_id), lambda: self._account(account_id))

    def account_ids(self):
        return self._cached(
            ("account_ids",),
            lambda: tuple(
                self.session.scalars(
                    select(Account.external_id)
                    .where(Account.tenant_id == self.tenant_id)
                    .order_by(Account.external_id)
                )
            ),
        )

    def _account(self, account_id: str) -> d.Account | None:
        account = self.session.scalar(
            select(Account).where(
                Account.tenant_id == self.tenant_id, Account.external_id == account_id
            )
        )
        return None if account is None else self._account_record(account)

    @staticmethod
    def _account_record(account: Account) -> d.Account:
        return d.Account(
            id=account.external_id,
            name=account.name,
            email=account.email,
            email_enabled=account.email_enabled,
            active=account.active,
        )

    def _memberships(self, where) -> list[d.Membership]:
        # the accounts come in the same query: evaluation asks for each member's
        # account next, and one query beats one per approver candidate
        rows = self.session.execute(
            select(Membership, Account, Company.external_id, Group.external_id)
            .join(Account, Membership.account_id == Account.id)
            .join(Company, Membership.company_id == Company.id)
            .outerjoin(Group, Membership.group_id == Group.id)
            .where(Company.tenant_id == self.tenant_id, where)
        )
        out = []
        for m, account, company_id, group_id in rows:
            self._memo.setdefault(("account", account.external_id), self._account_record(account))
            out.append(
                d.Membership(
                    account_id=account.external_id,
                    company_id=company_id,
                    role=m.role,
                    group=group_id,
                    master=m.master,
                    default=m.is_default,
                    status=m.status,
                    settings=_frozen(m.settings),
                    attributes=_frozen(m.attributes),
                )
            )
        return out

    def memberships_of_account(self, account_id):
        return self._cached(
            ("memberships_of_account", account_id),
            lambda: tuple(
                sorted(
                    # by the account's id, found first: so the planner starts from the account's
                    # memberships, never from every company of the tenant
                    self._memberships(
                        Membership.account_id
                        == select(Account.id)
                        .where(
                            Account.tenant_id == self.tenant_id, Account.external_id == account_id
                        )
                        .scalar_subquery()
                    ),
                    key=lambda m: m.company_id,
                )
            ),
        )

    def memberships_of_company(self, company_id):
        return self._cached(
            ("memberships_of_company", company_id),
            lambda: tuple(
                sorted(
                    self._memberships(Company.external_id == company_id), key=lambda m: m.account_id
                )
            ),
        )

    def groups_of_company(self, company_id):
        return self._cached(
            ("groups_of_company", company_id),
            lambda: tuple(
                sorted(read_groups(self.session, *self._selecting(company_id)), key=lambda g: g.id)
            ),
        )

    def _selecting(self, company_id: str) -> tuple:
        """The conditions that select this tenant's company ``company_id``."""
        return Company.tenant_id == self.tenant_id, Company.external_id == company_id

    def _assignments(self, company_id: str, where) -> tuple[d.Assignment, ...]:
        records = read_assignments(
            self.session, *self._selecting(company_id), where(_APPROVER, _ASSIGNED)
        )
        return tuple(sorted(records, key=lambda a: (a.approver_id, a.account_id, a.step or "")))

    def delegations_of(self, delegator_id):
        return self._cached(
            ("delegations_of", delegator_id),
            lambda: self._delegations(
                Delegation.delegator.has(Account.external_id == delegator_id)
            ),
        )

    def all_delegations(self) -> tuple[d.Delegation, ...]:
        """Every delegation of the tenant (the whole graph, for the loop check of a new one)."""
        return self._cached(("all_delegations",), lambda: self._delegations(true()))

    def _delegations(self, where) -> tuple[d.Delegation, ...]:
        delegator, delegate = _DELEGATOR, _DELEGATE
        rows = self.session.execute(
            select(Delegation, delegator.external_id, delegate.external_id, Company.external_id)
            .join(delegator, Delegation.delegator_id == delegator.id)
            .join(delegate, Delegation.delegate_id == delegate.id)
            .outerjoin(Company, Delegation.company_id == Company.id)
            .where(Delegation.tenant_id == self.tenant_id, where)
        )
        records = [
            d.Delegation(
                delegator_id=a,
                delegate_id=b,
                valid_from=x.valid_from,
                valid_until=x.valid_until,
                company_id=c,
                step=x.step,
            )
            for x, a, b, c in rows
        ]
        return tuple(
            sorted(
                records,
                key=lambda r: (r.delegate_id, r.valid_from, r.company_id or "", r.step or ""),
            )
        )

    def assignments_for(self, account_id, company_id):
        return self._cached(
            ("assignments_for", account_id, company_id),
            lambda: self._assignments(
                company_id, lambda approver, account: account.external_id == account_id
            ),
        )

    def assignments_by(self, approver_id, company_id):
        return self._cached(
            ("assignments_by", approver_id, company_id),
            lambda: self._assignments(
                company_id, lambda approver, account: approver.external_id == approver_id
            ),
        )


# ------------------------------------------------------------------ choosing one

#: ``transaction_memo`` key: ids of the tenants whose directory version was bumped
_BUMPED = "directory_bumped"
#: ``session.info`` key: ids of the tenants whose directory the session's open transaction
#: changed; unlike ``transaction_memo`` (dropped at every flush, which SQLAlchemy runs in a
#: subtransaction of its own) it lasts until the transaction commits or rolls back
_CHANGED = "approvalrules.directory_changed"


@event.listens_for(Session, "after_transaction_end")
def _forget_directory_changes(session, transaction) -> None:
    if transaction.parent is None:  # the session's own transaction, not a flush or savepoint
        session.info.pop(_CHANGED, None)


def note_directory_change(session: Session, tenant: Tenant) -> None:
    """Record that the session's transaction changes ``tenant``'s directory.

    Bumps ``Tenant.directory_version`` (in SQL, so two concurrent changes make
    two versions, never one number naming two directories), which retires the
    snapshots processes have cached; at most once per ``transaction_memo``.
    """
    session.info.setdefault(_CHANGED, set()).add(tenant.id)
    bumped = transaction_memo(session).setdefault(_BUMPED, set())
    if tenant.id not in bumped:
        tenant.directory_version = Tenant.directory_version + 1
        session.flush()
        bumped.add(tenant.id)


def stored_delegations(session: Session, tenant: Tenant) -> tuple[d.Delegation, ...]:
    """Every delegation of the tenant as the session sees it now, never from a cache: what a
    write checks a new delegation against (the whole graph, for loops)."""
    return SqlDirectory(session, tenant.id).all_delegations()


def directory_for(session: Session, tenant: Tenant) -> d.Directory:
    """The directory that ``tenant``'s orders are evaluated against, in this session.

    Normally the per-process :func:`snapshot`.  A transaction that has changed
    the directory reads the live rows instead: a snapshot of what it has not
    committed, cached under a version number that a rollback hands back to
    the next change, would outlive it.  Both implementations pass
    ``DirectoryContract`` (tests/store/test_sql_directory.py).
    """
    if tenant.id in session.info.get(_CHANGED, ()):
        return SqlDirectory(session, tenant.id)
    return snapshot(session, tenant)


# ------------------------------------------------------------------ records of companies


def company_record(company: Company, parent_id: str | None) -> d.Company:
    """The engine's record of a company row (``parent_id``: its parent's external id)."""
    return d.Company(
        id=company.external_id,
        name=company.name,
        parent_id=parent_id,
        ruleset=company.ruleset_name,
        attributes=_frozen(company.attributes),
    )


def read_groups(session: Session, *companies) -> list[d.Group]:
    """The groups of the companies that ``companies`` (conditions on Company) select."""
    return [
        d.Group(id=gid, company_id=cid, name=name)
        for gid, cid, name in session.execute(
            select(Group.external_id, Company.external_id, Group.name)
            .join(Company, Group.company_id == Company.id)
            .where(*companies)
        )
    ]


def read_assignments(session: Session, *conditions) -> list[d.Assignment]:
    """The assignments that ``conditions`` select: on Company, and on the approver's and the
    assigned account's rows as ``_APPROVER`` and ``_ASSIGNED``."""
    approver, account = _APPROVER, _ASSIGNED
    return [
        d.Assignment(
            approver_id=approver_id,
            account_id=account_id,
            company_id=company_id,
            threshold=a.threshold,
            limit=a.limit,
            step=a.step,
        )
        for a, approver_id, account_id, company_id in session.execute(
            select(Assignment, approver.external_id, account.external_id, Company.external_id)
            .join(approver, Assignment.approver_id == approver.id)
            .join(account, Assignment.account_id == account.id)
            .join(Company, Assignment.company_id == Company.id)
            .where(*conditions)
        )
    ]


# ------------------------------------------------------------------ row ids

#: company and account row ids per tenant at a directory version (submit and approve)
_ROW_IDS = TenantCache(256, "row_ids")


def row_id(session: Session, tenant: Tenant, model: type, external_id: str) -> int | None:
    """The row id of the tenant's company or account (``model``) named ``external_id``, or None.

    Cached per process by (tenant, directory version), as the snapshots are: a
    row keeps its id, and adding or deleting one bumps the version.  A
    transaction that changed the directory asks the database.  The tenant's
    creation time is part of the key too: a tenant made again after a rollback
    (as test suites do) numbers its versions from the start, and its rows may
    get other ids.
    """
    if tenant.id in session.info.get(_CHANGED, ()):
        return _read_row_id(session, tenant, model, external_id)
    ids = _ROW_IDS.get(session, tenant.id, (tenant.directory_version or 0, tenant.created_at), dict)
    key = (model.__tablename__, external_id)
    found = ids.get(key)
    if found is None:
        found = _read_row_id(session, tenant, model, external_id)
        if found is not None:
            ids[key] = found
    return found


def _read_row_id(session: Session, tenant: Tenant, model: type, external_id: str) -> int | None:
    # built only on a miss: making the statement cost more than the cache lookup
    return session.scalar(
        select(model.id).where(model.tenant_id == tenant.id, model.external_id == external_id)
    )


# ------------------------------------------------------------------ snapshots

#: the whole-tenant snapshots of this process, bounded by ``approvalrules.cache.max_bytes``
_SNAPSHOTS = budgeted_cache("directory_snapshots")


def snapshot_cache() -> ByteBudgetCache:
    """The per-process cache of whole-tenant snapshots (for metrics and tests)."""
    return _SNAPSHOTS


def snapshot(session: Session, tenant) -> d.Directory:
    """The tenant's whole directory in memory, cached per process by (tenant, directory version).

    Every directory change bumps ``Tenant.directory_version`` in its own
    transaction, so a cached snapshot is exactly the directory that the
    version names: it never needs invalidating, and a change is seen by the
    next request that reads the new version.  Evaluation reads a company's
    slice instead (:mod:`approvalrules.store.company_slice`): this is for what
    asks about the whole tenant (rule-set tests, summaries, listings).
    """
    key = (database_key(session), tenant.id)
    version = tenant.directory_version or 0
    found = _SNAPSHOTS.get(key)
    if found is not None and found[0] == version:
        return found[1]
    directory = load_memory_directory(session, tenant.id)
    rows = (
        len(directory._companies)
        + len(directory._accounts)
        + sum(
            len(records)
            for index in (
                directory._memberships_by_company,
                directory._groups,
                directory._assignments_for,
                directory._delegations,
            )
            for records in index.values()
        )
    )
    # the newest read replaces the tenant's older snapshot, as its version does
    _SNAPSHOTS.put(key, (version, directory), entry_size(rows))
    return directory


def load_memory_directory(session: Session, tenant_id: int) -> d.MemoryDirectory:
    """Every record of the tenant's directory, read once (five queries), as a MemoryDirectory."""
    sql = SqlDirectory(session, tenant_id)
    parent = _PARENT
    companies = [
        company_record(c, parent_id)
        for c, parent_id in session.execute(
            select(Company, parent.external_id)
            .outerjoin(parent, Company.parent_id == parent.id)
            .where(Company.tenant_id == tenant_id)
        )
    ]
    accounts = [
        sql._account_record(a)
        for a in session.scalars(select(Account).where(Account.tenant_id == tenant_id))
    ]
    of_tenant = Company.tenant_id == tenant_id
    groups = read_groups(session, of_tenant)
    assignments = read_assignments(session, of_tenant)
    return d.MemoryDirectory(
        companies, accounts, sql._memberships(true()), groups, assignments, sql.all_delegations()
    )
