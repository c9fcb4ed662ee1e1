"""The approval chain of a rule set as a server-rendered SVG picture, laid out here in Python.

A pure function of the (resolved) rule-set data, read in the order the engine decides:

1. the checks before the chain, each with its exit: the order limits and blocking budgets
   and the ``deny`` rules (to *blocked*), then the ``bypass`` rules and
   ``no_approval_below`` (to *approved*, no steps);
2. the steps, top to bottom as the workflow asks them.  Consecutive steps whose conditions
   exclude each other (``conditions.exclude_each_other``: acme's marketing and ops groups)
   are drawn as branches of one fork, each under its condition, beside a "none of these"
   lane; a step that applies only sometimes says when, and a dashed line passes it by.
   An ``all_of`` step shows its approver groups side by side, one approval from each;
   ``assignment_tiers`` its levels; every step its timeout, escalation and fall-back;
3. the merchant's review, when ``approval.merchant_review`` is on;
4. what ends a request otherwise: rejection, expiry, reminders.

Conditions and selectors are words (``conditions.describe``; role and group labels of
the rule set), never keys.  No JavaScript, no external assets, no system package.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from approvalrules.engine.conditions import describe, exclude_each_other
from approvalrules.engine.currencies import base_currency
from approvalrules.engine.durations import duration_words
from approvalrules.engine.money import format_money
from approvalrules.engine.timeouts import step_timeouts

WIDTH = 680
MARGIN = 20
LINE_H = 17
#: an average character of the 12.5px font, for wrapping text to a box
CHAR_W = 6.6
#: the width of one branch of a fork; a wider fork widens the picture
COLUMN_W = 300
#: approver groups of an ``all_of`` step side by side; more wrap to the next row
GROUPS_PER_ROW = 3
#: steps drawn; a longer chain ends with a box saying how many were left out
MAX_STEPS_DRAWN = 100
#: characters of one text of a box before it is cut (a condition may be long)
MAX_LINE_CHARS = 400
#: width of the exits (blocked / approved) to the right of the checks
EXIT_W = 150

RELATIONS = {
    "assigned": "the buyer's assigned approver",
    "unassigned": "when the buyer has no assigned approver",
    "same_group": "in the buyer's group",
    "group_master": "a master of the company",
}


class Labels:
    """Role and group labels of a rule set: what a merchant calls them."""

    def __init__(self, data: Mapping[str, Any]):
        self.roles = {k: (v or {}).get("label", k) for k, v in (data.get("roles") or {}).items()}

    def role(self, names: Any) -> str:
        names = names if isinstance(names, list) else [names]
        return " or ".join(self.roles.get(n, str(n)) for n in names)


def selector_text(selector: Mapping[str, Any], labels: Labels | None = None) -> str:
    """One approver selector in words: ``Company Manager, the buyer's assigned approver``."""
    labels = labels or Labels({})
    parts = []
    if selector.get("role"):
        parts.append(labels.role(selector["role"]))
    relation = selector.get("relation", "company")
    if relation in RELATIONS:
        parts.append(RELATIONS[relation])
    if selector.get("accounts"):
        parts.append("account " + " or ".join(map(str, selector["accounts"])))
    for name, value in (selector.get("attributes") or {}).items():
        values = value if isinstance(value, list) else [value]
        parts.append(f"with {name} " + " or ".join(_word(v) for v in values))
    return ", ".join(parts) or "anyone of the company who may approve"


def _word(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def _any_of_text(selectors, labels: Labels) -> str:
    return "; or ".join(selector_text(s, labels) for s in selectors or ())


def _approvals(required: int) -> str:
    return "1 approval" if required == 1 else f"{required} approvals"


def _cut(text: str) -> str:
    if len(text) > MAX_LINE_CHARS:
        return f"{text[:MAX_LINE_CHARS]} ... ({len(text):,} characters)"
    return text


def _wrap(lines: list[tuple[str, str]], width: float) -> list[tuple[str, str]]:
    """(css, text) lines wrapped to ``width`` pixels; continuation lines are indented."""
    chars = max(int((width - 24) / CHAR_W), 12)
    out = []
    for css, text in lines:
        for i, piece in enumerate(textwrap.wrap(_cut(text), chars) or [""]):
            out.append((css, piece if i == 0 else "  " + piece))
    return out


# ------------------------------------------------------------------ the words of each part


def step_lines(step: Mapping[str, Any], labels: Labels, with_condition: bool = True) -> list:
    """(css class, text) lines describing one step (its all_of groups are drawn apart)."""
    lines = []
    if with_condition:
        when = step.get("when")
        lines.append(
            ("when", f"applies when {describe(when)}; otherwise skipped" if when else "always")
        )
    if step.get("description"):
        lines.append(("description", step["description"]))
    approvers = step.get("approvers") or {}
    required = step.get("required", 1)
    if step.get("kind") == "assignment_tiers":
        who = _any_of_text(approvers.get("any_of"), labels) or RELATIONS["assigned"]
        lines.append(
            (
                "tiers",
                "tiers: one level per limit of the buyer's assignments that the total "
                "exceeds, lowest first",
            )
        )
        lines.append(("who", f"each level: {_approvals(required)} from that level's {who}"))
    elif approvers.get("all_of"):
        count = len(approvers["all_of"])
        lines.append(
            (
                "who",
                f"all of {count} groups: {_approvals(required)} from each, by different "
                "people, asked in turn",
            )
        )
    else:
        lines.append(
            ("who", f"{_approvals(required)} from: {_any_of_text(approvers.get('any_of'), labels)}")
        )
    lines.extend(_rules_of_the_step(step))
    return lines


def _rules_of_the_step(step: Mapping[str, Any]) -> list[tuple[str, str]]:
    lines = []
    if step.get("scope") == "own_group":
        lines.append(("scope", "approvers from the buyer's own group, or a master"))
    elif step.get("scope") == "universal":
        lines.append(("scope", "approvers from anywhere in the company"))
    if step.get("self_approval") is True:
        lines.append(("scope", "the buyer may approve their own order"))
    if step.get("fallback") == "parent_company":
        lines.append(("fallback", "too few approvers: the parent company's approvers help"))
    timeouts = step_timeouts(step)
    after = timeouts["escalate_after_text"]
    wait = f"after {duration_words(after)} without a decision" if after else "at the expiry"
    escalation = timeouts["escalation"]
    if timeouts["on_timeout"] == "escalate" and escalation is not None:
        targets = [f"role {' or '.join(escalation.roles)}"] if escalation.roles else []
        targets += [f"account {a}" for a in escalation.accounts]
        how = "join the approvers" if escalation.mode == "add" else "replace the approvers"
        lines.append(("timeout", f"{wait}: escalated to {' and '.join(targets)} (they {how})"))
    elif timeouts["on_timeout"] == "approve":
        lines.append(("timeout", f"{wait}: approved by the system"))
    elif after:
        lines.append(("timeout", f"{wait}: cancelled as expired"))
    return lines


def gates(data: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(css, title, text, exit) of every check made before the chain, in the engine's order."""
    out = []
    limits = data.get("limits") or {}
    settings = data.get("settings") or {}
    currency = base_currency(data)
    maximum = limits.get("max_order_total", settings.get("max_order_total"))
    if maximum is not None:
        out.append(
            ("limit", "order limit", f"total above {_amount_text(maximum, currency)}", "blocked")
        )
    order_limit = limits.get("order_limit")
    if order_limit and order_limit.get("on_exceed") == "block":
        amount = _amount_text(order_limit["amount"], currency)
        out.append(("limit", "purchasing limit", f"total above {amount}", "blocked"))
    for budget in limits.get("budgets") or ():
        if budget.get("on_exceed") == "block":
            amount = _amount_text(budget["amount"], currency)
            out.append(
                (
                    "limit",
                    f"budget {budget['name']}",
                    f"more than {amount} a {budget['period']} ({budget.get('scope', 'company')})",
                    "blocked",
                )
            )
    for rule in data.get("deny") or ():
        text = f"when {describe(rule.get('when'))}: {rule.get('reason', '')}"
        out.append(("deny", f"deny {rule['name']}", text, "blocked"))
    for rule in data.get("bypass") or ():
        roles = rule.get("roles")
        who = f", for a buyer who is {Labels(data).role(roles)}" if roles else ""
        text = f"when {describe(rule.get('when'))}{who}: no approval"
        out.append(("bypass", f"bypass {rule['name']}", text, "approved"))
    below = settings.get("no_approval_below")
    if below:
        text = f"total below {_amount_text(below, currency)}: no approval"
        out.append(("bypass", "no approval below", text, "approved"))
    return out


def _amount_text(value: Any, currency: str | None = None) -> str:
    """An amount with its currency's minor units, or per currency: 500.00 USD / 450.00 EUR."""
    if isinstance(value, Mapping):
        return " / ".join(format_money(amount, code) for code, amount in value.items())
    return format_money(value, currency) if currency else str(value)


def stages(steps: list[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """The steps cut into stages: a run of consecutive steps whose conditions exclude each
    other pairwise is one stage (a fork: at most one of them applies), any other step a stage
    of its own."""
    out: list[list[Mapping[str, Any]]] = []
    for step in steps:
        current = out[-1] if out else None
        if current and all(
            exclude_each_other(step.get("when"), other.get("when")) for other in current
        ):
            current.append(step)
        else:
            out.append([step])
    return out


def endings(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(css, text) of what else ends or nudges a request: rejection, expiry, reminders."""
    approval = data.get("approval") or {}
    out = [("ending", "a rejection at any step rejects the order")]
    expiry = approval.get("expiry")
    if expiry:
        out.append(
            (
                "expiry",
                f"undecided {duration_words(expiry['after'])} after submission: "
                "the order is cancelled as expired",
            )
        )
    else:
        out.append(("expiry", "no expiry: a request waits until it is decided"))
    reminders = approval.get("reminders")
    if reminders:
        every = reminders.get("every")
        again = f", then every {duration_words(every).removeprefix('1 ')}" if every else ""
        out.append(
            (
                "reminder",
                f"approvers are reminded after {duration_words(reminders['after'])}{again}",
            )
        )
    return out


# ------------------------------------------------------------------ layout


class Canvas:
    """SVG parts and the running height of the picture."""

    def __init__(self, width: int):
        self.width = width
        self.parts: list[str] = []
        self.y = 10
        #: whether the last stage drawn was a step with a way past it (see _single_stage)
        self.skipping = False

    @property
    def middle(self) -> int:
        return self.width // 2

    def add(self, markup: str) -> None:
        self.parts.append(markup)


def _text(x: float, y: float, css: str, text: str, anchor: str = "") -> str:
    anchor_attr = f' text-anchor="{anchor}"' if anchor else ""
    return f'<text class="{css}" x="{x:.0f}" y="{y:.0f}"{anchor_attr}>{escape(text)}</text>'


def _pill(cx: float, y: float, text: str, css: str, width: float | None = None) -> str:
    w = width or max(160, len(text) * CHAR_W + 30)
    return (
        f'<g class="pill {css}"><rect x="{cx - w / 2:.0f}" y="{y:.0f}" width="{w:.0f}" '
        f'height="26" rx="13"/>{_text(cx, y + 17, "label", text, "middle")}</g>'
    )


def _arrow(x: float, y1: float, y2: float, css: str = "") -> str:
    cls = f' class="{css}"' if css else ""
    return (
        f'<g{cls}><line x1="{x:.0f}" y1="{y1:.0f}" x2="{x:.0f}" y2="{y2 - 7:.0f}"/>'
        f'<path d="M{x - 5:.0f},{y2 - 8:.0f} L{x + 5:.0f},{y2 - 8:.0f} L{x:.0f},{y2:.0f} Z"/></g>'
    )


def _down(canvas: Canvas, length: int = 22) -> None:
    canvas.add(_arrow(canvas.middle, canvas.y, canvas.y + length))
    canvas.y += length


def _card(
    x: float, y: float, w: float, title: str, lines: list, css: str, attrs: str = ""
) -> tuple[str, float]:
    """A box with a title and wrapped lines; (markup, height)."""
    wrapped = _wrap(lines, w)
    height = 28 + LINE_H * len(wrapped) + 6
    body = [f'<g class="{css}"{attrs}><rect x="{x:.0f}" y="{y:.0f}" width="{w:.0f}" ']
    body.append(f'height="{height:.0f}" rx="6"/>')
    body.append(_text(x + 12, y + 19, "name", title))
    for n, (line_css, text) in enumerate(wrapped):
        body.append(_text(x + 12, y + 38 + n * LINE_H, line_css, text))
    return "".join(body), height


def _step(
    x: float,
    y: float,
    w: float,
    number: int,
    step: Mapping[str, Any],
    labels: Labels,
    with_condition: bool = True,
) -> tuple[str, float]:
    """One step's box (its all_of groups inside it, side by side); (markup, height)."""
    name = str(step.get("name", "?"))
    markup, height = _card(
        x,
        y,
        w,
        f"{number}. {name}",
        step_lines(step, labels, with_condition),
        "step",
        f" data-step={quoteattr(name)}",
    )
    inner = _inner_boxes(step, labels)
    if not inner:
        return markup + "</g>", height
    css, boxes = inner
    parts = [markup.replace('<g class="step"', f'<g class="step {css}"', 1)]
    parts.append(f'<g class="{css}-boxes" data-step={quoteattr(name)}>')
    top = y + height
    per_row = min(GROUPS_PER_ROW, len(boxes))
    box_w = (w - 24 - 10 * (per_row - 1)) / per_row
    for start in range(0, len(boxes), per_row):
        row_height = 0.0
        for column, (box_title, text, attrs) in enumerate(boxes[start : start + per_row]):
            bx = x + 12 + column * (box_w + 10)
            box, h = _card(bx, top, box_w, box_title, [("who", text)], "group", attrs)
            parts.append(box + "</g>")
            row_height = max(row_height, h)
        top += row_height + 8
    parts.append("</g></g>")
    total = top - y + 4
    # the outer rectangle grows to hold the groups
    first = parts[0].replace(f'height="{height:.0f}"', f'height="{total:.0f}"', 1)
    return first + "".join(parts[1:]), total


def _inner_boxes(step: Mapping[str, Any], labels: Labels) -> tuple[str, list] | None:
    """(css, [(title, text, attributes)]) of the boxes drawn inside a step: the approver groups
    of an ``all_of`` step (side by side: one approval from each), the levels of
    ``assignment_tiers``; None for a plain step."""
    name = str(step.get("name", "?"))
    groups = (step.get("approvers") or {}).get("all_of")
    if groups:
        return "all-of", [
            (
                f"group {n} ({name}/{n})",
                _any_of_text(group.get("any_of"), labels),
                f' data-group="{n}"',
            )
            for n, group in enumerate(groups, start=1)
        ]
    if step.get("kind") == "assignment_tiers":
        return "tiers", [
            ("level 1", "the lowest assignment limit the total exceeds", ' data-level="1"'),
            ("level 2", "the next limit it exceeds, if any", ' data-level="2"'),
            ("...", "one level per further limit exceeded", ' data-level="more"'),
        ]
    return None


def _single_stage(canvas: Canvas, number: int, step: Mapping[str, Any], labels: Labels) -> None:
    conditional = bool(step.get("when"))
    x = MARGIN + (30 if conditional else 0)
    w = canvas.width - x - MARGIN
    markup, height = _step(x, canvas.y, w, number, step, labels)
    canvas.add(markup)
    if conditional:  # the way past the step when its condition does not hold
        sx, top, bottom = MARGIN + 12, canvas.y - 11, canvas.y + height + 11
        # a run of conditional steps shares one line on the left: no doubled stretch
        start = f"M{sx},{top}" if canvas.skipping else f"M{canvas.middle},{top} H{sx}"
        canvas.add(
            f'<g class="skip" data-step={quoteattr(str(step.get("name", "?")))}>'
            f'<path d="{start} V{bottom:.0f} H{canvas.middle}"/></g>'
        )
    canvas.skipping = conditional
    canvas.y += height


def _fork_stage(canvas: Canvas, first_number: int, steps: list, labels: Labels) -> None:
    """Steps that exclude each other: one branch each under its condition, and a lane for
    orders none of them applies to."""
    names = " ".join(str(s.get("name", "?")) for s in steps)
    canvas.add(f'<g class="branches" data-steps={quoteattr(names)}>')
    canvas.add(
        _text(
            canvas.middle,
            canvas.y + 14,
            "fork",
            "one of these applies, or none: their conditions exclude each other",
            "middle",
        )
    )
    canvas.y += 24
    lanes = len(steps) + 1
    lane_w = (canvas.width - 2 * MARGIN - 10 * (lanes - 1)) / lanes
    centres = [MARGIN + i * (lane_w + 10) + lane_w / 2 for i in range(lanes)]
    fork_y = canvas.y
    canvas.add(f'<line x1="{centres[0]:.0f}" y1="{fork_y}" x2="{centres[-1]:.0f}" y2="{fork_y}"/>')
    bottoms = []
    for index, step in enumerate(steps):
        x = centres[index] - lane_w / 2
        condition = _wrap([("condition", f"when {describe(step.get('when'))}")], lane_w)
        canvas.add(f'<g class="branch" data-step={quoteattr(str(step.get("name", "?")))}>')
        canvas.add(_arrow(centres[index], fork_y, fork_y + 18))
        y = fork_y + 18
        for css, text in condition:
            y += LINE_H
            canvas.add(_text(x + 4, y - 4, css, text))
        y += 4
        markup, height = _step(x, y, lane_w, first_number + index, step, labels, False)
        canvas.add(markup + "</g>")
        bottoms.append(y + height)
    none_x = centres[-1]
    canvas.add(
        '<g class="branch none">'
        + _text(none_x, fork_y + 36, "condition", "none of these:", "middle")
        + _text(none_x, fork_y + 36 + LINE_H, "condition", "no step", "middle")
        + "</g>"
    )
    merge_y = max(bottoms) + 16
    canvas.add(
        f'<path class="lane" d="M{none_x:.0f},{fork_y} V{merge_y:.0f}"/>'
        + "".join(
            f'<line x1="{c:.0f}" y1="{b:.0f}" x2="{c:.0f}" y2="{merge_y:.0f}"/>'
            for c, b in zip(centres, bottoms, strict=False)
        )
        + f'<line x1="{centres[0]:.0f}" y1="{merge_y:.0f}" x2="{centres[-1]:.0f}" '
        f'y2="{merge_y:.0f}"/></g>'
    )
    canvas.y = int(merge_y)


def _gates(canvas: Canvas, data: Mapping[str, Any]) -> None:
    checks = gates(data)
    if not checks:
        return
    w = canvas.width - 2 * MARGIN - EXIT_W - 30
    for css, title, text, exit_to in checks:
        _down(canvas)
        markup, height = _card(MARGIN, canvas.y, w, title, [(css, text)], "gate")
        canvas.add(markup.replace('<g class="gate"', f'<g class="gate {css}"', 1) + "</g>")
        mid = canvas.y + height / 2
        ex = canvas.width - MARGIN - EXIT_W
        canvas.add(
            f'<g class="exit {exit_to}"><line x1="{MARGIN + w:.0f}" y1="{mid:.0f}" '
            f'x2="{ex - 6:.0f}" y2="{mid:.0f}"/>'
            f'<path d="M{ex - 8:.0f},{mid - 5:.0f} L{ex - 8:.0f},{mid + 5:.0f} '
            f'L{ex:.0f},{mid:.0f} Z"/>'
            f"</g>"
        )
        canvas.add(_pill(ex + EXIT_W / 2, mid - 13, exit_to, f"end {exit_to}", EXIT_W))
        canvas.y += int(height)


def chain_svg(data: Mapping[str, Any] | None, title: str = "Approval chain") -> str:
    """SVG markup of the approval chain of ``data`` (a rule set, after ``extends``)."""
    data = data or {}
    labels = Labels(data)
    approval = data.get("approval") or {}
    steps = list(approval.get("steps") or [])
    left_out = max(0, len(steps) - MAX_STEPS_DRAWN)
    scope = approval.get("scope")
    drawn = [
        {**step, "scope": step.get("scope", scope)} if scope and "scope" not in step else step
        for step in steps[:MAX_STEPS_DRAWN]
    ]
    plan = stages(drawn)
    widest = max((len(stage) + 1 for stage in plan if len(stage) > 1), default=1)
    canvas = Canvas(max(WIDTH, widest * COLUMN_W + 2 * MARGIN))
    canvas.add(_pill(canvas.middle, canvas.y, "order submitted", "start"))
    canvas.y += 26
    _gates(canvas, data)
    number = 1
    for stage in plan:
        _down(canvas)
        if len(stage) == 1:
            _single_stage(canvas, number, stage[0], labels)
        else:
            _fork_stage(canvas, number, stage, labels)
            canvas.skipping = False
        number += len(stage)
    if left_out:
        _down(canvas)
        canvas.add(_pill(canvas.middle, canvas.y, f"... and {left_out:,} more steps", "more"))
        canvas.y += 26
    if approval.get("merchant_review"):
        _down(canvas)
        markup, height = _card(
            MARGIN,
            canvas.y,
            canvas.width - 2 * MARGIN,
            "merchant review",
            [("who", "an owner or editor of the store approves and releases, or rejects")],
            "step merchant-review",
        )
        canvas.add(markup + "</g>")
        canvas.y += int(height)
    _down(canvas)
    canvas.add(
        _pill(
            canvas.middle,
            canvas.y,
            "approved" if steps else "approved (no approval steps)",
            "end approved",
        )
    )
    canvas.y += 36
    notes = _wrap(endings(data), canvas.width - 2 * MARGIN)
    canvas.add('<g class="endings">')
    for css, text in notes:
        canvas.y += LINE_H
        canvas.add(_text(MARGIN, canvas.y, css, text))
    canvas.add("</g>")
    canvas.y += 12
    label = quoteattr(f"{title}: {len(steps)} step(s)")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chain" role="img" aria-label={label} '
        f'viewBox="0 0 {canvas.width} {canvas.y}" width="100%" '
        f'style="max-width:{canvas.width}px" preserveAspectRatio="xMinYMin meet">'
        f"<title>{escape(title)}</title>"
        "<style>.chain rect{fill:#f4f7fb;stroke:#1f5fbf;stroke-width:1.5}"
        ".chain .pill rect{fill:#e8f0e8;stroke:#3a7d44}"
        ".chain .pill.blocked rect{fill:#fbeaea;stroke:#a4262c}"
        ".chain .gate rect{fill:#fff8e6;stroke:#9a6700}"
        ".chain .group rect{fill:#ffffff;stroke:#5b6575}"
        ".chain .merchant-review>rect{fill:#f3eefb;stroke:#6b3fa0}"
        ".chain text{font:12.5px system-ui,sans-serif;fill:#1d2430}"
        ".chain .name{font-weight:600;font-size:13.5px}"
        ".chain .when,.chain .condition{fill:#1f5fbf}.chain .timeout{fill:#9a6700}"
        ".chain .fork,.chain .description,.chain .endings text{fill:#5b6575}"
        ".chain line{stroke:#5b6575;stroke-width:1.5}.chain path{fill:#5b6575}"
        ".chain .skip path,.chain path.lane{fill:none;stroke:#5b6575;stroke-width:1.2;"
        "stroke-dasharray:5 4}</style>" + "".join(canvas.parts) + "</svg>"
    )
