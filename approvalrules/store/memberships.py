"""Membership writes: join, leave, groups, master, invitations.

Rules: ``master_and_member`` (master of a company or member of one of its
groups, never both), ``already_in_group`` (one group at a time; ``move=True``
moves instead of refusing), invitations (``invited`` until ``accept``),
settings as the rule-set schema defines them (``invalid_settings``), and
``approver_has_pending`` on deactivation, removal, or leaving a group.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from ..errors import DirectoryError
from .directory_base import UNSET, DirectoryServiceBase
from .directory_checks import check_settings
from .models import MEMBERSHIP_STATUSES, Assignment, Group, Membership


class MembershipWrites(DirectoryServiceBase):
    """Writes to memberships; part of
    :class:`~approvalrules.store.directory_service.DirectoryService`."""

    def upsert_membership(
        self,
        account_id: str,
        company_id: str,
        *,
        role: str = UNSET,
        group: str | None = UNSET,
        master: bool = UNSET,
        default: bool = UNSET,
        status: str = UNSET,
        settings: Mapping[str, Any] = UNSET,
        attributes: Mapping[str, Any] = UNSET,
        move: bool = False,
    ) -> Membership:
        account = self.account(account_id)
        company = self.company(company_id)
        membership = self._find_membership(account, company)
        created = membership is None
        if created:
            if role is UNSET:
                raise DirectoryError(
                    "missing_role",
                    f"a new membership of {account_id!r} in {company_id!r} needs a role",
                )
            membership = Membership(
                account=account,
                company=company,
                master=False,
                is_default=False,
                status="active",
                settings={},
                attributes={},
            )
        if role is not UNSET:
            self.rulesets.check_role(role, company)
        if settings is not UNSET and self.rulesets.enabled:
            check_settings(settings or {})
        if status is not UNSET and status not in MEMBERSHIP_STATUSES:
            raise DirectoryError(
                "invalid_status",
                "membership status must be one of "
                f"{', '.join(MEMBERSHIP_STATUSES)}, not {status!r}",
            )
        target_group = (
            membership.group if group is UNSET else (self.group(company, group) if group else None)
        )
        target_master = membership.master if master is UNSET else bool(master)
        if target_master and target_group is not None:
            raise self._master_and_member(account_id, company_id, target_group.external_id)
        if not created and status in ("inactive", "declined") and membership.status == "active":
            self._refuse_if_pending(
                account, f"making its membership of {company_id!r} {status}", company=company
            )
        if not created and membership.group is not None and target_group is not membership.group:
            self._refuse_if_pending(
                account,
                f"moving it out of group {membership.group.external_id!r} of {company_id!r}",
                company=company,
            )
        if target_group is not None and target_group is not membership.group:
            self._make_room_in_group(membership, target_group, move)
        if created:
            self.session.add(membership)
        values: dict[str, Any] = {
            "role": role,
            "master": master,
            "status": status,
            "is_default": default,
        }
        if group is not UNSET:
            values["group"] = target_group
        if settings is not UNSET:
            values["settings"] = dict(settings or {})
        if attributes is not UNSET:
            values["attributes"] = dict(attributes or {})
        changes = self._apply(membership, values)
        if "group" in changes:
            changes["group"] = target_group.external_id if target_group else None
        if membership.is_default and changes.get("is_default"):
            self._clear_other_defaults(membership)
        if created or changes:
            self.session.flush()
            self._audit(
                "membership.created" if created else "membership.updated",
                "membership",
                f"{account_id}@{company_id}",
                changes,
            )
        return membership

    def _master_and_member(self, account_id: str, company_id: str, group_id: str) -> DirectoryError:
        return DirectoryError(
            "master_and_member",
            f"account {account_id!r} cannot be both master of {company_id!r} "
            f"and a member of its group {group_id!r}: "
            "an account is master or member, never both",
        )

    def _make_room_in_group(self, membership: Membership, group: Group, move: bool) -> None:
        """Enforce one group at a time; with ``move`` leave the other group(s) instead."""
        account = membership.account
        occupied = [membership] if membership.group is not None else []
        if self.tenant.setting("groups.one_per_account", True):
            occupied = [
                m
                for m in self.session.scalars(
                    select(Membership).where(
                        Membership.account_id == account.id, Membership.group_id.is_not(None)
                    )
                )
                if m.group is not None and m.group is not group
            ]
            if membership.group is not None and membership not in occupied:
                occupied.append(membership)
        occupied = [m for m in occupied if m.group is not group]
        if not occupied:
            return
        if not move:
            current = occupied[0]
            raise DirectoryError(
                "already_in_group",
                f"account {account.external_id!r} is already in group "
                f"{current.group.external_id!r} of "
                f"{current.company.external_id!r}; a member is in one group at a time "
                f"(remove it from {current.group.external_id!r} first, or move it)",
                details={
                    "group": current.group.external_id,
                    "company": current.company.external_id,
                },
            )
        for m in occupied:
            if m is not membership:
                self._refuse_if_pending(
                    account,
                    f"moving it out of group {m.group.external_id!r} of {m.company.external_id!r}",
                    company=m.company,
                )
        for m in occupied:
            if m is not membership:
                left = m.group.external_id
                m.group = None
                self._audit(
                    "membership.updated",
                    "membership",
                    f"{account.external_id}@{m.company.external_id}",
                    {"group": None, "left": left},
                )

    def _clear_other_defaults(self, membership: Membership) -> None:
        for other in self.session.scalars(
            select(Membership).where(
                Membership.account_id == membership.account_id,
                Membership.id != membership.id,
                Membership.is_default.is_(True),
            )
        ):
            other.is_default = False

    def add_to_group(
        self, account_id: str, company_id: str, group_id: str, move: bool = False
    ) -> Membership:
        """Put a member of the company into one of its groups.

        With ``move`` the member leaves its current group instead of being refused.
        """
        membership = self.membership(self.account(account_id), self.company(company_id))
        if membership.master:
            raise self._master_and_member(account_id, company_id, group_id)
        return self.upsert_membership(account_id, company_id, group=group_id, move=move)

    def remove_from_group(self, account_id: str, company_id: str) -> Membership:
        self.membership(self.account(account_id), self.company(company_id))
        return self.upsert_membership(account_id, company_id, group=None)

    def set_master(self, account_id: str, company_id: str, master: bool = True) -> Membership:
        membership = self.membership(self.account(account_id), self.company(company_id))
        if master and membership.group is not None:
            raise self._master_and_member(account_id, company_id, membership.group.external_id)
        return self.upsert_membership(account_id, company_id, master=master)

    def invite(
        self, account_id: str, company_id: str, role: str, group: str | None = None, **fields: Any
    ) -> Membership:
        """An invited membership: it relates the account to nothing until accepted."""
        existing = self._find_membership(self.account(account_id), self.company(company_id))
        if existing is not None and existing.status in ("active", "invited"):
            raise DirectoryError(
                "already_member" if existing.status == "active" else "already_invited",
                f"account {account_id!r} is already "
                f"{'a member of' if existing.status == 'active' else 'invited to'} {company_id!r}",
            )
        return self.upsert_membership(
            account_id, company_id, role=role, group=group, status="invited", **fields
        )

    def accept(self, account_id: str, company_id: str) -> Membership:
        return self._answer(account_id, company_id, "active")

    def decline(self, account_id: str, company_id: str) -> Membership:
        return self._answer(account_id, company_id, "declined")

    def _answer(self, account_id: str, company_id: str, status: str) -> Membership:
        membership = self.membership(self.account(account_id), self.company(company_id))
        if membership.status != "invited":
            verb = "accept" if status == "active" else "decline"
            raise DirectoryError(
                "not_invited",
                f"account {account_id!r} has no pending invitation to {company_id!r} "
                f"(membership is {membership.status}); nothing to {verb}",
            )
        membership.status = status
        self.session.flush()
        self._audit(
            "membership.accepted" if status == "active" else "membership.declined",
            "membership",
            f"{account_id}@{company_id}",
            {"status": status},
        )
        return membership

    def remove_membership(self, account_id: str, company_id: str) -> None:
        """Remove an account from a company (and its assignments there)."""
        account = self.account(account_id)
        company = self.company(company_id)
        membership = self.membership(account, company)
        self._refuse_if_pending(account, f"removing it from {company_id!r}", company=company)
        for a in self.session.scalars(
            select(Assignment).where(
                Assignment.company_id == company.id,
                (Assignment.account_id == account.id) | (Assignment.approver_id == account.id),
            )
        ):
            self.session.delete(a)
        self.session.delete(membership)
        self.session.flush()
        self._audit("membership.removed", "membership", f"{account_id}@{company_id}")
