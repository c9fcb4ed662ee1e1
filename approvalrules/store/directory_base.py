"""What every directory write shares: lookups by external id, the audit, the pending-order guard.

:class:`DirectoryServiceBase` is the base of the write mixins
(:mod:`~approvalrules.store.memberships`, :mod:`~approvalrules.store.approvers`)
that :class:`~approvalrules.store.directory_service.DirectoryService` combines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import DirectoryError
from .directory import note_directory_change
from .directory_checks import RuleSetNames
from .models import (
    Account,
    ApprovalEligibility,
    ApprovalRequest,
    Company,
    Group,
    Membership,
    Order,
    Tenant,
)
from .services import audit, resolve_tenant

#: "not given" for the keyword arguments of an upsert (``None`` is a value: it clears a field)
UNSET: Any = type("Unset", (), {"__repr__": lambda self: "UNSET", "__bool__": lambda self: False})()


def eligible_approver_ids(steps: Any, from_step: int = 0) -> set[str]:
    """External account ids named as eligible approvers in an approval request's steps.

    Tolerates the shapes a decision may use: ``eligible``/``approvers`` lists of
    ids or of ``{"account": id, ...}`` objects.
    """
    found: set[str] = set()
    if not isinstance(steps, list):
        return found
    for step in steps[from_step:]:
        if not isinstance(step, Mapping):
            continue
        for key in ("eligible", "approvers", "eligible_approvers"):
            for entry in step.get(key) or ():
                if isinstance(entry, str):
                    found.add(entry)
                elif isinstance(entry, Mapping):
                    ident = entry.get("account") or entry.get("account_id") or entry.get("id")
                    if isinstance(ident, str):
                        found.add(ident)
    return found


class DirectoryServiceBase:
    """The tenant, the actor and the lookups every directory write needs."""

    def __init__(
        self,
        session: Session,
        tenant: Tenant | int | str,
        actor: str = "system",
        *,
        check_names: bool = True,
    ):
        """``check_names=False`` skips the role, rule-set and settings checks of
        :mod:`~approvalrules.store.directory_checks`; only
        :func:`approvalrules.store.testing.load_fixture` uses it, for directory fixtures
        whose rule sets a test never publishes.  E-mail addresses are always checked."""
        self.session = session
        self.tenant = resolve_tenant(session, tenant)
        self.actor = actor
        self._companies: dict[str, Company] = {}
        self._accounts: dict[str, Account] = {}
        #: the published rule sets and their roles that writes are checked against
        self.rulesets = RuleSetNames(session, self.tenant.id, enabled=check_names)

    # lookups

    def company(self, external_id: str) -> Company:
        company = self._find_company(external_id)
        if company is None:
            raise DirectoryError("unknown_company", f"no company {external_id!r}")
        return company

    def account(self, external_id: str) -> Account:
        account = self._find_account(external_id)
        if account is None:
            raise DirectoryError("unknown_account", f"no account {external_id!r}")
        return account

    def group(self, company: Company, external_id: str) -> Group:
        group = self.session.scalar(
            select(Group).where(Group.company_id == company.id, Group.external_id == external_id)
        )
        if group is None:
            raise DirectoryError(
                "unknown_group", f"no group {external_id!r} in company {company.external_id!r}"
            )
        return group

    def membership(self, account: Account, company: Company) -> Membership:
        membership = self._find_membership(account, company)
        if membership is None:
            raise DirectoryError(
                "not_a_member",
                f"account {account.external_id!r} is not a member of company "
                f"{company.external_id!r}",
            )
        return membership

    # Companies and accounts are never deleted here, so found ones are kept for
    # the life of the service (a bulk load looks each up many times).

    def forget_cached_rows(self) -> None:
        """Drop the companies and accounts found so far: after a savepoint's rollback, one
        created inside it is gone."""
        self._companies.clear()
        self._accounts.clear()

    def _find_company(self, external_id: str) -> Company | None:
        company = self._companies.get(external_id)
        if company is None:
            company = self.session.scalar(
                select(Company).where(
                    Company.tenant_id == self.tenant.id, Company.external_id == external_id
                )
            )
            if company is not None:
                self._companies[external_id] = company
        return company

    def _find_account(self, external_id: str) -> Account | None:
        account = self._accounts.get(external_id)
        if account is None:
            account = self.session.scalar(
                select(Account).where(
                    Account.tenant_id == self.tenant.id, Account.external_id == external_id
                )
            )
            if account is not None:
                self._accounts[external_id] = account
        return account

    def _find_membership(self, account: Account, company: Company) -> Membership | None:
        return self.session.scalar(
            select(Membership).where(
                Membership.account_id == account.id, Membership.company_id == company.id
            )
        )

    def _audit(
        self, action: str, subject_type: str, subject_id: str, data: Mapping[str, Any] | None = None
    ) -> None:
        # every directory change passes here: a new directory version retires the
        # snapshots that processes cache (see approvalrules.store.directory)
        note_directory_change(self.session, self.tenant)
        audit(self.session, self.tenant.id, self.actor, action, subject_type, subject_id, data)

    @staticmethod
    def _apply(obj: Any, values: Mapping[str, Any]) -> dict[str, Any]:
        changes = {}
        for key, value in values.items():
            if value is UNSET:
                continue
            if getattr(obj, key) != value:
                setattr(obj, key, value)
                changes[key] = value
        return changes

    # pending approvals

    def pending_orders_for_approver(
        self, account: Account, company: Company | None = None, buyer: Account | None = None
    ) -> list[str]:
        """External ids of pending orders that ``account`` is (still) eligible to approve."""
        query = (
            select(ApprovalRequest.steps, ApprovalRequest.current_step, Order.external_id)
            .join(Order, ApprovalRequest.order_id == Order.id)
            .where(ApprovalRequest.tenant_id == self.tenant.id, ApprovalRequest.status == "pending")
            .order_by(Order.external_id)
        )
        if company is not None:
            query = query.where(Order.company_id == company.id)
        if buyer is not None:
            query = query.where(Order.buyer_id == buyer.id)
        # the eligibility index answers for requests the workflow wrote; the
        # steps JSON covers any request written without it
        indexed = query.join(
            ApprovalEligibility, ApprovalEligibility.request_id == ApprovalRequest.id
        ).where(
            ApprovalEligibility.tenant_id == self.tenant.id,
            ApprovalEligibility.account_id == account.external_id,
            ApprovalEligibility.step_index >= ApprovalRequest.current_step,
        )
        found = {order_id for _, _, order_id in self.session.execute(indexed)}
        unindexed = query.where(
            ~ApprovalRequest.id.in_(
                select(ApprovalEligibility.request_id).where(
                    ApprovalEligibility.tenant_id == self.tenant.id
                )
            )
        )
        found.update(
            order_id
            for steps, current_step, order_id in self.session.execute(unindexed)
            if account.external_id in eligible_approver_ids(steps, current_step or 0)
        )
        return sorted(found)

    def _refuse_if_pending(
        self,
        account: Account,
        doing: str,
        company: Company | None = None,
        buyer: Account | None = None,
    ) -> None:
        orders = self.pending_orders_for_approver(account, company, buyer)
        if orders:
            shown = ", ".join(orders[:5]) + (", ..." if len(orders) > 5 else "")
            raise DirectoryError(
                "approver_has_pending",
                f"account {account.external_id!r} is an approver of {len(orders)} "
                f"pending order(s) ({shown}); "
                f"refusing {doing}: decide or reassign those orders first",
                details={"orders": orders},
            )
