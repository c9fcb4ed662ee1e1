"""Directory pages: companies (a tree of subsidiaries), accounts, memberships, groups, assignments.

Read-only: the storefront and the importer own the directory (delegations, which
the admin may also change, have their own page: ``delegations.py``).  Every query
is scoped by the admin's tenant; ids of another tenant are not found.
"""

from __future__ import annotations

from pyramid.httpexceptions import HTTPNotFound
from pyramid.view import view_config
from sqlalchemy import func, or_, select
from sqlalchemy.orm import aliased, selectinload

from approvalrules.store.models import (
    Account,
    Assignment,
    Company,
    CompanyContact,
    Group,
    Membership,
)

from .common import PER_PAGE, Page, like, page_number, paginate, template


def company_tree(session, tenant_id: int, params) -> Page:
    """A page of top-level companies, each with its subsidiaries nested (``children``)."""
    rows = session.execute(
        select(
            Company.id, Company.external_id, Company.name, Company.parent_id, Company.ruleset_name
        )
        .where(Company.tenant_id == tenant_id)
        .order_by(Company.name, Company.external_id)
    ).all()
    nodes = {
        r.id: {"id": r.external_id, "name": r.name, "ruleset": r.ruleset_name, "children": []}
        for r in rows
    }
    roots = []
    for r in rows:
        (nodes[r.parent_id]["children"] if r.parent_id in nodes else roots).append(nodes[r.id])
    number = page_number(params)
    return Page(
        roots[(number - 1) * PER_PAGE : number * PER_PAGE], number, PER_PAGE, len(roots), {}
    )


def company_or_404(request, external_id: str) -> Company:
    company = request.dbsession.scalar(
        select(Company).where(
            Company.tenant_id == request.admin_tenant.id, Company.external_id == external_id
        )
    )
    if company is None:
        raise HTTPNotFound(f"no company {external_id!r}")
    return company


def account_or_404(request, external_id: str) -> Account:
    account = request.dbsession.scalar(
        select(Account).where(
            Account.tenant_id == request.admin_tenant.id, Account.external_id == external_id
        )
    )
    if account is None:
        raise HTTPNotFound(f"no account {external_id!r}")
    return account


def membership_query(tenant_id: int):
    return (
        select(Membership)
        .join(Account, Membership.account_id == Account.id)
        .join(Company, Membership.company_id == Company.id)
        .where(Company.tenant_id == tenant_id)
        # one query per relation for a whole page, not one per row
        .options(
            selectinload(Membership.account),
            selectinload(Membership.company),
            selectinload(Membership.group),
        )
    )


def assignment_query(tenant_id: int):
    approver = aliased(Account)
    account = aliased(Account)
    query = (
        select(Assignment)
        .join(Company, Assignment.company_id == Company.id)
        .join(approver, Assignment.approver_id == approver.id)
        .join(account, Assignment.account_id == account.id)
        .where(Company.tenant_id == tenant_id)
        .options(
            selectinload(Assignment.approver),
            selectinload(Assignment.account),
            selectinload(Assignment.company),
        )
    )
    return query, approver, account


@view_config(
    route_name="admin_companies",
    request_method="GET",
    permission="view",
    renderer=template("companies"),
)
def companies(request):
    q = request.params.get("q", "").strip()
    tenant_id = request.admin_tenant.id
    if q:
        parent = aliased(Company)
        query = (
            select(Company)
            .outerjoin(parent, Company.parent_id == parent.id)
            .where(
                Company.tenant_id == tenant_id,
                or_(
                    Company.external_id.ilike(like(q), escape="\\"),
                    Company.name.ilike(like(q), escape="\\"),
                ),
            )
            .order_by(Company.name, Company.external_id)
        )
        return {"q": q, "page": paginate(request.dbsession, query, request.params), "tree": None}
    return {
        "q": q,
        "page": None,
        "tree": company_tree(request.dbsession, tenant_id, request.params),
    }


@view_config(
    route_name="admin_company",
    request_method="GET",
    permission="view",
    renderer=template("company"),
)
def company(request):
    company = company_or_404(request, request.matchdict["id"])
    session = request.dbsession
    query, approver, account = assignment_query(request.admin_tenant.id)
    return {
        "company": company,
        "subsidiaries": list(
            session.scalars(
                select(Company).where(Company.parent_id == company.id).order_by(Company.name)
            )
        ),
        "groups": list(
            session.scalars(
                select(Group).where(Group.company_id == company.id).order_by(Group.external_id)
            )
        ),
        "memberships": list(
            session.scalars(
                membership_query(request.admin_tenant.id)
                .where(Membership.company_id == company.id)
                .order_by(Account.external_id)
            )
        ),
        "assignments": list(
            session.scalars(
                query.where(Assignment.company_id == company.id).order_by(
                    approver.external_id, account.external_id
                )
            )
        ),
        "contacts": list(
            session.execute(
                select(CompanyContact.kind, Account.external_id, Account.name)
                .join(Account, CompanyContact.account_id == Account.id)
                .where(CompanyContact.company_id == company.id)
            )
        ),
    }


@view_config(
    route_name="admin_accounts",
    request_method="GET",
    permission="view",
    renderer=template("accounts"),
)
def accounts(request):
    q = request.params.get("q", "").strip()
    query = select(Account).where(Account.tenant_id == request.admin_tenant.id)
    if q:
        pattern = like(q)
        query = query.where(
            or_(
                Account.external_id.ilike(pattern, escape="\\"),
                Account.name.ilike(pattern, escape="\\"),
                Account.email.ilike(pattern, escape="\\"),
            )
        )
    return {
        "q": q,
        "page": paginate(request.dbsession, query.order_by(Account.external_id), request.params),
    }


@view_config(
    route_name="admin_account",
    request_method="GET",
    permission="view",
    renderer=template("account"),
)
def account(request):
    account = account_or_404(request, request.matchdict["id"])
    tenant_id = request.admin_tenant.id
    query, approver, assigned = assignment_query(tenant_id)
    session = request.dbsession
    return {
        "account": account,
        "memberships": list(
            session.scalars(
                membership_query(tenant_id)
                .where(Membership.account_id == account.id)
                .order_by(Company.external_id)
            )
        ),
        "approves": list(
            session.scalars(
                query.where(Assignment.approver_id == account.id).order_by(assigned.external_id)
            )
        ),
        "approved_by": list(
            session.scalars(
                query.where(Assignment.account_id == account.id).order_by(approver.external_id)
            )
        ),
    }


@view_config(
    route_name="admin_memberships",
    request_method="GET",
    permission="view",
    renderer=template("memberships"),
)
def memberships(request):
    params = request.params
    query = membership_query(request.admin_tenant.id)
    q = params.get("q", "").strip()
    if q:
        pattern = like(q)
        query = query.where(
            or_(
                Account.external_id.ilike(pattern, escape="\\"),
                Account.name.ilike(pattern, escape="\\"),
                Company.external_id.ilike(pattern, escape="\\"),
            )
        )
    if params.get("role"):
        query = query.where(Membership.role == params["role"])
    if params.get("status"):
        query = query.where(Membership.status == params["status"])
    return {
        "q": q,
        "role": params.get("role", ""),
        "status": params.get("status", ""),
        "page": paginate(
            request.dbsession, query.order_by(Company.external_id, Account.external_id), params
        ),
    }


@view_config(
    route_name="admin_groups", request_method="GET", permission="view", renderer=template("groups")
)
def groups(request):
    q = request.params.get("q", "").strip()
    query = (
        select(Group)
        .join(Company, Group.company_id == Company.id)
        .where(Company.tenant_id == request.admin_tenant.id)
    )
    if q:
        pattern = like(q)
        query = query.where(
            or_(
                Group.external_id.ilike(pattern, escape="\\"),
                Group.name.ilike(pattern, escape="\\"),
                Company.external_id.ilike(pattern, escape="\\"),
            )
        )
    page = paginate(
        request.dbsession, query.order_by(Company.external_id, Group.external_id), request.params
    )
    counts = {}
    if page.items:
        counts = dict(
            request.dbsession.execute(
                select(Membership.group_id, func.count())
                .where(Membership.group_id.in_([g.id for g in page.items]))
                .group_by(Membership.group_id)
            ).all()
        )
    return {"q": q, "page": page, "counts": counts}


@view_config(
    route_name="admin_assignments",
    request_method="GET",
    permission="view",
    renderer=template("assignments"),
)
def assignments(request):
    q = request.params.get("q", "").strip()
    query, approver, account = assignment_query(request.admin_tenant.id)
    if q:
        pattern = like(q)
        query = query.where(
            or_(
                approver.external_id.ilike(pattern, escape="\\"),
                account.external_id.ilike(pattern, escape="\\"),
                Company.external_id.ilike(pattern, escape="\\"),
            )
        )
    return {
        "q": q,
        "page": paginate(
            request.dbsession,
            query.order_by(Company.external_id, approver.external_id, account.external_id),
            request.params,
        ),
    }
