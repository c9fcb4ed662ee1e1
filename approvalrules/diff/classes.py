"""Buyer classes: the directory's buyers grouped by everything either version can look at."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from ..engine import Directory, Policy
from ..engine.conditions import referenced_names, uses_key
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
    #: the name before any member was split off (see :meth:`exclude`)
    base_name: str = ""
    #: names of the members split off into classes of their own
    excluded: list[str] = field(default_factory=list)

    def exclude(self, member_name: str) -> None:
        """``member_name`` left for a class of its own: the name says so ("... other than Fred")."""
        self.excluded.append(member_name)
        others = self.excluded
        listed = others[0] if len(others) == 1 else ", ".join(others[:-1]) + " and " + others[-1]
        self.name = f"{self.base_name} other than {listed}"

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


def role_phrase(label: str, master: bool = False) -> str:
    """``buyers with role Finance``: the role's label exactly as the rule set gives it."""
    subject = "masters" if master and "master" not in label.lower() else "buyers"
    return f"{subject} with role {label}"


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
    _name_classes(result, directory)
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
            return _account_name(directory, account_id)

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
    elif _tests_assignments(old) or _tests_assignments(new):
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


def _tests_assignments(policy: Policy) -> bool:
    """Whether a buyer has an assigned approver matters to ``policy``: a selector
    relation ``assigned``/``unassigned`` or a ``buyer_has_approver`` test anywhere."""
    if any(sel.relation in ("assigned", "unassigned") for s in policy.steps for sel in s.selectors):
        return True
    conditions = [s.condition for s in policy.steps] + [
        r.condition for r in policy.deny + policy.bypass
    ]
    return any(uses_key(condition, "buyer_has_approver") for condition in conditions)


def _name_classes(classes: list[BuyerClass], directory: Directory) -> None:
    several_companies = len({c.company for c in classes}) > 1
    for c in classes:
        name = role_phrase(c.role_label, c.master)
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
                names = [_account_name(directory, member) for member in c.members[:3]]
                c.name += f" ({', '.join(names)}{', ...' if len(c.members) > 3 else ''})"
    for c in classes:
        c.base_name = c.name


def _account_name(directory: Directory, account_id: str) -> str:
    account = directory.account(account_id)
    return account.name if account is not None and account.name else account_id
