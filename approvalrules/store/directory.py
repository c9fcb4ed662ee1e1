"""The engine's :class:`~approvalrules.directory.Directory`, read from the database.

Ids handed to the engine are the external ids; records are the frozen
dataclasses of ``approvalrules.directory``.  Each answer is memoised for the
life of the object, which is meant to live for one request or one evaluation.
Ordering is done in Python so that it matches :class:`MemoryDirectory`
whatever the database collation.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from .. import directory as d
from .models import Account, Assignment, Company, Group, Membership

T = TypeVar("T")


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
        parent = aliased(Company)
        row = self.session.execute(
            select(Company, parent.external_id)
            .outerjoin(parent, Company.parent_id == parent.id)
            .where(Company.tenant_id == self.tenant_id, Company.external_id == company_id)
        ).first()
        if row is None:
            return None
        company, parent_id = row
        return d.Company(
            id=company.external_id,
            name=company.name,
            parent_id=parent_id,
            ruleset=company.ruleset_name,
            attributes=_frozen(company.attributes),
        )

    def account(self, account_id):
        return self._cached(("account", account_id), lambda: self._account(account_id))

    def account_ids(self):
        return self._cached(
            ("account_ids",),
            lambda: tuple(self.session.scalars(select(Account.external_id).where(Account.tenant_id == self.tenant_id).order_by(Account.external_id))),
        )

    def _account(self, account_id: str) -> d.Account | None:
        account = self.session.scalar(
            select(Account).where(Account.tenant_id == self.tenant_id, Account.external_id == account_id)
        )
        if account is None:
            return None
        return d.Account(
            id=account.external_id,
            name=account.name,
            email=account.email,
            email_enabled=account.email_enabled,
            active=account.active,
        )

    def _memberships(self, where) -> list[d.Membership]:
        rows = self.session.execute(
            select(Membership, Account.external_id, Company.external_id, Group.external_id)
            .join(Account, Membership.account_id == Account.id)
            .join(Company, Membership.company_id == Company.id)
            .outerjoin(Group, Membership.group_id == Group.id)
            .where(Company.tenant_id == self.tenant_id, where)
        )
        return [
            d.Membership(
                account_id=account_id,
                company_id=company_id,
                role=m.role,
                group=group_id,
                master=m.master,
                default=m.is_default,
                status=m.status,
                settings=_frozen(m.settings),
                attributes=_frozen(m.attributes),
            )
            for m, account_id, company_id, group_id in rows
        ]

    def memberships_of_account(self, account_id):
        return self._cached(
            ("memberships_of_account", account_id),
            lambda: tuple(
                sorted(self._memberships(Account.external_id == account_id), key=lambda m: m.company_id)
            ),
        )

    def memberships_of_company(self, company_id):
        return self._cached(
            ("memberships_of_company", company_id),
            lambda: tuple(
                sorted(self._memberships(Company.external_id == company_id), key=lambda m: m.account_id)
            ),
        )

    def groups_of_company(self, company_id):
        def compute():
            rows = self.session.execute(
                select(Group.external_id, Group.name)
                .join(Company, Group.company_id == Company.id)
                .where(Company.tenant_id == self.tenant_id, Company.external_id == company_id)
            )
            return tuple(sorted((d.Group(id=gid, company_id=company_id, name=name) for gid, name in rows), key=lambda g: g.id))

        return self._cached(("groups_of_company", company_id), compute)

    def _assignments(self, company_id: str, where) -> tuple[d.Assignment, ...]:
        approver = aliased(Account)
        account = aliased(Account)
        rows = self.session.execute(
            select(Assignment, approver.external_id, account.external_id)
            .join(approver, Assignment.approver_id == approver.id)
            .join(account, Assignment.account_id == account.id)
            .join(Company, Assignment.company_id == Company.id)
            .where(Company.tenant_id == self.tenant_id, Company.external_id == company_id, where(approver, account))
        )
        records = [
            d.Assignment(
                approver_id=approver_id,
                account_id=account_id,
                company_id=company_id,
                threshold=a.threshold,
                limit=a.limit,
                step=a.step,
            )
            for a, approver_id, account_id in rows
        ]
        return tuple(sorted(records, key=lambda a: (a.approver_id, a.account_id, a.step or "")))

    def assignments_for(self, account_id, company_id):
        return self._cached(
            ("assignments_for", account_id, company_id),
            lambda: self._assignments(company_id, lambda approver, account: account.external_id == account_id),
        )

    def assignments_by(self, approver_id, company_id):
        return self._cached(
            ("assignments_by", approver_id, company_id),
            lambda: self._assignments(company_id, lambda approver, account: approver.external_id == approver_id),
        )
