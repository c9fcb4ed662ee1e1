"""The approval chain of a rule set as a server-rendered SVG picture.

Pure function of the (resolved) rule-set data: one box per step, top to
bottom, each with its condition (``approvalrules.engine.conditions.describe``), its
approver selectors and the approvals required, between an "order" start and
an "approved" end.  No JavaScript, no external assets.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from approvalrules.engine.conditions import describe

WIDTH = 640
BOX_X = 20
BOX_W = WIDTH - 40
LINE_H = 18
WRAP = 78
#: steps drawn; a longer chain ends with a box saying how many were left out
MAX_STEPS_DRAWN = 100
#: characters of one line of a box before wrapping (a condition may be long)
MAX_LINE_CHARS = 400


def selector_text(selector: Mapping[str, Any]) -> str:
    """``role manager, relation assigned`` for one approver selector."""
    parts = []
    for key, value in selector.items():
        if isinstance(value, list):
            value = ", ".join(map(str, value))
        elif isinstance(value, Mapping):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        parts.append(f"{key} {value}")
    return " & ".join(parts) or "anyone"


def step_lines(step: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(css class, text) lines describing one step."""
    lines = [("when", "when: " + describe(step.get("when")))]
    selectors = (step.get("approvers") or {}).get("any_of") or []
    approvers = " | ".join(selector_text(s) for s in selectors) or "(inherited / none)"
    lines.append(("who", "approvers: any of " + approvers))
    extra = [f"required: {step.get('required', 1)}"]
    if step.get("kind") and step["kind"] != "standard":
        extra.append(f"kind: {step['kind']}")
    if step.get("scope"):
        extra.append(f"scope: {step['scope']}")
    if "self_approval" in step:
        extra.append(f"self approval: {'yes' if step['self_approval'] else 'no'}")
    lines.append(("count", ", ".join(extra)))
    wrapped = []
    for css, text in lines:
        if len(text) > MAX_LINE_CHARS:
            text = f"{text[:MAX_LINE_CHARS]} ... ({len(text):,} characters)"
        for i, piece in enumerate(textwrap.wrap(text, WRAP) or [""]):
            wrapped.append((css, piece if i == 0 else "    " + piece))
    return wrapped


def chain_svg(data: Mapping[str, Any] | None, title: str = "Approval chain") -> str:
    """SVG markup of the approval chain of ``data`` (a rule set, after ``extends``)."""
    steps = list(((data or {}).get("approval") or {}).get("steps") or [])
    left_out = max(0, len(steps) - MAX_STEPS_DRAWN)
    drawn = steps[:MAX_STEPS_DRAWN]
    parts: list[str] = []
    y = 10
    parts.append(_pill(y, "order submitted"))
    y += 34
    for index, step in enumerate(drawn, start=1):
        y = _arrow(parts, y)
        lines = step_lines(step)
        height = 30 + LINE_H * len(lines)
        parts.append(
            f'<g class="step"><rect x="{BOX_X}" y="{y}" width="{BOX_W}" height="{height}" rx="6"/>'
        )
        name = escape(str(step.get("name", "?")))
        parts.append(f'<text class="name" x="{BOX_X + 12}" y="{y + 20}">{index}. {name}</text>')
        for n, (css, text) in enumerate(lines):
            parts.append(
                f'<text class="{css}" x="{BOX_X + 12}" y="{y + 40 + n * LINE_H}">'
                f"{escape(text)}</text>"
            )
        parts.append("</g>")
        y += height
    if left_out:
        y = _arrow(parts, y)
        parts.append(_pill(y, f"... and {left_out:,} more steps"))
        y += 34
    y = _arrow(parts, y)
    parts.append(_pill(y, "approved" if steps else "approved (no approval steps)"))
    y += 34
    label = quoteattr(f"{title}: {len(steps)} step(s)")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chain" role="img" aria-label={label} '
        f'viewBox="0 0 {WIDTH} {y}" width="100%" preserveAspectRatio="xMinYMin meet">'
        f"<title>{escape(title)}</title>"
        "<style>.chain rect{fill:#f4f7fb;stroke:#1f5fbf;stroke-width:1.5}"
        ".chain .pill rect{fill:#e8f0e8;stroke:#3a7d44}"
        ".chain text{font:13px system-ui,sans-serif;fill:#1d2430}"
        ".chain .name{font-weight:600;font-size:14px}"
        ".chain .count{fill:#a4262c}.chain line{stroke:#5b6575;stroke-width:1.5}"
        ".chain path{fill:#5b6575}</style>" + "".join(parts) + "</svg>"
    )


def _pill(y: int, text: str) -> str:
    return (
        f'<g class="pill"><rect x="{WIDTH // 2 - 110}" y="{y}" width="220" height="26" rx="13"/>'
        f'<text x="{WIDTH // 2}" y="{y + 17}" text-anchor="middle">{escape(text)}</text></g>'
    )


def _arrow(parts: list[str], y: int) -> int:
    x = WIDTH // 2
    parts.append(
        f'<line x1="{x}" y1="{y}" x2="{x}" y2="{y + 14}"/>'
        f'<path d="M{x - 5},{y + 12} L{x + 5},{y + 12} L{x},{y + 20} Z"/>'
    )
    return y + 22
