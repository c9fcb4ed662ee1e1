"""Approval rights: assignments (who approves for whom) and delegations (who stands in for whom).

A delegation that would close a loop is refused by the engine's rule
(:func:`approvalrules.engine.directory.check_delegations`), the same rule the
fixtures obey; removing an approver is refused while orders wait for them.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from ..engine import directory as records
from ..errors import DirectoryError
from .directory import stored_delegations
from .directory_base import UNSET, DirectoryServiceBase
from .models import Account, Assignment, Company, Delegation


def delegation_by_key(
    tenant_id: int, delegator_id: int, delegate_id: int, company: Company | None, step: str | None
):
    """The query for the one delegation with this key: delegator, delegate, company (None:
    every company) and step (None: every step)."""
    return select(Delegation).where(
        Delegation.tenant_id == tenant_id,
        Delegation.delegator_id == delegator_id,
        Delegation.delegate_id == delegate_id,
        Delegation.company_id.is_(None) if company is None else Delegation.company_id == company.id,
        Delegation.step.is_(None) if step is None else Delegation.step == step,
    )


class ApproverWrites(DirectoryServiceBase):
    """Writes to assignments and delegations; part of
    :class:`~approvalrules.store.directory_service.DirectoryService`."""

    def _find_assignment(
        self, approver: Account, account: Account, company: Company, step: str | None
    ) -> Assignment | None:
        return self.session.scalar(
            select(Assignment).where(
                Assignment.company_id == company.id,
                Assignment.approver_id == approver.id,
                Assignment.account_id == account.id,
                Assignment.step.is_(None) if step is None else Assignment.step == step,
            )
        )

    def upsert_assignment(
        self,
        approver_id: str,
        account_id: str,
        company_id: str,
        *,
        threshold: Decimal | None = UNSET,
        limit: Decimal | None = UNSET,
        step: str | None = None,
    ) -> Assignment:
        approver, account, company = (
            self.account(approver_id),
            self.account(account_id),
            self.company(company_id),
        )
        assignment = self._find_assignment(approver, account, company, step)
        created = assignment is None
        if created:
            assignment = Assignment(company=company, approver=approver, account=account, step=step)
            self.session.add(assignment)
        values = {}
        for key, value in (("threshold", threshold), ("limit", limit)):
            if value is not UNSET:
                values[key] = None if value is None else Decimal(value)
        changes = self._apply(assignment, values)
        if created or changes:
            self.session.flush()
            self._audit(
                "assignment.created" if created else "assignment.updated",
                "assignment",
                f"{approver_id}->{account_id}@{company_id}" + (f"#{step}" if step else ""),
                changes,
            )
        return assignment

    def upsert_delegation(
        self,
        delegator_id: str,
        delegate_id: str,
        valid_from,
        valid_until,
        *,
        company: str | None = None,
        step: str | None = None,
    ) -> Delegation:
        """Let ``delegate`` approve for ``delegator`` in a period.

        Refused when it would close a loop of delegations.
        """
        delegator, delegate = self.account(delegator_id), self.account(delegate_id)
        company_row = self.company(company) if company else None
        if delegator.id == delegate.id:
            raise DirectoryError(
                "invalid_delegation", f"{delegator_id!r} cannot delegate to itself"
            )
        if valid_until < valid_from:
            raise DirectoryError(
                "invalid_delegation", f"valid_until {valid_until} is before valid_from {valid_from}"
            )
        existing = self.session.scalar(
            delegation_by_key(self.tenant.id, delegator.id, delegate.id, company_row, step)
        )
        # one rule for loops, shared with the fixtures: check the whole graph with this edge in it
        current = [
            x
            for x in stored_delegations(self.session, self.tenant)
            if existing is None
            or (x.delegator_id, x.delegate_id, x.company_id, x.step)
            != (delegator_id, delegate_id, company, step)
        ]
        proposed = records.Delegation(
            delegator_id, delegate_id, valid_from, valid_until, company, step
        )
        everyone = current + [proposed]
        records.check_delegations(
            everyone,
            {x.company_id for x in everyone if x.company_id},
            {x.delegator_id for x in everyone} | {x.delegate_id for x in everyone},
        )
        if existing is None:
            existing = Delegation(
                tenant_id=self.tenant.id,
                delegator_id=delegator.id,
                delegate_id=delegate.id,
                company_id=company_row.id if company_row else None,
                step=step,
                valid_from=valid_from,
                valid_until=valid_until,
            )
            self.session.add(existing)
        elif (existing.valid_from, existing.valid_until) == (valid_from, valid_until):
            return existing  # unchanged: nothing to write, nothing to audit
        else:
            existing.valid_from, existing.valid_until = valid_from, valid_until
        self.session.flush()
        self._audit(
            "delegation.saved",
            "delegation",
            f"{delegator_id}->{delegate_id}",
            {
                "valid_from": valid_from.isoformat(),
                "valid_until": valid_until.isoformat(),
                "company": company,
                "step": step,
            },
        )
        return existing

    def delete_delegation(
        self,
        delegator_id: str,
        delegate_id: str,
        *,
        company: str | None = None,
        step: str | None = None,
    ) -> None:
        """Revoke the delegation with this key (the key of :meth:`upsert_delegation`).

        Approval requests already pending keep the approvers they were given
        when submitted; the delegation stops counting for what is decided next.
        """
        delegator, delegate = self.account(delegator_id), self.account(delegate_id)
        company_row = self.company(company) if company else None
        found = self.session.scalar(
            delegation_by_key(self.tenant.id, delegator.id, delegate.id, company_row, step)
        )
        if found is None:
            scope = "".join(
                (f" in {company!r}" if company else "", f" for step {step!r}" if step else "")
            )
            raise DirectoryError(
                "unknown_delegation",
                f"{delegator_id!r} has no delegation to {delegate_id!r}{scope}",
            )
        period = {
            "valid_from": found.valid_from.isoformat(),
            "valid_until": found.valid_until.isoformat(),
        }
        self.session.delete(found)
        self.session.flush()
        self._audit(
            "delegation.deleted",
            "delegation",
            f"{delegator_id}->{delegate_id}",
            {**period, "company": company, "step": step},
        )

    def remove_assignment(
        self, approver_id: str, account_id: str, company_id: str, step: str | None = None
    ) -> None:
        """Remove an approver from an account.

        Refused while orders of that account wait for this approver.
        """
        approver, account, company = (
            self.account(approver_id),
            self.account(account_id),
            self.company(company_id),
        )
        assignment = self._find_assignment(approver, account, company, step)
        if assignment is None:
            raise DirectoryError(
                "unknown_assignment",
                f"{approver_id!r} is not assigned to approve for {account_id!r} in {company_id!r}",
            )
        self._refuse_if_pending(
            approver, f"removing it as approver of {account_id!r}", company=company, buyer=account
        )
        self.session.delete(assignment)
        self.session.flush()
        self._audit(
            "assignment.removed",
            "assignment",
            f"{approver_id}->{account_id}@{company_id}" + (f"#{step}" if step else ""),
        )
