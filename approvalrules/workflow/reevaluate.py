"""Re-evaluation on publish: after a rule set's publish or rollback, the pending requests its
``pending_on_new_version: reevaluate`` covers are decided again under the rules now in force,
including those of every rule set extending it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from ..engine.durations import parse_instant
from ..errors import ApprovalRulesError, Conflict
from ..store import versions
from ..store.models import ApprovalRequest, Company, Order, RuleSetVersion, Tenant
from ..store.services import audit
from . import deciding, transitions
from .queries import aware, now_or


def on_publish(
    session: Session,
    tenant: Tenant,
    ruleset_name: str,
    *,
    now: datetime | None = None,
    actor: str = "system",
    limit: int = 5000,
) -> dict:
    """After a publish or rollback of ``ruleset_name``: pending requests are decided again
    where ``pending_on_new_version: reevaluate`` says so.

    First the requests of the companies ``ruleset_name`` governs that were decided under
    another version of it.  Then those of every active rule set extending it, directly or
    through others: such a rule set is compiled against ``ruleset_name``'s active version,
    so its rules changed although its own version did not.  Its resolved policy (inherited
    fields included) says ``keep`` or ``reevaluate``, and a request already decided under
    the rules now in force (same version, same compiled policy hash in
    ``decision.ruleset.policy_hash``) is left alone, approvals and all.

    Returns ``{ruleset, mode, reevaluated, skipped}``: ``mode`` is the published rule set's
    setting; ``reevaluated`` (order id -> new status) and ``skipped`` cover every rule set.
    When rule sets extend it, ``rulesets`` gives the same per rule set (name -> ``{mode,
    reevaluated, skipped}``, plus ``extends`` for the extending ones).

    Each request in its own savepoint: one that cannot be re-evaluated (the
    buyer left the company, a concurrent approver) keeps its old decision and
    is listed under ``skipped``.
    """
    now = now_or(now)
    result: dict[str, Any] = {
        "ruleset": ruleset_name,
        "mode": "keep",
        "reevaluated": {},
        "skipped": [],
    }
    version = versions.active_version(session, tenant.id, ruleset_name)
    if version is None:
        return result
    active = versions.active_versions(session, tenant.id)
    # (name, version, the rule set it extends or None for the published one, its mode)
    targets = [(ruleset_name, version, None)] + [
        (name, active[name], parent) for name, parent in _extending(active, ruleset_name)
    ]
    modes = {
        name: versions.policy_for(v, session, active).pending_on_new_version
        for name, v, _ in targets
    }
    governed = _governed_companies(
        session, tenant, {name for name, mode in modes.items() if mode == "reevaluate"}
    )
    entries: dict[str, dict] = {}
    for name, target, parent in targets:
        entry: dict[str, Any] = {"extends": parent} if parent else {}
        entry.update({"mode": modes[name], "reevaluated": {}, "skipped": []})
        if modes[name] == "reevaluate" and governed.get(name):
            record = {
                "reason": "new_version",
                "new_version": version.number,
                **({"ruleset": ruleset_name} if parent else {}),
            }
            _reevaluate_pending(
                session,
                tenant,
                target,
                governed[name],
                entry,
                now=now,
                actor=actor,
                limit=limit,
                record=record,
                inherited=parent is not None,
                active=active,
            )
            audit(
                session,
                tenant.id,
                actor,
                "ruleset.pending_reevaluated",
                "ruleset",
                name,
                {
                    "version": target.number,
                    "reevaluated": entry["reevaluated"],
                    "skipped": entry["skipped"],
                    **(
                        {
                            "extends": parent,
                            "published": {"ruleset": ruleset_name, "version": version.number},
                        }
                        if parent
                        else {}
                    ),
                },
            )
        entries[name] = entry
        result["reevaluated"].update(entry["reevaluated"])
        result["skipped"] += [{**s, "ruleset": name} if parent else s for s in entry["skipped"]]
    result["mode"] = modes[ruleset_name]
    if len(targets) > 1:
        result["rulesets"] = entries
    return result


def _extending(active: Mapping[str, RuleSetVersion], name: str) -> list[tuple[str, str]]:
    """(rule set, the parent it extends) of every active rule set extending ``name``, directly or
    through others: the nearest first, by name within a level; cycles cut."""
    found: list[tuple[str, str]] = []
    seen, level = {name}, [name]
    while level:
        below = []
        for parent in level:
            for child in sorted(
                n for n, v in active.items() if v.extends == parent and n not in seen
            ):
                seen.add(child)
                found.append((child, parent))
                below.append(child)
        level = below
    return found


def _governed_companies(session: Session, tenant: Tenant, names: set[str]) -> dict[str, list[int]]:
    """Rule-set name -> ids of the companies it governs (its own, and subsidiaries inheriting
    it), for ``names``."""
    if not names:
        return {}
    # three columns of the companies, not the tenant's whole directory: the rule set of each
    # is its own, else its nearest parent's (as ``Directory.ruleset_name_for``; cycles cut)
    rows = session.execute(
        select(Company.id, Company.parent_id, Company.ruleset_name)
        .where(Company.tenant_id == tenant.id)
        .order_by(Company.id)
    ).all()
    parent_of = {company_id: parent_id for company_id, parent_id, _ in rows}
    own = {company_id: ruleset for company_id, _, ruleset in rows}

    def ruleset_of(company_id: int) -> str | None:
        seen: set[int] = set()
        current: int | None = company_id
        while current is not None and current in own and current not in seen:
            if own[current]:
                return own[current]
            seen.add(current)
            current = parent_of[current]
        return None

    governed: dict[str, list[int]] = {}
    for company_id, _, _ in rows:
        name = ruleset_of(company_id)
        if name in names:
            governed.setdefault(name, []).append(company_id)
    return governed


def _reevaluate_pending(
    session: Session,
    tenant: Tenant,
    version: RuleSetVersion,
    companies: list[int],
    entry: dict,
    *,
    now: datetime,
    actor: str,
    limit: int,
    record: Mapping[str, Any],
    inherited: bool,
    active: Mapping[str, RuleSetVersion],
) -> None:
    """Decide again the pending requests of ``companies`` not decided under the rules of
    ``version`` in force; fills ``entry``.

    The published rule set (``inherited`` False): the requests under another version, unless
    their decision recorded the compiled policy now in force (a new description or new tests
    change no decision, so approvals given so far stand).  A rule set extending it: also
    those under the same version whose compiled policy differs from the one now in force
    (``decision.ruleset.policy_hash``); a decision recorded without that hash (before it was
    recorded) counts as out of date when a parent's active version was published after it.
    """
    policy = versions.policy_for(version, session, active)
    query = (
        select(ApprovalRequest)
        .join(Order, ApprovalRequest.order_id == Order.id)
        .where(
            ApprovalRequest.tenant_id == tenant.id,
            ApprovalRequest.status == "pending",
            Order.company_id.in_(companies),
        )
    )
    recorded = Order.decision[("ruleset", "policy_hash")].as_string()
    if inherited:
        query = query.where(
            or_(
                ApprovalRequest.ruleset_version_id != version.id,
                recorded.is_(None),
                recorded != policy.hash,
            )
        )
    else:
        query = query.where(
            ApprovalRequest.ruleset_version_id != version.id,
            or_(recorded.is_(None), recorded != policy.hash),
        )
    for request in session.scalars(query.order_by(ApprovalRequest.id).limit(limit)).all():
        order = request.order
        if (
            inherited
            and request.ruleset_version_id == version.id
            and _policy_hash(order) is None
            and not _parents_newer(session, order, version, active)
        ):
            continue
        try:
            with session.begin_nested():
                decision, used = deciding.evaluate(
                    session, tenant, order.payload, now=now, ordered_at=order.created_at
                )
                if used.id != version.id:
                    raise Conflict(
                        "other_ruleset",
                        f"order {order.external_id} is now governed by another rule set",
                    )
                entry["reevaluated"][order.external_id] = transitions.redecide(
                    session, tenant, request, order.payload, decision, used, now, actor, record
                )
        except (StaleDataError, ApprovalRulesError) as exc:
            entry["skipped"].append(
                {"order": order.external_id, "error": getattr(exc, "code", type(exc).__name__)}
            )


def _policy_hash(order: Order) -> str | None:
    """The compiled policy hash the order's decision was made under (see
    :func:`.transitions.decision_data`); None if not recorded."""
    return ((order.decision or {}).get("ruleset") or {}).get("policy_hash")


def _parents_newer(
    session: Session, order: Order, version: RuleSetVersion, active: Mapping[str, RuleSetVersion]
) -> bool:
    """Whether a parent ``version`` is compiled against was published after the order was last
    decided."""
    decided = aware(order.created_at)
    if order.previous_decisions:
        decided = max(decided, parse_instant(order.previous_decisions[-1]["at"], "at"))
    return any(
        aware(parent.published_at) > decided
        for parent in versions.parent_chain(session, version, active)
    )
