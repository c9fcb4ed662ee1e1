"""The directory rules, in one place, and the writes that obey them.

Every write goes through :class:`DirectoryService`: upserts by external id
(what the API and the importer call) and the named operations (invite,
accept, add to group, delete group, deactivate...).  A broken rule raises
:class:`approvalrules.errors.DirectoryError` with a code and a message that
says why; every change that happens writes an :class:`AuditEvent`.  An upsert
that changes nothing writes nothing, so loading the same fixture twice is a
no-op.

Rules enforced here:

* ``master_and_member`` -- an account is master of a company or a member of
  one of its groups, never both (a CHECK constraint backs it up);
* ``already_in_group`` -- one group at a time: with the tenant setting
  ``groups.one_per_account`` (default true) across all the account's
  memberships, otherwise within a membership (its single group slot);
  ``move=True`` moves instead of refusing;
* invitations -- ``invite`` creates an ``invited`` membership, which only
  ``accept`` activates (``decline`` declines); ``not_invited`` otherwise;
* group deletion -- policy ``remove_members`` | ``move_to_company`` |
  ``refuse_if_members`` (tenant setting ``groups.delete_policy``, default
  ``refuse_if_members``);
* ``approver_has_pending`` -- an account that is an eligible approver of
  pending approval requests cannot be deactivated, removed, or moved out of
  its group (the Sana rule: an authorizer with orders to decide stays until
  they are decided or reassigned).

Companies, accounts, groups and bulk loads are here; memberships are in
:mod:`~approvalrules.store.memberships`, assignments and delegations in
:mod:`~approvalrules.store.approvers`, company contacts and locations in
:mod:`~approvalrules.store.company_parts`, and the lookups they share in
:mod:`~approvalrules.store.directory_base`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select

from ..errors import DirectoryError
from .approvers import ApproverWrites
from .company_parts import CompanyPartsWrites
from .directory_base import UNSET, eligible_approver_ids
from .directory_checks import check_email
from .memberships import MembershipWrites
from .models import Account, Company, Group, Membership

__all__ = ["GROUP_DELETE_POLICIES", "UNSET", "DirectoryService", "eligible_approver_ids"]

GROUP_DELETE_POLICIES = ("remove_members", "move_to_company", "refuse_if_members")


class DirectoryService(MembershipWrites, ApproverWrites, CompanyPartsWrites):
    """Directory writes for one tenant, each checked against the rules above."""

    # companies

    def upsert_company(
        self,
        external_id: str,
        *,
        name: str = UNSET,
        parent: str | None = UNSET,
        ruleset: str | None = UNSET,
        attributes: Mapping[str, Any] = UNSET,
        contacts: Iterable[Mapping[str, str]] = UNSET,
        locations: Iterable[Mapping[str, str]] = UNSET,
    ) -> Company:
        """Create or change a company; ``contacts`` and ``locations``, when given, replace the
        company's (see :mod:`~approvalrules.store.company_parts`)."""
        if ruleset is not UNSET:
            self.rulesets.check_ruleset(ruleset)
        company = self._find_company(external_id)
        created = company is None
        if created:
            company = Company(
                tenant_id=self.tenant.id, external_id=external_id, name=external_id, attributes={}
            )
            self.session.add(company)
        values: dict[str, Any] = {"name": name, "ruleset_name": ruleset}
        if attributes is not UNSET:
            values["attributes"] = dict(attributes or {})
        if parent is not UNSET:
            values["parent_id"] = self._parent_id(external_id, parent)
        changes = self._apply(company, values)
        if created or changes:
            self.session.flush()
            self._audit(
                "company.created" if created else "company.updated", "company", external_id, changes
            )
        if locations is not UNSET:
            self.set_locations(external_id, locations or ())
        if contacts is not UNSET:
            self.set_contacts(external_id, contacts or ())
        return company

    def _parent_id(self, external_id: str, parent: str | None) -> int | None:
        if parent is None:
            return None
        node = self.company(parent)
        seen = {external_id}
        while node is not None:
            if node.external_id in seen:
                raise DirectoryError(
                    "company_cycle",
                    f"company {external_id!r} cannot have parent {parent!r}: "
                    "the parent chain would loop",
                )
            seen.add(node.external_id)
            node = node.parent
        return self.company(parent).id

    # accounts

    def upsert_account(
        self,
        external_id: str,
        *,
        name: str = UNSET,
        email: str | None = UNSET,
        email_enabled: bool = UNSET,
        active: bool = UNSET,
    ) -> Account:
        if email is not UNSET:
            check_email(email)
        account = self._find_account(external_id)
        created = account is None
        if created:
            account = Account(
                tenant_id=self.tenant.id,
                external_id=external_id,
                name=external_id,
                email_enabled=True,
                active=True,
            )
            self.session.add(account)
        elif active is False and account.active:
            self._refuse_if_pending(account, "deactivating it")
        changes = self._apply(
            account,
            {"name": name, "email": email, "email_enabled": email_enabled, "active": active},
        )
        if created or changes:
            self.session.flush()
            self._audit(
                "account.created" if created else "account.updated", "account", external_id, changes
            )
        return account

    def deactivate_account(self, external_id: str) -> Account:
        """Deactivate; refused while the account must still decide pending orders."""
        return self.upsert_account(external_id, active=False)

    # groups

    def upsert_group(self, company_id: str, external_id: str, *, name: str = UNSET) -> Group:
        company = self.company(company_id)
        group = self.session.scalar(
            select(Group).where(Group.company_id == company.id, Group.external_id == external_id)
        )
        created = group is None
        if created:
            group = Group(company_id=company.id, external_id=external_id, name=external_id)
            self.session.add(group)
        changes = self._apply(group, {"name": name})
        if created or changes:
            self.session.flush()
            self._audit(
                "group.created" if created else "group.updated",
                "group",
                f"{company_id}/{external_id}",
                changes,
            )
        return group

    def delete_group(self, company_id: str, external_id: str, policy: str | None = None) -> None:
        """Delete a group; its members are handled by ``policy`` (default: the tenant's setting)."""
        company = self.company(company_id)
        group = self.group(company, external_id)
        policy = policy or self.tenant.setting("groups.delete_policy", "refuse_if_members")
        if policy not in GROUP_DELETE_POLICIES:
            raise DirectoryError(
                "invalid_policy",
                "group delete policy must be one of "
                f"{', '.join(GROUP_DELETE_POLICIES)}, not {policy!r}",
            )
        members = self.session.scalars(
            select(Membership)
            .join(Account, Membership.account_id == Account.id)
            .where(Membership.group_id == group.id)
            .order_by(Account.external_id)
        ).all()
        names = [m.account.external_id for m in members]
        if members and policy == "refuse_if_members":
            raise DirectoryError(
                "group_has_members",
                f"group {external_id!r} of {company_id!r} still has {len(members)} "
                f"member(s) ({', '.join(names)}); "
                "move them out first (the tenant's group delete policy is refuse_if_members)",
                details={"members": names},
            )
        if policy == "remove_members":
            for m in members:
                self._refuse_if_pending(
                    m.account,
                    f"removing it from {company_id!r} with group {external_id!r}",
                    company=company,
                )
        for m in members:
            m.group = None
            if policy == "remove_members":
                m.status = "inactive"
        self.session.delete(group)
        self.session.flush()
        self._audit(
            "group.deleted",
            "group",
            f"{company_id}/{external_id}",
            {"policy": policy, "members": names},
        )

    # fixtures

    def load_records(self, records: Mapping[str, Iterable[Any]]) -> None:
        """Upsert the records of ``approvalrules.engine.directory.records_from_dict``.

        Members whose group changes leave their old group first, so a fixture
        that moves people between groups loads; one that puts an account in two
        groups breaks the one-group rule and is refused.
        """
        companies = list(records.get("companies", ()))
        for c in companies:
            self.upsert_company(c.id, name=c.name, ruleset=c.ruleset, attributes=dict(c.attributes))
        for c in companies:
            self.upsert_company(c.id, parent=c.parent_id)
        for g in records.get("groups", ()):
            self.upsert_group(g.company_id, g.id, name=g.name)
        for a in records.get("accounts", ()):
            self.upsert_account(
                a.id, name=a.name, email=a.email, email_enabled=a.email_enabled, active=a.active
            )
        memberships = list(records.get("memberships", ()))
        # leave groups before joining others, so a fixture that swaps two members loads
        for m in memberships:
            existing = self._find_membership(self.account(m.account_id), self.company(m.company_id))
            if (
                existing is not None
                and existing.group is not None
                and existing.group.external_id != m.group
            ):
                self.upsert_membership(m.account_id, m.company_id, group=None)
        for m in memberships:
            self.upsert_membership(
                m.account_id,
                m.company_id,
                role=m.role,
                group=m.group,
                master=m.master,
                default=m.default,
                status=m.status,
                settings=dict(m.settings),
                attributes=dict(m.attributes),
            )
        # a company's contacts and locations in the fixture replace the stored ones
        for company_id in dict.fromkeys(x.company_id for x in records.get("locations", ())):
            self.set_locations(
                company_id,
                [
                    {"id": x.id, "name": x.name, "address": x.address}
                    for x in records["locations"]
                    if x.company_id == company_id
                ],
            )
        for company_id in dict.fromkeys(x.company_id for x in records.get("contacts", ())):
            self.set_contacts(
                company_id,
                [
                    {"account": x.account_id, "kind": x.kind}
                    for x in records["contacts"]
                    if x.company_id == company_id
                ],
            )
        for a in records.get("assignments", ()):
            self.upsert_assignment(
                a.approver_id,
                a.account_id,
                a.company_id,
                threshold=a.threshold,
                limit=a.limit,
                step=a.step,
            )
        for x in records.get("delegations", ()):
            self.upsert_delegation(
                x.delegator_id,
                x.delegate_id,
                x.valid_from,
                x.valid_until,
                company=x.company_id,
                step=x.step,
            )
