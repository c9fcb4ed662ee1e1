"""Directory management: the writes behind the directory pages' forms and buttons.

Every change goes through :class:`~approvalrules.store.directory_service.DirectoryService`,
exactly as the API's ``PUT /api/v1/directory/...`` does, so the same rules refuse the
same things (an undefined role, a rule set that is not published, an e-mail address
mail cannot reach, one group at a time, an approver with pending orders, master or
member...).  A refusal re-renders the page with the message on the field it is about
and a 422; nothing is saved (the service's work runs in a savepoint).  Each change is
audited as ``admin:<login>`` and bumps the tenant's directory version.

Reading needs ``view``; every write needs ``edit`` (owners and editors); Pyramid checks
the CSRF token of every POST.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import deform
from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.response import Response
from pyramid.view import view_config

from approvalrules.errors import DirectoryError
from approvalrules.store.directory_export import export_directory_yaml
from approvalrules.store.directory_service import DirectoryService

from . import directory as pages
from . import directory_forms as f
from .common import flash, template

#: where a refusal of the service shows, per code, when its ``path`` names no field of the form
MEMBERSHIP_FIELDS = {
    "missing_role": "role",
    "unknown_account": "account",
    "unknown_company": "company",
    "unknown_group": "group",
    "already_in_group": "group",
    "approver_has_pending": "group",
    "master_and_member": "master",
    "already_member": "account",
    "already_invited": "account",
    "invalid_status": "status",
}
COMPANY_FIELDS = {"company_cycle": "parent", "unknown_company": "parent"}


def _service(request) -> DirectoryService:
    return DirectoryService(request.dbsession, request.admin_tenant, actor=request.admin_actor)


def _refused(request, context: dict, message: str) -> dict:
    request.response.status_int = 422
    context["error"] = message
    return context


def submit(
    request,
    form: deform.Form,
    page: Callable[[Mapping[str, str]], dict],
    write: Callable[[DirectoryService, dict], Any],
    fields: Mapping[str, str] = {},
    done: Callable[[dict, Any], tuple[str, str]] = lambda data, result: ("Saved.", ""),
):
    """Validate ``form``, run ``write`` in a savepoint, then redirect with a message.

    ``page(failed)`` renders the page again with the failed form's HTML in place;
    ``done(data, result)`` gives (message, address to go to).
    """
    try:
        data = form.validate(list(request.POST.items()))
    except deform.ValidationFailure as failure:
        return _refused(
            request,
            page({form.formid: failure.render()}),
            "Fix the highlighted fields; nothing was saved.",
        )
    session = request.dbsession
    try:
        with session.begin_nested():
            result = write(_service(request), data)
    except DirectoryError as exc:
        field = f.refusal_field(exc, fields, form)
        html = f.failure_html(form, {field: exc.message}, "Nothing was saved.")
        return _refused(request, page({form.formid: html}), f"Nothing was saved: {exc.message}")
    message, address = done(data, result)
    flash(request, message, "success")
    return HTTPSeeOther(address)


def act(request, write: Callable[[DirectoryService], str], address: str):
    """A button's change (no form fields): done, or refused with the reason, on ``address``."""
    try:
        with request.dbsession.begin_nested():
            message = write(_service(request))
    except DirectoryError as exc:
        flash(request, f"Nothing was changed: {exc.message}", "error")
    else:
        flash(request, message, "success")
    return HTTPSeeOther(address)


def _exists(what: str, ident: str, field: str = "id") -> DirectoryError:
    return DirectoryError(
        f"{what}_exists", f"{what} {ident!r} exists already; open it to change it", path=field
    )


# -- companies ------------------------------------------------------------------------------


@view_config(
    route_name="admin_companies",
    request_method="POST",
    permission="edit",
    renderer=template("companies"),
)
def create_company(request):
    def write(service: DirectoryService, data: dict):
        if service._find_company(data["id"]) is not None:
            raise _exists("company", data["id"])
        return service.upsert_company(
            data["id"],
            name=data["name"],
            parent=data["parent"] or None,
            ruleset=data["ruleset"] or None,
        )

    return submit(
        request,
        pages.companies_forms(request)["company-create"],
        lambda failed: pages.companies_page(request, failed),
        write,
        COMPANY_FIELDS,
        lambda data, company: (
            f"Company {company.name} ({company.external_id}) created.",
            request.route_url("admin_company", id=company.external_id),
        ),
    )


@view_config(
    route_name="admin_company",
    request_method="POST",
    permission="edit",
    renderer=template("company"),
)
def edit_company(request):
    company = pages.company_or_404(request, request.matchdict["id"])
    cid = company.external_id
    return submit(
        request,
        pages.company_forms(request, company)["company-edit"],
        lambda failed: pages.company_page(request, company, failed),
        lambda service, data: service.upsert_company(
            cid, name=data["name"], parent=data["parent"] or None, ruleset=data["ruleset"] or None
        ),
        COMPANY_FIELDS,
        lambda data, _: (f"Company {cid} saved.", request.route_url("admin_company", id=cid)),
    )


@view_config(
    route_name="admin_company_contacts",
    request_method="POST",
    permission="edit",
    renderer=template("company"),
)
def add_contact(request):
    company = pages.company_or_404(request, request.matchdict["id"])
    cid = company.external_id

    def done(data, added):
        what = f.CONTACT_KIND_WORDS[data["kind"]].lower()
        return (
            f"{data['account']} is now the {what} of {cid}."
            if added
            else f"{data['account']} already was the {what} of {cid}: nothing changed.",
            request.route_url("admin_company", id=cid),
        )

    return submit(
        request,
        pages.company_forms(request, company)["contact-add"],
        lambda failed: pages.company_page(request, company, failed),
        lambda service, data: service.add_contact(cid, data["account"], data["kind"]),
        {"unknown_account": "account", "invalid_contact_kind": "kind"},
        done,
    )


@view_config(route_name="admin_company_contact_remove", request_method="POST", permission="edit")
def remove_contact(request):
    company = pages.company_or_404(request, request.matchdict["id"])
    cid = company.external_id
    account, kind = request.POST.get("account", ""), request.POST.get("kind", "")

    def write(service):
        service.remove_contact(cid, account, kind)
        return f"{account} is no longer the {kind} contact of {cid}."

    return act(request, write, request.route_url("admin_company", id=cid))


@view_config(
    route_name="admin_company_locations",
    request_method="POST",
    permission="edit",
    renderer=template("company"),
)
def save_location(request):
    company = pages.company_or_404(request, request.matchdict["id"])
    cid = company.external_id
    return submit(
        request,
        pages.company_forms(request, company)["location-save"],
        lambda failed: pages.company_page(request, company, failed),
        lambda service, data: service.upsert_location(
            cid, data["id"], name=data["name"], address=data["address"]
        ),
        {},
        lambda data, _: (
            f"Location {data['id']} of {cid} saved.",
            request.route_url("admin_company", id=cid),
        ),
    )


@view_config(route_name="admin_company_location_remove", request_method="POST", permission="edit")
def remove_location(request):
    company = pages.company_or_404(request, request.matchdict["id"])
    cid, location = company.external_id, request.matchdict["location"]

    def write(service):
        service.remove_location(cid, location)
        return f"Location {location} of {cid} removed."

    return act(request, write, request.route_url("admin_company", id=cid))


# -- memberships ----------------------------------------------------------------------------


def add_membership(service: DirectoryService, account: str, company: str, data: dict):
    """A new membership from the add forms: assigned now, or invited (pending until accepted)."""
    fields = {
        "group": data["group"] or None,
        "master": data["master"],
        "default": data["default"],
    }
    if data["invite"]:
        return service.invite(account, company, data["role"], **fields)
    existing = service._find_membership(service.account(account), service.company(company))
    if existing is not None:
        raise DirectoryError(
            "already_member",
            f"{account!r} is already a member of {company!r} ({existing.status}); "
            "open the membership to change it",
            path="account",
        )
    return service.upsert_membership(
        account, company, role=data["role"], move=data["move"], **fields
    )


def _joined(request, data: dict, membership) -> tuple[str, str]:
    account, company = membership.account.external_id, membership.company.external_id
    verb = "was invited to" if membership.status == "invited" else "joined"
    group = f", group {membership.group.external_id}" if membership.group else ""
    return (
        f"{account} {verb} {company} as {membership.role}{group}.",
        request.route_url("admin_membership", id=account, company=company),
    )


@view_config(
    route_name="admin_memberships",
    request_method="POST",
    permission="edit",
    renderer=template("memberships"),
)
def create_membership(request):
    return submit(
        request,
        pages.memberships_forms(request)["membership-create"],
        lambda failed: pages.memberships_page(request, failed),
        lambda service, data: add_membership(service, data["account"], data["company"], data),
        MEMBERSHIP_FIELDS,
        lambda data, membership: _joined(request, data, membership),
    )


@view_config(
    route_name="admin_account_memberships",
    request_method="POST",
    permission="edit",
    renderer=template("account"),
)
def add_account_membership(request):
    account = pages.account_or_404(request, request.matchdict["id"])
    return submit(
        request,
        pages.account_forms(request, account)["membership-add"],
        lambda failed: pages.account_page(request, account, failed),
        lambda service, data: add_membership(service, account.external_id, data["company"], data),
        MEMBERSHIP_FIELDS,
        lambda data, membership: _joined(request, data, membership),
    )


@view_config(
    route_name="admin_company_members",
    request_method="POST",
    permission="edit",
    renderer=template("company"),
)
def add_company_member(request):
    company = pages.company_or_404(request, request.matchdict["id"])
    return submit(
        request,
        pages.company_forms(request, company)["member-add"],
        lambda failed: pages.company_page(request, company, failed),
        lambda service, data: add_membership(service, data["account"], company.external_id, data),
        MEMBERSHIP_FIELDS,
        lambda data, membership: _joined(request, data, membership),
    )


@view_config(
    route_name="admin_membership",
    request_method="POST",
    permission="edit",
    renderer=template("membership"),
)
def edit_membership(request):
    membership = pages.membership_or_404(request)
    account, company = membership.account.external_id, membership.company.external_id
    current_group = membership.group.external_id if membership.group else ""
    settings, attributes = dict(membership.settings or {}), dict(membership.attributes or {})

    def write(service: DirectoryService, data: dict):
        approve = data["approve"]
        changed_attributes = {k: v for k, v in attributes.items() if k != "approve"}
        if approve:
            changed_attributes["approve"] = approve
        return service.upsert_membership(
            account,
            company,
            role=data["role"],
            group=data["group"] or None,
            master=data["master"],
            default=data["default"],
            status=data["status"],
            settings=f.settings_from_form(data["settings"], settings),
            attributes=changed_attributes,
            move=data["move"],
        )

    form = pages.membership_forms(request, membership)["membership-edit"]
    fields = dict(MEMBERSHIP_FIELDS)
    if request.POST.get("group", current_group) == current_group:
        fields["approver_has_pending"] = "status"  # not a move: deactivating it
    return submit(
        request,
        form,
        lambda failed: pages.membership_page(request, membership, failed),
        write,
        fields,
        lambda data, _: (
            f"Membership of {account} in {company} saved.",
            request.route_url("admin_membership", id=account, company=company),
        ),
    )


@view_config(route_name="admin_membership_action", request_method="POST", permission="edit")
def membership_action(request):
    """Accept or decline an invitation, or remove the membership (and its assignments)."""
    membership = pages.membership_or_404(request)
    account, company = membership.account.external_id, membership.company.external_id
    action = request.matchdict["action"]
    back = request.route_url("admin_membership", id=account, company=company)
    if action == "accept":
        return act(
            request,
            lambda s: s.accept(account, company) and f"{account} accepted: now in {company}.",
            back,
        )
    if action == "decline":
        return act(
            request,
            lambda s: s.decline(account, company) and f"{account} declined {company}.",
            back,
        )
    if action == "remove":
        try:
            with request.dbsession.begin_nested():
                _service(request).remove_membership(account, company)
        except DirectoryError as exc:
            flash(request, f"Nothing was changed: {exc.message}", "error")
            return HTTPSeeOther(back)  # refused: stay on the membership's page
        flash(request, f"{account} removed from {company}.", "success")
        return HTTPSeeOther(request.route_url("admin_account", id=account))
    raise HTTPNotFound(f"no membership action {action[:40]!r}")


# -- accounts -------------------------------------------------------------------------------


@view_config(
    route_name="admin_accounts",
    request_method="POST",
    permission="edit",
    renderer=template("accounts"),
)
def create_account(request):
    def write(service: DirectoryService, data: dict):
        if service._find_account(data["id"]) is not None:
            raise _exists("account", data["id"])
        return service.upsert_account(
            data["id"],
            name=data["name"],
            email=data["email"],
            email_enabled=data["email_enabled"],
        )

    return submit(
        request,
        pages.accounts_forms(request)["account-create"],
        lambda failed: pages.accounts_page(request, failed),
        write,
        {},
        lambda data, account: (
            f"Account {account.name} ({account.external_id}) created; add it to a company below.",
            request.route_url("admin_account", id=account.external_id),
        ),
    )


@view_config(
    route_name="admin_account",
    request_method="POST",
    permission="edit",
    renderer=template("account"),
)
def edit_account(request):
    account = pages.account_or_404(request, request.matchdict["id"])
    aid = account.external_id
    return submit(
        request,
        pages.account_forms(request, account)["account-edit"],
        lambda failed: pages.account_page(request, account, failed),
        lambda service, data: service.upsert_account(
            aid, name=data["name"], email=data["email"], email_enabled=data["email_enabled"]
        ),
        {},
        lambda data, _: (f"Account {aid} saved.", request.route_url("admin_account", id=aid)),
    )


@view_config(route_name="admin_account_active", request_method="POST", permission="edit")
def set_account_active(request):
    """Activate or deactivate; deactivating is refused while the account must decide orders."""
    account = pages.account_or_404(request, request.matchdict["id"])
    aid = account.external_id
    active = request.POST.get("active") == "yes"

    def write(service: DirectoryService) -> str:
        if active:
            service.upsert_account(aid, active=True)
            return f"Account {aid} is active: it may order and approve again."
        service.deactivate_account(aid)
        return f"Account {aid} is deactivated: it can neither order nor approve."

    return act(request, write, request.route_url("admin_account", id=aid))


# -- groups ---------------------------------------------------------------------------------


def _create_group(service: DirectoryService, company: str, data: dict):
    try:
        service.group(service.company(company), data["id"])
    except DirectoryError as exc:
        if exc.code != "unknown_group":
            raise
    else:
        raise _exists("group", data["id"])
    return service.upsert_group(company, data["id"], name=data["name"] or data["id"])


def _group_created(request, group) -> tuple[str, str]:
    cid, gid = group.company.external_id, group.external_id
    return (
        f"Group {group.name} created in {cid}; put its members in below.",
        request.route_url("admin_group", id=cid, group=gid),
    )


@view_config(
    route_name="admin_groups",
    request_method="POST",
    permission="edit",
    renderer=template("groups"),
)
def create_group(request):
    return submit(
        request,
        pages.groups_forms(request)["group-create"],
        lambda failed: pages.groups_page(request, failed),
        lambda service, data: _create_group(service, data["company"], data),
        {"unknown_company": "company"},
        lambda data, group: _group_created(request, group),
    )


@view_config(
    route_name="admin_company_groups",
    request_method="POST",
    permission="edit",
    renderer=template("company"),
)
def create_company_group(request):
    company = pages.company_or_404(request, request.matchdict["id"])
    return submit(
        request,
        pages.company_forms(request, company)["group-create"],
        lambda failed: pages.company_page(request, company, failed),
        lambda service, data: _create_group(service, company.external_id, data),
        {},
        lambda data, group: _group_created(request, group),
    )


@view_config(
    route_name="admin_group", request_method="POST", permission="edit", renderer=template("group")
)
def edit_group(request):
    group = pages.group_or_404(request)
    cid, gid = group.company.external_id, group.external_id
    return submit(
        request,
        pages.group_forms(request, group)["group-edit"],
        lambda failed: pages.group_page(request, group, failed),
        lambda service, data: service.upsert_group(cid, gid, name=data["name"] or gid),
        {},
        lambda data, _: (
            f"Group {gid} of {cid} saved.",
            request.route_url("admin_group", id=cid, group=gid),
        ),
    )


@view_config(
    route_name="admin_group_members",
    request_method="POST",
    permission="edit",
    renderer=template("group"),
)
def put_in_group(request):
    """Put an account in the group: a new member of the company needs a role; a member of
    another group moves only when asked, and never while it must decide pending orders."""
    group = pages.group_or_404(request)
    cid, gid = group.company.external_id, group.external_id

    def write(service: DirectoryService, data: dict):
        account = data["account"]
        existing = service._find_membership(service.account(account), service.company(cid))
        if existing is None:
            if not data["role"]:
                raise DirectoryError(
                    "missing_role",
                    f"{account!r} is not a member of {cid!r} yet: choose its role",
                    path="role",
                )
            return service.upsert_membership(
                account, cid, role=data["role"], group=gid, move=data["move"]
            )
        if data["role"]:
            service.upsert_membership(account, cid, role=data["role"])
        return service.add_to_group(account, cid, gid, move=data["move"])

    return submit(
        request,
        pages.group_forms(request, group)["group-member"],
        lambda failed: pages.group_page(request, group, failed),
        write,
        {
            **MEMBERSHIP_FIELDS,
            "already_in_group": "move",
            "approver_has_pending": "move",
            "master_and_member": "account",
        },
        lambda data, membership: (
            f"{data['account']} is in group {gid} as {membership.role}.",
            request.route_url("admin_group", id=cid, group=gid),
        ),
    )


@view_config(route_name="admin_group_member_remove", request_method="POST", permission="edit")
def remove_from_group(request):
    group = pages.group_or_404(request)
    cid, gid, account = group.company.external_id, group.external_id, request.matchdict["account"]

    def write(service: DirectoryService) -> str:
        service.remove_from_group(account, cid)
        return f"{account} left group {gid}; it stays a member of {cid}, in no group."

    return act(request, write, request.route_url("admin_group", id=cid, group=gid))


@view_config(
    route_name="admin_group_delete",
    request_method="POST",
    permission="edit",
    renderer=template("group"),
)
def delete_group(request):
    group = pages.group_or_404(request)
    cid, gid = group.company.external_id, group.external_id
    return submit(
        request,
        pages.group_forms(request, group)["group-delete"],
        lambda failed: pages.group_page(request, group, failed),
        lambda service, data: service.delete_group(cid, gid, data["policy"]),
        {"group_has_members": "policy", "approver_has_pending": "policy"},
        lambda data, _: (
            f"Group {gid} of {cid} deleted.",
            request.route_url("admin_company", id=cid),
        ),
    )


# -- assignments ----------------------------------------------------------------------------


def _amount(text: str | None) -> Decimal | None:
    return Decimal(text) if text else None


@view_config(
    route_name="admin_assignments",
    request_method="POST",
    permission="edit",
    renderer=template("assignments"),
)
def save_assignment(request):
    def write(service: DirectoryService, data: dict):
        for field, lookup in (
            ("company", service.company),
            ("approver", service.account),
            ("account", service.account),
        ):
            try:
                lookup(data[field])
            except DirectoryError as exc:
                exc.path = field  # the refusal shows on the field that names the unknown id
                raise
        return service.upsert_assignment(
            data["approver"],
            data["account"],
            data["company"],
            threshold=_amount(data["threshold"]),
            limit=_amount(data["limit"]),
            step=data["step"],
        )

    return submit(
        request,
        pages.assignments_forms(request)["assignment-save"],
        lambda failed: pages.assignments_page(request, failed),
        write,
        {},
        lambda data, _: (
            f"{data['approver']} approves for {data['account']} in {data['company']}.",
            request.route_url("admin_assignments"),
        ),
    )


@view_config(route_name="admin_assignment_remove", request_method="POST", permission="edit")
def remove_assignment(request):
    row = pages.assignment_or_404(request, request.matchdict["aid"])
    approver, account = row.approver.external_id, row.account.external_id
    company, step = row.company.external_id, row.step

    def write(service: DirectoryService) -> str:
        service.remove_assignment(approver, account, company, step)
        return f"{approver} no longer approves for {account} in {company}."

    return act(request, write, request.route_url("admin_assignments"))


# -- export ---------------------------------------------------------------------------------


@view_config(route_name="admin_directory_export", request_method="GET", permission="view")
def export_directory(request):
    """The tenant's directory as a YAML fixture that ``approvalrules load`` accepts."""
    tenant = request.admin_tenant
    text = export_directory_yaml(request.dbsession, tenant)
    return Response(
        text,
        content_type="application/yaml",
        charset="utf-8",
        content_disposition=f'attachment; filename="{tenant.slug}-directory.yaml"',
    )
