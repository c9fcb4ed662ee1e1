"""Who is told about a decision, and how: by e-mail, or in the inbox.

Three settings split the one ``email`` switch per recipient (each unset one
follows ``email``, so rule sets written before them behave as before):
``email_as_buyer`` (e-mail about one's own orders), ``email_as_approver``
(e-mail asking one to approve) and, on a buyer's record, ``email_to_approvers``
(whether the approvers of its orders are e-mailed: PointForce's "E-Mail
Approver" on the shopper's record).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .decision import Notification, Recipient, Step

if TYPE_CHECKING:  # annotations only: evaluate imports this module
    from .compile import Policy
    from .directory import Account, Directory
    from .evaluate import Evaluation


def receives_email(settings: Mapping[str, Any], account: Account, flag: str = "email") -> bool:
    """Whether an account is notified by e-mail rather than in its inbox.

    All three must hold: its effective ``flag`` setting (``email``, or
    ``email_as_buyer`` / ``email_as_approver``, which follow ``email`` when
    unset), the account's own ``email_enabled`` switch, and an e-mail address.
    """
    wanted = settings.get(flag)
    if wanted is None:
        wanted = settings["email"]
    return bool(wanted and account.email_enabled and account.email)


def emailed_as_buyer(settings: Mapping[str, Any], account: Account) -> bool:
    """Whether a buyer hears about its own orders by e-mail (``email_as_buyer``)."""
    return receives_email(settings, account, "email_as_buyer")


def emailed_as_approver(settings: Mapping[str, Any], account: Account) -> bool:
    """Whether an approver hears of requests, reminders and escalations by e-mail
    (``email_as_approver``)."""
    return receives_email(settings, account, "email_as_approver")


def approvers_emailed(policy: Policy, settings: Mapping[str, Any], account: Account) -> bool:
    """Whether the approvers of a buyer's orders may be e-mailed about them (E3).

    The buyer's ``email_to_approvers`` when set; otherwise true, or under
    ``notifications.approval_email: both_flags`` whether the buyer's own
    e-mail is on (its ``email`` setting, switch and address: the rule before
    the per-recipient flags).
    """
    explicit = settings.get("email_to_approvers")
    if explicit is not None:
        return bool(explicit)
    return policy.approval_email != "both_flags" or receives_email(settings, account)


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


def approver_channel(approver_email: bool, buyer_allows: bool) -> str:
    """How an approver hears of a request (E3): by e-mail when the approver is e-mailed as an
    approver (:func:`emailed_as_approver`) and the buyer lets its approvers be e-mailed
    (:func:`approvers_emailed`); else in the inbox."""
    return "email" if approver_email and buyer_allows else "inbox"


def approval_requested(step: Step, buyer_allows: bool) -> Notification:
    """The approval_requested notification for a step: e-mail or inbox per the e-mail flags (E3)."""
    return Notification(
        "approval_requested",
        tuple(
            Recipient(a.account, approver_channel(a.email, buyer_allows)) for a in step.approvers
        ),
    )


def notifications(ev: Evaluation, outcome: str, steps: list[Step]) -> tuple[Notification, ...]:
    """The notifications a decision with ``outcome`` sends (the first pending step's approvers)."""
    buyer = Recipient(
        ev.order.buyer, "email" if emailed_as_buyer(ev.settings, ev.account) else "inbox"
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
    buyer_allows = approvers_emailed(ev.policy, ev.settings, ev.account)
    entry = ev.first_step
    if entry is None or entry[0] is not step:
        return approval_requested(step, buyer_allows)
    slot = 3 if buyer_allows else 2
    note = entry[slot]
    if note is None:
        note = entry[slot] = approval_requested(step, buyer_allows)
    return note
