"""Slice versions: which companies' slices and which accounts' memberships a commit changed.

A cached company slice (``store/company_slice.py``) holds a company, its ancestors and their
people.  When the tenant's ``directory_version`` moves, it must tell whether *its* rows
changed without reading them again: it reads the :class:`~.models.SliceVersion` of each
company of its chain instead (one small query) and re-reads its rows only when one moved.
The buyer's company is remembered the same way, by the account's version.

This module is the one place that writes them.  Flush hooks see every ORM write of a
directory row (so no writer can forget, and the sync and the importer, which write
through ``DirectoryService``, are covered alike) and note what it touches:

* a company row (a new parent too: the slices of its descendants hold it in their chain
  and see its version move), its groups, its assignments: that company;
* a membership: its company and its account;
* an account row: the account, the companies it is a member of, and the companies whose
  members delegate to it (a slice holds its delegates' accounts);
* a delegation: the companies its delegator is a member of;
* a deleted company or account: also what the database deletes with it (memberships,
  assignments, delegations), read before the delete.

At the commit of the session's own transaction, every noted row gets the tenant's
directory version that the commit ends at.  Every directory change bumps that version in
the same transaction, holding the tenant's row until it commits, so the value is this
transaction's alone: two changes of a row never share a version, even when a row is
deleted and a new one takes its id.  Noting too much only costs a re-read.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, event, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import get_history

from .models import (
    Account,
    Assignment,
    Company,
    Delegation,
    Group,
    Membership,
    SliceVersion,
    Tenant,
)

#: ``session.info`` key: {(kind, row id): tenant id or None} noted in the open transaction
_PENDING = "approvalrules.slice_versions.pending"
_DIRECTORY_ROWS = (Company, Account, Membership, Group, Assignment, Delegation)


def _values(obj, attribute: str) -> set[int]:
    """The attribute's value now and before this flush (a moved row touches both sides)."""
    found = {getattr(obj, attribute)} | set(get_history(obj, attribute).deleted)
    return {value for value in found if value is not None}


def _note(session: Session, kind: str, ids: Iterable[int], tenant_id: int | None = None) -> None:
    pending = session.info.setdefault(_PENDING, {})
    for row_id in ids:
        if tenant_id is not None or (kind, row_id) not in pending:
            pending[(kind, row_id)] = tenant_id


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    # a bound parameter each: SQLite refuses statements past 32,766 of them
    for start in range(0, len(ids), IN_CHUNK):
        yield ids[start : start + IN_CHUNK]


#: ids per ``IN (...)`` list
IN_CHUNK = 1_000


def _companies_of_members(session: Session, account_ids: set[int]) -> set[int]:
    found: set[int] = set()
    for chunk in _chunks(sorted(account_ids)):
        found.update(
            session.scalars(select(Membership.company_id).where(Membership.account_id.in_(chunk)))
        )
    return found


def _companies_delegating_to(session: Session, account_ids: set[int]) -> set[int]:
    """The companies of the members who delegate to ``account_ids`` (their slices hold the
    delegates' accounts)."""
    found: set[int] = set()
    for chunk in _chunks(sorted(account_ids)):
        delegators = select(Delegation.delegator_id).where(Delegation.delegate_id.in_(chunk))
        found.update(
            session.scalars(
                select(Membership.company_id).where(Membership.account_id.in_(delegators))
            )
        )
    return found


def _note_row(session: Session, obj, delegators: set[int]) -> None:
    """Note what a written or deleted directory row touches by itself; a delegation's
    delegators go into ``delegators``, whose companies are looked up once for the flush."""
    if isinstance(obj, Company):
        _note(session, "company", [obj.id], obj.tenant_id)
    elif isinstance(obj, Account):
        _note(session, "account", [obj.id], obj.tenant_id)
    elif isinstance(obj, Membership):
        _note(session, "company", _values(obj, "company_id"))
        _note(session, "account", _values(obj, "account_id"))
    elif isinstance(obj, (Group, Assignment)):
        _note(session, "company", _values(obj, "company_id"))
    elif isinstance(obj, Delegation):
        delegators |= _values(obj, "delegator_id")


@event.listens_for(Session, "before_flush")
def _note_deletes(session: Session, flush_context, instances) -> None:
    # before the flush: what the database deletes along with a company or an account is
    # gone after it
    deleted = [obj for obj in session.deleted if isinstance(obj, _DIRECTORY_ROWS)]
    if not deleted:
        return
    accounts: set[int] = set()
    delegators: set[int] = set()
    for obj in deleted:
        _note_row(session, obj, delegators)
        if isinstance(obj, Company):
            members = select(Membership.account_id).where(Membership.company_id == obj.id)
            _note(session, "account", session.scalars(members))
        elif isinstance(obj, Account):
            accounts.add(obj.id)
    if accounts:
        _note(session, "company", _companies_of_members(session, accounts))
        _note(session, "company", _companies_delegating_to(session, accounts))
        _note(
            session,
            "company",
            session.scalars(
                select(Assignment.company_id).where(
                    or_(Assignment.approver_id.in_(accounts), Assignment.account_id.in_(accounts))
                )
            ),
        )
    _note(session, "company", _companies_of_members(session, delegators))


@event.listens_for(Session, "after_flush")
def _note_writes(session: Session, flush_context) -> None:
    # after the flush: new rows have their ids and the foreign keys set through
    # relationships; ``new``, ``dirty`` and the attributes' history still show what it wrote
    written = [
        obj
        for obj in (*session.new, *session.dirty)
        if isinstance(obj, _DIRECTORY_ROWS)
        and (obj in session.new or session.is_modified(obj, include_collections=False))
    ]
    if not written:
        return
    changed_accounts: set[int] = set()
    delegators: set[int] = set()
    for obj in written:
        _note_row(session, obj, delegators)
        if isinstance(obj, Account) and obj not in session.new:
            changed_accounts.add(obj.id)
    _note(session, "company", _companies_of_members(session, changed_accounts | delegators))
    _note(session, "company", _companies_delegating_to(session, changed_accounts))


@event.listens_for(Session, "before_commit")
def _write_versions(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint: the versions are written when the whole transaction commits
    session.flush()  # commit flushes after this hook: what it flushes must be noted first
    pending = session.info.pop(_PENDING, None)
    if pending:
        write_versions(session, pending)


@event.listens_for(Session, "after_transaction_end")
def _forget_pending(session: Session, transaction) -> None:
    if transaction.parent is None:  # the session's own transaction ended (a rollback)
        session.info.pop(_PENDING, None)


def write_versions(session: Session, pending: dict[tuple[str, int], int | None]) -> None:
    """Give each noted (kind, row id) its tenant's current directory version."""
    tenants = dict(pending)
    for kind, model in (("company", Company), ("account", Account)):
        unknown = [row for (k, row), tenant in pending.items() if k == kind and tenant is None]
        for chunk in _chunks(unknown):
            for row, tenant_id in session.execute(
                select(model.id, model.tenant_id).where(model.id.in_(chunk))
            ):
                tenants[(kind, row)] = tenant_id
    versions = dict(
        session.execute(
            select(Tenant.id, func.coalesce(Tenant.directory_version, 0)).where(
                Tenant.id.in_({t for t in tenants.values() if t is not None})
            )
        ).all()
    )
    # a row gone with no tenant noted (deleted by the database with its tenant) needs none;
    # sorted, so that two commits write the rows they share in the same order
    rows = [
        {"kind": kind, "row_id": row_id, "tenant_id": tenant_id, "version": versions[tenant_id]}
        for (kind, row_id), tenant_id in sorted(tenants.items())
        if tenant_id in versions
    ]
    if not rows:
        return
    dialect = postgresql if session.connection().dialect.name == "postgresql" else sqlite
    table = SliceVersion.__table__
    statement = dialect.insert(table)
    # one statement run for every row (executemany), whatever their number
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c.kind, table.c.row_id],
            set_={"tenant_id": statement.excluded.tenant_id, "version": statement.excluded.version},
        ),
        rows,
    )


class Changes:
    """What changed in one tenant after version ``since`` up to version ``upto`` at least:
    (kind, row id) -> its slice version, as read after the tenant's version was ``upto``."""

    __slots__ = ("since", "upto", "changed")

    def __init__(self, since: int, upto: int, changed: dict[tuple[str, int], int]):
        self.since, self.upto, self.changed = since, upto, changed

    def unchanged(self, kind: str, row_ids: Iterable[int], checked_at: int) -> bool | None:
        """Whether none of ``row_ids`` changed after version ``checked_at`` (up to ``upto``);
        None when that is before what these changes reach back to."""
        if checked_at < self.since:
            return None
        return all(self.changed.get((kind, row_id), 0) <= checked_at for row_id in row_ids)

    def newer(self, session: Session, tenant_id: int, version: int) -> Changes:
        """These changes brought up to the tenant's ``version`` (read before): one query for
        the rows whose slice version is above ``upto``."""
        if version <= self.upto:
            return self
        changed = dict(self.changed)
        for kind, row_id, row_version in session.execute(
            select(SliceVersion.kind, SliceVersion.row_id, SliceVersion.version).where(
                SliceVersion.tenant_id == tenant_id, SliceVersion.version > self.upto
            )
        ):
            changed[(kind, row_id)] = row_version
        if len(changed) > CHANGES_KEPT:
            # what came before is forgotten: slices checked before ``version`` ask their own
            # versions once
            return Changes(version, version, {})
        return Changes(self.since, version, changed)


#: rows a tenant's :class:`Changes` remembers before it starts again from the current version
CHANGES_KEPT = 10_000


def company_versions(session: Session, company_ids: Iterable[int]) -> dict[int, int]:
    """The slice versions of ``company_ids`` (internal ids), 0 for a company without one."""
    wanted = list(company_ids)
    found = dict(
        session.execute(
            select(SliceVersion.row_id, SliceVersion.version).where(
                SliceVersion.kind == "company", SliceVersion.row_id.in_(wanted)
            )
        ).all()
    )
    return {company_id: found.get(company_id, 0) for company_id in wanted}


def account_version(session: Session, tenant_id: int, account_id: str) -> tuple[int | None, int]:
    """(internal id, version) of the account ``account_id`` of the tenant; (None, 0) when
    there is no such account."""
    row = session.execute(
        select(Account.id, func.coalesce(SliceVersion.version, 0))
        .outerjoin(
            SliceVersion, and_(SliceVersion.kind == "account", SliceVersion.row_id == Account.id)
        )
        .where(Account.tenant_id == tenant_id, Account.external_id == account_id)
    ).first()
    return (None, 0) if row is None else (row[0], row[1])


def company_version_join():
    """The outer join condition of :class:`SliceVersion` on ``Company`` (a query reading a
    company with its version)."""
    return and_(SliceVersion.kind == "company", SliceVersion.row_id == Company.id)
