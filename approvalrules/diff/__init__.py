"""Compare two versions of a rule set by text, by structure and by behaviour.

* :func:`structural_diff` (:mod:`.structural`) walks the resolved data of both
  versions and names each change in rule-set terms ("step finance: required
  1 -> 2").
* :func:`behavioural_diff` (:mod:`.behavioural`) needs no hand-written orders:
  it generates orders at every total where a decision can change, for every
  class of buyer and order type, and merges the differences into readable
  ranges ("orders over 500 up to 1000 by Marketing members: pending -> approved").
* :func:`replay` (:mod:`.replay`) evaluates recorded orders under both versions
  and counts the changes per class of buyer.
* :mod:`.render` writes reports as text, JSON and unified diffs.
* :func:`diff_versions` is the one call the API and the admin make;
  :func:`compare` is the CLI's.

Pure Python: no Pyramid, no database, no command line.  The CLI
(``approvalrules diff``) reads files, looks versions up in the store, shows
progress and colours, and prints what these functions return.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..engine import Directory, ValidatedRuleSet, check_ruleset, compile_policy
from .behavioural import behavioural_diff, explored_currencies
from .changes import BehaviourChange, BehaviourReport
from .classes import BuyerClass, buyer_classes, enumerate_memberships
from .decisions import DEFAULT_NOW, Summary, change_text
from .render import DiffReport, as_json, text_lines, unified, unified_of
from .replay import PROGRESS_EVERY, ReplayReport, replay
from .structural import Change, structural_diff
from .values import fmt_amount

__all__ = [
    "DEFAULT_NOW",
    "PROGRESS_EVERY",
    "BehaviourChange",
    "BehaviourReport",
    "BuyerClass",
    "Change",
    "DiffReport",
    "ReplayReport",
    "Summary",
    "as_json",
    "behavioural_diff",
    "buyer_classes",
    "change_text",
    "compare",
    "diff_versions",
    "enumerate_memberships",
    "explored_currencies",
    "fmt_amount",
    "replay",
    "structural_diff",
    "text_lines",
    "unified",
    "unified_of",
]


def diff_versions(
    old_text: str,
    new_text: str,
    directory: Directory | None,
    *,
    resolve=None,
    now=None,
    old_name: str = "old",
    new_name: str = "new",
) -> dict:
    """What the API and the admin diff page call: JSON-ready structural, behavioural, unified diffs.

    Raises :class:`DocumentError` when either text is not a valid rule set.
    """
    # stored versions and drafts were checked when saved: rules made stricter since then
    # warn (engine.check STRICTER_CODES) instead of refusing the comparison
    old_checked = check_ruleset(old_text, old_name, resolve, published=True)
    new_checked = check_ruleset(new_text, new_name, resolve, published=True)
    structural = structural_diff(old_checked.resolved, new_checked.resolved)
    behaviour = None
    if directory is not None:
        behaviour = behavioural_diff(
            compile_policy(old_checked), compile_policy(new_checked), directory, now=now
        ).as_dict()
    return {
        "old": {"name": old_checked.name, "source": old_name},
        "new": {"name": new_checked.name, "source": new_name},
        "structural": [c.as_dict() for c in structural],
        "behavioural": behaviour,
        "unified": unified(old_text, new_text, old_name, new_name),
        "changed": {
            "text": old_text != new_text,
            "structure": bool(structural),
            "behaviour": bool(behaviour and behaviour["changed"]),
        },
    }


def compare(
    old: tuple[str, str, ValidatedRuleSet],
    new: tuple[str, str, ValidatedRuleSet],
    directory: Directory | None,
    *,
    now: Any = None,
    orders: Callable[[], Iterable[Any]] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> DiffReport:
    """Compare two checked versions, each given as (text, source name, checked rule set).

    Structure always; behaviour when there is a directory; with ``orders``
    too (called only then, for the recorded orders to replay), a replay.
    ``on_progress`` is passed to :func:`replay`.
    """
    (old_text, old_source, old_checked), (new_text, new_source, new_checked) = old, new
    report = DiffReport(
        old_source,
        new_source,
        old_text,
        new_text,
        structural_diff(old_checked.resolved, new_checked.resolved),
    )
    if directory is None:
        return report
    old_policy, new_policy = compile_policy(old_checked), compile_policy(new_checked)
    report.behaviour = behavioural_diff(old_policy, new_policy, directory, now=now)
    if orders is not None:
        report.replayed = replay(
            old_policy, new_policy, directory, orders(), now=now, on_progress=on_progress
        )
    return report
