"""The directory as the API shows it: one record per company, account, group, membership,
assignment and delegation, with the entity tag of each (:mod:`~approvalrules.store.etags`).

A record has the fields of the matching directory write (``PUT /api/v1/directory/...``) and
its key, so what a client reads is what it would write back; its tag changes exactly when
the record does.  :class:`DirectoryRecords` finds one record by its key (``lock=True`` takes
the row lock a conditional write checks under).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from ..engine.money import format_amount
from ..errors import ApprovalRulesError
from .approvers import delegation_by_key
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
        # companies and accounts by external id, found once (a sync reads each many times)
        self._rows: dict[tuple[type, str], Any] = {}

    def forget(self) -> None:
        """Drop the rows found so far (after a savepoint's rollback, or a write that made
        one)."""
        self._rows.clear()

    def _one(self, query, lock: bool):
        if lock:
            # FOR UPDATE on PostgreSQL; SQLite serialises writers anyway and ignores it
            query = query.with_for_update().execution_options(populate_existing=True)
        return self.session.scalar(query)

    def _company(self, external_id: str | None, lock: bool = False) -> Company | None:
        if external_id is None:
            return None
        return self._row(Company, external_id, lock)

    def _account(self, external_id: str, lock: bool = False) -> Account | None:
        return self._row(Account, external_id, lock)

    def _row(self, model, external_id: str, lock: bool):
        found = None if lock else self._rows.get((model, external_id))
        if found is None:
            found = self._one(
                select(model).where(
                    model.tenant_id == self.tenant.id, model.external_id == external_id
                ),
                lock,
            )
            if found is not None:
                self._rows[(model, external_id)] = found
        return found

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
            delegation_by_key(self.tenant.id, who.id, whom.id, owner, step),
            lock,
        )
        if found is None:
            return None
        companies = {owner.id: owner.external_id} if owner is not None else {}
        return delegation_record(
            found, {who.id: who.external_id, whom.id: whom.external_id}, companies
        )


# ------------------------------------------------------------------ listings

#: a listing's page size: default and most
DEFAULT_LIMIT, MAX_LIMIT = 50, 200

#: the filters each listing takes (query parameters of GET /api/v1/directory/<kind>)
FILTERS = {
    "companies": ("parent", "ruleset"),
    "accounts": ("company", "active", "email"),
    "groups": ("company",),
    "memberships": ("account", "company", "group", "role", "status"),
    "assignments": ("approver", "account", "company"),
    "delegations": ("delegator", "delegate", "company"),
}


def encode_cursor(row_id: int) -> str:
    """An opaque cursor: where the next page starts (after this row)."""
    return base64.urlsafe_b64encode(f"after:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The row id a cursor names (0: from the start); 400 ``invalid_cursor`` when it is none
    of ours."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix != "after" or not number.isdigit() or len(number) > 10:
            raise ValueError(text)
        return int(number)
    except ValueError:
        raise ApprovalRulesError(
            "invalid_cursor",
            "cursor is not one this API gave out; pass next_cursor from the previous page as is",
            details={"parameter": "cursor"},
        ) from None


@dataclass
class RecordPage:
    """One page of a listing: the records (each with its ``etag``) and the next cursor."""

    items: list[dict[str, Any]]
    next_cursor: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor}


def _flag(value: str) -> bool:
    if value not in ("true", "false"):
        raise ApprovalRulesError(
            "invalid_parameter", f"a yes/no filter is true or false, not {value[:20]!r}"
        )
    return value == "true"


class DirectoryListings(DirectoryRecords):
    """The listings of :data:`KINDS`: filtered, in creation order, a page after a cursor."""

    def page(
        self, kind: str, filters: dict[str, str], cursor: str | None, limit: int
    ) -> RecordPage:
        after = decode_cursor(cursor)
        limit = max(1, min(limit, MAX_LIMIT))
        unknown = sorted(set(filters) - set(FILTERS[kind]))
        if unknown:
            raise ApprovalRulesError(
                "unknown_filter",
                f"{kind} cannot be filtered by {', '.join(unknown)}; "
                f"filters: {', '.join(FILTERS[kind])}",
            )
        model, query, render = getattr(self, f"_{kind}")(filters)
        rows = self.session.scalars(
            query.where(model.id > after).order_by(model.id).limit(limit + 1)
        ).all()
        more = len(rows) > limit
        rows = rows[:limit]
        items = [tagged(record) for record in render(rows)]
        return RecordPage(items, encode_cursor(rows[-1].id) if more else None)

    def _id_of(self, model, external_id: str):
        """The row id of a company or account by external id (-1: none, so nothing matches)."""
        found = self._company(external_id) if model is Company else self._account(external_id)
        return found.id if found is not None else -1

    def _companies(self, filters):
        query = select(Company).where(Company.tenant_id == self.tenant.id)
        if "parent" in filters:
            query = query.where(Company.parent_id == self._id_of(Company, filters["parent"]))
        if "ruleset" in filters:
            query = query.where(Company.ruleset_name == filters["ruleset"])
        query = query.options(selectinload(Company.parent))
        return Company, query, lambda rows: [company_record(c) for c in rows]

    def _accounts(self, filters):
        query = select(Account).where(Account.tenant_id == self.tenant.id)
        if "company" in filters:
            query = query.where(
                Account.id.in_(
                    select(Membership.account_id).where(
                        Membership.company_id == self._id_of(Company, filters["company"])
                    )
                )
            )
        if "active" in filters:
            query = query.where(Account.active.is_(_flag(filters["active"])))
        if "email" in filters:
            query = query.where(func.lower(Account.email) == filters["email"].lower())
        return Account, query, lambda rows: [account_record(a) for a in rows]

    def _groups(self, filters):
        query = select(Group).join(Company, Group.company_id == Company.id)
        query = query.where(Company.tenant_id == self.tenant.id)
        if "company" in filters:
            query = query.where(Company.external_id == filters["company"])
        query = query.options(selectinload(Group.company))
        return Group, query, lambda rows: [group_record(g) for g in rows]

    def _memberships(self, filters):
        query = select(Membership).join(Account, Membership.account_id == Account.id)
        query = query.where(Account.tenant_id == self.tenant.id)
        if "account" in filters:
            query = query.where(Account.external_id == filters["account"])
        if "company" in filters:
            query = query.where(Membership.company_id == self._id_of(Company, filters["company"]))
        if "group" in filters:
            query = query.where(
                Membership.group_id.in_(
                    select(Group.id).where(Group.external_id == filters["group"])
                )
            )
        if "role" in filters:
            query = query.where(Membership.role == filters["role"])
        if "status" in filters:
            query = query.where(Membership.status == filters["status"])
        query = query.options(
            selectinload(Membership.account),
            selectinload(Membership.company),
            selectinload(Membership.group),
        )
        return Membership, query, lambda rows: [membership_record(m) for m in rows]

    def _assignments(self, filters):
        query = select(Assignment).join(Company, Assignment.company_id == Company.id)
        query = query.where(Company.tenant_id == self.tenant.id)
        if "company" in filters:
            query = query.where(Company.external_id == filters["company"])
        for key, column in (
            ("approver", Assignment.approver_id),
            ("account", Assignment.account_id),
        ):
            if key in filters:
                query = query.where(column == self._id_of(Account, filters[key]))
        query = query.options(
            selectinload(Assignment.approver),
            selectinload(Assignment.account),
            selectinload(Assignment.company),
        )
        return Assignment, query, lambda rows: [assignment_record(a) for a in rows]

    def _delegations(self, filters):
        query = select(Delegation).where(Delegation.tenant_id == self.tenant.id)
        for key, column in (
            ("delegator", Delegation.delegator_id),
            ("delegate", Delegation.delegate_id),
        ):
            if key in filters:
                query = query.where(column == self._id_of(Account, filters[key]))
        if "company" in filters:
            query = query.where(Delegation.company_id == self._id_of(Company, filters["company"]))

        def render(rows):
            account_ids = {r.delegator_id for r in rows} | {r.delegate_id for r in rows}
            accounts = dict(
                self.session.execute(
                    select(Account.id, Account.external_id).where(Account.id.in_(account_ids))
                ).all()
            )
            company_ids = {r.company_id for r in rows if r.company_id is not None}
            companies = dict(
                self.session.execute(
                    select(Company.id, Company.external_id).where(Company.id.in_(company_ids))
                ).all()
            )
            return [delegation_record(r, accounts, companies) for r in rows]

        return Delegation, query, render
