"""Buyer classes: the directory's buyers grouped by everything either version can look at."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from ..engine import Directory, Policy
from ..engine.conditions import referenced_names
from ..engine.directory import Membership
from .values import fmt_amount, show


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


def plural(label: str) -> str:
    """``Approver`` -> ``Approvers``, ``Secretary`` -> ``Secretaries``."""
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
        qualifiers.append("with own " + ", ".join(f"{k} {show(v)}" for k, v in m.settings.items()))
    if m.attributes:
        qualifiers.append("with " + ", ".join(f"{k}={show(v)}" for k, v in m.attributes.items()))
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
        name = plural(c.role_label)
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
