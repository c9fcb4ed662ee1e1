"""Loading a rules folder is idempotent; export gives back the very bytes that were loaded."""

from pathlib import Path

import pytest
from sqlalchemy import func, select

from approvalrules.errors import DirectoryError, DirectoryValueError, DocumentError
from approvalrules.store import commands, versions
from approvalrules.store.directory import SqlDirectory
from approvalrules.store.directory_service import DirectoryService
from approvalrules.store.importer import export_folder, export_ruleset, load_folder
from approvalrules.store.models import RuleSetVersion, Tenant
from approvalrules.store.services import ensure_tenant, resolve_tenant

# CRLF line endings, a comment, trailing spaces and no final newline: all must survive
PARENT = (
    b"# tenant default  \r\nruleset: tenant-default\r\ncurrency: USD\r\n"
    b"roles:\r\n  approver: {label: Approver, permissions: [approve_orders]}\r\n"
    b"  requisitioner: {label: Requisitioner, permissions: [place_orders]}\r\n# end"
)
CHILD = (
    "ruleset: acme-purchasing\nextends: tenant-default\n# caf\u00e9 \u2014 \u00fcber\n"
    "limits:\n  max_order_total: 999999.99\n"
).encode()
DIRECTORY = """\
companies:
  acme:
    name: Acme
    ruleset: acme-purchasing
    groups:
      marketing: {name: Marketing}
accounts:
  ann:
    name: Ann
    memberships: [{company: acme, role: approver, group: marketing}]
  bob:
    name: Bob
    memberships: [{company: acme, role: requisitioner, group: marketing}]
assignments:
  - {approver: ann, account: bob, company: acme, limit: 500}
"""


@pytest.fixture
def rules(tmp_path) -> Path:
    folder = tmp_path / "rules"
    (folder / "directories").mkdir(parents=True)
    # the child sorts first: the importer must publish the parent before it
    (folder / "a-child.yaml").write_bytes(CHILD)
    (folder / "tenant-default.yaml").write_bytes(PARENT)
    (folder / "directories" / "acme.yaml").write_text(DIRECTORY)
    return folder


def version_count(session) -> int:
    return session.scalar(select(func.count()).select_from(RuleSetVersion))


def test_load_then_load_again_changes_nothing(session, rules):
    first = load_folder(session, rules)
    assert first.tenants == ["demo"]
    assert first.published == [("demo", "tenant-default", 1), ("demo", "acme-purchasing", 1)]
    assert first.changes > 0
    count = version_count(session)

    second = load_folder(session, rules)
    assert second.published == []
    assert second.unchanged == [("demo", "tenant-default", 1), ("demo", "acme-purchasing", 1)]
    assert second.changes == 0
    assert version_count(session) == count

    tenant = resolve_tenant(session, "demo")
    directory = SqlDirectory(session, tenant.id)
    assert directory.ruleset_name_for("acme") == "acme-purchasing"
    assert [m.account_id for m in directory.memberships_of_company("acme")] == ["ann", "bob"]


def test_export_is_byte_identical(session, rules, tmp_path):
    load_folder(session, rules)
    assert export_ruleset(session, "demo", "tenant-default").encode() == PARENT
    assert export_ruleset(session, "demo", "acme-purchasing", version=1).encode() == CHILD
    written = export_folder(session, "demo", tmp_path / "out")
    assert {p.name: p.read_bytes() for p in written} == {
        "acme-purchasing.yaml": CHILD,
        "tenant-default.yaml": PARENT,
    }


def test_a_changed_file_publishes_a_new_version(session, rules):
    load_folder(session, rules)
    (rules / "tenant-default.yaml").write_bytes(PARENT + b"\r\n# edited\r\n")
    report = load_folder(session, rules)
    assert report.published == [("demo", "tenant-default", 2)]
    assert versions.active_version(session, "demo", "acme-purchasing").number == 1


def test_group_moves_in_a_fixture_load(session, rules):
    load_folder(session, rules)
    moved = DIRECTORY.replace(
        "      marketing: {name: Marketing}\n",
        "      marketing: {name: Marketing}\n      ops: {name: Ops}\n",
    )
    moved = moved.replace(
        "{company: acme, role: requisitioner, group: marketing}",
        "{company: acme, role: requisitioner, group: ops}",
    )
    (rules / "directories" / "acme.yaml").write_text(moved)
    load_folder(session, rules)
    tenant = resolve_tenant(session, "demo")
    assert SqlDirectory(session, tenant.id).membership("bob", "acme").group == "ops"
    assert load_folder(session, rules).changes == 0


def test_tenants_file(session, rules):
    (rules / "tenants.yaml").write_text(
        "tenants:\n"
        "  acme-store:\n"
        "    name: ACME store\n"
        "    settings: {groups: {one_per_account: false}}\n"
        "  bare:\n"
        "    rulesets: [tenant-default]\n"
        "    directories: []\n"
    )
    report = load_folder(session, rules)
    assert report.tenants == ["acme-store", "bare"]
    assert ("bare", "tenant-default", 1) in report.published
    assert ("bare", "acme-purchasing", 1) not in report.published
    store = session.scalar(select(Tenant).where(Tenant.slug == "acme-store"))
    assert (store.name, store.setting("groups.one_per_account")) == ("ACME store", False)
    assert load_folder(session, rules).changes == 0


def test_invalid_rule_file_names_file_and_line(session, rules):
    (rules / "broken.yaml").write_text("ruleset: broken\ncurrency: USD\nbogus: 1\n")
    with pytest.raises(DocumentError) as info:
        load_folder(session, rules)
    assert info.value.line == 3
    assert "broken.yaml:3: bogus" in info.value.format()


def test_invalid_directory_names_the_file(session, rules):
    (rules / "directories" / "acme.yaml").write_text(
        DIRECTORY.replace("role: approver, group: marketing", "role: approver, group: nope")
    )
    with pytest.raises(DirectoryError) as info:
        load_folder(session, rules)
    assert info.value.message.startswith("acme.yaml: ")


def test_commands_migrate_and_load_from_an_ini(tmp_path, rules):
    ini = tmp_path / "test.ini"
    ini.write_text(
        "[app:main]\nuse = egg:approvalrules\nsqlalchemy.url = sqlite:///%(here)s/cli.sqlite\n"
    )
    commands.migrate(ini)
    first = commands.load(ini, rules)
    assert len(first.published) == 2
    assert commands.load(ini, rules).changes == 0
    assert commands.export(ini, "demo", "tenant-default").encode() == PARENT


REPO_RULES = Path(__file__).resolve().parents[2] / "rules"


@pytest.mark.skipif(not any(REPO_RULES.glob("*.yaml")), reason="no sample rules in rules/")
def test_sample_rules_folder_loads_idempotently(session):
    first = load_folder(session, REPO_RULES)
    assert first.published and first.changes > 0
    assert load_folder(session, REPO_RULES).changes == 0
    for tenant, name, number in first.published:
        path = next(
            p for p in REPO_RULES.glob("*.yaml") if f"ruleset: {name}\n" in p.read_text("utf-8")
        )
        assert export_ruleset(session, tenant, name, number).encode() == path.read_bytes()


@pytest.mark.parametrize(
    ("old", "new", "code", "field"),
    [
        ("role: requisitioner", "role: emperor", "undefined_role", "role"),
        ("ruleset: acme-purchasing", "ruleset: no-such-rules", "unknown_ruleset", "ruleset"),
        ("name: Bob\n", "name: Bob\n    email: bob-at-acme\n", "invalid_email", "email"),
    ],
)
def test_a_directory_that_names_what_does_not_exist_is_refused_by_the_importer(
    session, rules, old, new, code, field
):
    """Issue 15, defect 6: the importer writes through the same checks as the API."""
    (rules / "directories" / "acme.yaml").write_text(DIRECTORY.replace(old, new))
    with pytest.raises(DirectoryValueError) as refused:
        load_folder(session, rules)
    assert refused.value.code == code
    assert field in str(refused.value)


def test_a_directory_whose_rule_set_is_not_published_is_refused_until_it_is(session, tmp_path):
    """Order of operations: the rule set first (as ``load_folder`` does), then its directory."""
    demo = ensure_tenant(session, "solo")
    service = DirectoryService(session, demo)
    with pytest.raises(DirectoryValueError, match="published no rule set yet"):
        service.upsert_company("acme", name="Acme", ruleset="tenant-default")
    versions.publish(session, demo.id, "tenant-default", "tests", text=PARENT.decode())
    DirectoryService(session, demo).upsert_company("acme", name="Acme", ruleset="tenant-default")


def test_a_load_warns_where_a_rule_set_and_its_directory_cannot_work_together(session, rules):
    assert load_folder(session, rules).warnings == []
    (rules / "a-child.yaml").write_bytes(
        CHILD
        + b"approval:\n  steps:\n"
        + b"    - {name: two, required: 2, approvers: {any_of: [{role: approver}]}}\n"
    )
    report = load_folder(session, rules)
    [warning] = report.warnings
    assert (warning.code, warning.severity) == ("too_few_approvers", "warning")
    assert warning.source.endswith("a-child.yaml") and warning.line == 8
    assert "needs 2 approvals, but the directory has only 1 in acme (ann)" in warning.message
