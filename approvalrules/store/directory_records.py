"""The directory as the API shows it: one record per company, account, group, membership,
assignment and delegation, with the entity tag of each (:mod:`~approvalrules.store.etags`).

A record has the fields of the matching directory write (``PUT /api/v1/directory/...``) and
its key, so what a client reads is what it would write back; its tag changes exactly when
the record does.  :class:`DirectoryRecords` finds one record by its key (``lock=True`` takes
the row lock a conditional write checks under).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..engine.money import format_amount
from .etags import etag_for
from .models import Account, Assignment, Company, Delegation, Group, Membership, Tenant

#: the kinds of record, as the API names them
KINDS = ("companies", "accounts", "groups", "memberships", "assignments", "delegations")


def _amount(value) -> str | None:
    return None if value is None else format_amount(value)


def company_record(company: Company) -> dict[str, Any]:
    return {
        "id": company.external_id,
        "name": company.name,
        "parent": company.parent.external_id if company.parent is not None else None,
        "ruleset": company.ruleset_name,
        "attributes": dict(company.attributes or {}),
    }


def account_record(account: Account) -> dict[str, Any]:
    return {
        "id": account.external_id,
        "name": account.name,
        "email": account.email,
        "email_enabled": bool(account.email_enabled),
        "active": bool(account.active),
    }


def group_record(group: Group) -> dict[str, Any]:
    return {"company": group.company.external_id, "id": group.external_id, "name": group.name}


def membership_record(membership: Membership) -> dict[str, Any]:
    return {
        "account": membership.account.external_id,
        "company": membership.company.external_id,
        "role": membership.role,
        "group": membership.group.external_id if membership.group is not None else None,
        "master": bool(membership.master),
        "default": bool(membership.is_default),
        "status": membership.status,
        "settings": dict(membership.settings or {}),
        "attributes": dict(membership.attributes or {}),
    }


def assignment_record(assignment: Assignment) -> dict[str, Any]:
    return {
        "approver": assignment.approver.external_id,
        "account": assignment.account.external_id,
        "company": assignment.company.external_id,
        "threshold": _amount(assignment.threshold),
        "limit": _amount(assignment.limit),
        "step": assignment.step,
    }


def delegation_record(delegation: Delegation, accounts: dict[int, str], companies) -> dict:
    return {
        "delegator": accounts[delegation.delegator_id],
        "delegate": accounts[delegation.delegate_id],
        "valid_from": delegation.valid_from.isoformat(),
        "valid_until": delegation.valid_until.isoformat(),
        "company": companies.get(delegation.company_id),
        "step": delegation.step,
    }


def tagged(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The record with its ``etag`` (what a listing shows per item)."""
    return None if record is None else {**record, "etag": etag_for(record)}


class DirectoryRecords:
    """Reads of one tenant's directory records by key (the keys of the writes)."""

    def __init__(self, session: Session, tenant: Tenant):
        self.session = session
        self.tenant = tenant

    def _one(self, query, lock: bool):
        if lock:
            # FOR UPDATE on PostgreSQL; SQLite serialises writers anyway and ignores it
            query = query.with_for_update().execution_options(populate_existing=True)
        return self.session.scalar(query)

    def _company(self, external_id: str | None, lock: bool = False) -> Company | None:
        if external_id is None:
            return None
        return self._one(
            select(Company).where(
                Company.tenant_id == self.tenant.id, Company.external_id == external_id
            ),
            lock,
        )

    def _account(self, external_id: str, lock: bool = False) -> Account | None:
        return self._one(
            select(Account).where(
                Account.tenant_id == self.tenant.id, Account.external_id == external_id
            ),
            lock,
        )

    def company(self, company: str, *, lock: bool = False) -> dict[str, Any] | None:
        found = self._company(company, lock)
        return None if found is None else company_record(found)

    def account(self, account: str, *, lock: bool = False) -> dict[str, Any] | None:
        found = self._account(account, lock)
        return None if found is None else account_record(found)

    def group(self, company: str, group: str, *, lock: bool = False) -> dict[str, Any] | None:
        owner = self._company(company)
        if owner is None:
            return None
        found = self._one(
            select(Group).where(Group.company_id == owner.id, Group.external_id == group), lock
        )
        return None if found is None else group_record(found)

    def membership(self, account: str, company: str, *, lock: bool = False) -> dict | None:
        person, owner = self._account(account), self._company(company)
        if person is None or owner is None:
            return None
        found = self._one(
            select(Membership).where(
                Membership.account_id == person.id, Membership.company_id == owner.id
            ),
            lock,
        )
        return None if found is None else membership_record(found)

    def assignment(
        self, approver: str, account: str, company: str, step: str | None, *, lock: bool = False
    ) -> dict[str, Any] | None:
        who, whom, owner = self._account(approver), self._account(account), self._company(company)
        if who is None or whom is None or owner is None:
            return None
        found = self._one(
            select(Assignment).where(
                Assignment.company_id == owner.id,
                Assignment.approver_id == who.id,
                Assignment.account_id == whom.id,
                Assignment.step.is_(None) if step is None else Assignment.step == step,
            ),
            lock,
        )
        return None if found is None else assignment_record(found)

    def delegation(
        self,
        delegator: str,
        delegate: str,
        company: str | None,
        step: str | None,
        *,
        lock: bool = False,
    ) -> dict[str, Any] | None:
        who, whom = self._account(delegator), self._account(delegate)
        owner = self._company(company)
        if who is None or whom is None or (company is not None and owner is None):
            return None
        found = self._one(
            select(Delegation).where(
                Delegation.tenant_id == self.tenant.id,
                Delegation.delegator_id == who.id,
                Delegation.delegate_id == whom.id,
                Delegation.company_id.is_(None)
                if owner is None
                else Delegation.company_id == owner.id,
                Delegation.step.is_(None) if step is None else Delegation.step == step,
            ),
            lock,
        )
        if found is None:
            return None
        companies = {owner.id: owner.external_id} if owner is not None else {}
        return delegation_record(
            found, {who.id: who.external_id, whom.id: whom.external_id}, companies
        )
