"""The stored directory of a tenant as a fixture that ``approvalrules load`` accepts.

``export_directory`` reads companies (with parent, rule set, attributes,
groups, locations and contacts), accounts (with their memberships),
assignments and delegations, and writes them in the format of
``schemas/directory.schema.json`` -- the format of ``rules/directories/*.yaml``.
Loading the export into the same tenant changes nothing; loading it into an
empty tenant (with the same rule sets published) rebuilds the same directory.

Defaults are left out (an active membership, e-mail on, no parent), so the
file reads like a hand-written fixture and diffs stay small.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from ..engine.directory import CONTACT_KINDS
from ..engine.money import format_amount
from .company_parts import location_address
from .models import (
    Account,
    Assignment,
    Company,
    CompanyContact,
    Delegation,
    Group,
    Location,
    Membership,
    Tenant,
)
from .services import resolve_tenant

HEADER = (
    "# yaml-language-server: $schema=../../schemas/directory.schema.json\n"
    "#\n"
    "# The directory of tenant {slug}, exported by approvalrules export-directory.\n"
    "# `approvalrules load` accepts it as rules/directories/<name>.yaml: what it names\n"
    "# wins over the stored directory, and what it leaves out is kept (see docs/admin.md).\n"
)


def _amount(value: Decimal) -> int | str:
    """An amount as the fixture writes it: a whole number, else its decimal text."""
    text = format_amount(value)
    return int(text) if text.isdigit() else text


def _companies(session: Session, tenant_id: int) -> dict[str, Any]:
    parent = aliased(Company)
    rows = session.execute(
        select(Company, parent.external_id)
        .outerjoin(parent, Company.parent_id == parent.id)
        .where(Company.tenant_id == tenant_id)
        .order_by(Company.external_id)
    ).all()
    by_id = {company.id: company.external_id for company, _ in rows}
    groups: dict[str, dict] = {}
    for g in session.scalars(
        select(Group).where(Group.company_id.in_(by_id)).order_by(Group.external_id)
    ):
        groups.setdefault(by_id[g.company_id], {})[g.external_id] = (
            {"name": g.name} if g.name and g.name != g.external_id else None
        )
    locations: dict[str, list] = {}
    for x in session.scalars(
        select(Location).where(Location.company_id.in_(by_id)).order_by(Location.external_id)
    ):
        entry = {"id": x.external_id}
        if x.name:
            entry["name"] = x.name
        if location_address(x):
            entry["address"] = location_address(x)
        locations.setdefault(by_id[x.company_id], []).append(entry)
    contacts: dict[str, list] = {}
    kind_order = {kind: index for index, kind in enumerate(CONTACT_KINDS)}
    for company_id, account_id, kind in sorted(
        session.execute(
            select(CompanyContact.company_id, Account.external_id, CompanyContact.kind)
            .join(Account, CompanyContact.account_id == Account.id)
            .where(CompanyContact.company_id.in_(by_id))
        ).all(),
        key=lambda row: (kind_order.get(row[2], 9), row[1]),
    ):
        contacts.setdefault(by_id[company_id], []).append({"account": account_id, "kind": kind})
    found: dict[str, Any] = {}
    for company, parent_id in rows:
        entry: dict[str, Any] = {"name": company.name}
        if parent_id:
            entry["parent"] = parent_id
        if company.ruleset_name:
            entry["ruleset"] = company.ruleset_name
        if company.attributes:
            entry["attributes"] = dict(company.attributes)
        for key, parts in (("locations", locations), ("contacts", contacts), ("groups", groups)):
            if company.external_id in parts:
                entry[key] = parts[company.external_id]
        found[company.external_id] = entry
    return found


def _accounts(session: Session, tenant_id: int) -> dict[str, Any]:
    memberships: dict[int, list] = {}
    for m in session.scalars(
        select(Membership)
        .join(Company, Membership.company_id == Company.id)
        .where(Company.tenant_id == tenant_id)
        .order_by(Company.external_id)
    ):
        entry: dict[str, Any] = {"company": m.company.external_id, "role": m.role}
        if m.group is not None:
            entry["group"] = m.group.external_id
        if m.master:
            entry["master"] = True
        if m.is_default:
            entry["default"] = True
        if m.status != "active":
            entry["status"] = m.status
        if m.settings:
            entry["settings"] = dict(m.settings)
        if m.attributes:
            entry["attributes"] = dict(m.attributes)
        memberships.setdefault(m.account_id, []).append(entry)
    found: dict[str, Any] = {}
    for a in session.scalars(
        select(Account).where(Account.tenant_id == tenant_id).order_by(Account.external_id)
    ):
        entry: dict[str, Any] = {"name": a.name}
        if a.email:
            entry["email"] = a.email
        if not a.email_enabled:
            entry["email_enabled"] = False
        if not a.active:
            entry["active"] = False
        if a.id in memberships:
            entry["memberships"] = memberships[a.id]
        found[a.external_id] = entry
    return found


def _assignments(session: Session, tenant_id: int) -> list[dict[str, Any]]:
    approver, account = aliased(Account), aliased(Account)
    found = []
    for row, approver_id, account_id, company_id in session.execute(
        select(Assignment, approver.external_id, account.external_id, Company.external_id)
        .join(approver, Assignment.approver_id == approver.id)
        .join(account, Assignment.account_id == account.id)
        .join(Company, Assignment.company_id == Company.id)
        .where(Company.tenant_id == tenant_id)
        .order_by(Company.external_id, approver.external_id, account.external_id, Assignment.id)
    ):
        entry: dict[str, Any] = {"approver": approver_id, "account": account_id}
        entry["company"] = company_id
        if row.threshold is not None:
            entry["threshold"] = _amount(row.threshold)
        if row.limit is not None:
            entry["limit"] = _amount(row.limit)
        if row.step:
            entry["step"] = row.step
        found.append(entry)
    return found


def _delegations(session: Session, tenant_id: int) -> list[dict[str, Any]]:
    found = []
    for d in session.scalars(
        select(Delegation).where(Delegation.tenant_id == tenant_id).order_by(Delegation.id)
    ):
        entry: dict[str, Any] = {
            "delegator": d.delegator.external_id,
            "delegate": d.delegate.external_id,
            "valid_from": d.valid_from.isoformat(),
            "valid_until": d.valid_until.isoformat(),
        }
        if d.company is not None:
            entry["company"] = d.company.external_id
        if d.step:
            entry["step"] = d.step
        found.append(entry)
    return found


def export_directory(session: Session, tenant: Tenant | int | str) -> dict[str, Any]:
    """The tenant's whole directory as fixture data (``schemas/directory.schema.json``)."""
    tenant_obj = resolve_tenant(session, tenant)
    data: dict[str, Any] = {"tenant": tenant_obj.slug}
    for key, part in (
        ("companies", _companies(session, tenant_obj.id)),
        ("accounts", _accounts(session, tenant_obj.id)),
        ("assignments", _assignments(session, tenant_obj.id)),
        ("delegations", _delegations(session, tenant_obj.id)),
    ):
        if part:
            data[key] = part
    return data


def export_directory_yaml(session: Session, tenant: Tenant | int | str) -> str:
    """:func:`export_directory` as YAML text, with the header an editor validates it by."""
    data = export_directory(session, tenant)
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    return HEADER.format(slug=data["tenant"]) + body
