"""Company contacts and locations are stored end to end; the directory exports as a loadable
fixture; an approver with pending orders stays in its group."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from approvalrules.engine import check_directory
from approvalrules.engine.directory import records_from_dict
from approvalrules.errors import DirectoryError, DirectoryValueError
from approvalrules.store import commands
from approvalrules.store.company_parts import location_address
from approvalrules.store.directory_export import export_directory, export_directory_yaml
from approvalrules.store.directory_service import DirectoryService
from approvalrules.store.importer import load_folder
from approvalrules.store.models import AuditEvent, CompanyContact, Location
from approvalrules.store.services import ensure_tenant
from approvalrules.workflow import actions

REPO_RULES = Path(__file__).resolve().parents[2] / "rules"


def contacts(session, service, company="globex"):
    return service.contacts_of(service.company(company))


def test_globex_contacts_and_locations_are_loaded(session):
    load_folder(session, REPO_RULES)
    service = DirectoryService(session, "demo")
    assert contacts(session, service) == [
        ("primary", "gia"),
        ("billing", "bruno"),
        ("logistics", "ben"),
    ]
    locations = service.locations_of(service.company("globex"))
    assert [(x.external_id, x.name, location_address(x)) for x in locations] == [
        ("globex-hq", "Globex HQ", "1 Globex Way, Cypress Creek"),
        ("globex-warehouse", "Globex Warehouse", "9 Dock Road, Cypress Creek"),
    ]


def test_contacts_are_checked_and_audited(session):
    load_folder(session, REPO_RULES)
    service = DirectoryService(session, "demo", actor="admin:olive")
    with pytest.raises(DirectoryValueError) as refused:
        service.add_contact("globex", "rita", "purchasing")
    assert refused.value.code == "invalid_contact_kind" and refused.value.path == "kind"
    with pytest.raises(DirectoryError) as unknown:
        service.add_contact("globex", "nobody", "billing")
    assert unknown.value.code == "unknown_account"
    assert service.add_contact("globex", "rita", "billing") is True
    assert service.add_contact("globex", "rita", "billing") is False  # already: nothing written
    service.remove_contact("globex", "bruno", "billing")
    assert ("billing", "rita") in contacts(session, service)
    assert ("billing", "bruno") not in contacts(session, service)
    actions_written = session.scalars(
        select(AuditEvent.action).where(
            AuditEvent.actor == "admin:olive", AuditEvent.subject_id == "globex"
        )
    ).all()
    assert sorted(actions_written) == ["company.contact_added", "company.contact_removed"]


def test_a_contact_naming_no_account_of_the_fixture_is_refused_with_its_path():
    doc = check_directory(
        "companies:\n  c: {name: C, contacts: [{account: ghost, kind: primary}]}\n", "x.yaml"
    )
    with pytest.raises(DirectoryError) as refused:
        records_from_dict(doc.data)
    assert refused.value.code == "unknown_account"
    assert refused.value.path == "companies.c.contacts"


def test_locations_upsert_and_remove(session):
    tenant = ensure_tenant(session, "solo")
    service = DirectoryService(session, tenant)
    service.upsert_company("c", name="C")
    service.upsert_location("c", "hq", name="HQ", address="1 Main St")
    service.upsert_location("c", "hq", address="2 Main St")
    (hq,) = service.locations_of(service.company("c"))
    assert (hq.name, location_address(hq)) == ("HQ", "2 Main St")
    with pytest.raises(DirectoryValueError) as long:
        service.upsert_location("c", "hq", name="x" * 201)
    assert long.value.path == "name"
    service.remove_location("c", "hq")
    assert service.locations_of(service.company("c")) == []
    with pytest.raises(DirectoryError):
        service.remove_location("c", "hq")


def test_company_upsert_replaces_contacts_and_locations_when_given(session):
    load_folder(session, REPO_RULES)
    service = DirectoryService(session, "demo")
    service.upsert_company(
        "globex",
        locations=[{"id": "globex-hq", "name": "Globex HQ", "address": "1 Globex Way"}],
        contacts=[{"account": "rita", "kind": "primary"}],
    )
    assert contacts(session, service) == [("primary", "rita")]
    assert [x.external_id for x in service.locations_of(service.company("globex"))] == ["globex-hq"]
    service.upsert_company("globex", name="Globex Corporation")  # not given: kept
    assert contacts(session, service) == [("primary", "rita")]


def test_export_loads_back_into_an_empty_tenant_as_the_same_directory(session, tmp_path):
    load_folder(session, REPO_RULES)
    demo = ensure_tenant(session, "demo")
    service = DirectoryService(session, demo, actor="admin:olive")
    service.upsert_assignment("joe", "frank", "abc1234", threshold="250.5", limit=1000)
    text = export_directory_yaml(session, "demo")
    assert text.startswith("# yaml-language-server: $schema=")

    # the export is a valid fixture and loading it again changes nothing
    check_directory(text, "export.yaml")
    before = session.scalar(select(func.count()).select_from(AuditEvent))
    DirectoryService(session, demo).load_records(
        records_from_dict(check_directory(text, "export.yaml").data)
    )
    assert session.scalar(select(func.count()).select_from(AuditEvent)) == before

    # a copy of the rules folder whose directories are only the export
    folder = tmp_path / "rules"
    shutil.copytree(REPO_RULES, folder)
    shutil.rmtree(folder / "directories")
    (folder / "directories").mkdir()
    (folder / "directories" / "exported.yaml").write_text(text, "utf-8")
    (folder / "tenants.yaml").write_text("tenants:\n  copy: {name: Copy}\n")
    load_folder(session, folder)
    first, second = export_directory(session, "demo"), export_directory(session, "copy")
    assert first.pop("tenant") == "demo" and second.pop("tenant") == "copy"
    assert first == second
    exported = yaml.safe_load(text)
    assert exported["companies"]["globex"]["contacts"][0] == {"account": "gia", "kind": "primary"}
    assert {"approver": "joe", "account": "frank", "company": "abc1234"}.items() <= next(
        a for a in exported["assignments"] if a["account"] == "frank" and a["approver"] == "joe"
    ).items()
    assert session.scalar(select(func.count()).select_from(Location)) == 4
    assert session.scalar(select(func.count()).select_from(CompanyContact)) == 6


def test_export_directory_command(tmp_path):
    ini = tmp_path / "test.ini"
    ini.write_text(
        "[app:main]\nuse = egg:approvalrules\nsqlalchemy.url = sqlite:///%(here)s/cli.sqlite\n"
    )
    commands.load(ini, REPO_RULES)
    text = commands.export_directory(ini, "demo")
    data = check_directory(text, "export.yaml").data
    assert data["accounts"]["bob"]["memberships"] == [
        {"company": "acme", "role": "requisitioner", "group": "marketing"}
    ]


def test_an_approver_with_pending_orders_is_not_moved_out_of_its_group(session):
    load_folder(session, REPO_RULES)
    demo = ensure_tenant(session, "demo")
    actions.submit(session, demo, {"id": "PO-800", "buyer": "bob", "total": 800})
    service = DirectoryService(session, demo)
    with pytest.raises(DirectoryError) as refused:
        service.add_to_group("ann", "acme", "ops", move=True)
    assert refused.value.code == "approver_has_pending"
    assert "PO-800" in refused.value.message and "moving it out of group" in refused.value.message
    with pytest.raises(DirectoryError):
        service.remove_from_group("ann", "acme")
    # a member who decides nothing pending moves
    service.add_to_group("bob", "acme", "ops", move=True)
    assert service.membership(service.account("bob"), service.company("acme")).group.name == "Ops"
