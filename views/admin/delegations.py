"""Delegations (out of office): list the tenant's, save one, revoke one.

The one directory page that writes.  Saving and revoking go through
:class:`~approvalrules.store.directory_service.DirectoryService` exactly as the API's
``PUT /api/v1/directory/delegations`` does, so the same rules refuse the same
things (unknown account or company, self-delegation, ``valid_until`` before
``valid_from``, a loop), every change is audited as ``admin:<login>`` and bumps
the tenant's directory version.  A delegation is keyed by (delegator, delegate,
company, step): saving that key again changes its dates.

Reading needs ``view``; saving and revoking need ``edit`` (owners and editors).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import colander
import deform
from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.view import view_config
from sqlalchemy import or_, select
from sqlalchemy.orm import aliased, selectinload

from approvalrules.errors import DirectoryError
from approvalrules.store.directory_service import DirectoryService
from approvalrules.store.models import Account, Company, Delegation

from .common import flash, int_or_404, like, paginate, template
from .forms import form_resources, make_form, with_csrf

#: the list's ``state`` filter
STATES = ("active", "upcoming", "expired")


def today() -> date:
    """The day delegations are judged on: the engine takes the UTC date of the evaluation."""
    return datetime.now(UTC).date()


def state_of(row: Delegation, day: date) -> str:
    if day < row.valid_from:
        return "upcoming"
    return "expired" if day > row.valid_until else "active"


def _stripped(value):
    """Surrounding blanks are never part of an id; a blank field is an empty one."""
    return (value.strip() or colander.null) if isinstance(value, str) else value


def _id_field(title: str, description: str, **kw) -> colander.SchemaNode:
    return colander.SchemaNode(
        colander.String(),
        title=title,
        description=description,
        preparer=_stripped,
        validator=colander.Length(max=200),
        **kw,
    )


class DelegationSchema(colander.MappingSchema):
    """The form's fields; the rules between them are the directory service's to check."""

    delegator = _id_field("Delegator", "Account id of the approver who is away.")
    delegate = _id_field("Delegate", "Account id of who approves in their place.")
    valid_from = colander.SchemaNode(
        colander.Date(), title="Valid from", description="First day, inclusive."
    )
    valid_until = colander.SchemaNode(
        colander.Date(), title="Valid until", description="Last day, inclusive."
    )
    company = _id_field(
        "Company",
        "Optional: the id of the one company it applies to; empty for all companies.",
        missing=None,
    )
    step = _id_field(
        "Step",
        "Optional: the name of the one approval step it applies to; empty for all steps.",
        missing=None,
    )


def delegation_query(tenant_id: int, q: str = "", state: str = "", day: date | None = None):
    """The tenant's delegations, searched by account, company or step.

    They are filtered by state on ``day``.
    """
    delegator, delegate = aliased(Account), aliased(Account)
    query = (
        select(Delegation)
        .join(delegator, Delegation.delegator_id == delegator.id)
        .join(delegate, Delegation.delegate_id == delegate.id)
        .outerjoin(Company, Delegation.company_id == Company.id)
        .where(Delegation.tenant_id == tenant_id)
        # one query per relation for a whole page, not one per row
        .options(
            selectinload(Delegation.delegator),
            selectinload(Delegation.delegate),
            selectinload(Delegation.company),
        )
    )
    if q:
        pattern = like(q)
        query = query.where(
            or_(
                *(
                    column.ilike(pattern, escape="\\")
                    for column in (
                        delegator.external_id,
                        delegate.external_id,
                        Company.external_id,
                        Delegation.step,
                    )
                )
            )
        )
    day = day or today()
    if state == "active":
        query = query.where(Delegation.valid_from <= day, Delegation.valid_until >= day)
    elif state == "upcoming":
        query = query.where(Delegation.valid_from > day)
    elif state == "expired":
        query = query.where(Delegation.valid_until < day)
    return query.order_by(
        delegator.external_id, delegate.external_id, Delegation.valid_from, Delegation.id
    )


def delegation_or_404(request, text: str) -> Delegation:
    """The tenant's delegation with the id ``text``; another tenant's is not found either."""
    row = request.dbsession.scalar(
        select(Delegation).where(
            Delegation.tenant_id == request.admin_tenant.id,
            Delegation.id == int_or_404(text, "delegation"),
        )
    )
    if row is None:
        raise HTTPNotFound(f"no delegation {text[:40]!r}")
    return row


def key_of(row: Delegation) -> dict:
    return {
        "delegator": row.delegator.external_id,
        "delegate": row.delegate.external_id,
        "company": row.company.external_id if row.company else None,
        "step": row.step,
    }


def _form(request) -> deform.Form:
    schema = with_csrf(DelegationSchema(), request)
    return make_form(
        schema, request, (deform.Button("save", "Save delegation"),), "delegation-form"
    )


def _page(
    request,
    form_html: str,
    form: deform.Form,
    error: str | None = None,
    editing: Delegation | None = None,
) -> dict:
    params = request.GET
    q, state = params.get("q", "").strip(), params.get("state", "")
    day = today()
    page = paginate(
        request.dbsession,
        delegation_query(request.admin_tenant.id, q, state if state in STATES else "", day),
        params,
    )
    return {
        "q": q,
        "state": state,
        "states": STATES,
        "page": page,
        "today": day,
        "state_of": state_of,
        "can_edit": request.has_permission("edit"),
        "form": form_html,
        "resources": form_resources(form),
        "error": error,
        "editing": editing,
    }


@view_config(
    route_name="admin_delegations",
    request_method="GET",
    permission="view",
    renderer=template("delegations"),
)
def delegations(request):
    form = _form(request)
    editing = (
        delegation_or_404(request, request.params["edit"]) if request.params.get("edit") else None
    )
    appstruct = {}
    if editing:
        # "all" (None) is an empty field
        appstruct = {k: colander.null if v is None else v for k, v in key_of(editing).items()}
        appstruct.update(valid_from=editing.valid_from, valid_until=editing.valid_until)
    return _page(request, form.render(appstruct), form, editing=editing)


def _field_errors(directory: DirectoryService, data: dict) -> dict[str, str]:
    """An error per field naming an account or company the tenant does not have."""
    found = {}
    lookups = [("delegator", directory.account), ("delegate", directory.account)] + (
        [("company", directory.company)] if data.get("company") else []
    )
    for name, lookup in lookups:
        try:
            lookup(data[name])
        except DirectoryError as exc:
            found[name] = exc.message
    return found


def _refusal_field(exc: DirectoryError, data: dict) -> str | None:
    """The field a refusal of ``upsert_delegation`` is about (None: the whole form)."""
    if exc.code == "invalid_delegation":
        return "delegate" if data["delegator"] == data["delegate"] else "valid_until"
    if exc.code == "delegation_loop":
        return "delegate"
    return None


@view_config(
    route_name="admin_delegations",
    request_method="POST",
    permission="edit",
    renderer=template("delegations"),
)
def save_delegation(request):
    """Create a delegation, or change the dates of the one with the same key.

    Nothing is saved on an error.
    """
    form = _form(request)
    try:
        data = form.validate(list(request.POST.items()))
    except deform.ValidationFailure as failure:
        request.response.status_int = 422
        return _page(
            request, failure.render(), form, "Fix the highlighted fields; nothing was saved."
        )
    session, tenant = request.dbsession, request.admin_tenant
    directory = DirectoryService(session, tenant, actor=request.admin_actor)
    errors = _field_errors(directory, data)
    if not errors:
        version = tenant.directory_version
        try:
            # a savepoint: whatever the service did before refusing is undone
            with session.begin_nested():
                directory.upsert_delegation(
                    data["delegator"],
                    data["delegate"],
                    data["valid_from"],
                    data["valid_until"],
                    company=data["company"],
                    step=data["step"],
                )
        except DirectoryError as exc:
            errors[_refusal_field(exc, data) or ""] = exc.message
    if errors:
        request.response.status_int = 422
        invalid = colander.Invalid(form.schema, errors.get("") or "Nothing was saved.")
        for name, message in errors.items():
            if name:
                # deform places a child's error by its position in the form
                node = form.schema[name]
                invalid.add(colander.Invalid(node, message), form.schema.children.index(node))
        form.widget.handle_error(form, invalid)
        # shown again as typed (the validated cstruct), with the errors in place
        return _page(
            request,
            deform.ValidationFailure(form, form.cstruct, invalid).render(),
            form,
            "Nothing was saved: " + "; ".join(errors.values()),
        )
    scope = " in " + data["company"] if data["company"] else ""
    scope += f" for step {data['step']}" if data["step"] else ""
    if tenant.directory_version == version:
        flash(
            request,
            f"Delegation {data['delegator']} \u2192 {data['delegate']}{scope} "
            "already had these dates: nothing changed.",
            "info",
        )
    else:
        flash(
            request,
            f"Delegation {data['delegator']} \u2192 {data['delegate']}{scope} "
            f"saved: {data['valid_from']} to {data['valid_until']}.",
            "success",
        )
    return HTTPSeeOther(request.route_url("admin_delegations"))


@view_config(route_name="admin_delegation_revoke", request_method="POST", permission="edit")
def revoke_delegation(request):
    """Delete a delegation of the tenant.

    For owners and editors; the CSRF token is checked by Pyramid.
    """
    key = key_of(delegation_or_404(request, request.matchdict["id"]))
    DirectoryService(
        request.dbsession, request.admin_tenant, actor=request.admin_actor
    ).delete_delegation(key["delegator"], key["delegate"], company=key["company"], step=key["step"])
    flash(request, f"Delegation {key['delegator']} \u2192 {key['delegate']} revoked.", "success")
    return HTTPSeeOther(request.route_url("admin_delegations"))
