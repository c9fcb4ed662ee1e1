"""Reports as text, JSON and unified diff: what the CLI prints.

Colour is the caller's choice: :func:`text_lines` takes a ``colour(code, text)``
function (ANSI SGR codes); the default leaves the text plain.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass

from .changes import BehaviourReport
from .replay import ReplayReport
from .structural import Change

Colour = Callable[[str, str], str]

_MARKS = {
    "added": ("+", "32"),
    "removed": ("-", "31"),
    "changed": ("~", "33"),
    "moved": ("~", "33"),
}


def plain(code: str, text: str) -> str:
    """No colour."""
    return text


@dataclass
class DiffReport:
    """One comparison of two versions: structure; behaviour and replay given a directory."""

    old_source: str
    new_source: str
    old_text: str
    new_text: str
    structural: list[Change]
    behaviour: BehaviourReport | None = None
    replayed: ReplayReport | None = None

    @property
    def behaviour_changed(self) -> bool:
        """Generated or replayed orders decide differently."""
        return bool(self.behaviour and self.behaviour.changed) or bool(
            self.replayed and self.replayed.changed
        )

    def as_dict(self) -> dict:
        """The report as JSON-ready data."""
        return {
            "old": self.old_source,
            "new": self.new_source,
            "structural": [c.as_dict() for c in self.structural],
            "behavioural": self.behaviour.as_dict() if self.behaviour else None,
            "replay": self.replayed.as_dict() if self.replayed else None,
            "changed": {
                "text": self.old_text != self.new_text,
                "structure": bool(self.structural),
                "behaviour": self.behaviour_changed,
            },
        }


def as_json(report: DiffReport) -> str:
    """The report as indented JSON: byte-identical for the same arguments (no timings)."""
    return json.dumps(report.as_dict(), indent=2)


def unified(old_text: str, new_text: str, old_name: str = "old", new_name: str = "new") -> str:
    """The texts' unified diff (``diff -u``)."""
    return "".join(
        difflib.unified_diff(
            old_text.splitlines(True), new_text.splitlines(True), old_name, new_name
        )
    )


def unified_of(report: DiffReport) -> str:
    """The unified diff of the report's two texts."""
    return unified(report.old_text, report.new_text, report.old_source, report.new_source)


def text_lines(report: DiffReport, colour: Colour = plain) -> list[str]:
    """The report for a reader: structure, behaviour, notes and replay, one line each."""
    out = [colour("1", f"{report.old_source} -> {report.new_source}")]
    out += _structure_lines(report, colour)
    out += _behaviour_lines(report.behaviour, colour)
    if report.replayed is not None:
        replayed = report.replayed
        out.append(
            colour(
                "1",
                f"replay: {replayed.changed:,} of {replayed.orders:,} orders change"
                + (f", {replayed.errors:,} unreadable" if replayed.errors else "")
                + f" ({replayed.seconds:.2f} s)",
            )
        )
        out += [f"  {line}" for line in replayed.lines()]
    return out


def _structure_lines(report: DiffReport, colour: Colour) -> list[str]:
    structural = report.structural
    if not structural:
        layout_only = report.old_text != report.new_text
        return [
            "structure: no changes"
            + (" (text differs only in layout or comments)" if layout_only else "")
        ]
    out = [colour("1", f"structure: {len(structural)} change(s)")]
    for c in structural:
        mark, code = _MARKS.get(c.kind, ("~", "33"))
        out.append(colour(code, f"  {mark} {c.text}") + colour("2", f"  [{c.path}]"))
    return out


def _behaviour_lines(behaviour: BehaviourReport | None, colour: Colour) -> list[str]:
    if behaviour is None:
        return ["behaviour: not compared (no directory)"]
    counts = f"{behaviour.evaluations:,} generated orders, {len(behaviour.classes)} buyer classes"
    if not behaviour.changes and behaviour.unexplored:
        out = [
            colour("1", f"behaviour: no changes found, but not everything was explored ({counts})")
        ]
    elif not behaviour.changes:
        out = [f"behaviour: no changes ({counts})"]
    else:
        out = [colour("1", f"behaviour: {len(behaviour.changes)} change(s) ({counts})")]
        out += [colour("35", f"  * {c.text}") for c in behaviour.changes]
    out += [colour("31", f"  not explored: {what}") for what in behaviour.unexplored]
    out += [colour("2", f"  note: {note}") for note in behaviour.notes]
    return out
