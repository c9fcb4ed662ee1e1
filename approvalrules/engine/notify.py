"""Who is told about a decision, and how: by e-mail, or in the inbox."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .decision import Notification, Recipient, Step

if TYPE_CHECKING:  # annotations only: evaluate imports this module
    from .compile import Policy
    from .directory import Account, Directory
    from .evaluate import Evaluation


def receives_email(settings: Mapping[str, Any], account: Account) -> bool:
    """Whether an account is notified by e-mail rather than in its inbox.

    All three must hold: its effective ``email`` setting, the account's own
    ``email_enabled`` switch, and an e-mail address.
    """
    return bool(settings["email"] and account.email_enabled and account.email)


def master_confirmation_recipients(
    policy: Policy, directory: Directory, company: str
) -> tuple[Recipient, ...]:
    """Who gets the master confirmation of a group member's approved order: the company's
    active masters with an active account, each by e-mail or in the inbox (:func:`receives_email`
    on the master's effective settings)."""
    masters = []
    for m in directory.memberships_of_company(company):
        account = directory.account(m.account_id) if m.master and m.active else None
        if account is not None and account.active:
            emailed = receives_email(policy.effective_settings(m), account)
            masters.append(Recipient(m.account_id, "email" if emailed else "inbox", company))
    return tuple(masters)


def approver_channel(policy: Policy, approver_email: bool, buyer_email: bool) -> str:
    """How an approver hears of a request (E3): by e-mail when the approver receives e-mail
    and, under ``notifications.approval_email: both_flags``, the buyer does too; else in the
    inbox."""
    both = policy.approval_email == "both_flags"
    return "email" if approver_email and (buyer_email or not both) else "inbox"


def approval_requested(policy: Policy, step: Step, buyer_email: bool) -> Notification:
    """The approval_requested notification for a step: e-mail or inbox per the e-mail flags (E3)."""
    return Notification(
        "approval_requested",
        tuple(
            Recipient(a.account, approver_channel(policy, a.email, buyer_email))
            for a in step.approvers
        ),
    )


def notifications(ev: Evaluation, outcome: str, steps: list[Step]) -> tuple[Notification, ...]:
    """The notifications a decision with ``outcome`` sends (the first pending step's approvers)."""
    buyer = Recipient(
        ev.order.buyer, "email" if receives_email(ev.settings, ev.account) else "inbox"
    )
    if outcome == "approved":
        out = [Notification("order_confirmation", (buyer,))]
        if ev.policy.master_confirmation and ev.group:
            masters = master_confirmation_recipients(ev.policy, ev.directory, ev.company)
            if masters:
                out.append(Notification("master_confirmation", masters))
        return tuple(out)
    if outcome == "pending":
        return (Notification("order_submitted", (buyer,)), _first_step_requested(ev, steps[0]))
    if outcome == "held":
        return (Notification("order_held", (buyer,)),)
    return ()


def _first_step_requested(ev: Evaluation, step: Step) -> Notification:
    """approval_requested for the first pending step, remembered in its memo entry (steps.py)."""
    buyer_email = receives_email(ev.settings, ev.account)
    entry = ev.first_step
    if entry is None or entry[0] is not step:
        return approval_requested(ev.policy, step, buyer_email)
    slot = 3 if buyer_email else 2
    note = entry[slot]
    if note is None:
        note = entry[slot] = approval_requested(ev.policy, step, buyer_email)
    return note
