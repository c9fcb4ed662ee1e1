"""Drafts, publication, rollback, immutability (model and database) and the policy cache."""

import threading
from types import SimpleNamespace

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from approvalrules.engine import MemoryDirectory
from approvalrules.errors import Conflict, DocumentError, DocumentTooLarge, NotFound
from approvalrules.store import versions
from approvalrules.store.directory_service import DirectoryService
from approvalrules.store.models import AuditEvent, RuleSet, RuleSetVersion, Tenant
from approvalrules.store.services import audit, ensure_tenant

V1 = "# the tenant default\nruleset: purchasing\ncurrency: USD\n"
V2 = "# raised limits\nruleset: purchasing\ncurrency: USD\nlimits:\n  max_order_total: 5000\n"
INVALID = "ruleset: purchasing\ncurrency: USD\nbogus: 1\n"


def published(session, tenant, name="purchasing"):
    return [(v.number, v.status) for v in versions.list_versions(session, tenant.id, name)]


def test_draft_may_be_invalid_but_is_never_published(session, tenant):
    versions.publish(session, tenant.id, "purchasing", "ann", text=V1)
    versions.save_draft(session, tenant.id, "purchasing", INVALID, author="ann")
    assert versions.get_ruleset(session, tenant.id, "purchasing").draft_text == INVALID
    with pytest.raises(DocumentError) as info:
        versions.publish(session, tenant.id, "purchasing", "ann")
    assert info.value.line == 3 and info.value.path == "bogus"
    assert versions.active_version(session, tenant.id, "purchasing").text == V1
    assert published(session, tenant) == [(1, "published")]


def test_invalid_first_publication_leaves_no_rule_set(session, tenant):
    with pytest.raises(DocumentError):
        versions.publish(session, tenant.id, "purchasing", "ann", text=INVALID)
    assert versions.get_ruleset(session, tenant.id, "purchasing") is None


def test_publish_numbers_and_switches_the_active_version(session, tenant):
    versions.save_draft(session, tenant.id, "purchasing", V1)
    v1 = versions.publish(session, tenant.id, "purchasing", "ann")
    assert (v1.number, v1.status, v1.author, v1.text) == (1, "published", "ann", V1)
    assert versions.get_ruleset(session, tenant.id, "purchasing").draft_text is None
    v2 = versions.publish(session, tenant.id, "purchasing", "bob", text=V2)
    assert v2.number == 2
    assert published(session, tenant) == [(1, "retired"), (2, "published")]
    assert versions.active_version(session, tenant.id, "purchasing") is v2


def test_publishing_the_active_text_again_changes_nothing(session, tenant):
    v1 = versions.publish(session, tenant.id, "purchasing", "ann", text=V1)
    assert versions.publish(session, tenant.id, "purchasing", "ann", text=V1) is v1
    assert published(session, tenant) == [(1, "published")]


def test_name_must_match_the_document(session, tenant):
    with pytest.raises(DocumentError) as info:
        versions.publish(session, tenant.id, "other", "ann", text=V1)
    assert info.value.code == "name_mismatch"


def test_publish_without_draft(session, tenant):
    with pytest.raises(NotFound):
        versions.publish(session, tenant.id, "purchasing", "ann")


def test_rollback_publishes_an_old_text_anew(session, tenant):
    versions.publish(session, tenant.id, "purchasing", "ann", text=V1)
    versions.publish(session, tenant.id, "purchasing", "ann", text=V2)
    v3 = versions.rollback(session, tenant.id, "purchasing", 1, author="bob")
    assert (v3.number, v3.text, v3.content_hash) == (
        3,
        V1,
        versions.get_version(session, tenant.id, "purchasing", 1).content_hash,
    )
    assert published(session, tenant) == [(1, "retired"), (2, "retired"), (3, "published")]
    actions = session.scalars(
        select(AuditEvent.action)
        .where(AuditEvent.subject_id == "purchasing")
        .order_by(AuditEvent.id)
    ).all()
    assert actions == ["ruleset.published", "ruleset.published", "ruleset.rolled_back"]


def test_active_version_is_one_query(session, tenant, db_engine):
    versions.publish(session, tenant.id, "purchasing", "ann", text=V1)
    session.flush()
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(session.connection(), "before_cursor_execute", listener)
    try:
        session.expunge_all()
        assert versions.active_version(session, tenant.id, "purchasing").number == 1
    finally:
        event.remove(session.connection(), "before_cursor_execute", listener)
    assert len(statements) == 1


def test_published_text_cannot_change_in_code(session, tenant):
    version = versions.publish(session, tenant.id, "purchasing", "ann", text=V1)
    for field, value in (("text", V2), ("content_hash", "x"), ("number", 7)):
        with pytest.raises(Conflict) as info:
            setattr(version, field, value)
        assert info.value.code == "immutable_version"
        assert f"its {field} can never change" in info.value.message
    assert version.text == V1


def test_published_text_cannot_change_in_the_database(session, tenant):
    version = versions.publish(session, tenant.id, "purchasing", "ann", text=V1)
    session.flush()
    for statement in (
        "UPDATE rule_set_versions SET text = 'ruleset: evil' WHERE id = :id",
        "UPDATE rule_set_versions SET content_hash = 'x' WHERE id = :id",
        "UPDATE rule_set_versions SET number = 99 WHERE id = :id",
        "UPDATE rule_set_versions SET status = 'draft' WHERE id = :id",
    ):
        with pytest.raises(DBAPIError, match="immutable"), session.begin_nested():
            session.execute(text(statement), {"id": version.id})
    # retiring is allowed: it is status only
    with session.begin_nested():
        session.execute(
            text("UPDATE rule_set_versions SET status = 'retired' WHERE id = :id"),
            {"id": version.id},
        )
    session.expire_all()
    assert session.scalar(select(RuleSetVersion.text).where(RuleSetVersion.id == version.id)) == V1


def test_audit_events_are_append_only_in_the_database(session, tenant):
    audit(session, tenant.id, "ann", "test.done", "test", "1", {"a": 1})
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "test.done")).one()
    for statement in (
        "UPDATE audit_events SET actor = 'mallory' WHERE id = :id",
        "DELETE FROM audit_events WHERE id = :id",
    ):
        with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
            session.execute(text(statement), {"id": event.id})
    session.expire_all()
    assert session.get(AuditEvent, event.id).actor == "ann"


def test_policy_for_is_cached_by_content_hash(session, tenant):
    version = versions.publish(session, tenant.id, "purchasing", "ann", text=V1)
    policy = versions.policy_for(version)
    assert versions.policy_for(version) is policy
    assert versions.active_policy(session, tenant.id, "purchasing") is policy


def test_extends_resolves_parents_by_active_version(session, tenant):
    versions.publish(session, tenant.id, "purchasing", "ann", text=V1)
    child = versions.publish(
        session, tenant.id, "marketing", "ann", text="ruleset: marketing\nextends: purchasing\n"
    )
    assert child.extends == "purchasing"
    assert versions.get_ruleset(session, tenant.id, "marketing").extends == "purchasing"
    assert [p.number for p in versions.parent_chain(session, child)] == [1]
    first = versions.policy_for(child)
    versions.publish(session, tenant.id, "purchasing", "ann", text=V2)
    assert versions.policy_for(child) is not first  # compiled against the new parent


def test_extends_an_unknown_rule_set_is_refused(session, tenant):
    with pytest.raises(DocumentError) as info:
        versions.publish(
            session, tenant.id, "marketing", "ann", text="ruleset: marketing\nextends: nowhere\n"
        )
    assert info.value.code == "unknown_parent"


def test_tenants_have_separate_rule_sets(session, tenant):
    other = ensure_tenant(session, "other")
    versions.publish(session, tenant.id, "purchasing", "ann", text=V1)
    versions.publish(session, other.id, "purchasing", "ann", text=V2)
    assert versions.active_version(session, other.id, "purchasing").number == 1
    assert versions.active_version(session, tenant.id, "purchasing").text == V1


# concurrency (committed transactions on the real database)

THREADS = 4
ROUNDS = 3


def _concurrently(db_engine, change) -> None:
    """``change(session, worker)`` in THREADS threads released together.

    Each runs in its own committed transaction.
    """
    barrier = threading.Barrier(THREADS)
    errors = []

    def worker(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            with Session(db_engine) as session, session.begin():
                change(session, n)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []


def test_concurrent_publishers_get_consecutive_numbers(db_engine, postgres_only):
    with Session(db_engine) as session, session.begin():
        tenant_id = ensure_tenant(session, f"race-{threading.get_ident()}-{id(session)}").id
    for round_ in range(ROUNDS):
        _concurrently(
            db_engine,
            lambda s, n, round_=round_: versions.publish(
                s, tenant_id, "purchasing", f"w{n}", text=f"{V1}# worker {n} round {round_}\n"
            ),
        )
    with Session(db_engine) as session:
        rows = session.execute(
            select(RuleSetVersion.number, RuleSetVersion.status, RuleSetVersion.id)
            .join(RuleSet, RuleSetVersion.ruleset_id == RuleSet.id)
            .where(RuleSet.tenant_id == tenant_id)
            .order_by(RuleSetVersion.number)
        ).all()
        assert [n for n, _, _ in rows] == list(range(1, THREADS * ROUNDS + 1))
        assert [s for _, s, _ in rows].count("published") == 1
        ruleset = session.scalar(select(RuleSet).where(RuleSet.tenant_id == tenant_id))
        assert ruleset.active_version_id == rows[-1][2] and rows[-1][1] == "published"
        assert (
            session.scalar(
                select(func.count()).select_from(RuleSet).where(RuleSet.tenant_id == tenant_id)
            )
            == 1
        )


def test_concurrent_changes_each_bump_the_tenants_counters(db_engine, postgres_only):
    """The per-process caches are keyed by these counters: two changes must never share a number."""

    with Session(db_engine) as session, session.begin():
        tenant = ensure_tenant(session, f"counters-{threading.get_ident()}-{id(session)}")
        tenant_id, rules_before, directory_before = (
            tenant.id,
            tenant.rules_version,
            tenant.directory_version,
        )
    _concurrently(
        db_engine,
        lambda s, n: versions.publish(s, tenant_id, f"rs{n}", "w", text=f"ruleset: rs{n}\n"),
    )
    _concurrently(
        db_engine,
        lambda s, n: DirectoryService(s, s.get(Tenant, tenant_id)).upsert_account(
            f"acct{n}", name=f"Account {n}"
        ),
    )
    with Session(db_engine) as session:
        tenant = session.get(Tenant, tenant_id)
        assert tenant.rules_version == rules_before + THREADS
        assert tenant.directory_version == directory_before + THREADS


def test_a_publish_is_seen_by_the_rest_of_its_own_transaction(session, tenant):
    versions.publish(session, tenant.id, "purchasing", "ann", text=V1)
    first = versions.active_versions(session, tenant.id)["purchasing"].number
    before = tenant.rules_version
    versions.publish(session, tenant.id, "purchasing", "ann", text=V2)
    assert versions.active_versions(session, tenant.id)["purchasing"].number == first + 1
    assert tenant.rules_version == before + 1


# drafts: guarded on save, and a publisher clears only the draft it read (issue 15)

BOMB = (
    "ruleset: purchasing\n"
    'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    + "".join(f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]\n" for n in range(1, 9))
)


def test_a_draft_failing_the_loaders_guards_is_refused(session, tenant):
    with pytest.raises(DocumentError) as refused:
        versions.save_draft(session, tenant.id, "purchasing", BOMB)
    assert refused.value.code == "too_many_nodes"
    with pytest.raises(DocumentTooLarge):
        versions.save_draft(session, tenant.id, "purchasing", "d: " + "x" * 1_000_000)
    assert versions.get_ruleset(session, tenant.id, "purchasing") is None


def test_a_draft_saved_after_the_publisher_read_it_is_kept(session, tenant):
    versions.save_draft(session, tenant.id, "purchasing", V1)
    ruleset = versions.get_ruleset(session, tenant.id, "purchasing")
    # what a writer committing between the publisher's read and its write looks like
    versions.save_draft(session, tenant.id, "purchasing", V2)
    versions.clear_draft(session, ruleset, V1)
    assert versions.get_ruleset(session, tenant.id, "purchasing").draft_text == V2
    versions.clear_draft(session, ruleset, V2)
    assert versions.get_ruleset(session, tenant.id, "purchasing").draft_text is None


# a version published before amounts were held to the currency's minor units
FINER_THAN_CENTS = (
    "ruleset: purchasing\ncurrency: USD\nroles:\n"
    "  manager: {label: Manager, permissions: [approve_orders]}\n"
    "  user: {label: User, permissions: [place_orders]}\n"
    "approval:\n  steps:\n"
    "    - {name: mgr, when: {total: {gt: 100.125}}, approvers: {any_of: [{role: manager}]}}\n"
)


def test_a_version_published_before_a_stricter_check_still_compiles_and_decides(
    session, tenant, monkeypatch
):
    with pytest.raises(DocumentError) as refused:
        versions.publish(session, tenant.id, "purchasing", "ann", text=FINER_THAN_CENTS)
    assert refused.value.code == "amount_precision"
    # publish it as the checks of its day did, then load it as the server does
    monkeypatch.setattr(
        versions,
        "_check_ruleset",
        lambda text, source, resolve, published=False: versions.check_ruleset(
            text, source, resolve, published=True
        ),
    )
    version = versions.publish(session, tenant.id, "purchasing", "ann", text=FINER_THAN_CENTS)
    monkeypatch.undo()
    versions.publish(session, tenant.id, "purchasing", "ann", text=V1)
    # rolling back to it publishes its text again, as it was accepted then
    again = versions.rollback(session, tenant.id, "purchasing", version.number, "ann")
    assert again.text == FINER_THAN_CENTS
    policy = versions.policy_for(version)
    directory = {
        "companies": {"acme": {"name": "Acme"}},
        "accounts": {
            "sam": {"memberships": [{"company": "acme", "role": "user"}]},
            "mia": {"memberships": [{"company": "acme", "role": "manager"}]},
        },
    }
    memory = MemoryDirectory.from_dict(directory)
    assert policy.evaluate({"buyer": "sam", "total": "100.13"}, memory).outcome == "pending"
    assert policy.evaluate({"buyer": "sam", "total": "100.12"}, memory).outcome == "approved"


def test_a_transaction_takes_the_active_versions_of_the_rules_version_it_reads(session, tenant):
    """A submit is handed a tenant whose counters may be a moment old (the key cache): what it
    records is what its own transaction reads, and never what a transaction of its own wrote
    (not committed yet, so no per-process cache may keep it)."""
    first = versions.publish(session, tenant.id, "purchasing", "ann", text=V1)
    assert versions.transaction_active_versions(session, tenant) is None  # it published
    session.commit()
    given = SimpleNamespace(id=tenant.id, rules_version=0, created_at=tenant.created_at)
    active = versions.transaction_active_versions(session, given)
    assert active is not None
    assert (active["purchasing"].id, active["purchasing"].number) == (first.id, 1)

    second = versions.publish(session, tenant.id, "purchasing", "ann", text=V2)
    assert versions.transaction_active_versions(session, given) is None
    session.commit()
    active = versions.transaction_active_versions(session, given)
    assert (active["purchasing"].id, active["purchasing"].number) == (second.id, 2)
    assert versions.cached_policy(session, active["purchasing"]).hash == (
        versions.policy_for(second, session).hash
    )


def test_a_rules_version_another_statement_read_is_not_read_again(session, tenant):
    """A submit reads the rules version with its search for an earlier submission; its
    evaluation then takes the active versions of that number without a query of its own,
    unless the transaction has since written the tenant (a publish)."""
    first = versions.publish(session, tenant.id, "purchasing", "ann", text=V1)
    session.commit()
    versions.transaction_active_versions(session, tenant)  # the process's cache is warm
    session.commit()
    rules_version = tenant.rules_version  # as the submit's statement read it
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(session.connection(), "before_cursor_execute", listener)
    try:
        versions.note_rules_version(session, tenant.id, rules_version)
        active = versions.transaction_active_versions(session, tenant)
        assert statements == []
        assert (active["purchasing"].id, active["purchasing"].number) == (first.id, 1)

        versions.publish(session, tenant.id, "purchasing", "ann", text=V2)
        assert versions.transaction_active_versions(session, tenant) is None
    finally:
        event.remove(session.connection(), "before_cursor_execute", listener)
    session.commit()
    # the note lived as long as its transaction: the next one reads the number again
    assert versions.transaction_active_versions(session, tenant)["purchasing"].number == 2


def test_an_active_version_knows_its_parents(session, tenant):
    versions.publish(session, tenant.id, "purchasing", "ann", text=V1)
    versions.publish(
        session,
        tenant.id,
        "marketing",
        "ann",
        text="ruleset: marketing\nextends: purchasing\n",
    )
    session.commit()
    active = versions.transaction_active_versions(session, tenant)
    child, base = active["marketing"], active["purchasing"]
    assert child.parents == (base,) and base.parents == ()
    assert versions.parent_chain(session, child) == [base]
    stored = versions.active_version(session, tenant.id, "marketing")
    assert versions.cached_policy(session, child).hash == versions.policy_for(stored, session).hash
