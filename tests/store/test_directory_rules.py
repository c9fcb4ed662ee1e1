"""One test (at least) per directory rule, each asserting the error's code and message."""

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from approvalrules.engine.directory import records_from_dict
from approvalrules.errors import DirectoryError
from approvalrules.store.directory import SqlDirectory
from approvalrules.store.directory_base import eligible_approver_ids
from approvalrules.store.models import (
    ApprovalEligibility,
    ApprovalRequest,
    AuditEvent,
    Membership,
    Order,
)
from approvalrules.store.testing import load_fixture

ORG = {
    "companies": {
        "acme": {
            "name": "Acme",
            "groups": {"marketing": {"name": "Marketing"}, "ops": {"name": "Ops"}},
        },
        "globex": {"name": "Globex", "groups": {"labs": {"name": "Labs"}}},
    },
    "accounts": {
        "master": {"memberships": [{"company": "acme", "role": "admin", "master": True}]},
        "ann": {"memberships": [{"company": "acme", "role": "approver", "group": "marketing"}]},
        "bob": {
            "memberships": [
                {"company": "acme", "role": "requisitioner", "group": "marketing"},
                {"company": "globex", "role": "buyer"},
            ]
        },
        "cid": {"memberships": [{"company": "acme", "role": "approver", "group": "ops"}]},
        "eve": {},
        "tom": {"memberships": [{"company": "acme", "role": "approver"}]},
    },
    "assignments": [{"approver": "tom", "account": "bob", "company": "acme", "limit": 5000}],
}


@pytest.fixture
def service(session, tenant):
    service = load_fixture(session, tenant, ORG, actor="admin@test")
    session.flush()
    return service


def error(fn, *args, **kwargs) -> DirectoryError:
    with pytest.raises(DirectoryError) as info:
        fn(*args, **kwargs)
    return info.value


def audit_count(session) -> int:
    session.flush()
    return session.scalar(select(func.count()).select_from(AuditEvent))


def group_of(service, account, company):
    return SqlDirectory(service.session, service.tenant.id).membership(account, company).group


# master or member, never both


def test_master_cannot_join_a_group(service):
    exc = error(service.add_to_group, "master", "acme", "ops")
    assert exc.code == "master_and_member"
    assert exc.message == (
        "account 'master' cannot be both master of 'acme' and a member of its group 'ops': "
        "an account is master or member, never both"
    )


def test_group_member_cannot_become_master(service):
    exc = error(service.set_master, "ann", "acme")
    assert exc.code == "master_and_member"
    assert (
        "account 'ann' cannot be both master of 'acme' and a member of its group 'marketing'"
        in exc.message
    )


def test_upsert_refuses_master_with_group(service):
    exc = error(service.upsert_membership, "eve", "acme", role="admin", master=True, group="ops")
    assert exc.code == "master_and_member"


def test_leaving_the_group_then_becoming_master_is_fine(service):
    service.remove_from_group("ann", "acme")
    assert service.set_master("ann", "acme").master is True


# one group at a time


def test_second_group_is_refused_naming_the_current_one(service):
    exc = error(service.add_to_group, "bob", "acme", "ops")
    assert exc.code == "already_in_group"
    assert exc.message == (
        "account 'bob' is already in group 'marketing' of 'acme'; "
        "a member is in one group at a time "
        "(remove it from 'marketing' first, or move it)"
    )
    assert group_of(service, "bob", "acme") == "marketing"


def test_move_moves(service, session):
    before = audit_count(session)
    service.add_to_group("bob", "acme", "ops", move=True)
    assert group_of(service, "bob", "acme") == "ops"
    assert audit_count(session) == before + 1


def test_one_group_across_companies_by_default(service):
    exc = error(service.add_to_group, "bob", "globex", "labs")
    assert exc.code == "already_in_group"
    assert "already in group 'marketing' of 'acme'" in exc.message
    service.add_to_group("bob", "globex", "labs", move=True)
    assert group_of(service, "bob", "acme") is None
    assert group_of(service, "bob", "globex") == "labs"


def test_one_group_per_account_is_a_tenant_setting(service, tenant):
    tenant.settings = {"groups": {"one_per_account": False}}
    service.add_to_group("bob", "globex", "labs")
    assert (group_of(service, "bob", "acme"), group_of(service, "bob", "globex")) == (
        "marketing",
        "labs",
    )
    # still one slot per membership
    assert error(service.add_to_group, "bob", "acme", "ops").code == "already_in_group"


def test_adding_to_the_same_group_again_is_a_no_op(service, session):
    before = audit_count(session)
    service.add_to_group("bob", "acme", "marketing")
    assert audit_count(session) == before


# invitations


def test_invited_member_is_pending_until_accepted(service):
    service.invite("eve", "acme", "requisitioner", group="ops")
    membership = SqlDirectory(service.session, service.tenant.id).membership("eve", "acme")
    assert (membership.status, membership.active, membership.group) == ("invited", False, "ops")
    service.accept("eve", "acme")
    assert SqlDirectory(service.session, service.tenant.id).membership("eve", "acme").active


def test_declined_invitation(service):
    service.invite("eve", "acme", "requisitioner")
    assert service.decline("eve", "acme").status == "declined"
    exc = error(service.accept, "eve", "acme")
    assert exc.code == "not_invited"
    assert exc.message == (
        "account 'eve' has no pending invitation to 'acme' (membership is declined); "
        "nothing to accept"
    )
    service.invite("eve", "acme", "requisitioner")  # may be invited again


def test_cannot_accept_without_invitation(service):
    exc = error(service.accept, "ann", "acme")
    assert exc.code == "not_invited"
    assert exc.message == (
        "account 'ann' has no pending invitation to 'acme' (membership is active); "
        "nothing to accept"
    )


def test_cannot_invite_a_member(service):
    exc = error(service.invite, "ann", "acme", "approver")
    assert (exc.code, exc.message) == (
        "already_member",
        "account 'ann' is already a member of 'acme'",
    )


# group deletion policy


def test_refuse_if_members(service):
    exc = error(service.delete_group, "acme", "marketing", policy="refuse_if_members")
    assert exc.code == "group_has_members"
    assert exc.message == (
        "group 'marketing' of 'acme' still has 2 member(s) (ann, bob); move them out first "
        "(the tenant's group delete policy is refuse_if_members)"
    )


def test_refuse_if_members_is_the_default(service):
    assert error(service.delete_group, "acme", "marketing").code == "group_has_members"


def test_empty_group_can_always_be_deleted(service):
    service.upsert_group("acme", "empty")
    service.delete_group("acme", "empty")
    assert [
        g.id for g in SqlDirectory(service.session, service.tenant.id).groups_of_company("acme")
    ] == ["marketing", "ops"]


def test_move_to_company_keeps_members_without_group(service, tenant):
    tenant.settings = {"groups": {"delete_policy": "move_to_company"}}
    service.delete_group("acme", "marketing")
    directory = SqlDirectory(service.session, tenant.id)
    for name in ("ann", "bob"):
        membership = directory.membership(name, "acme")
        assert (membership.group, membership.status) == (None, "active")


def test_remove_members(service):
    service.delete_group("acme", "marketing", policy="remove_members")
    directory = SqlDirectory(service.session, service.tenant.id)
    assert directory.membership("ann", "acme").status == "inactive"
    assert directory.membership("bob", "acme").group is None


def test_unknown_policy(service):
    exc = error(service.delete_group, "acme", "ops", policy="shrug")
    assert exc.code == "invalid_policy"


# approvers with pending approvals


@pytest.fixture
def pending(service, session, tenant):
    """Bob's order o-1 waits for tom (assigned) or ann."""
    bob = service.account("bob")
    order = Order(
        tenant_id=tenant.id,
        external_id="o-1",
        company=service.company("acme"),
        buyer=bob,
        total=Decimal("3000"),
        currency="USD",
        status="pending",
    )
    request = ApprovalRequest(
        tenant_id=tenant.id,
        order=order,
        steps=[
            {
                "name": "line-manager",
                "required": 1,
                "eligible": [
                    {"account": "tom", "why": "assigned"},
                    {"account": "ann", "why": "role"},
                ],
            }
        ],
    )
    session.add_all([order, request])
    session.flush()
    return request


def test_cannot_deactivate_an_approver_with_pending_orders(service, pending):
    exc = error(service.deactivate_account, "tom")
    assert exc.code == "approver_has_pending"
    assert exc.message == (
        "account 'tom' is an approver of 1 pending order(s) (o-1); "
        "refusing deactivating it: decide or reassign those orders first"
    )
    assert exc.details == {"orders": ["o-1"]}
    assert service.account("tom").active is True


def test_cannot_remove_an_approver_with_pending_orders(service, pending):
    exc = error(service.remove_membership, "tom", "acme")
    assert exc.code == "approver_has_pending"
    assert "refusing removing it from 'acme'" in exc.message
    exc = error(service.remove_assignment, "tom", "bob", "acme")
    assert exc.code == "approver_has_pending"
    assert "refusing removing it as approver of 'bob'" in exc.message


def test_cannot_inactivate_the_membership_of_an_approver_with_pending_orders(service, pending):
    exc = error(service.upsert_membership, "ann", "acme", status="inactive")
    assert exc.code == "approver_has_pending"


def test_decided_orders_do_not_hold_approvers(service, pending, session):
    pending.status = "approved"
    session.flush()
    service.deactivate_account("tom")
    service.remove_membership("ann", "acme")
    assert service.account("tom").active is False


def test_pending_orders_elsewhere_do_not_block_removal_from_another_company(
    service, pending, session
):
    service.upsert_membership("tom", "globex", role="approver")
    service.remove_membership("tom", "globex")

    tom = service.account("tom")
    directory = SqlDirectory(session, service.tenant.id)
    assert directory.membership("tom", "globex") is None
    assert directory.membership("tom", "acme") is not None
    removed = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert (removed.action, removed.subject_id) == ("membership.removed", "tom@globex")
    # the pending order in acme is untouched: still pending, still waiting for tom
    session.refresh(pending)
    assert pending.status == "pending"
    assert pending.order.status == "pending"
    assert service.pending_orders_for_approver(tom) == ["o-1"]


def test_eligible_approvers_in_later_steps_only():
    steps = [{"eligible": ["a"]}, {"approvers": [{"account_id": "b"}, "c"]}]
    assert eligible_approver_ids(steps) == {"a", "b", "c"}
    assert eligible_approver_ids(steps, 1) == {"b", "c"}
    assert eligible_approver_ids(None) == set()


# upserts and audit


def test_upserts_by_external_id_are_idempotent(service, session):
    before = audit_count(session)
    service.load_records(records_from_dict(ORG))
    service.upsert_assignment("tom", "bob", "acme", limit=Decimal("5000"))
    assert audit_count(session) == before


def test_every_change_is_audited(service, session):
    service.upsert_account("eve", name="Eve Adams", email="eve@acme.test")
    event = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert (event.actor, event.action, event.subject_type, event.subject_id) == (
        "admin@test",
        "account.updated",
        "account",
        "eve",
    )
    assert event.data == {"name": "Eve Adams", "email": "eve@acme.test"}


def test_only_one_default_membership(service, session):
    service.upsert_membership("bob", "acme", default=True)
    service.upsert_membership("bob", "globex", default=True)
    defaults = session.scalars(
        select(Membership).where(
            Membership.account_id == service.account("bob").id, Membership.is_default.is_(True)
        )
    ).all()
    assert [m.company.external_id for m in defaults] == ["globex"]


def test_parent_cycle_is_refused(service):
    service.upsert_company("globex", parent="acme")
    exc = error(service.upsert_company, "acme", parent="globex")
    assert exc.code == "company_cycle"


def test_unknown_references(service):
    assert error(service.add_to_group, "nobody", "acme", "ops").message == "no account 'nobody'"
    assert error(service.add_to_group, "eve", "acme", "ops").code == "not_a_member"
    assert (
        error(service.add_to_group, "bob", "acme", "nope").message
        == "no group 'nope' in company 'acme'"
    )


def test_pending_check_uses_the_eligibility_index(service, session, tenant):
    order = Order(
        tenant_id=tenant.id,
        external_id="o-2",
        company=service.company("acme"),
        buyer=service.account("bob"),
        total=Decimal("10"),
        currency="USD",
        status="pending",
    )
    request = ApprovalRequest(
        tenant_id=tenant.id, order=order, steps=[{"name": "s", "required": 1, "approvers": []}]
    )
    session.add_all([order, request])
    session.flush()
    session.add(
        ApprovalEligibility(
            request_id=request.id, tenant_id=tenant.id, account_id="cid", step_index=0
        )
    )
    exc = error(service.deactivate_account, "cid")
    assert exc.details == {"orders": ["o-2"]}
    request.current_step = 1  # step 0 is done: cid is no longer needed
    session.flush()
    service.deactivate_account("cid")
