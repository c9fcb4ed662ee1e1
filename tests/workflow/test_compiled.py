"""What the workflow reads from a compiled policy: timeouts, escalation, reminders, merchant
review and the re-evaluation setting, parsed once by the engine."""

from __future__ import annotations

from datetime import timedelta

from approvalrules.engine import compile_ruleset

from .conftest import ESCALATING, SHOP


def test_a_step_carries_its_timeout_and_escalation():
    policy = compile_ruleset(ESCALATING)
    step = policy.step("manager")
    assert step.escalate_after == timedelta(hours=1) and step.escalate_after_text == "PT1H"
    assert step.on_timeout == "escalate"  # the default with escalate_to
    assert (step.escalation.roles, step.escalation.accounts, step.escalation.mode) == (
        ("director",),
        (),
        "add",
    )
    assert policy.step("nonesuch") is None


def test_defaults_without_timeouts_reminders_or_merchant_review():
    policy = compile_ruleset(SHOP)
    step = policy.step("manager")
    assert (step.escalate_after, step.on_timeout, step.escalation) == (None, "cancel", None)
    assert policy.reminders is None
    assert (policy.merchant_review, policy.pending_on_new_version) == (False, "keep")


def test_reminders_merchant_review_and_reevaluation_are_compiled():
    text = SHOP.replace(
        "approval:\n",
        "pending_on_new_version: reevaluate\napproval:\n"
        "  merchant_review: true\n  reminders: {after: P1D, every: PT12H}\n",
    )
    policy = compile_ruleset(text)
    assert (policy.reminders.after, policy.reminders.every) == (
        timedelta(days=1),
        timedelta(hours=12),
    )
    assert (policy.merchant_review, policy.pending_on_new_version) == (True, "reevaluate")
    every_default = compile_ruleset(text.replace(", every: PT12H", ""))
    assert every_default.reminders.every == timedelta(days=1)
