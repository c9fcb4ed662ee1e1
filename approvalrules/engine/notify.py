"""Who is told about a decision, and how: by e-mail, or in the inbox."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .decision import Notification, Recipient, Step

if TYPE_CHECKING:  # annotations only: evaluate imports this module
    from .compile import Policy
    from .directory import Account
    from .evaluate import Evaluation


def receives_email(settings: Mapping[str, Any], account: Account) -> bool:
    """Whether an account is notified by e-mail rather than in its inbox.

    All three must hold: its effective ``email`` setting, the account's own
    ``email_enabled`` switch, and an e-mail address.
    """
    return bool(settings["email"] and account.email_enabled and account.email)


def approval_requested(policy: Policy, step: Step, buyer_email: bool) -> Notification:
    """The approval_requested notification for a step: e-mail or inbox per the e-mail flags (E3)."""
    both = policy.approval_email == "both_flags"
    return Notification(
        "approval_requested",
        tuple(
            Recipient(a.account, "email" if a.email and (buyer_email or not both) else "inbox")
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
            masters = []
            directory = ev.directory
            for m in directory.memberships_of_company(ev.company):
                account = directory.account(m.account_id) if m.master and m.active else None
                if account is not None and account.active:
                    emailed = receives_email(ev.policy.effective_settings(m), account)
                    masters.append(
                        Recipient(m.account_id, "email" if emailed else "inbox", ev.company)
                    )
            masters = tuple(masters)
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
