"""Directory pages: companies (a tree of subsidiaries), accounts, memberships, groups, assignments.

Reading is here; each page also carries the forms that change it (for owners and
editors), built by the ``*_forms`` functions below and posted to the views of
``directory_edit.py``, which re-render the same page with the refusal on its field.
Delegations have their own page (``delegations.py``).  Every query is scoped by the
admin's tenant; ids of another tenant are not found.
"""

from __future__ import annotations

from collections.abc import Mapping

import colander
import deform
from pyramid.httpexceptions import HTTPNotFound
from pyramid.view import view_config
from sqlalchemy import func, or_, select
from sqlalchemy.orm import aliased, selectinload

from approvalrules.store.company_parts import location_address
from approvalrules.store.directory_checks import RuleSetNames
from approvalrules.store.models import (
    Account,
    Assignment,
    Company,
    CompanyContact,
    Group,
    Location,
    Membership,
)

from . import directory_forms as f
from . import words
from .common import PER_PAGE, Page, int_or_404, like, page_number, paginate, template


def rendered(forms: Mapping[str, deform.Form], failed: Mapping[str, str], values=None) -> dict:
    """Every form of a page as HTML: the failed one as submitted, the others with ``values``."""
    values = values or {}
    return {
        formid: failed[formid] if formid in failed else form.render(values.get(formid, {}))
        for formid, form in forms.items()
    }


def names(request) -> RuleSetNames:
    """The tenant's published rule sets, read once per request."""
    if not hasattr(request, "_directory_names"):
        request._directory_names = RuleSetNames(request.dbsession, request.admin_tenant.id)
    return request._directory_names


def choices(request) -> f.Choices:
    """The pickers' entries, read once per request."""
    if not hasattr(request, "_directory_choices"):
        request._directory_choices = f.load_choices(
            request.dbsession, request.admin_tenant, names(request)
        )
    return request._directory_choices


def can_edit(request) -> bool:
    return bool(request.has_permission("edit"))


def governing(request, company: Company) -> tuple[str | None, str | None]:
    """(rule set, currency) deciding ``company``'s orders; None when none is published."""
    name = names(request).governing_name(company)
    policy = names(request).policy(name)
    return (name, policy.currency) if policy is not None else (name, None)


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


# -- companies ------------------------------------------------------------------------------


def companies_forms(request) -> dict:
    return {
        "company-create": f.directory_form(
            request,
            f.company_schema(choices(request), creating=True),
            "company-create",
            request.route_url("admin_companies"),
            "Create company",
        )
    }


def companies_page(request, failed: Mapping[str, str] | None = None) -> dict:
    q = request.params.get("q", "").strip()
    tenant_id = request.admin_tenant.id
    page, tree = None, None
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
        page = paginate(request.dbsession, query, request.params)
    else:
        tree = company_tree(request.dbsession, tenant_id, request.params)
    editing = can_edit(request)
    return {
        "q": q,
        "page": page,
        "tree": tree,
        "can_edit": editing,
        "forms": rendered(companies_forms(request), failed or {}) if editing else {},
    }


@view_config(
    route_name="admin_companies",
    request_method="GET",
    permission="view",
    renderer=template("companies"),
)
def companies(request):
    return companies_page(request)


def company_forms(request, company: Company) -> dict:
    """The company page's forms: the company itself, a contact, a location, a group, a member."""
    url = request.route_url
    cid = company.external_id
    ruleset, _ = governing(request, company)
    return {
        "company-edit": f.directory_form(
            request,
            f.company_schema(choices(request), creating=False, company_id=cid),
            "company-edit",
            url("admin_company", id=cid),
            "Save company",
        ),
        "contact-add": f.directory_form(
            request,
            f.contact_schema(choices(request)),
            "contact-add",
            url("admin_company_contacts", id=cid),
            "Add contact",
        ),
        "location-save": f.directory_form(
            request,
            f.location_schema(),
            "location-save",
            url("admin_company_locations", id=cid),
            "Save location",
        ),
        "group-create": f.directory_form(
            request,
            f.group_schema(choices(request), creating=True, company=cid),
            "group-create",
            url("admin_company_groups", id=cid),
            "Create group",
        ),
        "member-add": f.directory_form(
            request,
            f.membership_add_schema(choices(request), account_fixed=False, company=cid),
            "member-add",
            url("admin_company_members", id=cid),
            "Add member",
        ),
    }


def company_page(request, company: Company, failed: Mapping[str, str] | None = None) -> dict:
    session = request.dbsession
    query, approver, account = assignment_query(request.admin_tenant.id)
    ruleset, currency = governing(request, company)
    policy = names(request).policy(ruleset)
    editing = can_edit(request)
    values = {
        "company-edit": {
            "name": company.name,
            "parent": company.parent.external_id if company.parent else "",
            "ruleset": company.ruleset_name or "",
        }
    }
    return {
        "company": company,
        "ruleset": ruleset,
        "currency": currency,
        "role_label": policy.role_label if policy is not None else (lambda role: role),
        "money": words.money,
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
                .order_by(CompanyContact.kind, Account.external_id)
            )
        ),
        "contact_words": f.CONTACT_KIND_WORDS,
        "locations": [
            (x.external_id, x.name, location_address(x))
            for x in session.scalars(
                select(Location)
                .where(Location.company_id == company.id)
                .order_by(Location.external_id)
            )
        ],
        "can_edit": editing,
        "forms": rendered(company_forms(request, company), failed or {}, values) if editing else {},
    }


@view_config(
    route_name="admin_company",
    request_method="GET",
    permission="view",
    renderer=template("company"),
)
def company(request):
    return company_page(request, company_or_404(request, request.matchdict["id"]))


# -- accounts -------------------------------------------------------------------------------


def accounts_forms(request) -> dict:
    return {
        "account-create": f.directory_form(
            request,
            f.account_schema(creating=True),
            "account-create",
            request.route_url("admin_accounts"),
            "Create account",
        )
    }


def accounts_page(request, failed: Mapping[str, str] | None = None) -> dict:
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
    editing = can_edit(request)
    return {
        "q": q,
        "page": paginate(request.dbsession, query.order_by(Account.external_id), request.params),
        "can_edit": editing,
        "forms": rendered(
            accounts_forms(request), failed or {}, {"account-create": {"email_enabled": True}}
        )
        if editing
        else {},
    }


@view_config(
    route_name="admin_accounts",
    request_method="GET",
    permission="view",
    renderer=template("accounts"),
)
def accounts(request):
    return accounts_page(request)


def account_forms(request, account: Account) -> dict:
    url = request.route_url
    aid = account.external_id
    return {
        "account-edit": f.directory_form(
            request,
            f.account_schema(creating=False),
            "account-edit",
            url("admin_account", id=aid),
            "Save account",
        ),
        "membership-add": f.directory_form(
            request,
            f.membership_add_schema(choices(request), account_fixed=True),
            "membership-add",
            url("admin_account_memberships", id=aid),
            "Add to company",
        ),
    }


def account_page(request, account: Account, failed: Mapping[str, str] | None = None) -> dict:
    tenant_id = request.admin_tenant.id
    query, approver, assigned = assignment_query(tenant_id)
    session = request.dbsession
    editing = can_edit(request)
    values = {
        "account-edit": {
            "name": account.name,
            "email": account.email or colander.null,
            "email_enabled": account.email_enabled,
        }
    }
    memberships = list(
        session.scalars(
            membership_query(tenant_id)
            .where(Membership.account_id == account.id)
            .order_by(Company.external_id)
        )
    )
    return {
        "account": account,
        "memberships": memberships,
        "role_label": lambda ms: membership_role_label(request, ms),
        "money": words.money,
        "currency_of": lambda company: governing(request, company)[1],
        "status_words": f.STATUS_WORDS,
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
        "can_edit": editing,
        "forms": rendered(account_forms(request, account), failed or {}, values) if editing else {},
    }


def membership_role_label(request, membership: Membership) -> str:
    """The role's label in the rule set governing the membership's company (its name if none)."""
    policy = names(request).policy(names(request).governing_name(membership.company))
    return policy.role_label(membership.role) if policy is not None else membership.role


@view_config(
    route_name="admin_account",
    request_method="GET",
    permission="view",
    renderer=template("account"),
)
def account(request):
    return account_page(request, account_or_404(request, request.matchdict["id"]))


# -- one membership -------------------------------------------------------------------------


def membership_or_404(request) -> Membership:
    account = account_or_404(request, request.matchdict["id"])
    company = company_or_404(request, request.matchdict["company"])
    membership = request.dbsession.scalar(
        select(Membership).where(
            Membership.account_id == account.id, Membership.company_id == company.id
        )
    )
    if membership is None:
        raise HTTPNotFound(f"{account.external_id!r} is not a member of {company.external_id!r}")
    return membership


def membership_forms(request, membership: Membership) -> dict:
    ruleset, _ = governing(request, membership.company)
    return {
        "membership-edit": f.directory_form(
            request,
            f.membership_schema(choices(request), membership.company.external_id, ruleset),
            "membership-edit",
            request.path_url,
            "Save membership",
        )
    }


def membership_values(membership: Membership) -> dict:
    return {
        "role": membership.role,
        "group": membership.group.external_id if membership.group else "",
        "master": membership.master,
        "default": membership.is_default,
        "status": membership.status,
        "approve": str((membership.attributes or {}).get("approve", "")),
        "settings": f.settings_to_form(membership.settings or {}),
    }


def membership_page(
    request, membership: Membership, failed: Mapping[str, str] | None = None
) -> dict:
    ruleset, currency = governing(request, membership.company)
    editing = can_edit(request)
    forms = membership_forms(request, membership)
    return {
        "membership": membership,
        "ruleset": ruleset,
        "currency": currency,
        "role_label": membership_role_label(request, membership),
        "status_words": f.STATUS_WORDS,
        "can_edit": editing,
        "forms": rendered(forms, failed or {}, {"membership-edit": membership_values(membership)})
        if editing
        else {},
    }


@view_config(
    route_name="admin_membership",
    request_method="GET",
    permission="view",
    renderer=template("membership"),
)
def membership(request):
    return membership_page(request, membership_or_404(request))


# -- memberships ----------------------------------------------------------------------------


def memberships_forms(request) -> dict:
    return {
        "membership-create": f.directory_form(
            request,
            f.membership_add_schema(choices(request), account_fixed=False),
            "membership-create",
            request.route_url("admin_memberships"),
            "Add membership",
        )
    }


def memberships_page(request, failed: Mapping[str, str] | None = None) -> dict:
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
    editing = can_edit(request)
    return {
        "q": q,
        "role": params.get("role", ""),
        "status": params.get("status", ""),
        "page": paginate(
            request.dbsession, query.order_by(Company.external_id, Account.external_id), params
        ),
        "role_label": lambda ms: membership_role_label(request, ms),
        "status_words": f.STATUS_WORDS,
        "can_edit": editing,
        "forms": rendered(memberships_forms(request), failed or {}) if editing else {},
    }


@view_config(
    route_name="admin_memberships",
    request_method="GET",
    permission="view",
    renderer=template("memberships"),
)
def memberships(request):
    return memberships_page(request)


# -- groups ---------------------------------------------------------------------------------


def groups_forms(request) -> dict:
    return {
        "group-create": f.directory_form(
            request,
            f.group_schema(choices(request), creating=True),
            "group-create",
            request.route_url("admin_groups"),
            "Create group",
        )
    }


def groups_page(request, failed: Mapping[str, str] | None = None) -> dict:
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
    editing = can_edit(request)
    return {
        "q": q,
        "page": page,
        "counts": counts,
        "can_edit": editing,
        "forms": rendered(groups_forms(request), failed or {}) if editing else {},
    }


@view_config(
    route_name="admin_groups", request_method="GET", permission="view", renderer=template("groups")
)
def groups(request):
    return groups_page(request)


def group_or_404(request) -> Group:
    company = company_or_404(request, request.matchdict["id"])
    group = request.dbsession.scalar(
        select(Group).where(
            Group.company_id == company.id, Group.external_id == request.matchdict["group"]
        )
    )
    if group is None:
        raise HTTPNotFound(f"no group {request.matchdict['group']!r} in {company.external_id!r}")
    return group


def group_forms(request, group: Group) -> dict:
    url = request.route_url
    cid, gid = group.company.external_id, group.external_id
    ruleset, _ = governing(request, group.company)
    return {
        "group-edit": f.directory_form(
            request,
            f.group_schema(choices(request), creating=False),
            "group-edit",
            url("admin_group", id=cid, group=gid),
            "Save group",
        ),
        "group-member": f.directory_form(
            request,
            f.group_member_schema(choices(request), cid, ruleset),
            "group-member",
            url("admin_group_members", id=cid, group=gid),
            "Put in this group",
        ),
        "group-delete": f.directory_form(
            request,
            f.group_delete_schema(
                request.admin_tenant.setting("groups.delete_policy", "refuse_if_members")
            ),
            "group-delete",
            url("admin_group_delete", id=cid, group=gid),
            "Delete group",
            button_name="delete",
            css_class="danger",
        ),
    }


def group_page(request, group: Group, failed: Mapping[str, str] | None = None) -> dict:
    session = request.dbsession
    company = group.company
    ruleset, _ = governing(request, company)
    policy = names(request).policy(ruleset)
    members = list(
        session.scalars(
            membership_query(request.admin_tenant.id)
            .where(Membership.group_id == group.id)
            .order_by(Account.external_id)
        )
    )
    masters = list(
        session.scalars(
            membership_query(request.admin_tenant.id)
            .where(Membership.company_id == company.id, Membership.master.is_(True))
            .order_by(Account.external_id)
        )
    )

    def approves(ms: Membership) -> bool:
        role = policy.roles.get(ms.role) if policy is not None else None
        return role is not None and "approve_orders" in role.permissions

    editing = can_edit(request)
    return {
        "group": group,
        "company": company,
        "ruleset": ruleset,
        "members": members,
        "masters": masters,
        "approves": approves,
        "role_label": policy.role_label if policy is not None else (lambda role: role),
        "status_words": f.STATUS_WORDS,
        "can_edit": editing,
        "forms": rendered(
            group_forms(request, group), failed or {}, {"group-edit": {"name": group.name}}
        )
        if editing
        else {},
    }


@view_config(
    route_name="admin_group", request_method="GET", permission="view", renderer=template("group")
)
def group(request):
    return group_page(request, group_or_404(request))


# -- assignments ----------------------------------------------------------------------------


def assignments_forms(request) -> dict:
    return {
        "assignment-save": f.directory_form(
            request,
            f.assignment_schema(choices(request)),
            "assignment-save",
            request.route_url("admin_assignments"),
            "Save assignment",
        )
    }


def assignment_or_404(request, text: str) -> Assignment:
    number = int_or_404(text, "assignment")
    row = request.dbsession.scalar(
        select(Assignment)
        .join(Company, Assignment.company_id == Company.id)
        .where(Company.tenant_id == request.admin_tenant.id, Assignment.id == number)
    )
    if row is None:
        raise HTTPNotFound(f"no assignment {text[:40]!r}")
    return row


def assignments_page(request, failed: Mapping[str, str] | None = None) -> dict:
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
    editing = can_edit(request)
    values = {}
    edited = request.GET.get("edit")
    if editing and edited:
        row = assignment_or_404(request, edited)
        values["assignment-save"] = {
            "company": row.company.external_id,
            "approver": row.approver.external_id,
            "account": row.account.external_id,
            "threshold": f.format_amount(row.threshold) if row.threshold is not None else None,
            "limit": f.format_amount(row.limit) if row.limit is not None else None,
            "step": row.step or colander.null,
        }
    return {
        "q": q,
        "page": paginate(
            request.dbsession,
            query.order_by(Company.external_id, approver.external_id, account.external_id),
            request.params,
        ),
        "money": words.money,
        "currency_of": lambda company: governing(request, company)[1],
        "can_edit": editing,
        "forms": rendered(assignments_forms(request), failed or {}, values) if editing else {},
    }


@view_config(
    route_name="admin_assignments",
    request_method="GET",
    permission="view",
    renderer=template("assignments"),
)
def assignments(request):
    return assignments_page(request)
