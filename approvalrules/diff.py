"""Compare two versions of a rule set by text, by structure and by behaviour.

* :func:`structural_diff` walks the resolved data of both versions and names
  each change in rule-set terms ("step finance: required 1 -> 2").
* :func:`behavioural_diff` needs no hand-written orders: it finds every total
  at which a decision can change (step thresholds, limits, budgets, settings,
  assignment thresholds and approval limits of both versions), puts orders just
  below, at and just above each one, for every class of buyer in the directory
  and every order type, evaluates them under both versions and merges the
  differences into readable ranges ("orders over 500 up to 1000 by Marketing
  members: pending -> approved").
* :func:`replay` evaluates recorded orders under both versions and counts the
  changes per class of buyer.
* :func:`diff_versions` is the one call the API and the admin make.

Pure Python: no Pyramid, no database.  ``tenant/ruleset@version`` references
are resolved by the store (see :func:`resolve_reference`).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from .engine.conditions import OrderFacts, compile_condition, describe, referenced_names, thresholds
from .engine.currencies import MONEY_SETTINGS
from .engine.directory import Directory, Membership
from .engine import ORDER_TYPES, Decision, Order, Policy
from .errors import ApprovalRulesError

DEFAULT_NOW = "2026-01-15T12:00:00Z"
EXIT_OK, EXIT_CHANGED, EXIT_ERROR = 0, 1, 2
REFERENCE = re.compile(
    r"^(?P<tenant>[A-Za-z0-9][A-Za-z0-9_.-]*)/(?P<ruleset>[A-Za-z0-9][A-Za-z0-9_.-]*)@(?P<version>\d+|latest|active|draft)$"
)
STORE_NEEDED = "database references need the store: approvalrules diff --ini development.ini ..."


# =================================================================== values


def _dec(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if isinstance(value, str) and re.fullmatch(r"\s*[0-9]+(\.[0-9]+)?\s*", value):
        return Decimal(value.strip())
    return None


def fmt_amount(value: Decimal) -> str:
    """500 for 500.00, 999999.99 stays; never an exponent."""
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _same(a: Any, b: Any) -> bool:
    if a == b and type(a) is type(b):
        return True
    da, db = _dec(a), _dec(b)
    if da is not None and db is not None:
        return da == db
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _show(value: Any) -> str:
    """A value in a change sentence: strings quoted, amounts plain, absent as none."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "\\'") + "'"
    if isinstance(value, (int, float, Decimal)):
        return fmt_amount(Decimal(str(value)))
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return fmt_amount(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    return value


# =============================================================== structural


@dataclass(frozen=True)
class Change:
    """One structural change: where, what kind (added, removed, changed, moved), old, new, and a sentence."""

    path: str
    kind: str
    old: Any
    new: Any
    text: str

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            "kind": self.kind,
            "old": _jsonable(self.old),
            "new": _jsonable(self.new),
            "text": self.text,
        }


def structural_diff(
    old_data: Mapping[str, Any] | None, new_data: Mapping[str, Any] | None
) -> list[Change]:
    """Changes between two rule sets' (resolved) data, in rule-set terms, in document order."""
    old, new = dict(old_data or {}), dict(new_data or {})
    out: list[Change] = []
    for key in ("ruleset", "extends", "description", "currency", "bulk_orders"):
        if not _same(old.get(key), new.get(key)):
            out.append(_changed(key, old.get(key), new.get(key), key))
    out += _named_maps("roles", "role", old.get("roles"), new.get("roles"), _role_fields)
    out += _settings_diff("settings", "settings", old.get("settings"), new.get("settings"))
    out += _named_maps("groups", "group", old.get("groups"), new.get("groups"), _group_fields)
    out += _limits_diff(old.get("limits") or {}, new.get("limits") or {})
    out += _approval_diff(old.get("approval") or {}, new.get("approval") or {})
    for key in ("visibility", "notifications"):
        out += _generic(key, key, old.get(key), new.get(key))
    out += _tests_diff(old.get("tests") or [], new.get("tests") or [])
    known = {
        "ruleset",
        "extends",
        "description",
        "currency",
        "bulk_orders",
        "roles",
        "settings",
        "groups",
        "limits",
        "approval",
        "visibility",
        "notifications",
        "tests",
    }
    for key in sorted((set(old) | set(new)) - known):
        out += _generic(key, key, old.get(key), new.get(key))
    return out


def _changed(path: str, old: Any, new: Any, subject: str, what: str = "") -> Change:
    if old is None and new is not None:
        kind = "added"
    elif new is None and old is not None:
        kind = "removed"
    else:
        kind = "changed"
    label = f"{subject}: {what} " if what else f"{subject}: "
    return Change(path, kind, old, new, f"{label}{_show(old)} -> {_show(new)}")


def _generic(path: str, subject: str, old: Any, new: Any, prefix: str = "") -> list[Change]:
    """Leaf by leaf for maps; anything else as one value."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in list(old) + [k for k in new if k not in old]:
            out += _generic(
                f"{path}.{key}",
                subject,
                old.get(key),
                new.get(key),
                f"{prefix}{key}" if not prefix else f"{prefix}.{key}",
            )
        return out
    if isinstance(old, dict) and new is None or isinstance(new, dict) and old is None:
        return _generic(path, subject, old or {}, new or {}, prefix)
    if _same(old, new):
        return []
    return [_changed(path, old, new, subject, prefix)]


def _settings_diff(path: str, subject: str, old: Any, new: Any) -> list[Change]:
    return _generic(path, subject, old or {}, new or {})


def _role_fields(path: str, subject: str, old: dict, new: dict) -> list[Change]:
    out = []
    if not _same(old.get("label"), new.get("label")):
        out.append(_changed(f"{path}.label", old.get("label"), new.get("label"), subject, "label"))
    before, after = list(old.get("permissions") or []), list(new.get("permissions") or [])
    if set(before) != set(after):
        delta = [f"+{p}" for p in after if p not in before] + [
            f"-{p}" for p in before if p not in after
        ]
        out.append(
            Change(
                f"{path}.permissions",
                "changed",
                before,
                after,
                f"{subject}: permissions {' '.join(delta)}",
            )
        )
    out += _generic(
        f"{path}.settings",
        subject,
        old.get("settings") or {},
        new.get("settings") or {},
        "settings",
    )
    return out


def _group_fields(path: str, subject: str, old: dict, new: dict) -> list[Change]:
    out = []
    if not _same(old.get("label"), new.get("label")):
        out.append(_changed(f"{path}.label", old.get("label"), new.get("label"), subject, "label"))
    # group settings read best without the "settings." prefix: "group marketing: payer 'company' -> 'buyer'"
    out += _generic(
        f"{path}.settings", subject, old.get("settings") or {}, new.get("settings") or {}
    )
    return out


def _summary_of(kind: str, spec: Any) -> str:
    if kind == "role":
        return (
            f"label {_show(spec.get('label'))}, permissions {_show(spec.get('permissions') or [])}"
        )
    if kind == "group":
        return (
            ", ".join(f"{k} {_show(v)}" for k, v in ((spec or {}).get("settings") or {}).items())
            or "no settings"
        )
    if kind == "budget":
        return f"{_show(spec.get('amount'))} per {spec.get('period')}, scope {spec.get('scope', 'company')}, on exceed {spec.get('on_exceed', 'require_approval')}"
    if kind == "step":
        return _step_summary(spec)
    return _show(spec)


def _named_maps(path: str, kind: str, old: Any, new: Any, fields: Callable) -> list[Change]:
    old, new = dict(old or {}), dict(new or {})
    out = []
    for name in list(old) + [n for n in new if n not in old]:
        subject = f"{kind} {name}"
        where = f"{path}.{name}"
        if name not in new:
            out.append(
                Change(
                    where,
                    "removed",
                    old[name],
                    None,
                    f"{subject} removed (was {_summary_of(kind, old[name])})",
                )
            )
        elif name not in old:
            out.append(
                Change(
                    where,
                    "added",
                    None,
                    new[name],
                    f"{subject} added ({_summary_of(kind, new[name])})",
                )
            )
        else:
            out += fields(where, subject, old[name] or {}, new[name] or {})
    return out


def _limits_diff(old: dict, new: dict) -> list[Change]:
    out = []
    if not _same(old.get("max_order_total"), new.get("max_order_total")):
        out.append(
            _changed(
                "limits.max_order_total",
                old.get("max_order_total"),
                new.get("max_order_total"),
                "limits",
                "max_order_total",
            )
        )
    ol, nl = old.get("order_limit") or {}, new.get("order_limit") or {}
    if not _same(ol.get("amount"), nl.get("amount")):
        out.append(
            _changed(
                "limits.order_limit.amount",
                ol.get("amount"),
                nl.get("amount"),
                "limits",
                "order_limit",
            )
        )
    if (ol or nl) and not _same(
        ol.get("on_exceed", "require_approval"), nl.get("on_exceed", "require_approval")
    ):
        out.append(
            _changed(
                "limits.order_limit.on_exceed",
                ol.get("on_exceed", "require_approval"),
                nl.get("on_exceed", "require_approval"),
                "limits",
                "order_limit on_exceed",
            )
        )
    ob = {b["name"]: b for b in old.get("budgets") or []}
    nb = {b["name"]: b for b in new.get("budgets") or []}
    for name in list(ob) + [n for n in nb if n not in ob]:
        where, subject = f"limits.budgets[{name}]", f"budget {name}"
        if name not in nb:
            out.append(
                Change(
                    where,
                    "removed",
                    ob[name],
                    None,
                    f"{subject} removed (was {_summary_of('budget', ob[name])})",
                )
            )
        elif name not in ob:
            out.append(
                Change(
                    where,
                    "added",
                    None,
                    nb[name],
                    f"{subject} added ({_summary_of('budget', nb[name])})",
                )
            )
        else:
            defaults = {"scope": "company", "on_exceed": "require_approval"}
            a, b = {**defaults, **ob[name]}, {**defaults, **nb[name]}
            for key in ("amount", "period", "scope", "on_exceed"):
                if not _same(a.get(key), b.get(key)):
                    out.append(_changed(f"{where}.{key}", a.get(key), b.get(key), subject, key))
    for key in sorted((set(old) | set(new)) - {"max_order_total", "order_limit", "budgets"}):
        out += _generic(f"limits.{key}", "limits", old.get(key), new.get(key), key)
    return out


def _selector_text(sel: Mapping[str, Any]) -> str:
    parts = []
    if sel.get("role"):
        role = sel["role"]
        parts.append("role " + (" or ".join(role) if isinstance(role, list) else role))
    relation = sel.get("relation", "company")
    if relation != "company" or not parts:
        parts.append(relation.replace("_", " "))
    if sel.get("accounts"):
        parts.append("accounts " + ", ".join(sel["accounts"]))
    if sel.get("attributes"):
        parts.append(
            "attributes " + ", ".join(f"{k}={_show(v)}" for k, v in sel["attributes"].items())
        )
    return " ".join(parts)


def _approvers_text(spec: Mapping[str, Any] | None) -> str:
    selectors = (spec or {}).get("any_of") or []
    return " | ".join(_selector_text(s) for s in selectors) if selectors else "none"


def _step_summary(step: Mapping[str, Any]) -> str:
    parts = [f"when {_show(describe(step.get('when')))}"]
    if step.get("kind", "standard") != "standard":
        parts.append(f"kind {step['kind']}")
    if "approvers" in step:
        parts.append(f"{step.get('required', 1)} of {_approvers_text(step.get('approvers'))}")
    return ", ".join(parts)


def _approval_diff(old: dict, new: dict) -> list[Change]:
    out = []
    defaults = {"self_approval": False, "scope": "universal"}
    for key in ("self_approval", "scope"):
        a, b = old.get(key, defaults[key]), new.get(key, defaults[key])
        if not _same(a, b):
            out.append(_changed(f"approval.{key}", a, b, "approval", key))
    for key in ("expiry", "reversal", "reminders"):
        out += _generic(f"approval.{key}", "approval", old.get(key), new.get(key), key)
    for key in sorted(
        (set(old) | set(new))
        - {"self_approval", "scope", "expiry", "reversal", "reminders", "steps"}
    ):
        out += _generic(f"approval.{key}", "approval", old.get(key), new.get(key), key)
    out += _steps_diff(list(old.get("steps") or []), list(new.get("steps") or []))
    return out


def _steps_diff(old: list, new: list) -> list[Change]:
    out = []
    old_by = {s["name"]: (i, s) for i, s in enumerate(old)}
    new_by = {s["name"]: (i, s) for i, s in enumerate(new)}
    common_old = [s["name"] for s in old if s["name"] in new_by]
    common_new = [s["name"] for s in new if s["name"] in old_by]
    if common_old != common_new:
        out.append(
            Change(
                "approval.steps",
                "moved",
                common_old,
                common_new,
                f"steps reordered: {', '.join(common_old)} -> {', '.join(common_new)}",
            )
        )
    for name, (index, step) in old_by.items():
        if name not in new_by:
            out.append(
                Change(
                    f"approval.steps[{name}]",
                    "removed",
                    step,
                    None,
                    f"step {name} removed (was {_step_summary(step)})",
                )
            )
    for name, (index, step) in new_by.items():
        if name not in old_by:
            out.append(
                Change(
                    f"approval.steps[{name}]",
                    "added",
                    None,
                    step,
                    f"step {name} added at position {index + 1} ({_step_summary(step)})",
                )
            )
            continue
        before = old_by[name][1]
        out += _step_fields(f"approval.steps[{name}]", f"step {name}", before, step)
    return out


def _step_fields(path: str, subject: str, old: dict, new: dict) -> list[Change]:
    out = []
    ow, nw = old.get("when"), new.get("when")
    if not _same(ow, nw):
        if isinstance(ow, dict) and isinstance(nw, dict) and ow.keys() == nw.keys():
            # name only the parts that changed: "condition 'total > 500' -> 'total > 1000'"
            keys = [k for k in ow if not _same(ow[k], nw[k])]
            a, b = describe({k: ow[k] for k in keys}), describe({k: nw[k] for k in keys})
        else:
            a, b = describe(ow), describe(nw)
        out.append(
            Change(
                f"{path}.when", "changed", ow, nw, f"{subject}: condition {_show(a)} -> {_show(b)}"
            )
        )
    for key, default in (
        ("kind", "standard"),
        ("required", 1),
        ("self_approval", None),
        ("scope", None),
        ("description", None),
    ):
        a, b = old.get(key, default), new.get(key, default)
        if not _same(a, b):
            out.append(_changed(f"{path}.{key}", a, b, subject, key))
    oa, na = old.get("approvers"), new.get("approvers")
    if not _same(oa, na):
        out.append(
            Change(
                f"{path}.approvers",
                "changed",
                oa,
                na,
                f"{subject}: approvers {_show(_approvers_text(oa))} -> {_show(_approvers_text(na))}",
            )
        )
    return out


def _tests_diff(old: list, new: list) -> list[Change]:
    out = []
    ob = {t.get("name"): t for t in old}
    nb = {t.get("name"): t for t in new}
    for name in list(ob) + [n for n in nb if n not in ob]:
        where = f"tests[{name}]"
        if name not in nb:
            out.append(Change(where, "removed", ob[name], None, f"test {_show(name)} removed"))
        elif name not in ob:
            out.append(Change(where, "added", None, nb[name], f"test {_show(name)} added"))
        elif not _same(ob[name], nb[name]):
            out.append(Change(where, "changed", ob[name], nb[name], f"test {_show(name)} changed"))
    return out


# ================================================================ behaviour

#: condition keys whose truth is known from the buyer and the order type alone
_BUYER_KEYS = frozenset(
    [
        "buyer_role",
        "buyer_group",
        "buyer_account",
        "buyer_attributes",
        "order_type",
        "currency",
        "always",
    ]
)
#: condition keys generated orders cannot exercise (they have no lines)
_LINE_KEYS = frozenset(["lines", "quantity", "line_count"])


@dataclass(frozen=True, slots=True)
class Summary:
    """What two decisions are compared on."""

    outcome: str
    reasons: tuple[str, ...]
    payer: tuple[str, str] | None
    steps: tuple[tuple[str, int, frozenset[str]], ...]

    @classmethod
    def of(cls, decision: Decision) -> Summary:
        return cls(
            decision.outcome,
            tuple(sorted(set(decision.reason_codes()))),
            (decision.payer["kind"], decision.payer["id"]) if decision.payer else None,
            tuple(
                (s.name, s.required, frozenset(a.account for a in s.approvers))
                for s in decision.steps
            ),
        )

    def as_dict(self) -> dict:
        return {
            "outcome": self.outcome,
            "reasons": list(self.reasons),
            "payer": {"kind": self.payer[0], "id": self.payer[1]} if self.payer else None,
            "steps": [{"name": n, "required": r, "approvers": sorted(a)} for n, r, a in self.steps],
        }


def _error_summary(exc: ApprovalRulesError) -> Summary:
    return Summary("error", (exc.code,), None, ())


def change_text(old: Summary, new: Summary) -> str | None:
    """The difference between two decisions as a short phrase, or None when they agree.

    Written relative to the buyer (no absolute approver lists unless they
    changed) so that classes with the same change read the same.
    """
    if old == new:
        return None
    if old.outcome != new.outcome:
        text = f"{_outcome(old)} -> {_outcome(new)}"
        extra = []
        if (
            old.outcome != "blocked"
            and new.outcome != "blocked"
            and old.payer
            and new.payer
            and old.payer[0] != new.payer[0]
        ):
            extra.append(f"payer {old.payer[0]} -> {new.payer[0]}")
        return "; ".join([text] + extra)
    parts: list[str] = []
    if old.outcome in ("blocked", "error"):
        added = [r for r in new.reasons if r not in old.reasons]
        removed = [r for r in old.reasons if r not in new.reasons]
        return f"{old.outcome}: reasons " + " ".join(
            [f"+{r}" for r in added] + [f"-{r}" for r in removed]
        )
    parts += _step_changes(old, new)
    added = [r for r in new.reasons if r not in old.reasons]
    removed = [r for r in old.reasons if r not in new.reasons]
    if added or removed:
        parts.append("reasons " + " ".join([f"+{r}" for r in added] + [f"-{r}" for r in removed]))
    if old.payer != new.payer:
        if old.payer and new.payer and old.payer[0] != new.payer[0]:
            parts.append(f"payer {old.payer[0]} -> {new.payer[0]}")
        else:
            parts.append(
                f"payer {old.payer[1] if old.payer else 'none'} -> {new.payer[1] if new.payer else 'none'}"
            )
    return "; ".join(parts) or None


def _outcome(s: Summary) -> str:
    if s.outcome in ("blocked", "error"):
        return f"{s.outcome} ({', '.join(s.reasons)})"
    return s.outcome


def _step_changes(old: Summary, new: Summary) -> list[str]:
    parts = []
    on = [s[0] for s in old.steps]
    nn = [s[0] for s in new.steps]
    ob = {s[0]: s for s in old.steps}
    nb = {s[0]: s for s in new.steps}
    added = [n for n in nn if n not in ob]
    removed = [n for n in on if n not in nb]
    if added:
        parts.append("+step " + ", ".join(added))
    if removed:
        parts.append("-step " + ", ".join(removed))
    common_o = [n for n in on if n in nb]
    common_n = [n for n in nn if n in ob]
    if common_o != common_n:
        parts.append(f"step order {', '.join(common_o)} -> {', '.join(common_n)}")
    for name in common_n:
        _, ro, ao = ob[name]
        _, rn, an = nb[name]
        if ro != rn:
            parts.append(f"step {name} required {ro} -> {rn}")
        if ao != an:
            delta = [f"+{a}" for a in sorted(an - ao)] + [f"-{a}" for a in sorted(ao - an)]
            parts.append(f"step {name} approvers {' '.join(delta)}")
    return parts


# ------------------------------------------------------------ buyer classes


@dataclass
class BuyerClass:
    """Buyers the rule sets cannot tell apart: evaluated once, through a representative."""

    key: tuple
    company: str
    company_name: str
    role: str
    role_label: str
    group: str | None
    group_label: str | None
    master: bool
    qualifiers: tuple[str, ...]
    members: list[str] = field(default_factory=list)
    name: str = ""
    #: the group the class orders in: an invited member's orders have no relation to its group
    active_group: str | None = None
    name: str = ""

    @property
    def representative(self) -> str:
        return self.members[0]

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "company": self.company,
            "role": self.role,
            "group": self.group,
            "master": self.master,
            "members": list(self.members),
        }


def _plural(label: str) -> str:
    if label.endswith("s"):
        return label
    if label.endswith("y") and not label.endswith(("ay", "ey", "oy", "uy")):
        return label[:-1] + "ies"
    return label + "s"


def enumerate_memberships(directory: Directory) -> list[Membership]:
    """Every membership in the directory, account by account."""
    out = []
    for account_id in directory.account_ids():
        out.extend(directory.memberships_of_account(account_id))
    return out


def _referenced_accounts(policies: Iterable[Policy]) -> set[str]:
    return {
        account
        for p in policies
        for step in p.steps
        for account in referenced_names(step.condition)["buyer_account"]
    }


def _condition_keys(policies: Iterable[Policy]) -> set[str]:
    """Every key used in the policies' step conditions, combinators included."""
    found: set[str] = set()

    def walk(c):
        for key, value in (c or {}).items():
            found.add(key)
            for sub in value if key in ("all", "any") else [value] if key == "not" else []:
                walk(sub)

    for p in policies:
        for step in p.steps:
            walk(step.condition)
    return found


def buyer_classes(old: Policy, new: Policy, directory: Directory) -> list[BuyerClass]:
    """Group the directory's buyers by everything either version can look at."""
    names = {old.name, new.name}
    memberships = enumerate_memberships(directory)
    governed = [m for m in memberships if directory.ruleset_name_for(m.company_id) in names]
    if not governed:  # a fixture that does not name its rule set: every company
        governed = memberships
    named_accounts = _referenced_accounts((old, new))
    classes: dict[tuple, BuyerClass] = {}
    for m in governed:
        account = directory.account(m.account_id)
        if account is None:
            continue
        assignments = tuple(
            sorted(
                (a.approver_id, str(a.threshold), str(a.limit), a.step or "")
                for a in directory.assignments_for(m.account_id, m.company_id)
            )
        )
        key = (
            m.company_id,
            m.role,
            m.group,
            m.master,
            m.status,
            account.active,
            tuple(
                sorted(
                    (k, json.dumps(v, sort_keys=True, default=str)) for k, v in m.settings.items()
                )
            ),
            tuple(
                sorted(
                    (k, json.dumps(v, sort_keys=True, default=str)) for k, v in m.attributes.items()
                )
            ),
            assignments,
            m.account_id if m.account_id in named_accounts else None,
        )
        cls = classes.get(key)
        if cls is None:
            cls = classes[key] = _make_class(key, m, account, assignments, old, new, directory)
        cls.members.append(m.account_id)
    result = list(classes.values())
    _name_classes(result)
    return result


def _group_label(
    group: str | None, company: str, old: Policy, new: Policy, directory: Directory
) -> str | None:
    if group is None:
        return None
    for p in (new, old):
        spec = (p.data.get("groups") or {}).get(group) or {}
        if spec.get("label"):
            return spec["label"]
    for g in directory.groups_of_company(company):
        if g.id == group and g.name:
            return g.name
    return group


def _make_class(
    key, m: Membership, account, assignments, old: Policy, new: Policy, directory: Directory
) -> BuyerClass:
    company = directory.company(m.company_id)
    role_label = new.role_label(m.role) if m.role in new.roles else old.role_label(m.role)
    qualifiers = []
    if m.status != "active":
        qualifiers.append(m.status)
    if not account.active:
        qualifiers.append("deactivated")
    if assignments:

        def who(account_id):
            a = directory.account(account_id)
            return a.name if a else account_id

        tiers = [
            (approver, threshold)
            for approver, threshold, _, _ in assignments
            if threshold != "None"
        ]
        plain = [approver for approver, threshold, _, _ in assignments if threshold == "None"]
        if plain:
            qualifiers.append("assigned to " + " and ".join(who(a) for a in plain))
        if tiers:
            qualifiers.append(
                "with authorizers "
                + ", ".join(f"{who(a)} over {fmt_amount(Decimal(t))}" for a, t in tiers)
            )
    elif any(
        sel.relation in ("assigned", "unassigned")
        for p in (old, new)
        for step in p.steps
        for sel in step.selectors
    ):
        qualifiers.append("with no assigned approver")
    if m.settings:
        qualifiers.append("with own " + ", ".join(f"{k} {_show(v)}" for k, v in m.settings.items()))
    if m.attributes:
        qualifiers.append("with " + ", ".join(f"{k}={_show(v)}" for k, v in m.attributes.items()))
    if key[-1]:
        qualifiers.append(f"({account.name})")
    return BuyerClass(
        key=key,
        company=m.company_id,
        company_name=company.name if company else m.company_id,
        role=m.role,
        role_label=role_label,
        group=m.group,
        group_label=_group_label(m.group, m.company_id, old, new, directory),
        master=m.master,
        qualifiers=tuple(qualifiers),
        active_group=m.group if m.active else None,
    )


def _name_classes(classes: list[BuyerClass]) -> None:
    several_companies = len({c.company for c in classes}) > 1
    for c in classes:
        name = _plural(c.role_label)
        if c.master and "master" not in c.role_label.lower():
            name += " (masters)"
        if c.group_label:
            name += f" in {c.group_label}"
        if several_companies:
            name += f" of {c.company_name}"
        status = [
            q for q in c.qualifiers if q in ("invited", "declined", "inactive", "deactivated")
        ]
        rest = [q for q in c.qualifiers if q not in status]
        c.name = " ".join(status + [name] + rest)
    seen: dict[str, list[BuyerClass]] = {}
    for c in classes:
        seen.setdefault(c.name, []).append(c)
    for same in seen.values():
        if len(same) > 1:
            for c in same:
                c.name += f" ({', '.join(c.members[:3])}{', ...' if len(c.members) > 3 else ''})"


# -------------------------------------------------------------- boundaries


def _tri(condition: Mapping[str, Any] | None, facts: OrderFacts) -> bool | None:
    """Whether a condition holds for this buyer and order type whatever the total: True, False or None (depends)."""
    if not condition:
        return True
    result: bool | None = True
    for key, value in condition.items():
        if key == "all":
            subs = [_tri(c, facts) for c in value]
            part = False if False in subs else (True if all(s is True for s in subs) else None)
        elif key == "any":
            subs = [_tri(c, facts) for c in value]
            part = True if True in subs else (False if all(s is False for s in subs) else None)
        elif key == "not":
            sub = _tri(value, facts)
            part = None if sub is None else not sub
        elif key in _BUYER_KEYS:
            part = compile_condition({key: value})(facts)
        else:
            part = None
        if part is False:
            return False
        if part is None:
            result = None
    return result


def _facts(
    policy: Policy, m: Membership, order_type: str, currency: str | None = None
) -> OrderFacts:
    return OrderFacts(
        total=Decimal(0),
        currency=currency or policy.currency,
        order_type=order_type,
        lines=(),
        quantity=Decimal(0),
        buyer=m.account_id,
        role=m.role,
        group=m.group if m.active else None,
        attributes=m.attributes,
        exceeded=frozenset(),
    )


def _relevant_steps(
    policy: Policy, m: Membership, order_type: str, currency: str | None = None
) -> tuple:
    facts = _facts(policy, m, order_type, currency)
    return tuple(s for s in policy.steps if _tri(s.condition, facts) is not False)


def _pruned(policy: Policy, steps: tuple) -> Policy:
    """The same policy with only ``steps``: same decisions for the buyers those steps were chosen for, faster."""
    if len(steps) == len(policy.steps):
        return policy
    fields = {k: getattr(policy, k) for k in policy.__slots__ if k != "_ruleset_ref"}
    fields["steps"] = steps
    return Policy(**fields)


def _boundaries(
    policies: tuple[Policy, Policy], steps: tuple[tuple, tuple], m: Membership, directory: Directory
) -> set[Decimal]:
    found: set[Decimal] = {Decimal(0)}
    for p, relevant in zip(policies, steps):
        for s in relevant:
            found |= thresholds(s.condition, "total")
        if p.max_order_total is not None:
            found.add(p.max_order_total)
        if p.order_limit:
            found.add(p.order_limit[0])
        for b in p.budgets:
            found.add(b.amount)
        settings = p.effective_settings(m)
        for key in MONEY_SETTINGS:
            if settings.get(key) is not None:
                found.add(Decimal(settings[key]))
        for other in directory.memberships_of_company(m.company_id):
            limit = p.effective_settings(other).get("approval_limit")
            if limit is not None:
                found.add(Decimal(limit))
    for a in directory.assignments_for(m.account_id, m.company_id):
        for value in (a.threshold, a.limit):
            if value is not None:
                found.add(value)
    return found


@dataclass(frozen=True, slots=True)
class Sample:
    total: Decimal
    segment: int  # even: the point boundaries[segment // 2]; odd: the open interval after it


def _samples(bounds: list[Decimal], both_sides: bool = True) -> list[Sample]:
    """Points at each boundary and just above it (and just below the next), plus a large total."""
    places = max(
        [2]
        + [
            -b.normalize().as_tuple().exponent
            for b in bounds
            if b.normalize().as_tuple().exponent < 0
        ]
    )
    eps = Decimal(1).scaleb(-places)
    out = []
    for i, b in enumerate(bounds):
        out.append(Sample(b, 2 * i))
        nxt = bounds[i + 1] if i + 1 < len(bounds) else None
        if nxt is None:
            out.append(Sample(b + eps, 2 * i + 1))
            large = max(b * 10, Decimal(1_000_000))
            out.append(Sample(large.quantize(Decimal(1)), 2 * i + 1))
        elif nxt - b > 2 * eps:
            out.append(Sample(b + eps, 2 * i + 1))
            if both_sides:
                out.append(Sample(nxt - eps, 2 * i + 1))
        else:
            out.append(Sample((b + nxt) / 2, 2 * i + 1))
    return out


# ---------------------------------------------------------------- the report


@dataclass
class BehaviourChange:
    """One class of orders whose decision changes: a total range, buyers, order types, old -> new."""

    low: Decimal | None
    low_inclusive: bool
    high: Decimal | None
    high_inclusive: bool
    order_types: tuple[str, ...] | None  # None: every order type that can be placed
    who: str
    classes: tuple[str, ...]
    change: str
    old: Summary
    new: Summary
    example: dict
    text: str = ""
    currency: str | None = None  # set when the rule sets price several currencies

    def as_dict(self) -> dict:
        return {
            "text": self.text,
            "orders": _range_text(
                self.low, self.low_inclusive, self.high, self.high_inclusive, self.order_types
            ),
            "total": {
                "low": fmt_amount(self.low) if self.low is not None else None,
                "low_inclusive": self.low_inclusive,
                "high": fmt_amount(self.high) if self.high is not None else None,
                "high_inclusive": self.high_inclusive,
            },
            "order_types": list(self.order_types) if self.order_types else None,
            "currency": self.currency,
            "who": self.who,
            "classes": list(self.classes),
            "change": self.change,
            "example": {
                "order": self.example,
                "old": self.old.as_dict(),
                "new": self.new.as_dict(),
            },
        }


@dataclass
class BehaviourReport:
    changes: list[BehaviourChange]
    classes: list[BuyerClass]
    evaluations: int
    notes: list[str]
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def lines(self) -> list[str]:
        return [c.text for c in self.changes]

    def as_dict(self) -> dict:
        return {
            "changed": self.changed,
            "changes": [c.as_dict() for c in self.changes],
            "classes": [c.as_dict() for c in self.classes],
            "evaluations": self.evaluations,
            "notes": list(self.notes),
        }


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _range_text(low, low_inc, high, high_inc, types) -> str:
    noun = "orders" if not types else _and(list(types)) + " orders"
    parts = []
    if low is not None and not (low == 0 and low_inc):
        parts.append(f"{'from' if low_inc else 'over'} {fmt_amount(low)}")
    if high is not None:
        if parts and not high_inc:
            parts.append("and")
        parts.append(f"{'up to' if high_inc else 'below'} {fmt_amount(high)}")
    if low is not None and high is not None and low == high and low_inc and high_inc:
        parts = [f"of exactly {fmt_amount(low)}"]
    if not parts:
        return f"all {noun}"
    return f"{noun} {' '.join(parts)}"


class _Grid:
    """Decisions of one buyer class under both versions: per order type, per sample."""

    def __init__(self, samples: list[Sample], bounds: list[Decimal]):
        self.samples = samples
        self.bounds = bounds
        self.pairs: dict[str, list[tuple[Summary, Summary]]] = {}


def _evaluate(policy: Policy, order: Order, directory: Directory, now) -> Summary:
    try:
        return Summary.of(policy.evaluate(order, directory, now=now))
    except ApprovalRulesError as exc:
        return _error_summary(exc)


def behavioural_diff(
    old_policy: Policy,
    new_policy: Policy,
    directory: Directory,
    *,
    now: Any = None,
    verify: bool = True,
) -> BehaviourReport:
    """Generate orders at every boundary of both versions, for every class of buyer and order type; report what changes.

    Rule sets that price several currencies are explored once per priced
    currency (of either version), at that currency's own boundaries; each
    change then names its currency ("orders in EUR over 450 ...").
    """
    currencies = list(dict.fromkeys(old_policy.priced_currencies + new_policy.priced_currencies))
    if len(currencies) == 1:
        return _behavioural_diff(old_policy, new_policy, directory, now=now, verify=verify)
    started = time.perf_counter()
    reports = [
        _behavioural_diff(old_policy, new_policy, directory, now=now, verify=verify, currency=code)
        for code in currencies
    ]
    changes = []
    for code, report in zip(currencies, reports):
        for change in report.changes:
            change.currency = code
            change.text = change.text.replace("orders", f"orders in {code}", 1)
            change.example["currency"] = code
            changes.append(change)
    notes = list(dict.fromkeys(note for report in reports for note in report.notes))
    return BehaviourReport(
        changes,
        reports[0].classes,
        sum(r.evaluations for r in reports),
        notes,
        time.perf_counter() - started,
    )


def _in_currency(policy: Policy, currency: str | None) -> Policy:
    """The policy whose amounts an order in ``currency`` is compared with (itself unless priced by a variant)."""
    return policy.variants.get(currency, policy) if currency else policy


def _behavioural_diff(
    old_policy: Policy,
    new_policy: Policy,
    directory: Directory,
    *,
    now: Any,
    verify: bool,
    currency: str | None = None,
) -> BehaviourReport:
    started = time.perf_counter()
    now = now or DEFAULT_NOW
    policies = (old_policy, new_policy)
    classes = buyer_classes(old_policy, new_policy, directory)
    keys = _condition_keys(policies)
    notes = []
    if keys & _LINE_KEYS:
        notes.append(
            "conditions on lines, quantity or line count are not explored by generated orders (they have no lines); replay recorded orders to cover them"
        )
    if old_policy.budgets or new_policy.budgets:
        notes.append(
            "budgets: generated orders assume nothing has been spent in the current period"
        )
    type_specific = "order_type" in keys
    evaluations = 0
    grids: dict[int, _Grid] = {}
    by_account: dict[tuple[str, str], Membership] = {}
    for m in enumerate_memberships(directory):
        by_account[(m.account_id, m.company_id)] = m
    split: list[BuyerClass] = []
    for cls in classes:
        m = by_account[(cls.representative, cls.company)]
        grid, count = _class_grid(policies, m, directory, now, type_specific, currency=currency)
        evaluations += count
        grids[id(cls)] = grid
        if verify and len(cls.members) > 1:
            # representatives stand for their class; check the others agree when that is cheap
            budget = 20_000
            cost = (len(cls.members) - 1) * len(grid.samples) * 2
            if cost <= budget:
                reference = [change_text(*pair) for pair in grid.pairs["regular"]]
                for other in list(cls.members[1:]):
                    om = by_account[(other, cls.company)]
                    ogrid, count = _class_grid(
                        policies,
                        om,
                        directory,
                        now,
                        type_specific,
                        types=("regular",),
                        bounds=grid.bounds,
                        currency=currency,
                    )
                    evaluations += count
                    if [change_text(*pair) for pair in ogrid.pairs["regular"]] != reference:
                        cls.members.remove(other)
                        account = directory.account(other)
                        lone = BuyerClass(
                            cls.key + (other,),
                            cls.company,
                            cls.company_name,
                            cls.role,
                            cls.role_label,
                            cls.group,
                            cls.group_label,
                            cls.master,
                            cls.qualifiers,
                            [other],
                            active_group=cls.active_group,
                        )
                        lone.name = f"{account.name if account else other} ({cls.name})"
                        full, count = _class_grid(
                            policies, om, directory, now, type_specific, currency=currency
                        )
                        evaluations += count
                        grids[id(lone)] = full
                        split.append(lone)
    classes = classes + split
    changes = _report(classes, grids)
    return BehaviourReport(changes, classes, evaluations, notes, time.perf_counter() - started)


def _class_grid(
    policies,
    m: Membership,
    directory: Directory,
    now,
    type_specific: bool,
    types=ORDER_TYPES,
    bounds=None,
    currency: str | None = None,
) -> tuple[_Grid, int]:
    relevant = {t: tuple(_relevant_steps(p, m, t) for p in policies) for t in types}
    if bounds is None:
        found: set[Decimal] = set()
        # boundaries in the order's currency: the amounts of the policy that prices it
        priced = tuple(_in_currency(p, currency) for p in policies)
        for t in types:
            found |= _boundaries(
                priced, tuple(_relevant_steps(p, m, t, currency) for p in priced), m, directory
            )
        bounds = sorted(found)
    samples = _samples(bounds, both_sides=len(bounds) <= 200)
    grid = _Grid(samples, bounds)
    count = 0

    def run(order_type: str, subset: list[Sample]) -> list[tuple[Summary, Summary]]:
        nonlocal count
        pruned = [_pruned(p, steps) for p, steps in zip(policies, relevant[order_type])]
        out = []
        for s in subset:
            order = Order(
                buyer=m.account_id,
                total=s.total,
                company=m.company_id,
                type=order_type,
                currency=currency,
            )
            out.append(
                (
                    _evaluate(pruned[0], order, directory, now),
                    _evaluate(pruned[1], order, directory, now),
                )
            )
            count += 2
        return out

    grid.pairs["regular" if "regular" in types else types[0]] = run(
        "regular" if "regular" in types else types[0], samples
    )
    base = grid.pairs.get("regular")
    for t in types:
        if t in grid.pairs:
            continue
        bulk_differs = (
            t == "bulk"
            and m.group is not None
            and any(p.bulk_orders != "group_settings" for p in policies)
        )
        if base is not None and not type_specific and not bulk_differs and t != "quote":
            # the engine treats this type like a regular order: check a few points, then reuse
            step = max(1, len(samples) // 8)
            probe = list(range(0, len(samples), step))
            pairs = run(t, [samples[i] for i in probe])
            if all(pairs[j] == base[i] for j, i in enumerate(probe)):
                grid.pairs[t] = base
                continue
        grid.pairs[t] = run(t, samples)
    return grid, count


def _report(classes: list[BuyerClass], grids: dict[int, _Grid]) -> list[BehaviourChange]:
    # 1. per class and order type: runs of consecutive samples with the same change
    runs: dict[tuple, dict] = {}
    for ci, cls in enumerate(classes):
        grid = grids[id(cls)]
        for t in ORDER_TYPES:
            pairs = grid.pairs.get(t)
            if pairs is None:
                continue
            texts = [change_text(*pair) for pair in pairs]
            i = 0
            while i < len(texts):
                if texts[i] is None:
                    i += 1
                    continue
                j = i
                while j + 1 < len(texts) and texts[j + 1] == texts[i]:
                    j += 1
                lo, hi = _bounds_of(grid, i, j)
                if _placeable(pairs[i]):
                    # orders both versions block alike do not change: "orders over 500", not "over 500 up to the maximum"
                    if i > 0 and all(_blocked_alike(pair) for pair in pairs[:i]):
                        lo = (None, True)
                    if j + 1 < len(pairs) and all(_blocked_alike(pair) for pair in pairs[j + 1 :]):
                        hi = (None, True)
                entry = runs.setdefault(
                    (ci, lo, hi, texts[i]),
                    {"types": [], "pair": pairs[i], "sample": grid.samples[i]},
                )
                entry["types"].append(t)
                i = j + 1
    # 2. order types: name them only when not every placeable type changes
    merged: dict[tuple, dict] = {}
    for (ci, lo, hi, text), entry in runs.items():
        changed = entry["types"]
        others = [t for t in ORDER_TYPES if t not in changed and t in grids[id(classes[ci])].pairs]
        if _placeable(entry["pair"]) and all(
            _neutral(grids[id(classes[ci])], t, lo, hi) for t in others
        ):
            types = None
        else:
            types = tuple(changed)
        slot = merged.setdefault((lo, hi, text, types), {"classes": [], "entry": entry, "ci": ci})
        slot["classes"].append(ci)
    # 3. buyers: whole companies, groups and roles by name, else the classes
    out = []
    for (lo, hi, text, types), slot in merged.items():
        affected = set(slot["classes"])
        who = _who(classes, grids, affected, lo, hi, types, _placeable(slot["entry"]["pair"]))
        entry = slot["entry"]
        cls = classes[slot["ci"]]
        sample = entry["sample"]
        example = {
            "buyer": cls.representative,
            "company": cls.company,
            "total": fmt_amount(sample.total),
            "type": (types or entry["types"])[0],
        }
        change = BehaviourChange(
            low=lo[0],
            low_inclusive=lo[1],
            high=hi[0],
            high_inclusive=hi[1],
            order_types=types,
            who=who,
            classes=tuple(classes[i].name for i in sorted(affected)),
            change=text,
            old=entry["pair"][0],
            new=entry["pair"][1],
            example=example,
        )
        change.text = f"{_range_text(lo[0], lo[1], hi[0], hi[1], types)} by {who}: {text}"
        out.append((min(affected), lo[0] if lo[0] is not None else Decimal(-1), change))
    out.sort(key=lambda x: (x[0], x[1], x[2].text))
    return [c for _, _, c in out]


def _bounds_of(grid: _Grid, i: int, j: int) -> tuple[tuple, tuple]:
    first, last = grid.samples[i].segment, grid.samples[j].segment
    b = grid.bounds
    if first % 2 == 0:
        lo = (b[first // 2], True)
    else:
        lo = (b[first // 2], False)
    if first == 0:
        lo = (None, True)
    if last % 2 == 0:
        hi = (b[last // 2], True)
    elif last // 2 + 1 < len(b):
        hi = (b[last // 2 + 1], False)
    else:
        hi = (None, True)
    return lo, hi


def _in_range(grid: _Grid, lo, hi) -> list[int]:
    """Samples of ``grid`` whose segment meets the total range (lo, hi): the grid's own boundaries may differ."""
    b = grid.bounds
    low = lo[0] if lo[0] is not None else Decimal(-1)
    high = hi[0]

    def above_low(x: Decimal, inclusive_point: bool) -> bool:
        return x > low or (x == low and lo[1] and inclusive_point)

    def below_high(x: Decimal, inclusive_point: bool) -> bool:
        return high is None or x < high or (x == high and hi[1] and inclusive_point)

    out = []
    for idx, s in enumerate(grid.samples):
        i = s.segment // 2
        if s.segment % 2 == 0:
            if above_low(b[i], True) and below_high(b[i], True):
                out.append(idx)
        else:
            start = b[i]
            end = b[i + 1] if i + 1 < len(b) else None
            # the open interval (start, end) meets the range when start < high and end > low
            if (high is None or start < high) and (end is None or end > low):
                out.append(idx)
    return out


def _blocked_alike(pair: tuple[Summary, Summary]) -> bool:
    """Both versions refuse the order (the reasons may differ)."""
    return pair[0].outcome in ("blocked", "error") and pair[1].outcome in ("blocked", "error")


def _placeable(pair: tuple[Summary, Summary]) -> bool:
    """A change that lets an order through on at least one side; blocked-alike orders are then beside the point."""
    return pair[0].outcome not in ("blocked", "error") or pair[1].outcome not in (
        "blocked",
        "error",
    )


def _neutral(grid: _Grid, order_type: str, lo, hi) -> bool:
    """Orders of this type in this range are blocked (or refused) the same way by both versions."""
    pairs = grid.pairs.get(order_type)
    if pairs is None:
        return True
    return all(_blocked_alike(pairs[i]) for i in _in_range(grid, lo, hi))


def _who(
    classes: list[BuyerClass], grids, affected: set[int], lo, hi, types, ignore_blocked: bool = True
) -> str:
    def neutral(ci: int) -> bool:
        if not ignore_blocked:
            return False
        grid = grids[id(classes[ci])]
        return all(_neutral(grid, t, lo, hi) for t in (types or ORDER_TYPES))

    def covers(members: list[int]) -> bool:
        return all(ci in affected or neutral(ci) for ci in members) and any(
            ci in affected for ci in members
        )

    remaining = set(affected)
    names = []
    companies: dict[str, list[int]] = {}
    for ci, c in enumerate(classes):
        companies.setdefault(c.company, []).append(ci)
    several = len(companies) > 1
    if len(classes) > 1 and covers(list(range(len(classes)))):
        return "all buyers"
    for company, members in companies.items():
        if not (set(members) & remaining):
            continue
        if len(members) > 1 and covers(members):
            names.append(f"all buyers of {classes[members[0]].company_name}")
            remaining -= set(members)
            continue
        groups: dict[str, list[int]] = {}
        for ci in members:
            if classes[ci].active_group:
                groups.setdefault(classes[ci].active_group, []).append(ci)
        for group, gmembers in groups.items():
            if set(gmembers) & remaining and covers(gmembers):
                label = classes[gmembers[0]].group_label or group
                names.append(
                    f"{label} members"
                    + (f" of {classes[gmembers[0]].company_name}" if several else "")
                )
                remaining -= set(gmembers)
        roles: dict[str, list[int]] = {}
        for ci in members:
            roles.setdefault(classes[ci].role, []).append(ci)
        for role, rmembers in roles.items():
            if (
                len(rmembers) > 1
                and set(rmembers) <= remaining | {ci for ci in rmembers if neutral(ci)}
                and set(rmembers) & remaining
            ):
                names.append(
                    _plural(classes[rmembers[0]].role_label)
                    + (f" of {classes[rmembers[0]].company_name}" if several else "")
                )
                remaining -= set(rmembers)
    for ci in sorted(remaining):
        names.append(classes[ci].name)
    return _and(names)


# =================================================================== replay


@dataclass
class ReplayReport:
    orders: int = 0
    changed: int = 0
    errors: int = 0
    per_class: dict[str, dict] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "orders": self.orders,
            "changed": self.changed,
            "errors": self.errors,
            "per_class": self.per_class,
            "seconds": round(self.seconds, 3),
        }

    def lines(self) -> list[str]:
        out = []
        for name, counts in sorted(self.per_class.items()):
            if not counts["changed"]:
                continue
            out.append(f"{name}: {counts['changed']} of {counts['orders']} orders change")
            for text, n in sorted(counts["changes"].items(), key=lambda kv: -kv[1]):
                out.append(f"    {n} x {text}")
        return out


class _Progress:
    """A one-line progress bar on standard error, only when it is a terminal."""

    def __init__(self, total: int | None, enabled: bool | None = None, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total = total
        self.last = 0.0

    def update(self, done: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        if self.total:
            width = 30
            filled = int(width * done / self.total)
            self.stream.write(
                f"\rreplay [{'#' * filled}{'.' * (width - filled)}] {done:,}/{self.total:,}"
            )
        else:
            self.stream.write(f"\rreplay {done:,} orders")
        self.stream.flush()

    def close(self, done: int) -> None:
        if self.enabled:
            self.update(done, force=True)
            self.stream.write("\n")
            self.stream.flush()


def replay(
    old_policy: Policy,
    new_policy: Policy,
    directory: Directory,
    orders_iterable: Iterable[Any],
    *,
    now: Any = None,
    total: int | None = None,
    progress: bool | None = None,
) -> ReplayReport:
    """Evaluate recorded orders under both versions; count changes per class of buyer.

    Each item is an order (dict or :class:`Order`), or ``{"order": ..., "now": ..., "budgets_spent": ...}``.
    """
    started = time.perf_counter()
    now = now or DEFAULT_NOW
    classes = buyer_classes(old_policy, new_policy, directory)
    class_of: dict[tuple[str, str], str] = {}
    for cls in classes:
        for member in cls.members:
            class_of[(member, cls.company)] = cls.name
    names_cache: dict[tuple[str, str | None], str] = {}
    memberships: dict[tuple[str, str | None], Membership | None] = {}
    pruned: dict[tuple, tuple[Policy, Policy]] = {}
    report = ReplayReport()
    bar = _Progress(total, progress)
    for item in orders_iterable:
        report.orders += 1
        when, spent = now, None
        if isinstance(item, Mapping) and "order" in item and "buyer" not in item:
            when, spent, item = item.get("now", now), item.get("budgets_spent"), item["order"]
        try:
            order = item if isinstance(item, Order) else Order.from_dict(item)
        except ApprovalRulesError:
            report.errors += 1
            continue
        key = (order.buyer, order.company)
        name = names_cache.get(key)
        if name is None:
            m = directory.membership(order.buyer, order.company)
            memberships[key] = m
            name = (
                class_of.get((order.buyer, m.company_id), order.buyer)
                if m
                else f"unknown buyer {order.buyer}"
            )
            names_cache[key] = name
        m = memberships[key]
        policies = (old_policy, new_policy)
        if m is not None:
            # only the steps that can apply to this buyer and order type: same decision, less work
            pkey = (key, order.type, order.currency)
            policies = pruned.get(pkey)
            if policies is None:
                policies = pruned[pkey] = tuple(
                    _pruned(p, _relevant_steps(p, m, order.type, order.currency))
                    for p in (old_policy, new_policy)
                )
        pair = []
        for p in policies:
            try:
                pair.append(Summary.of(p.evaluate(order, directory, now=when, budgets_spent=spent)))
            except ApprovalRulesError as exc:
                pair.append(_error_summary(exc))
        counts = report.per_class.setdefault(name, {"orders": 0, "changed": 0, "changes": {}})
        counts["orders"] += 1
        text = change_text(*pair)
        if text is not None:
            report.changed += 1
            counts["changed"] += 1
            counts["changes"][text] = counts["changes"].get(text, 0) + 1
        if report.orders % 1000 == 0:
            bar.update(report.orders)
    bar.close(report.orders)
    report.seconds = time.perf_counter() - started
    return report


def read_jsonl(path: str | Path) -> Iterable[dict]:
    """Orders from a JSONL file, one JSON object per line; blank lines skipped."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ApprovalRulesError(
                    "invalid_jsonl", f"{path}:{number}: not JSON ({exc.msg})"
                ) from None


# ============================================================ one function


def unified(old_text: str, new_text: str, old_name: str = "old", new_name: str = "new") -> str:
    return "".join(
        difflib.unified_diff(
            old_text.splitlines(True), new_text.splitlines(True), old_name, new_name
        )
    )


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
    """What the API and the admin diff page call: JSON-ready structural, behavioural and unified diffs.

    Raises :class:`DocumentError` when either text is not a valid rule set.
    """
    from .engine import check_ruleset
    from .engine import compile_policy

    old_checked = check_ruleset(old_text, old_name, resolve)
    new_checked = check_ruleset(new_text, new_name, resolve)
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


# ===================================================================== CLI


def resolve_reference(ref: str, store=None) -> tuple[str, str, Any]:
    """``tenant/ruleset@version`` -> (text, source name, resolver for ``extends``).

    ``store`` is an open :class:`approvalrules.store.versions.VersionLookup`
    (the CLI opens one from ``--ini``); without it, references are refused.
    """
    if store is None:
        raise ApprovalRulesError("store_required", STORE_NEEDED)
    match = REFERENCE.match(ref)
    return store.text_of(match["tenant"], match["ruleset"], match["version"])


def add_arguments(parser) -> None:
    parser.add_argument(
        "old",
        metavar="A",
        help="old version: a rule-set file (or tenant/ruleset@version with the store)",
    )
    parser.add_argument(
        "new",
        metavar="B",
        help="new version: a rule-set file (or tenant/ruleset@version with the store)",
    )
    parser.add_argument(
        "--directory", help="directory fixture (default: directories/<stem of A>.yaml beside A)"
    )
    parser.add_argument("--format", choices=("text", "json", "unified"), default="text")
    parser.add_argument(
        "--fail-on",
        choices=("structural", "behavioural"),
        default="behavioural",
        help="exit 1 on any structural change, or only on behaviour changes (default)",
    )
    parser.add_argument(
        "--replay",
        metavar="FILE.jsonl",
        help="also replay recorded orders (one order JSON per line) and count changes per class",
    )
    parser.add_argument(
        "--now", help="ISO 8601 instant to evaluate at (default 2026-01-15T12:00:00Z)"
    )
    parser.add_argument("--no-color", action="store_true", help="no colours even on a terminal")
    parser.add_argument(
        "--ini", help="settings file naming the database, for tenant/ruleset@version references"
    )
    parser.add_argument(
        "--replay-recorded",
        action="store_true",
        help="with --ini: also replay every order recorded under this rule set",
    )
    parser.set_defaults(func=main)


def _load_version(arg: str, store=None) -> tuple[str, str, Any]:
    path = Path(arg)
    if not path.exists() and REFERENCE.match(arg):
        return resolve_reference(arg, store)
    from .cli import _read
    from .engine import folder_resolver

    return _read(arg), arg, folder_resolver(path.parent)


class _Colour:
    def __init__(self, on: bool):
        self.on = on

    def __call__(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.on else text


def main(args) -> int:
    """``approvalrules diff``: exit 0 unchanged, 1 changed (per --fail-on), 2 on error."""
    store = None
    references = [a for a in (args.old, args.new) if REFERENCE.match(a) and not Path(a).exists()]
    if references and getattr(args, "ini", None):
        from .store.versions import VersionLookup

        store = VersionLookup.from_ini(args.ini)
    try:
        return _main(args, store)
    finally:
        if store is not None:
            store.close()


def _main(args, store) -> int:
    from .cli import directory_for, report_error
    from .engine import check_ruleset
    from .engine import compile_policy

    try:
        old_text, old_source, old_resolve = _load_version(args.old, store)
        new_text, new_source, new_resolve = _load_version(args.new, store)
        old_checked = check_ruleset(old_text, old_source, old_resolve)
        new_checked = check_ruleset(new_text, new_source, new_resolve)
        structural = structural_diff(old_checked.resolved, new_checked.resolved)
        directory, directory_path = (None, None)
        if not REFERENCE.match(args.old) or Path(args.old).exists():
            directory, directory_path = directory_for(args.old, args.directory)
        elif args.directory:
            directory, directory_path = directory_for(args.new, args.directory)
        elif store is not None:
            directory = store.directory(REFERENCE.match(args.old)["tenant"])
        behaviour = replayed = None
        if directory is None and args.fail_on == "behavioural":
            print(
                f"error: no directory for the behavioural diff: expected {directory_path} or --directory",
                file=sys.stderr,
            )
            return EXIT_ERROR
        if directory is not None:
            old_policy, new_policy = compile_policy(old_checked), compile_policy(new_checked)
            behaviour = behavioural_diff(old_policy, new_policy, directory, now=args.now)
            if args.replay:
                replayed = replay(
                    old_policy,
                    new_policy,
                    directory,
                    read_jsonl(args.replay),
                    now=args.now,
                    total=_count_lines(args.replay),
                )
            elif getattr(args, "replay_recorded", False):
                if store is None:
                    raise ApprovalRulesError(
                        "store_required",
                        "--replay-recorded reads the orders recorded in the database: give tenant/ruleset@version references and --ini",
                    )
                match = REFERENCE.match(args.old)
                count, orders = store.recorded_orders(match["tenant"], match["ruleset"])
                replayed = replay(
                    old_policy, new_policy, directory, orders, now=args.now, total=count
                )
    except ApprovalRulesError as exc:
        return report_error(exc)

    behaviour_changed = bool(behaviour and behaviour.changed) or bool(replayed and replayed.changed)
    if args.format == "json":
        data = {
            "old": old_source,
            "new": new_source,
            "structural": [c.as_dict() for c in structural],
            "behavioural": behaviour.as_dict() if behaviour else None,
            "replay": replayed.as_dict() if replayed else None,
            "changed": {
                "text": old_text != new_text,
                "structure": bool(structural),
                "behaviour": behaviour_changed,
            },
        }
        print(json.dumps(data, indent=2))
    elif args.format == "unified":
        sys.stdout.write(unified(old_text, new_text, old_source, new_source))
    else:
        colour = _Colour(
            sys.stdout.isatty() and not args.no_color and not os.environ.get("NO_COLOR")
        )
        print(colour("1", f"{old_source} -> {new_source}"))
        if not structural:
            print(
                "structure: no changes"
                + (" (text differs only in layout or comments)" if old_text != new_text else "")
            )
        else:
            print(colour("1", f"structure: {len(structural)} change(s)"))
            marks = {
                "added": ("+", "32"),
                "removed": ("-", "31"),
                "changed": ("~", "33"),
                "moved": ("~", "33"),
            }
            for c in structural:
                mark, code = marks.get(c.kind, ("~", "33"))
                print(colour(code, f"  {mark} {c.text}") + colour("2", f"  [{c.path}]"))
        if behaviour is None:
            print("behaviour: not compared (no directory)")
        elif not behaviour.changes:
            print(
                f"behaviour: no changes ({behaviour.evaluations:,} generated orders, {len(behaviour.classes)} buyer classes)"
            )
        else:
            print(
                colour(
                    "1",
                    f"behaviour: {len(behaviour.changes)} change(s) ({behaviour.evaluations:,} generated orders, {len(behaviour.classes)} buyer classes)",
                )
            )
            for c in behaviour.changes:
                print(colour("35", f"  * {c.text}"))
        for note in behaviour.notes if behaviour else ():
            print(colour("2", f"  note: {note}"))
        if replayed is not None:
            print(
                colour(
                    "1",
                    f"replay: {replayed.changed:,} of {replayed.orders:,} orders change"
                    + (f", {replayed.errors:,} unreadable" if replayed.errors else ""),
                )
            )
            for line in replayed.lines():
                print(f"  {line}")
    if behaviour_changed:
        return EXIT_CHANGED
    if args.fail_on == "structural" and structural:
        return EXIT_CHANGED
    return EXIT_OK


def _count_lines(path: str) -> int | None:
    try:
        with open(path, "rb") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError:
        return None
