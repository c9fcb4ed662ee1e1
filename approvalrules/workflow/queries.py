"""Reads of the workflow: lookups by id, the policy governing a company, the approver inbox,
the orders an account may see, and the pages the API lists them in.

Nothing here writes.  Every lookup is scoped by the tenant: another tenant's
row is as absent as one that does not exist.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, distinct, exists, func, or_, select
from sqlalchemy.orm import (
    Session,
    contains_eager,
    joinedload,
    selectinload,
)
from sqlalchemy.orm.attributes import set_committed_value

from ..engine import Directory, Policy
from ..errors import NotFound, OrderError
from ..store import versions
from ..store.company_slice import directory_for_member
from ..store.db import hold_drawn_ids, known_row, next_id, transaction_memo
from ..store.directory import row_id
from ..store.models import (
    REQUEST_STATUSES,
    Account,
    ApprovalAction,
    ApprovalEligibility,
    ApprovalRequest,
    Company,
    Group,
    Membership,
    Order,
    RuleSetVersion,
    Tenant,
)

#: newest first; the id breaks ties between requests of the same instant
INBOX_ORDER = (ApprovalRequest.created_at.desc(), ApprovalRequest.id.desc())
ORDERS_ORDER = (Order.created_at.desc(), Order.id.desc())


def now_or(now: datetime | None) -> datetime:
    """``now``, or the current time when the caller gave none."""
    return now or datetime.now(UTC)


def aware(value: datetime) -> datetime:
    """``value`` with UTC attached when the database returned it naive (SQLite)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# ---------------------------------------------------------------- lookups


def _one(session: Session, model, code: str, message: str, *where):
    """The single row of ``model`` matching ``where``; NotFound(code, message) otherwise.

    Callers always include the tenant in ``where``.
    """
    row = session.scalar(select(model).where(*where))
    if row is None:
        raise NotFound(code, message)
    return row


def company(session: Session, tenant: Tenant, external_id: str) -> Company:
    """The tenant's company by its external id."""
    return _one(
        session,
        Company,
        "unknown_company",
        f"no company {external_id!r}",
        Company.tenant_id == tenant.id,
        Company.external_id == external_id,
    )


def account(session: Session, tenant: Tenant, external_id: str) -> Account:
    """The tenant's account by its external id."""
    return _one(
        session,
        Account,
        "unknown_account",
        f"no account {external_id!r}",
        Account.tenant_id == tenant.id,
        Account.external_id == external_id,
    )


def account_ref(session: Session, tenant: Tenant, external_id: str) -> Account:
    """The tenant's account by its external id, for an action that records who acted: no
    query once the process knows the account's row id (cached per directory version, see
    :func:`account_id`).

    The session's own ``Account`` when it has loaded it; otherwise one put in the session
    with its id, tenant and external id, whose other columns load on first access.
    """
    row = account_id(session, tenant, external_id)
    return known_row(
        session, Account, {"id": row, "tenant_id": tenant.id, "external_id": external_id}
    )


def company_id(session: Session, tenant: Tenant, external_id: str) -> int:
    """The row id of the tenant's company by its external id (cached per directory version)."""
    found = row_id(session, tenant, Company, external_id)
    if found is None:
        raise NotFound("unknown_company", f"no company {external_id!r}")
    return found


def account_id(session: Session, tenant: Tenant, external_id: str) -> int:
    """The row id of the tenant's account by its external id (cached per directory version)."""
    found = row_id(session, tenant, Account, external_id)
    if found is None:
        raise NotFound("unknown_account", f"no account {external_id!r}")
    return found


def get_order(session: Session, tenant: Tenant, external_id: str) -> Order:
    """The tenant's order by its storefront id."""
    return _one(
        session,
        Order,
        "unknown_order",
        f"no order {external_id!r}",
        Order.tenant_id == tenant.id,
        Order.external_id == external_id,
    )


# :func:`get_request`'s statements, built once (building one cost more than running it)
_REQUEST = select(ApprovalRequest).where(
    ApprovalRequest.tenant_id == bindparam("tenant_id"),
    ApprovalRequest.id == bindparam("request_id"),
)
_REQUEST_FOR_UPDATE = _REQUEST.with_for_update().execution_options(populate_existing=True)
# PostgreSQL: with the id of the action that usually follows (store.db.hold_drawn_ids)
_REQUEST_FOR_UPDATE_DRAWING = _REQUEST_FOR_UPDATE.add_columns(next_id(ApprovalAction))
# the order and the actions are read after the lock, in a statement of their own: joined to
# the locked one, they would be read as they were before the lock was granted (READ
# COMMITTED refreshes the locked row alone)
_ORDER_AND_ACTIONS = (
    select(Order, ApprovalAction)
    .outerjoin(ApprovalAction, ApprovalAction.request_id == bindparam("request_id"))
    .where(Order.id == bindparam("order_id"))
    .order_by(ApprovalAction.id)
    .execution_options(populate_existing=True)
)


def get_request(
    session: Session, tenant: Tenant, request_id: int, *, for_update: bool = False
) -> ApprovalRequest:
    """The tenant's approval request by id.

    ``for_update`` locks its row until the transaction ends (PostgreSQL; SQLite
    serialises writers anyway).  Every action on a request takes this lock
    first, so racing approvers queue on one row in one order instead of
    deadlocking over the order, the request and its actions; each then reads
    what the previous one committed and gets a clean 409.  Its order and its actions
    are then read in one more statement, and set on it.  On PostgreSQL the lock's statement
    also draws the id of the action that usually follows, which the transaction holds for
    it (``store.db.insert_object``).
    """
    if not 0 < request_id < 2**31:
        # ids are 32-bit: never ask the database
        raise NotFound("unknown_approval", f"no approval request {request_id}")
    params = {"tenant_id": tenant.id, "request_id": request_id}
    if for_update and session.get_bind().dialect.name == "postgresql":
        found = session.execute(_REQUEST_FOR_UPDATE_DRAWING, params).first()
        request, action_id = found or (None, None)
        if request is not None:
            hold_drawn_ids(session, {ApprovalAction: action_id})
    else:
        request = session.scalar(_REQUEST_FOR_UPDATE if for_update else _REQUEST, params)
    if request is None:
        raise NotFound("unknown_approval", f"no approval request {request_id}")
    if for_update:
        rows = session.execute(
            _ORDER_AND_ACTIONS, {"request_id": request.id, "order_id": request.order_id}
        ).all()
        order = rows[0][0]
        set_committed_value(request, "order", order)
        set_committed_value(order, "approval_request", request)
        set_committed_value(request, "actions", [action for _, action in rows if action])
    return request


def request_for_order(session: Session, order: Order) -> ApprovalRequest | None:
    """The order's approval request, or None when its decision needed none (no query when this
    transaction opened it)."""
    return order.approval_request


def request_version(session: Session, request: ApprovalRequest) -> RuleSetVersion:
    """The rule-set version the request was decided under.

    Usually one of the tenant's active versions, which the transaction reads once
    for them all (and a policy that extends another needs them anyway); an older
    version is read by id.
    """
    for version in versions.active_versions(session, request.tenant_id).values():
        if version.id == request.ruleset_version_id:
            return version
    return session.get(RuleSetVersion, request.ruleset_version_id)


def request_policy(session: Session, request: ApprovalRequest) -> Policy:
    """The compiled policy of the version the request was decided under."""
    return versions.policy_for(request_version(session, request), session)


def version_policy(session: Session, tenant: Tenant, version_id: int) -> Policy:
    """The compiled policy of version ``version_id`` (a request's or an order's), as
    :func:`request_policy` gives it.

    An active version's policy comes from the process's caches without a query: the
    active versions as of ``Tenant.rules_version`` (which every publish, rollback and
    retire bumps in its own transaction) and the compiled policies by content hash.  A
    published version never changes (the database refuses it), and its parents are those
    active at that rules version, as the evaluate endpoint reads them.  A transaction that
    has read the active versions itself (a submit, a publish) uses its own; a version no
    longer active is read by id.
    """
    if "active_versions" not in transaction_memo(session):
        active = versions.cached_active_versions(session, tenant)
        for version in active.values():
            if version.id == version_id:
                return versions.cached_policy(session, version)
    for version in versions.active_versions(session, tenant.id).values():
        if version.id == version_id:
            return versions.policy_for(version, session)
    return versions.policy_for(session.get(RuleSetVersion, version_id), session)


def request_hash(body: Mapping[str, Any]) -> str:
    """Hash of a request body in canonical JSON: equal bodies, equal hashes."""
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()


# ------------------------------------------------- the policy of a company


def policy_for_company(
    session: Session, tenant: Tenant, directory: Directory, company_id: str
) -> tuple[Policy, RuleSetVersion | versions.ActiveVersion]:
    """The active policy governing a company (its own rule set, else its nearest parent's), as
    the session's transaction reads the rules (:func:`versions.transaction_active_versions`)."""
    name = _ruleset_name(directory, company_id)
    cached = versions.transaction_active_versions(session, tenant)
    if cached is not None:
        return versions.cached_policy(session, _active(cached, name, company_id)), cached[name]
    active = versions.active_versions(session, tenant.id)
    return versions.policy_for(_active(active, name, company_id), session, active), active[name]


def cached_policy_for_company(
    session: Session, tenant: Tenant, directory: Directory, company_id: str
) -> tuple[Policy, versions.ActiveVersion]:
    """:func:`policy_for_company` from the per-process cache of active versions."""
    name = _ruleset_name(directory, company_id)
    active = versions.cached_active_versions(session, tenant)
    return versions.cached_policy(session, _active(active, name, company_id)), active[name]


def _ruleset_name(directory, company_id: str) -> str:
    name = directory.ruleset_name_for(company_id)
    if name is None:
        raise OrderError(
            "no_ruleset",
            f"company {company_id!r} has no rule set, and neither has any parent company",
            path="order.company",
        )
    return name


def _active(active: Mapping[str, Any], name: str, company_id: str):
    version = active.get(name)
    if version is None:
        raise OrderError(
            "no_active_version",
            f"rule set {name!r} of company {company_id!r} has no published version",
            path="order.company",
        )
    return version


# ------------------------------------------------------------------ pages


@dataclass
class Page:
    """One page of a listing: its rows and where it sits in the whole."""

    items: list
    page: int
    per_page: int
    total: int


def page_statements(query, order_by: Sequence, page: int, per_page: int):
    """(count statement, page statement) of page ``page`` (from 1) of ``query``, ``per_page``
    rows a page."""
    total = select(func.count()).select_from(query.subquery())
    rows = query.order_by(*order_by).offset((page - 1) * per_page).limit(per_page)
    return total, rows


def page_of(session: Session, query, order_by: Sequence, page: int, per_page: int) -> Page:
    """Run ``query`` for one page, with the total of the whole listing."""
    total, rows = page_statements(query, order_by, page, per_page)
    return Page(list(session.scalars(rows).all()), page, per_page, session.scalar(total))


# ------------------------------------------------------------------ inbox


def inbox_queries(tenant_id: int, *, approver: str | None = None, status: str | None = None):
    """(requests query, counts-per-status query) of an approver's inbox, or of the whole tenant.

    With an approver, the eligibility index answers "this approver's requests
    in this status" alone, counts included.
    """
    query = (
        select(ApprovalRequest)
        .join(Order, ApprovalRequest.order_id == Order.id)
        .where(ApprovalRequest.tenant_id == tenant_id)
    )
    counts = (
        select(ApprovalRequest.status, func.count())
        .where(ApprovalRequest.tenant_id == tenant_id)
        .group_by(ApprovalRequest.status)
    )
    if approver:
        mine = [
            ApprovalEligibility.tenant_id == tenant_id,
            ApprovalEligibility.account_id == approver,
        ]
        eligible = select(ApprovalEligibility.request_id).where(*mine)
        if status:
            eligible = eligible.where(ApprovalEligibility.status == status)
        query = query.where(ApprovalRequest.id.in_(eligible))
        counts = (
            select(ApprovalEligibility.status, func.count(distinct(ApprovalEligibility.request_id)))
            .where(*mine)
            .group_by(ApprovalEligibility.status)
        )
    if status:
        query = query.where(ApprovalRequest.status == status)
    return query, counts


def inbox_page(
    session: Session,
    tenant_id: int,
    *,
    approver: str | None = None,
    status: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    order_contains: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> tuple[Page, dict[str, int]]:
    """One page of the inbox, newest first, and the count of requests per status.

    The filters narrow the page (created between ``created_from`` and ``created_to``,
    order id containing ``order_contains``); the counts follow the approver alone.
    Each request comes with its order and its actions (the page shows them).
    """
    query, counts_query = inbox_queries(tenant_id, approver=approver, status=status)
    query = query.options(
        # each item names its buyer and company
        contains_eager(ApprovalRequest.order).options(
            joinedload(Order.buyer), joinedload(Order.company)
        ),
        selectinload(ApprovalRequest.actions).options(
            joinedload(ApprovalAction.approver), joinedload(ApprovalAction.on_behalf_of)
        ),
    )
    if created_from is not None:
        query = query.where(ApprovalRequest.created_at >= created_from)
    if created_to is not None:
        query = query.where(ApprovalRequest.created_at <= created_to)
    if order_contains:
        query = query.where(Order.external_id.contains(order_contains, autoescape=True))
    found = page_of(session, query, INBOX_ORDER, page, per_page)
    counts = dict(session.execute(counts_query).all())
    return found, {s: counts.get(s, 0) for s in REQUEST_STATUSES}


# ------------------------------------------------------------- visibility


def visible_orders_query(
    session: Session, tenant: Tenant, viewer: str, company_id: str | None = None
):
    """A query of the orders ``viewer`` may see in one company, per the rule set's
    ``visibility``."""
    directory = directory_for_member(session, tenant, viewer, company_id)
    membership = directory.membership(viewer, company_id)
    if membership is None:
        raise OrderError(
            "not_a_member",
            f"account {viewer!r} is not a member of {company_id or 'a default company'}",
            path="viewer",
        )
    policy, _ = policy_for_company(session, tenant, directory, membership.company_id)
    seen = policy.visibility_for(membership)
    viewer_row = account(session, tenant, viewer)
    company_row = company(session, tenant, membership.company_id)
    in_company = Order.company_id == company_row.id

    def buyer_in_group(*group_filter):
        return exists().where(
            Membership.account_id == Order.buyer_id,
            Membership.company_id == company_row.id,
            *group_filter,
        )

    visible = [Order.buyer_id == viewer_row.id]
    if seen.whole_company:
        visible.append(in_company)
    if seen.all_group_orders:
        visible.append(and_(in_company, buyer_in_group(Membership.group_id.is_not(None))))
    if seen.own_group:
        group_ids = select(Group.id).where(
            Group.company_id == company_row.id, Group.external_id == seen.own_group
        )
        visible.append(and_(in_company, buyer_in_group(Membership.group_id.in_(group_ids))))
    if seen.eligible:
        eligible = (
            select(ApprovalRequest.order_id)
            .join(ApprovalEligibility, ApprovalEligibility.request_id == ApprovalRequest.id)
            .where(
                ApprovalEligibility.tenant_id == tenant.id, ApprovalEligibility.account_id == viewer
            )
        )
        visible.append(Order.id.in_(eligible))
    return select(Order).where(Order.tenant_id == tenant.id, or_(*visible))


def visible_orders_page(
    session: Session,
    tenant: Tenant,
    viewer: str,
    company_id: str | None = None,
    *,
    page: int = 1,
    per_page: int = 50,
) -> Page:
    """One page of the orders ``viewer`` may see, newest first."""
    query = visible_orders_query(session, tenant, viewer, company_id)
    return page_of(session, query, ORDERS_ORDER, page, per_page)


#: the most accounts (and groups) a rule-set form offers as choices
FORM_CHOICES_LIMIT = 300


def ruleset_directory_choices(
    session: Session, tenant: Tenant, ruleset_name: str
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(accounts, groups) as (id, name) for the pickers of rule set ``ruleset_name``'s form:
    those of the companies it governs, or of the whole tenant when it governs none (a
    tenant default); active accounts only, at most :data:`FORM_CHOICES_LIMIT` of each."""
    companies = select(Company.id).where(
        Company.tenant_id == tenant.id, Company.ruleset_name == ruleset_name
    )
    if session.scalar(select(func.count()).select_from(companies.subquery())) == 0:
        companies = select(Company.id).where(Company.tenant_id == tenant.id)
    accounts = session.execute(
        select(Account.external_id, Account.name)
        .distinct()
        .join(Membership, Membership.account_id == Account.id)
        .where(
            Account.tenant_id == tenant.id,
            Account.active.is_(True),
            Membership.company_id.in_(companies),
        )
        .order_by(Account.name, Account.external_id)
        .limit(FORM_CHOICES_LIMIT)
    ).all()
    groups = session.execute(
        select(Group.external_id, Group.name)
        .distinct()
        .where(Group.company_id.in_(companies))
        .order_by(Group.external_id)
        .limit(FORM_CHOICES_LIMIT)
    ).all()
    return [(a, n or a) for a, n in accounts], [(g, n or g) for g, n in groups]
