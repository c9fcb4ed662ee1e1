"""The structural diff: changes between two rule sets' data, named in rule-set terms.

"step finance: required 1 -> 2", "role buyer added", "steps reordered: a, b -> b, a".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..engine.conditions import describe
from .values import jsonable, same, show


@dataclass(frozen=True)
class Change:
    """One structural change: where, what kind (added, removed, changed, moved), old, new, text."""

    path: str
    kind: str
    old: Any
    new: Any
    text: str

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            "kind": self.kind,
            "old": jsonable(self.old),
            "new": jsonable(self.new),
            "text": self.text,
        }


def structural_diff(
    old_data: Mapping[str, Any] | None, new_data: Mapping[str, Any] | None
) -> list[Change]:
    """Changes between two rule sets' (resolved) data, in rule-set terms, in document order."""
    old, new = dict(old_data or {}), dict(new_data or {})
    out: list[Change] = []
    for key in ("ruleset", "extends", "description", "currency", "bulk_orders"):
        if not same(old.get(key), new.get(key)):
            out.append(_changed(key, old.get(key), new.get(key), key))
    out += _named_maps("roles", "role", old.get("roles"), new.get("roles"), _role_fields)
    out += _settings_diff("settings", "settings", old.get("settings"), new.get("settings"))
    out += _named_maps("groups", "group", old.get("groups"), new.get("groups"), _group_fields)
    out += _limits_diff(old.get("limits") or {}, new.get("limits") or {})
    out += _approval_diff(old.get("approval") or {}, new.get("approval") or {})
    for key in ("deny", "bypass"):
        out += _precedence_diff(key, old.get(key) or [], new.get(key) or [])
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
        "deny",
        "bypass",
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
    return Change(path, kind, old, new, f"{label}{show(old)} -> {show(new)}")


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
    if same(old, new):
        return []
    return [_changed(path, old, new, subject, prefix)]


def _settings_diff(path: str, subject: str, old: Any, new: Any) -> list[Change]:
    return _generic(path, subject, old or {}, new or {})


def _role_fields(path: str, subject: str, old: dict, new: dict) -> list[Change]:
    out = []
    if not same(old.get("label"), new.get("label")):
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
    if not same(old.get("label"), new.get("label")):
        out.append(_changed(f"{path}.label", old.get("label"), new.get("label"), subject, "label"))
    # group settings read best without the "settings." prefix:
    # "group marketing: payer 'company' -> 'buyer'"
    out += _generic(
        f"{path}.settings", subject, old.get("settings") or {}, new.get("settings") or {}
    )
    return out


def _summary_of(kind: str, spec: Any) -> str:
    if kind == "role":
        return f"label {show(spec.get('label'))}, permissions {show(spec.get('permissions') or [])}"
    if kind == "group":
        return (
            ", ".join(f"{k} {show(v)}" for k, v in ((spec or {}).get("settings") or {}).items())
            or "no settings"
        )
    if kind == "budget":
        scope = spec.get("scope", "company")
        on_exceed = spec.get("on_exceed", "require_approval")
        amount = show(spec.get("amount"))
        return f"{amount} per {spec.get('period')}, scope {scope}, on exceed {on_exceed}"
    if kind == "step":
        return _step_summary(spec)
    return show(spec)


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
    if not same(old.get("max_order_total"), new.get("max_order_total")):
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
    if not same(ol.get("amount"), nl.get("amount")):
        out.append(
            _changed(
                "limits.order_limit.amount",
                ol.get("amount"),
                nl.get("amount"),
                "limits",
                "order_limit",
            )
        )
    if (ol or nl) and not same(
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
    # every other key of the order limit (valid_from, valid_until): as written
    for key in _other_keys(ol, nl, ("amount", "on_exceed")):
        out += _generic(
            f"limits.order_limit.{key}", "limits", ol.get(key), nl.get(key), f"order_limit {key}"
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
                if not same(a.get(key), b.get(key)):
                    out.append(_changed(f"{where}.{key}", a.get(key), b.get(key), subject, key))
            for key in _other_keys(a, b, ("name", "amount", "period", "scope", "on_exceed")):
                out += _generic(f"{where}.{key}", subject, a.get(key), b.get(key), key)
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
            "attributes " + ", ".join(f"{k}={show(v)}" for k, v in sel["attributes"].items())
        )
    return " ".join(parts)


def _approvers_text(spec: Mapping[str, Any] | None) -> str:
    selectors = (spec or {}).get("any_of") or []
    return " | ".join(_selector_text(s) for s in selectors) if selectors else "none"


def _step_summary(step: Mapping[str, Any]) -> str:
    parts = [f"when {show(describe(step.get('when')))}"]
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
        if not same(a, b):
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
    for name, (_index, step) in old_by.items():
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


def _other_keys(old: Mapping[str, Any], new: Mapping[str, Any], handled) -> list[str]:
    """The keys of either mapping not in ``handled``, old's order first: compared as written,
    so no key is ever left out of the structural diff."""
    return [k for k in list(old) + [k for k in new if k not in old] if k not in handled]


def _step_fields(path: str, subject: str, old: dict, new: dict) -> list[Change]:
    out = []
    ow, nw = old.get("when"), new.get("when")
    if not same(ow, nw):
        if isinstance(ow, dict) and isinstance(nw, dict) and ow.keys() == nw.keys():
            # name only the parts that changed: "condition 'total > 500' -> 'total > 1000'"
            keys = [k for k in ow if not same(ow[k], nw[k])]
            a, b = describe({k: ow[k] for k in keys}), describe({k: nw[k] for k in keys})
        else:
            a, b = describe(ow), describe(nw)
        out.append(
            Change(
                f"{path}.when", "changed", ow, nw, f"{subject}: condition {show(a)} -> {show(b)}"
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
        if not same(a, b):
            out.append(_changed(f"{path}.{key}", a, b, subject, key))
    handled = ("name", "when", "kind", "required", "self_approval", "scope", "description")
    # every other key (valid_from, valid_until, expiry, timeouts, fallback): as written
    for key in _other_keys(old, new, handled + ("approvers",)):
        out += _generic(f"{path}.{key}", subject, old.get(key), new.get(key), key)
    oa, na = old.get("approvers"), new.get("approvers")
    if not same(oa, na):
        out.append(
            Change(
                f"{path}.approvers",
                "changed",
                oa,
                na,
                f"{subject}: approvers {show(_approvers_text(oa))} -> {show(_approvers_text(na))}",
            )
        )
    return out


#: what a precedence rule does when its condition holds, in words
_PRECEDENCE_VERB = {"deny": "blocks {}", "bypass": "approves {} without approval steps"}


def _precedence_summary(kind: str, rule: Mapping[str, Any]) -> str:
    """``blocks orders when total > 2000 (reason 'no mid orders')`` and the like."""
    when = rule.get("when")
    text = _PRECEDENCE_VERB[kind].format(f"orders when {describe(when)}" if when else "every order")
    if rule.get("roles"):
        text += f", for roles {', '.join(rule['roles'])}"
    if rule.get("reason"):
        text += f" (reason {show(rule['reason'])})"
    return text


def _precedence_diff(kind: str, old: list, new: list) -> list[Change]:
    """``deny`` and ``bypass`` rule by rule, by name, each described in words."""
    out = []
    ob = {r["name"]: r for r in old}
    nb = {r["name"]: r for r in new}
    if [n for n in ob if n in nb] != [n for n in nb if n in ob] and kind == "bypass":
        out.append(
            Change(
                kind, "moved", list(ob), list(nb), f"{kind} rules reordered (the first match wins)"
            )
        )
    for name in list(ob) + [n for n in nb if n not in ob]:
        where, subject = f"{kind}[{name}]", f"{kind} rule {name}"
        if name not in nb:
            text = f"{subject} removed (it {_precedence_summary(kind, ob[name])})"
            out.append(Change(where, "removed", ob[name], None, text))
        elif name not in ob:
            text = f"{subject} added: {_precedence_summary(kind, nb[name])}"
            out.append(Change(where, "added", None, nb[name], text))
        else:
            before, after = ob[name], nb[name]
            if not same(before.get("when"), after.get("when")):
                a, b = describe(before.get("when")), describe(after.get("when"))
                text = f"{subject}: condition {show(a)} -> {show(b)}"
                out.append(
                    Change(f"{where}.when", "changed", before.get("when"), after.get("when"), text)
                )
            for key in ("roles", "reason"):
                if not same(before.get(key), after.get(key)):
                    out.append(
                        _changed(f"{where}.{key}", before.get(key), after.get(key), subject, key)
                    )
    return out


def _tests_diff(old: list, new: list) -> list[Change]:
    out = []
    ob = {t.get("name"): t for t in old}
    nb = {t.get("name"): t for t in new}
    for name in list(ob) + [n for n in nb if n not in ob]:
        where = f"tests[{name}]"
        if name not in nb:
            out.append(Change(where, "removed", ob[name], None, f"test {show(name)} removed"))
        elif name not in ob:
            out.append(Change(where, "added", None, nb[name], f"test {show(name)} added"))
        elif not same(ob[name], nb[name]):
            out.append(Change(where, "changed", ob[name], nb[name], f"test {show(name)} changed"))
    return out
