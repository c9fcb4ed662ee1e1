"""Company slices (approvalrules.store.company_slice): an order is decided against its
company's tree alone, with the same decision as against the whole tenant's directory; a
slice is rebuilt only when its own rows change; the caches are bounded by bytes."""

from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import event, select

from approvalrules.engine import Order, compile_ruleset, folder_resolver
from approvalrules.engine.directory_contract import FIXTURE
from approvalrules.engine.load import load_document
from approvalrules.engine.ruletests import DEFAULT_NOW
from approvalrules.errors import ApprovalRulesError
from approvalrules.store import company_slice, slice_versions
from approvalrules.store.cache_budget import (
    ByteBudgetCache,
    approximate_size,
    budgeted_cache,
    configure,
    entry_size,
)
from approvalrules.store.company_slice import (
    accounts_by_id,
    company_directory,
    directory_for_member,
    directory_for_order,
)
from approvalrules.store.db import database_key
from approvalrules.store.directory import SqlDirectory, load_memory_directory
from approvalrules.store.directory_service import DirectoryService
from approvalrules.store.directory_sync import sync_directory
from approvalrules.store.models import Company, SliceVersion
from approvalrules.store.services import ensure_tenant
from approvalrules.store.testing import load_fixture
from approvalrules.workflow.reevaluate import _governed_companies

RULES = Path(__file__).resolve().parents[2] / "rules"
WITH_DIRECTORIES = sorted(
    p.stem for p in RULES.glob("*.yaml") if (RULES / "directories" / p.name).is_file()
)


@pytest.fixture(autouse=True)
def _no_slices_of_other_tests():
    """Tenant ids and directory versions repeat between rolled-back tests: a slice cached by
    one would be another's."""
    company_slice.clear()
    yield
    company_slice.clear()


def _outcome(policy, order: dict, directory, now, spent):
    """The decision as a dict, or the error's code: what the two directories must agree on."""
    try:
        return policy.evaluate(order, directory, now=now, budgets_spent=spent).as_dict()
    except ApprovalRulesError as exc:
        return ("error", exc.code, str(exc))


def _orders(policy_data: dict, whole) -> list[tuple[dict, str, dict | None]]:
    """The rule set's own test orders, then every account ordering small, middling and large
    totals in each of its companies and in its default one."""
    orders = [
        (t["order"], t.get("now", DEFAULT_NOW), t.get("budgets_spent"))
        for t in policy_data.get("tests") or ()
    ]
    for account_id in whole.account_ids():
        companies = [None] + [m.company_id for m in whole.memberships_of_account(account_id)]
        for company in companies:
            for total in (40, 800, 25_000):
                order = {"buyer": account_id, "total": total}
                if company:
                    order["company"] = company
                orders.append((order, DEFAULT_NOW, None))
    orders.append(({"buyer": "nobody", "total": 10}, DEFAULT_NOW, None))
    return orders


@pytest.mark.parametrize("name", WITH_DIRECTORIES)
def test_a_slice_decides_like_the_whole_directory(session, name):
    text = (RULES / f"{name}.yaml").read_text("utf-8")
    policy = compile_ruleset(text, name, folder_resolver(RULES))
    data = load_document((RULES / "directories" / f"{name}.yaml").read_text("utf-8")).data
    tenant = ensure_tenant(session, f"slice-{name}")
    load_fixture(session, tenant, data)
    session.commit()  # ends the savepoint: slices are cached, not live rows
    whole = load_memory_directory(session, tenant.id)
    compared = 0
    for order, now, spent in _orders(load_document(text).data, whole):
        try:
            sliced = directory_for_order(session, tenant, Order.from_dict(order))
        except ApprovalRulesError as exc:
            sliced_outcome = ("error", exc.code, str(exc))
        else:
            assert not isinstance(sliced, SqlDirectory)
            sliced_outcome = _outcome(policy, order, sliced, now, spent)
        assert sliced_outcome == _outcome(policy, order, whole, now, spent), order
        compared += 1
    assert compared > 10


@pytest.fixture
def org(session):
    """The directory contract's fixture, committed: acme > acme-labs > acme-labs-eu, and
    zeta beside them; ann and xena belong to acme and zeta both."""
    tenant = ensure_tenant(session, "slices")
    load_fixture(session, tenant, FIXTURE)
    session.commit()
    return tenant


def _change(session, tenant, write) -> None:
    write(DirectoryService(session, tenant))
    session.commit()


@contextmanager
def _statements(session):
    """The SQL statements the session's connection runs inside the block."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    engine = session.get_bind().engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_a_slice_holds_its_company_tree_only(session, org):
    labs_eu = company_directory(session, org, "acme-labs-eu")
    assert [c.id for c in labs_eu.company_chain("acme-labs-eu")] == [
        "acme-labs-eu",
        "acme-labs",
        "acme",
    ]
    assert labs_eu.company("zeta") is None
    assert {m.account_id for m in labs_eu.memberships_of_company("acme")} >= {"master", "ann"}
    assert labs_eu.account("loner") is None


def test_a_slice_is_read_once_while_the_directory_does_not_change(session, org):
    stats = company_slice.STATS
    first = company_directory(session, org, "acme")
    reads = stats.reads
    assert company_directory(session, org, "acme") is first
    assert stats.reads == reads


def test_a_change_in_another_company_keeps_this_slice(session, org):
    stats = company_slice.STATS
    acme = company_directory(session, org, "acme")
    _change(session, org, lambda s: s.upsert_membership("loner", "zeta", role="buyer"))
    builds, reads, checks = stats.builds, stats.reads, stats.checks
    session.refresh(org)  # the tenant's row, read by the request before it evaluates
    with _statements(session) as seen:
        assert company_directory(session, org, "acme") is acme  # the same object, pools warm
    # the versions of acme's chain, one query; none of its rows read again
    assert (stats.builds, stats.reads, stats.checks) == (builds, reads, checks + 1)
    assert len(seen) == 1 and "slice_versions" in seen[0]
    zeta = company_directory(session, org, "zeta")
    assert stats.builds == builds + 1
    assert zeta.membership("loner", "zeta").role == "buyer"


def test_a_change_in_another_company_asks_nothing_more_of_the_buyer(session, org):
    order = Order.from_dict({"buyer": "ann", "total": 1})
    directory_for_order(session, org, order)
    _change(session, org, lambda s: s.upsert_company("acme-labs", name="Labs Renamed"))
    session.refresh(org)
    with _statements(session) as seen:
        assert directory_for_order(session, org, order).company("zeta") is not None
    # what changed in the tenant since the last version seen here: acme-labs alone, in
    # neither the buyer's memberships nor zeta's slice
    assert len(seen) == 1 and "slice_versions" in seen[0]


def test_without_the_tenants_changes_a_slice_asks_its_own_versions(session, org):
    stats = company_slice.STATS
    acme = company_directory(session, org, "acme")
    _change(session, org, lambda s: s.upsert_membership("loner", "zeta", role="buyer"))
    company_slice._CHANGES.clear()  # as when they were evicted, or first seen after the slice
    reads, checks = stats.reads, stats.checks
    assert company_directory(session, org, "acme") is acme
    assert (stats.reads, stats.checks) == (reads, checks + 1)
    _change(session, org, lambda s: s.upsert_membership("loner", "acme", role="buyer"))
    company_slice._CHANGES.clear()
    assert company_directory(session, org, "acme").membership("loner", "acme").role == "buyer"
    assert stats.reads == reads + 1


def test_a_change_of_the_company_row_is_seen(session, org):
    company_directory(session, org, "acme-labs")
    _change(session, org, lambda s: s.upsert_company("acme-labs", name="Labs", attributes={"a": 1}))
    labs = company_directory(session, org, "acme-labs").company("acme-labs")
    assert (labs.name, dict(labs.attributes)) == ("Labs", {"a": 1})


def test_a_change_of_an_ancestor_row_is_seen_by_its_descendants(session, org):
    company_directory(session, org, "acme-labs-eu")
    _change(session, org, lambda s: s.upsert_company("acme", attributes={"tier": 3}))
    eu = company_directory(session, org, "acme-labs-eu")
    assert eu.company("acme").attributes["tier"] == 3


def test_moving_an_ancestor_is_seen_by_the_whole_subtree(session, org):
    company_directory(session, org, "acme-labs-eu")
    _change(session, org, lambda s: s.upsert_company("acme", parent="zeta"))
    eu = company_directory(session, org, "acme-labs-eu")
    assert [c.id for c in eu.company_chain("acme-labs-eu")][-1] == "zeta"


def test_a_change_of_a_members_account_is_seen(session, org):
    company_directory(session, org, "acme")
    _change(session, org, lambda s: s.upsert_account("cid", active=False))
    assert company_directory(session, org, "acme").account("cid").active is False


def test_a_change_of_a_delegates_account_is_seen_by_the_delegators_slice(session, org):
    _change(
        session,
        org,
        lambda s: s.upsert_delegation("cid", "loner", date(2026, 1, 1), date(2026, 12, 31)),
    )
    assert company_directory(session, org, "acme").account("loner").name == "Loner"
    _change(session, org, lambda s: s.upsert_account("loner", name="Loner Renamed"))
    assert company_directory(session, org, "acme").account("loner").name == "Loner Renamed"


def test_a_deleted_delegation_is_seen(session, org):
    _change(
        session,
        org,
        lambda s: s.upsert_delegation("cid", "loner", date(2026, 1, 1), date(2026, 12, 31)),
    )
    assert company_directory(session, org, "acme").delegations_of("cid")
    _change(session, org, lambda s: s.delete_delegation("cid", "loner"))
    assert not company_directory(session, org, "acme").delegations_of("cid")


def test_group_changes_are_seen(session, org):
    company_directory(session, org, "acme-labs")
    _change(session, org, lambda s: s.upsert_group("acme", "ops", name="Ops Renamed"))
    groups = {
        g.id: g.name for g in company_directory(session, org, "acme-labs").groups_of_company("acme")
    }
    assert groups["ops"] == "Ops Renamed"
    _change(session, org, lambda s: s.delete_group("acme", "empty"))
    groups = {g.id for g in company_directory(session, org, "acme-labs").groups_of_company("acme")}
    assert "empty" not in groups


def test_assignment_changes_are_seen(session, org):
    company_directory(session, org, "acme")
    _change(session, org, lambda s: s.upsert_assignment("cid", "Bob", "acme"))
    assigned = company_directory(session, org, "acme").assignments_by("cid", "acme")
    assert "Bob" in [a.account_id for a in assigned]
    _change(session, org, lambda s: s.remove_assignment("cid", "Bob", "acme"))
    assigned = company_directory(session, org, "acme").assignments_by("cid", "acme")
    assert "Bob" not in [a.account_id for a in assigned]


def test_a_removed_membership_is_seen_by_the_slice_and_the_buyer(session, org):
    order = Order.from_dict({"buyer": "cid", "total": 1})
    assert directory_for_order(session, org, order).membership("cid", "acme") is not None
    _change(session, org, lambda s: s.remove_membership("cid", "acme"))
    assert company_directory(session, org, "acme").membership("cid", "acme") is None
    with pytest.raises(ApprovalRulesError):
        directory_for_order(session, org, order)


def test_a_second_membership_without_a_default_is_seen_by_the_buyer(session, org):
    order = Order.from_dict({"buyer": "cid", "total": 1})
    assert directory_for_order(session, org, order).company("acme") is not None
    _change(session, org, lambda s: s.upsert_membership("cid", "zeta", role="buyer"))
    with pytest.raises(ApprovalRulesError) as raised:
        directory_for_order(session, org, order)
    assert raised.value.code == "no_default_company"


def test_a_directory_sync_is_seen(session, org):
    company_directory(session, org, "acme")
    sync_directory(session, org, '{"companies": [{"id": "acme", "name": "Acme Synced"}]}', "json")
    session.commit()
    assert company_directory(session, org, "acme").company("acme").name == "Acme Synced"


def test_a_change_to_the_company_is_seen_by_its_next_slice(session, org):
    acme = company_directory(session, org, "acme")
    _change(session, org, lambda s: s.upsert_membership("loner", "acme", role="approver"))
    changed = company_directory(session, org, "acme")
    assert changed is not acme
    assert changed.membership("loner", "acme").role == "approver"
    assert changed.account("loner").name == "Loner"


def test_a_parent_company_change_is_seen_by_its_subsidiaries(session, org):
    company_directory(session, org, "acme-labs-eu")
    _change(session, org, lambda s: s.set_master("cid", "acme", False))
    _change(session, org, lambda s: s.upsert_membership("loner", "acme", role="admin", master=True))
    masters = {
        m.account_id
        for m in company_directory(session, org, "acme-labs-eu").memberships_of_company("acme")
        if m.master
    }
    assert "loner" in masters


def test_moving_a_subtree_changes_its_chain(session, org):
    assert company_directory(session, org, "acme-labs-eu").company("zeta") is None
    _change(session, org, lambda s: s.upsert_company("acme-labs", parent="zeta"))
    moved = company_directory(session, org, "acme-labs-eu")
    assert [c.id for c in moved.company_chain("acme-labs-eu")] == [
        "acme-labs-eu",
        "acme-labs",
        "zeta",
    ]


def test_an_account_in_several_companies_changes_every_slice(session, org):
    acme, zeta = company_directory(session, org, "acme"), company_directory(session, org, "zeta")
    _change(session, org, lambda s: s.upsert_account("xena", name="Xena Renamed"))
    assert company_directory(session, org, "acme").account("xena").name == "Xena Renamed"
    assert company_directory(session, org, "zeta").account("xena").name == "Xena Renamed"
    assert acme.account("xena").name == "Xena"  # a slice already handed out never changes
    assert zeta.account("xena").name == "Xena"


def test_a_delegation_to_another_company_is_in_the_delegators_slice(session, org):
    company_directory(session, org, "acme")
    _change(
        session,
        org,
        lambda s: s.upsert_delegation("cid", "loner", date(2026, 1, 1), date(2026, 12, 31)),
    )
    acme = company_directory(session, org, "acme")
    assert [x.delegate_id for x in acme.delegations_of("cid")] == ["loner"]
    assert acme.account("loner").name == "Loner"  # the delegate's account, though an outsider


def test_a_transaction_changing_the_directory_reads_live_rows(session, org):
    DirectoryService(session, org).upsert_company("acme", name="Acme Renamed")
    directory = directory_for_order(session, org, Order.from_dict({"buyer": "ann", "total": 1}))
    assert isinstance(directory, SqlDirectory)
    assert directory.company("acme").name == "Acme Renamed"


def test_the_buyer_default_company_picks_the_slice(session, org):
    directory = directory_for_order(session, org, Order.from_dict({"buyer": "ann", "total": 1}))
    assert directory.company("zeta") is not None and directory.company("acme") is None
    with pytest.raises(ApprovalRulesError) as raised:
        directory_for_order(session, org, Order.from_dict({"buyer": "xena", "total": 1}))
    assert raised.value.code == "no_default_company"
    with pytest.raises(ApprovalRulesError) as raised:
        directory_for_order(
            session, org, Order.from_dict({"buyer": "loner", "total": 1, "company": "acme"})
        )
    assert raised.value.code == "not_a_member"


def test_a_new_default_company_is_seen_by_the_next_order(session, org):
    order = Order.from_dict({"buyer": "ann", "total": 1})
    assert directory_for_order(session, org, order).company("zeta") is not None
    _change(session, org, lambda s: s.upsert_membership("ann", "acme", default=True))
    assert directory_for_order(session, org, order).company("acme") is not None
    assert directory_for_order(session, org, order).membership("ann").company_id == "acme"


def test_a_members_directory_is_its_company_slice(session, org):
    assert directory_for_member(session, org, "ann").company("zeta") is not None
    assert directory_for_member(session, org, "ann", "acme").company("acme") is not None
    # no company to tell: the live rows, where the caller finds no membership
    assert directory_for_member(session, org, "xena").membership("xena") is None
    assert directory_for_member(session, org, "nobody").account("nobody") is None


def test_accounts_by_id_come_from_the_slice_and_one_query(session, org):
    found = accounts_by_id(session, org, ["master", "loner", "nobody"], "acme")
    assert sorted(found) == ["loner", "master"]
    assert found["loner"].name == "Loner"  # not in acme's slice: read by the query


def test_the_byte_budget_evicts_the_least_recently_used():
    cache = ByteBudgetCache("test", max_bytes=300)
    for key in "abc":
        cache.put(key, key.upper(), 100)
    assert cache.get("a") == "A"  # now the most recently used
    cache.put("d", "D", 100)
    assert (cache.get("b"), cache.get("a"), cache.get("d")) == (None, "A", "D")
    assert (len(cache), cache.bytes, cache.evictions) == (3, 300, 1)
    cache.put("huge", "H", 10_000)  # larger than the budget alone: kept, alone
    assert (len(cache), cache.get("huge")) == (1, "H")
    assert cache.hits >= 3 and cache.misses >= 1


def test_the_configured_budget_bounds_the_slices(session, org):
    slices = budgeted_cache("company_slices")
    before = slices.max_bytes
    try:
        configure({"approvalrules.cache.max_bytes": "1"})
        assert slices.max_bytes == 1
        company_directory(session, org, "acme")
        company_directory(session, org, "zeta")
        assert len(slices) == 1  # the newest alone
    finally:
        configure({"approvalrules.cache.max_bytes": str(before)})
    with pytest.raises(ValueError, match="positive number of bytes"):
        configure({"approvalrules.cache.max_bytes": "lots"})


def test_governed_companies_inherit_the_nearest_rule_set_without_the_whole_directory(session, org):
    ids = {c.external_id: c.id for c in session.query(Company).filter_by(tenant_id=org.id)}
    governed = _governed_companies(session, org, {"acme-purchasing", "labs-eu", "other"})
    whole = load_memory_directory(session, org.id)
    expected: dict[str, list[int]] = {}
    for external_id, company_id in sorted(ids.items(), key=lambda item: item[1]):
        name = whole.ruleset_name_for(external_id)
        if name in {"acme-purchasing", "labs-eu", "other"}:
            expected.setdefault(name, []).append(company_id)
    assert governed == expected
    assert sorted(governed["acme-purchasing"]) == sorted([ids["acme"], ids["acme-labs"]])


def test_the_size_estimate_covers_what_a_slice_holds(session, org):
    """The estimate (records x BYTES_PER_ROW, measured as RSS growth by bench/tenant_size.py)
    is above what ``sys.getsizeof`` finds in a slice's objects, which leaves out the
    allocator's overhead, and of the same order."""
    company_directory(session, org, "acme")
    entry = company_slice.slice_cache().get((database_key(session), org.id, "acme"))
    walked = approximate_size(entry.directory)
    estimated = entry_size(entry.records.row_count())
    assert walked < estimated < 10 * walked


def test_a_commit_gives_every_company_it_changed_the_tenants_new_version(session, org, monkeypatch):
    monkeypatch.setattr(slice_versions, "IN_CHUNK", 2)  # the ids go in several lists
    service = DirectoryService(session, org)
    for company in ("acme", "acme-labs", "acme-labs-eu", "zeta"):
        service.upsert_membership("loner", company, role="buyer")
    session.commit()
    ids = dict(
        session.execute(
            select(Company.external_id, Company.id).where(Company.tenant_id == org.id)
        ).all()
    )
    versions = {
        row.row_id: row.version
        for row in session.scalars(select(SliceVersion).where(SliceVersion.kind == "company"))
    }
    assert {name: versions.get(ids[name]) for name in ids} == dict.fromkeys(
        ("acme", "acme-labs", "acme-labs-eu", "zeta"), org.directory_version
    )
