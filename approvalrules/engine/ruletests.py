"""Run the tests that live beside the rules (``tests:`` in a rule set).

Each test evaluates one order against the compiled policy and a directory and
compares the decision with ``expect``; every mismatch is reported, not only
the first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ApprovalRulesError
from .check import ValidatedRuleSet
from .compile import Policy
from .decision import Decision
from .directory import Directory
from .durations import parse_duration, parse_instant

DEFAULT_NOW = "2026-01-15T12:00:00Z"


@dataclass
class TestResult:
    name: str
    failures: list[str] = field(default_factory=list)
    line: int | None = None

    @property
    def passed(self) -> bool:
        return not self.failures


def run_tests(checked: ValidatedRuleSet, policy: Policy, directory: Directory) -> list[TestResult]:
    """Run every test of ``checked`` (a rule set's own tests are never inherited)."""
    results = []
    for index, test in enumerate(checked.data.get("tests") or ()):
        result = TestResult(test["name"], line=checked.document.line_of(("tests", index)))
        try:
            decision = policy.evaluate(
                test["order"],
                directory,
                now=test.get("now", DEFAULT_NOW),
                budgets_spent=test.get("budgets_spent"),
            )
        except ApprovalRulesError as exc:
            result.failures.append(f"evaluation failed: {exc}")
        else:
            result.failures.extend(compare(decision, test["expect"], test.get("now", DEFAULT_NOW)))
        results.append(result)
    return results


def compare(decision: Decision, expect: dict, now: str) -> list[str]:
    """Mismatches between a decision and an ``expect`` block, as sentences."""
    failures = []
    if "outcome" in expect and decision.outcome != expect["outcome"]:
        failures.append(
            f"outcome: expected {expect['outcome']}, got {decision.outcome} "
            f"({'; '.join(r.message for r in decision.reasons) or 'no reasons'})"
        )
    codes = decision.reason_codes()
    for code in expect.get("reasons", ()):
        if code not in codes:
            failures.append(f"reasons: expected {code!r} among {codes}")
    if "payer" in expect:
        got = decision.payer["id"] if decision.payer else None
        if got != expect["payer"]:
            failures.append(f"payer: expected {expect['payer']}, got {got}")
    if "steps" in expect:
        got_names = [s.name for s in decision.steps]
        want_names = [s["name"] for s in expect["steps"]]
        if got_names != want_names:
            failures.append(f"steps: expected {want_names}, got {got_names}")
        else:
            for want, got in zip(expect["steps"], decision.steps, strict=True):
                if "required" in want and want["required"] != got.required:
                    failures.append(
                        f"step {got.name}: expected required {want['required']}, got {got.required}"
                    )
                if "approvers" in want and sorted(want["approvers"]) != sorted(
                    a.account for a in got.approvers
                ):
                    failures.append(
                        f"step {got.name}: expected approvers {sorted(want['approvers'])}, "
                        f"got {sorted(a.account for a in got.approvers)}"
                    )
    if "approvers" in expect:
        got = sorted(a.account for a in decision.steps[0].approvers) if decision.steps else []
        if got != sorted(expect["approvers"]):
            failures.append(f"approvers: expected {sorted(expect['approvers'])}, got {got}")
    everyone = {a.account for s in decision.steps for a in s.approvers}
    for account in expect.get("not_approvers", ()):
        if account in everyone:
            failures.append(f"not_approvers: {account} is eligible")
    for want in expect.get("notifications", ()):
        found = [n for n in decision.notifications if n.event == want["event"]]
        if not found:
            failures.append(
                f"notifications: expected {want['event']}, "
                f"got {[n.event for n in decision.notifications]}"
            )
            continue
        recipients = {r.account or r.company: r.channel for r in found[0].recipients}
        if "to" in want and sorted(want["to"]) != sorted(recipients):
            failures.append(
                f"notification {want['event']}: expected to {sorted(want['to'])}, "
                f"got {sorted(recipients)}"
            )
        if "channel" in want:
            wrong = sorted(k for k, ch in recipients.items() if ch != want["channel"])
            if wrong:
                failures.append(
                    f"notification {want['event']}: expected channel {want['channel']} for all, "
                    f"not for {wrong}"
                )
        for account, channel in (want.get("channels") or {}).items():
            # per recipient: one notification may e-mail one approver and only list the order
            # for another
            if recipients.get(account) != channel:
                failures.append(
                    f"notification {want['event']}: expected {account} by {channel}, "
                    f"got {recipients.get(account) or 'no notification'}"
                )
    for account, label in (expect.get("labels") or {}).items():
        labels = {decision.buyer["account"]: decision.buyer["role_label"]}
        labels.update({a.account: a.role_label for s in decision.steps for a in s.approvers})
        if labels.get(account) != label:
            failures.append(
                f"labels: expected {account} shown as {label!r}, got {labels.get(account)!r}"
            )
    if "expires_in" in expect:
        want = (
            parse_instant(now) + parse_duration(expect["expires_in"])
            if expect["expires_in"]
            else None
        )
        if decision.expires_at != want:
            failures.append(f"expires_at: expected {want}, got {decision.expires_at}")
    if "message_contains" in expect:
        text = " ".join(r.message for r in decision.reasons)
        if expect["message_contains"] not in text:
            failures.append(
                f"reasons: expected a message containing {expect['message_contains']!r}, "
                f"got {text!r}"
            )
    return failures


def _iso_duration(delta) -> str:
    """``delta`` as the ISO 8601 duration the rule sets write (P7D, PT12H, P1DT6H, PT30M)."""
    minutes = int(delta.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    time = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    return (
        "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "")
        if days or time
        else "PT0M"
    )


def expectation_from_decision(expect: dict, decision: Decision, now: str) -> dict:
    """``expect`` rewritten to what ``decision`` says now, key by key.

    Only the keys the test already checks are kept, each with the decision's current
    value, so an updated test checks the same things as before (a test that checked
    the outcome alone still checks the outcome alone).  ``compare`` finds no mismatch
    between the result and ``decision``.
    """
    updated: dict = {}
    first_approvers = (
        sorted(a.account for a in decision.steps[0].approvers) if decision.steps else []
    )
    everyone = {a.account for s in decision.steps for a in s.approvers}
    for key, want in expect.items():
        if key == "outcome":
            updated[key] = decision.outcome
        elif key == "reasons":
            updated[key] = decision.reason_codes()
        elif key == "payer":
            updated[key] = decision.payer["id"] if decision.payer else None
        elif key == "steps":
            with_required = any("required" in s for s in want)
            with_approvers = any("approvers" in s for s in want)
            steps = []
            for step in decision.steps:
                entry: dict = {"name": step.name}
                if with_required:
                    entry["required"] = step.required
                if with_approvers:
                    entry["approvers"] = sorted(a.account for a in step.approvers)
                steps.append(entry)
            updated[key] = steps
        elif key == "approvers":
            updated[key] = first_approvers
        elif key == "not_approvers":
            still = [account for account in want if account not in everyone]
            if still:
                updated[key] = still
        elif key == "notifications":
            kept = [_notification_now(n, decision) for n in want]
            kept = [n for n in kept if n is not None]
            if kept:
                updated[key] = kept
        elif key == "labels":
            labels = {decision.buyer["account"]: decision.buyer["role_label"]}
            labels.update({a.account: a.role_label for s in decision.steps for a in s.approvers})
            now_labels = {account: labels[account] for account in want if labels.get(account)}
            if now_labels:
                updated[key] = now_labels
        elif key == "expires_in":
            updated[key] = (
                _iso_duration(decision.expires_at - parse_instant(now))
                if decision.expires_at
                else None
            )
        elif key == "message_contains":
            text = " ".join(r.message for r in decision.reasons)
            if want in text:
                updated[key] = want
            elif decision.reasons:
                updated[key] = decision.reasons[0].message
        else:
            updated[key] = want
    if not updated:
        updated["outcome"] = decision.outcome  # an expect block may not be empty
    return updated


def _notification_now(want: dict, decision: Decision) -> dict | None:
    """One expected notification as the decision sends it now; None when it is not sent."""
    found = [n for n in decision.notifications if n.event == want["event"]]
    if not found:
        return None
    recipients = {r.account or r.company: r.channel for r in found[0].recipients}
    entry = {"event": want["event"]}
    if "to" in want:
        entry["to"] = sorted(recipients)
    channels = set(recipients.values())
    if "channel" in want or "channels" in want:
        if len(channels) == 1:
            entry["channel"] = channels.pop()
        else:
            entry["channels"] = dict(sorted(recipients.items()))
    return entry


def updated_expectations(
    checked: ValidatedRuleSet, policy: Policy, directory: Directory
) -> dict[int, dict]:
    """The failing tests' ``expect`` blocks rewritten from today's decisions, by test index.

    A test whose order cannot be evaluated at all is left out: no decision, nothing to
    expect.
    """
    updates = {}
    for index, test in enumerate(checked.data.get("tests") or ()):
        now = test.get("now", DEFAULT_NOW)
        try:
            decision = policy.evaluate(
                test["order"], directory, now=now, budgets_spent=test.get("budgets_spent")
            )
        except ApprovalRulesError:
            continue
        if compare(decision, test["expect"], now):
            updates[index] = expectation_from_decision(test["expect"], decision, now)
    return updates
