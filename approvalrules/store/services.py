"""The directory rules, in one place, and the writes that obey them.

Every write goes through :class:`DirectoryService`: upserts by external id
(what the API and the importer call) and the named operations (invite,
accept, add to group, delete group, deactivate...).  A broken rule raises
:class:`approvalrules.errors.DirectoryError` with a code and a message that
says why; every change that happens writes an :class:`AuditEvent`.  An upsert
that changes nothing writes nothing, so loading the same fixture twice is a
no-op.

Rules enforced here:

* ``master_and_member`` -- an account is master of a company or a member of
  one of its groups, never both (a CHECK constraint backs it up);
* ``already_in_group`` -- one group at a time: with the tenant setting
  ``groups.one_per_account`` (default true) across all the account's
  memberships, otherwise within a membership (its single group slot);
  ``move=True`` moves instead of refusing;
* invitations -- ``invite`` creates an ``invited`` membership, which only
  ``accept`` activates (``decline`` declines); ``not_invited`` otherwise;
* group deletion -- policy ``remove_members`` | ``move_to_company`` |
  ``refuse_if_members`` (tenant setting ``groups.delete_policy``, default
  ``refuse_if_members``);
* ``approver_has_pending`` -- an account that is an eligible approver of
  pending approval requests cannot be deactivated or removed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, true
from sqlalchemy.orm import Session, joinedload

from ..errors import DirectoryError, NotFound
from .db import transaction_memo
from .models import (
    ADMIN_ROLES,
    MEMBERSHIP_STATUSES,
    Account,
    AdminUser,
    ApiKey,
    ApprovalEligibility,
    ApprovalRequest,
    Assignment,
    AuditEvent,
    Company,
    Delegation,
    Group,
    Membership,
    Order,
    Tenant,
    utcnow,
)

UNSET: Any = type("Unset", (), {"__repr__": lambda self: "UNSET", "__bool__": lambda self: False})()

GROUP_DELETE_POLICIES = ("remove_members", "move_to_company", "refuse_if_members")


# -- tenants ---------------------------------------------------------------------------------


def resolve_tenant(session: Session, tenant: Tenant | int | str) -> Tenant:
    """A tenant from itself, its id or its slug; NotFound otherwise."""
    if isinstance(tenant, Tenant):
        return tenant
    if isinstance(tenant, int):
        found = session.get(Tenant, tenant)
    else:
        found = session.scalar(select(Tenant).where(Tenant.slug == tenant))
    if found is None:
        raise NotFound("unknown_tenant", f"no tenant {tenant!r}")
    return found


def ensure_tenant(
    session: Session,
    slug: str,
    name: str | None = None,
    settings: Mapping[str, Any] | None = None,
    actor: str = "system",
) -> Tenant:
    """Get or create the tenant ``slug``; update name and settings when given and different."""
    tenant = session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        tenant = Tenant(slug=slug, name=name or slug, settings=dict(settings or {}))
        session.add(tenant)
        session.flush()
        audit(session, tenant.id, actor, "tenant.created", "tenant", slug, {"name": tenant.name})
        return tenant
    changes = {}
    if name is not None and tenant.name != name:
        tenant.name = changes["name"] = name
    if settings is not None and (tenant.settings or {}) != dict(settings):
        tenant.settings = changes["settings"] = dict(settings)
    if changes:
        audit(session, tenant.id, actor, "tenant.updated", "tenant", slug, changes)
    return tenant


def audit(
    session: Session,
    tenant_id: int | None,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    data: Mapping[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(
        tenant_id=tenant_id,
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=str(subject_id),
        data=_jsonable(data or {}),
    )
    session.add(event)
    return event


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# -- API keys and admin users ----------------------------------------------------------------

API_KEY_PREFIX_LENGTH = 8


def _hash_token(token: str) -> str:
    # API keys are 32 random bytes: a fast hash is enough, unlike passwords
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_key(
    session: Session, tenant: Tenant, name: str = "", actor: str = "system"
) -> tuple[ApiKey, str]:
    """Create a key; the plain key is returned here once and never stored."""
    prefix = secrets.token_hex(API_KEY_PREFIX_LENGTH // 2)
    token = secrets.token_urlsafe(32)
    key = ApiKey(tenant_id=tenant.id, name=name, prefix=prefix, hash=_hash_token(token))
    session.add(key)
    session.flush()
    audit(session, tenant.id, actor, "api_key.created", "api_key", prefix, {"name": name})
    return key, f"ar_{prefix}_{token}"


def ensure_api_key(
    session: Session, tenant: Tenant, plain: str, name: str = "development"
) -> ApiKey:
    """Make ``plain`` (``ar_<prefix>_<token>``) a live key of ``tenant``: for development set-ups only,
    where a known key saves copying a fresh one after every reset."""
    try:
        marker, prefix, token = plain.split("_", 2)
    except ValueError:
        raise DirectoryError("invalid_api_key", "a key reads ar_<8 hex digits>_<token>") from None
    if marker != "ar" or len(prefix) != API_KEY_PREFIX_LENGTH or len(token) < 16:
        raise DirectoryError(
            "invalid_api_key", "a key reads ar_<8 hex digits>_<token of 16 characters or more>"
        )
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None:
        key = ApiKey(tenant_id=tenant.id, name=name, prefix=prefix, hash=_hash_token(token))
        session.add(key)
        session.flush()
        audit(session, tenant.id, "system", "api_key.created", "api_key", prefix, {"name": name})
    elif key.tenant_id != tenant.id or not hmac.compare_digest(key.hash, _hash_token(token)):
        raise DirectoryError("api_key_taken", f"another key already uses the prefix {prefix}")
    return key


def find_api_key(session: Session, plain: str) -> ApiKey | None:
    """The live key matching ``plain`` (``ar_<prefix>_<token>``), or None."""
    try:
        marker, prefix, token = plain.split("_", 2)
    except (AttributeError, ValueError):
        return None
    if marker != "ar":
        return None
    # the tenant comes in the same query: every authenticated request needs it next
    key = session.scalar(
        select(ApiKey).where(ApiKey.prefix == prefix).options(joinedload(ApiKey.tenant))
    )
    if key is None or key.revoked_at is not None:
        return None
    return key if hmac.compare_digest(key.hash, _hash_token(token)) else None


def revoke_api_key(session: Session, key: ApiKey, actor: str = "system") -> None:
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        audit(session, key.tenant_id, actor, "api_key.revoked", "api_key", key.prefix)


def _password_hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()


def create_admin_user(
    session: Session,
    tenant: Tenant,
    login: str,
    password: str,
    role: str = "viewer",
    actor: str = "system",
) -> AdminUser:
    if role not in ADMIN_ROLES:
        raise DirectoryError(
            "invalid_role", f"admin role must be one of {', '.join(ADMIN_ROLES)}, not {role!r}"
        )
    user = AdminUser(
        tenant_id=tenant.id, login=login, password_hash=_password_hasher().hash(password), role=role
    )
    session.add(user)
    session.flush()
    audit(session, tenant.id, actor, "admin_user.created", "admin_user", login, {"role": role})
    return user


def verify_admin_password(user: AdminUser, password: str) -> bool:
    """Check a password; rehash in place when the argon2 parameters have changed."""
    from argon2.exceptions import InvalidHashError, VerificationError

    hasher = _password_hasher()
    try:
        hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    return True


# -- pending approvals -----------------------------------------------------------------------


def eligible_approver_ids(steps: Any, from_step: int = 0) -> set[str]:
    """External account ids named as eligible approvers in an approval request's steps.

    Tolerates the shapes a decision may use: ``eligible``/``approvers`` lists of
    ids or of ``{"account": id, ...}`` objects.
    """
    found: set[str] = set()
    if not isinstance(steps, list):
        return found
    for step in steps[from_step:]:
        if not isinstance(step, Mapping):
            continue
        for key in ("eligible", "approvers", "eligible_approvers"):
            for entry in step.get(key) or ():
                if isinstance(entry, str):
                    found.add(entry)
                elif isinstance(entry, Mapping):
                    ident = entry.get("account") or entry.get("account_id") or entry.get("id")
                    if isinstance(ident, str):
                        found.add(ident)
    return found


# -- the directory ---------------------------------------------------------------------------


class DirectoryService:
    """Directory writes for one tenant, each checked against the rules above."""

    def __init__(self, session: Session, tenant: Tenant | int | str, actor: str = "system"):
        self.session = session
        self.tenant = resolve_tenant(session, tenant)
        self.actor = actor
        self._companies: dict[str, Company] = {}
        self._accounts: dict[str, Account] = {}

    # lookups

    def company(self, external_id: str) -> Company:
        company = self._find_company(external_id)
        if company is None:
            raise DirectoryError("unknown_company", f"no company {external_id!r}")
        return company

    def account(self, external_id: str) -> Account:
        account = self._find_account(external_id)
        if account is None:
            raise DirectoryError("unknown_account", f"no account {external_id!r}")
        return account

    def group(self, company: Company, external_id: str) -> Group:
        group = self.session.scalar(
            select(Group).where(Group.company_id == company.id, Group.external_id == external_id)
        )
        if group is None:
            raise DirectoryError(
                "unknown_group", f"no group {external_id!r} in company {company.external_id!r}"
            )
        return group

    def membership(self, account: Account, company: Company) -> Membership:
        membership = self._find_membership(account, company)
        if membership is None:
            raise DirectoryError(
                "not_a_member",
                f"account {account.external_id!r} is not a member of company {company.external_id!r}",
            )
        return membership

    # Companies and accounts are never deleted here, so found ones are kept for
    # the life of the service (a bulk load looks each up many times).

    def _find_company(self, external_id: str) -> Company | None:
        company = self._companies.get(external_id)
        if company is None:
            company = self.session.scalar(
                select(Company).where(
                    Company.tenant_id == self.tenant.id, Company.external_id == external_id
                )
            )
            if company is not None:
                self._companies[external_id] = company
        return company

    def _find_account(self, external_id: str) -> Account | None:
        account = self._accounts.get(external_id)
        if account is None:
            account = self.session.scalar(
                select(Account).where(
                    Account.tenant_id == self.tenant.id, Account.external_id == external_id
                )
            )
            if account is not None:
                self._accounts[external_id] = account
        return account

    def _find_membership(self, account: Account, company: Company) -> Membership | None:
        return self.session.scalar(
            select(Membership).where(
                Membership.account_id == account.id, Membership.company_id == company.id
            )
        )

    def _audit(
        self, action: str, subject_type: str, subject_id: str, data: Mapping[str, Any] | None = None
    ) -> None:
        # every directory change passes here: a new directory version retires the
        # snapshots that processes cache (approvalrules.store.directory.snapshot).
        # Once per transaction, in SQL: two concurrent changes make two versions,
        # never one number naming two directories.
        bumped = transaction_memo(self.session).setdefault("directory_bumped", set())
        if self.tenant.id not in bumped:
            self.tenant.directory_version = Tenant.directory_version + 1
            self.session.flush()
            bumped.add(self.tenant.id)
        audit(self.session, self.tenant.id, self.actor, action, subject_type, subject_id, data)

    @staticmethod
    def _apply(obj: Any, values: Mapping[str, Any]) -> dict[str, Any]:
        changes = {}
        for key, value in values.items():
            if value is UNSET:
                continue
            if getattr(obj, key) != value:
                setattr(obj, key, value)
                changes[key] = value
        return changes

    # companies

    def upsert_company(
        self,
        external_id: str,
        *,
        name: str = UNSET,
        parent: str | None = UNSET,
        ruleset: str | None = UNSET,
        attributes: Mapping[str, Any] = UNSET,
    ) -> Company:
        company = self._find_company(external_id)
        created = company is None
        if created:
            company = Company(
                tenant_id=self.tenant.id, external_id=external_id, name=external_id, attributes={}
            )
            self.session.add(company)
        values: dict[str, Any] = {"name": name, "ruleset_name": ruleset}
        if attributes is not UNSET:
            values["attributes"] = dict(attributes or {})
        if parent is not UNSET:
            values["parent_id"] = self._parent_id(external_id, parent)
        changes = self._apply(company, values)
        if created or changes:
            self.session.flush()
            self._audit(
                "company.created" if created else "company.updated", "company", external_id, changes
            )
        return company

    def _parent_id(self, external_id: str, parent: str | None) -> int | None:
        if parent is None:
            return None
        node = self.company(parent)
        seen = {external_id}
        while node is not None:
            if node.external_id in seen:
                raise DirectoryError(
                    "company_cycle",
                    f"company {external_id!r} cannot have parent {parent!r}: the parent chain would loop",
                )
            seen.add(node.external_id)
            node = node.parent
        return self.company(parent).id

    # accounts

    def upsert_account(
        self,
        external_id: str,
        *,
        name: str = UNSET,
        email: str | None = UNSET,
        email_enabled: bool = UNSET,
        active: bool = UNSET,
    ) -> Account:
        account = self._find_account(external_id)
        created = account is None
        if created:
            account = Account(
                tenant_id=self.tenant.id,
                external_id=external_id,
                name=external_id,
                email_enabled=True,
                active=True,
            )
            self.session.add(account)
        elif active is False and account.active:
            self._refuse_if_pending(account, "deactivating it")
        changes = self._apply(
            account,
            {"name": name, "email": email, "email_enabled": email_enabled, "active": active},
        )
        if created or changes:
            self.session.flush()
            self._audit(
                "account.created" if created else "account.updated", "account", external_id, changes
            )
        return account

    def deactivate_account(self, external_id: str) -> Account:
        """Deactivate; refused while the account must still decide pending orders."""
        return self.upsert_account(external_id, active=False)

    # groups

    def upsert_group(self, company_id: str, external_id: str, *, name: str = UNSET) -> Group:
        company = self.company(company_id)
        group = self.session.scalar(
            select(Group).where(Group.company_id == company.id, Group.external_id == external_id)
        )
        created = group is None
        if created:
            group = Group(company_id=company.id, external_id=external_id, name=external_id)
            self.session.add(group)
        changes = self._apply(group, {"name": name})
        if created or changes:
            self.session.flush()
            self._audit(
                "group.created" if created else "group.updated",
                "group",
                f"{company_id}/{external_id}",
                changes,
            )
        return group

    def delete_group(self, company_id: str, external_id: str, policy: str | None = None) -> None:
        """Delete a group; its members are handled by ``policy`` (default: the tenant's setting)."""
        company = self.company(company_id)
        group = self.group(company, external_id)
        policy = policy or self.tenant.setting("groups.delete_policy", "refuse_if_members")
        if policy not in GROUP_DELETE_POLICIES:
            raise DirectoryError(
                "invalid_policy",
                f"group delete policy must be one of {', '.join(GROUP_DELETE_POLICIES)}, not {policy!r}",
            )
        members = self.session.scalars(
            select(Membership)
            .join(Account, Membership.account_id == Account.id)
            .where(Membership.group_id == group.id)
            .order_by(Account.external_id)
        ).all()
        names = [m.account.external_id for m in members]
        if members and policy == "refuse_if_members":
            raise DirectoryError(
                "group_has_members",
                f"group {external_id!r} of {company_id!r} still has {len(members)} member(s) ({', '.join(names)}); "
                "move them out first (the tenant's group delete policy is refuse_if_members)",
                details={"members": names},
            )
        if policy == "remove_members":
            for m in members:
                self._refuse_if_pending(
                    m.account,
                    f"removing it from {company_id!r} with group {external_id!r}",
                    company=company,
                )
        for m in members:
            m.group = None
            if policy == "remove_members":
                m.status = "inactive"
        self.session.delete(group)
        self.session.flush()
        self._audit(
            "group.deleted",
            "group",
            f"{company_id}/{external_id}",
            {"policy": policy, "members": names},
        )

    # memberships

    def upsert_membership(
        self,
        account_id: str,
        company_id: str,
        *,
        role: str = UNSET,
        group: str | None = UNSET,
        master: bool = UNSET,
        default: bool = UNSET,
        status: str = UNSET,
        settings: Mapping[str, Any] = UNSET,
        attributes: Mapping[str, Any] = UNSET,
        move: bool = False,
    ) -> Membership:
        account = self.account(account_id)
        company = self.company(company_id)
        membership = self._find_membership(account, company)
        created = membership is None
        if created:
            if role is UNSET:
                raise DirectoryError(
                    "missing_role",
                    f"a new membership of {account_id!r} in {company_id!r} needs a role",
                )
            membership = Membership(
                account=account,
                company=company,
                master=False,
                is_default=False,
                status="active",
                settings={},
                attributes={},
            )
        if status is not UNSET and status not in MEMBERSHIP_STATUSES:
            raise DirectoryError(
                "invalid_status",
                f"membership status must be one of {', '.join(MEMBERSHIP_STATUSES)}, not {status!r}",
            )
        target_group = (
            membership.group if group is UNSET else (self.group(company, group) if group else None)
        )
        target_master = membership.master if master is UNSET else bool(master)
        if target_master and target_group is not None:
            raise self._master_and_member(account_id, company_id, target_group.external_id)
        if not created and status in ("inactive", "declined") and membership.status == "active":
            self._refuse_if_pending(
                account, f"making its membership of {company_id!r} {status}", company=company
            )
        if target_group is not None and target_group is not membership.group:
            self._make_room_in_group(membership, target_group, move)
        if created:
            self.session.add(membership)
        values: dict[str, Any] = {
            "role": role,
            "master": master,
            "status": status,
            "is_default": default,
        }
        if group is not UNSET:
            values["group"] = target_group
        if settings is not UNSET:
            values["settings"] = dict(settings or {})
        if attributes is not UNSET:
            values["attributes"] = dict(attributes or {})
        changes = self._apply(membership, values)
        if "group" in changes:
            changes["group"] = target_group.external_id if target_group else None
        if membership.is_default and changes.get("is_default"):
            self._clear_other_defaults(membership)
        if created or changes:
            self.session.flush()
            self._audit(
                "membership.created" if created else "membership.updated",
                "membership",
                f"{account_id}@{company_id}",
                changes,
            )
        return membership

    def _master_and_member(self, account_id: str, company_id: str, group_id: str) -> DirectoryError:
        return DirectoryError(
            "master_and_member",
            f"account {account_id!r} cannot be both master of {company_id!r} and a member of its group {group_id!r}: "
            "an account is master or member, never both",
        )

    def _make_room_in_group(self, membership: Membership, group: Group, move: bool) -> None:
        """Enforce one group at a time; with ``move`` leave the other group(s) instead."""
        account = membership.account
        occupied = [membership] if membership.group is not None else []
        if self.tenant.setting("groups.one_per_account", True):
            occupied = [
                m
                for m in self.session.scalars(
                    select(Membership).where(
                        Membership.account_id == account.id, Membership.group_id.is_not(None)
                    )
                )
                if m.group is not None and m.group is not group
            ]
            if membership.group is not None and membership not in occupied:
                occupied.append(membership)
        occupied = [m for m in occupied if m.group is not group]
        if not occupied:
            return
        if not move:
            current = occupied[0]
            raise DirectoryError(
                "already_in_group",
                f"account {account.external_id!r} is already in group {current.group.external_id!r} of "
                f"{current.company.external_id!r}; a member is in one group at a time "
                f"(remove it from {current.group.external_id!r} first, or move it)",
                details={
                    "group": current.group.external_id,
                    "company": current.company.external_id,
                },
            )
        for m in occupied:
            if m is not membership:
                left = m.group.external_id
                m.group = None
                self._audit(
                    "membership.updated",
                    "membership",
                    f"{account.external_id}@{m.company.external_id}",
                    {"group": None, "left": left},
                )

    def _clear_other_defaults(self, membership: Membership) -> None:
        for other in self.session.scalars(
            select(Membership).where(
                Membership.account_id == membership.account_id,
                Membership.id != membership.id,
                Membership.is_default.is_(True),
            )
        ):
            other.is_default = False

    def add_to_group(
        self, account_id: str, company_id: str, group_id: str, move: bool = False
    ) -> Membership:
        """Put a member of the company into one of its groups (``move`` to leave the current one)."""
        membership = self.membership(self.account(account_id), self.company(company_id))
        if membership.master:
            raise self._master_and_member(account_id, company_id, group_id)
        return self.upsert_membership(account_id, company_id, group=group_id, move=move)

    def remove_from_group(self, account_id: str, company_id: str) -> Membership:
        self.membership(self.account(account_id), self.company(company_id))
        return self.upsert_membership(account_id, company_id, group=None)

    def set_master(self, account_id: str, company_id: str, master: bool = True) -> Membership:
        membership = self.membership(self.account(account_id), self.company(company_id))
        if master and membership.group is not None:
            raise self._master_and_member(account_id, company_id, membership.group.external_id)
        return self.upsert_membership(account_id, company_id, master=master)

    def invite(
        self, account_id: str, company_id: str, role: str, group: str | None = None, **fields: Any
    ) -> Membership:
        """An invited membership: it relates the account to nothing until accepted."""
        existing = self._find_membership(self.account(account_id), self.company(company_id))
        if existing is not None and existing.status in ("active", "invited"):
            raise DirectoryError(
                "already_member" if existing.status == "active" else "already_invited",
                f"account {account_id!r} is already {'a member of' if existing.status == 'active' else 'invited to'} {company_id!r}",
            )
        return self.upsert_membership(
            account_id, company_id, role=role, group=group, status="invited", **fields
        )

    def accept(self, account_id: str, company_id: str) -> Membership:
        return self._answer(account_id, company_id, "active")

    def decline(self, account_id: str, company_id: str) -> Membership:
        return self._answer(account_id, company_id, "declined")

    def _answer(self, account_id: str, company_id: str, status: str) -> Membership:
        membership = self.membership(self.account(account_id), self.company(company_id))
        if membership.status != "invited":
            verb = "accept" if status == "active" else "decline"
            raise DirectoryError(
                "not_invited",
                f"account {account_id!r} has no pending invitation to {company_id!r} (membership is {membership.status}); nothing to {verb}",
            )
        membership.status = status
        self.session.flush()
        self._audit(
            "membership.accepted" if status == "active" else "membership.declined",
            "membership",
            f"{account_id}@{company_id}",
            {"status": status},
        )
        return membership

    def remove_membership(self, account_id: str, company_id: str) -> None:
        """Remove an account from a company (and its assignments there)."""
        account = self.account(account_id)
        company = self.company(company_id)
        membership = self.membership(account, company)
        self._refuse_if_pending(account, f"removing it from {company_id!r}", company=company)
        for a in self.session.scalars(
            select(Assignment).where(
                Assignment.company_id == company.id,
                (Assignment.account_id == account.id) | (Assignment.approver_id == account.id),
            )
        ):
            self.session.delete(a)
        self.session.delete(membership)
        self.session.flush()
        self._audit("membership.removed", "membership", f"{account_id}@{company_id}")

    # assignments

    def _find_assignment(
        self, approver: Account, account: Account, company: Company, step: str | None
    ) -> Assignment | None:
        return self.session.scalar(
            select(Assignment).where(
                Assignment.company_id == company.id,
                Assignment.approver_id == approver.id,
                Assignment.account_id == account.id,
                Assignment.step.is_(None) if step is None else Assignment.step == step,
            )
        )

    def upsert_assignment(
        self,
        approver_id: str,
        account_id: str,
        company_id: str,
        *,
        threshold: Decimal | None = UNSET,
        limit: Decimal | None = UNSET,
        step: str | None = None,
    ) -> Assignment:
        approver, account, company = (
            self.account(approver_id),
            self.account(account_id),
            self.company(company_id),
        )
        assignment = self._find_assignment(approver, account, company, step)
        created = assignment is None
        if created:
            assignment = Assignment(company=company, approver=approver, account=account, step=step)
            self.session.add(assignment)
        values = {}
        for key, value in (("threshold", threshold), ("limit", limit)):
            if value is not UNSET:
                values[key] = None if value is None else Decimal(value)
        changes = self._apply(assignment, values)
        if created or changes:
            self.session.flush()
            self._audit(
                "assignment.created" if created else "assignment.updated",
                "assignment",
                f"{approver_id}->{account_id}@{company_id}" + (f"#{step}" if step else ""),
                changes,
            )
        return assignment

    def upsert_delegation(
        self,
        delegator_id: str,
        delegate_id: str,
        valid_from,
        valid_until,
        *,
        company: str | None = None,
        step: str | None = None,
    ) -> Delegation:
        """Let ``delegate`` approve for ``delegator`` in a period; refused when it would close a loop."""
        from ..engine import directory as records
        from .directory import SqlDirectory

        delegator, delegate = self.account(delegator_id), self.account(delegate_id)
        company_row = self.company(company) if company else None
        if delegator.id == delegate.id:
            raise DirectoryError(
                "invalid_delegation", f"{delegator_id!r} cannot delegate to itself"
            )
        if valid_until < valid_from:
            raise DirectoryError(
                "invalid_delegation", f"valid_until {valid_until} is before valid_from {valid_from}"
            )
        existing = self.session.scalar(
            select(Delegation).where(
                Delegation.tenant_id == self.tenant.id,
                Delegation.delegator_id == delegator.id,
                Delegation.delegate_id == delegate.id,
                Delegation.company_id.is_(None)
                if company_row is None
                else Delegation.company_id == company_row.id,
                Delegation.step.is_(None) if step is None else Delegation.step == step,
            )
        )
        # one rule for loops, shared with the fixtures: check the whole graph with this edge in it
        current = [
            x
            for x in SqlDirectory(self.session, self.tenant.id)._delegations(true())
            if existing is None
            or (x.delegator_id, x.delegate_id, x.company_id, x.step)
            != (delegator_id, delegate_id, company, step)
        ]
        proposed = records.Delegation(
            delegator_id, delegate_id, valid_from, valid_until, company, step
        )
        everyone = current + [proposed]
        records.check_delegations(
            everyone,
            {x.company_id for x in everyone if x.company_id},
            {x.delegator_id for x in everyone} | {x.delegate_id for x in everyone},
        )
        if existing is None:
            existing = Delegation(
                tenant_id=self.tenant.id,
                delegator_id=delegator.id,
                delegate_id=delegate.id,
                company_id=company_row.id if company_row else None,
                step=step,
                valid_from=valid_from,
                valid_until=valid_until,
            )
            self.session.add(existing)
        elif (existing.valid_from, existing.valid_until) == (valid_from, valid_until):
            return existing  # unchanged: nothing to write, nothing to audit
        else:
            existing.valid_from, existing.valid_until = valid_from, valid_until
        self.session.flush()
        self._audit(
            "delegation.saved",
            "delegation",
            f"{delegator_id}->{delegate_id}",
            {
                "valid_from": valid_from.isoformat(),
                "valid_until": valid_until.isoformat(),
                "company": company,
                "step": step,
            },
        )
        return existing

    def delete_delegation(
        self,
        delegator_id: str,
        delegate_id: str,
        *,
        company: str | None = None,
        step: str | None = None,
    ) -> None:
        """Revoke the delegation with this key (the key of :meth:`upsert_delegation`).

        Approval requests already pending keep the approvers they were given
        when submitted; the delegation stops counting for what is decided next.
        """
        delegator, delegate = self.account(delegator_id), self.account(delegate_id)
        company_row = self.company(company) if company else None
        found = self.session.scalar(
            select(Delegation).where(
                Delegation.tenant_id == self.tenant.id,
                Delegation.delegator_id == delegator.id,
                Delegation.delegate_id == delegate.id,
                Delegation.company_id.is_(None)
                if company_row is None
                else Delegation.company_id == company_row.id,
                Delegation.step.is_(None) if step is None else Delegation.step == step,
            )
        )
        if found is None:
            scope = "".join(
                (f" in {company!r}" if company else "", f" for step {step!r}" if step else "")
            )
            raise DirectoryError(
                "unknown_delegation",
                f"{delegator_id!r} has no delegation to {delegate_id!r}{scope}",
            )
        period = {
            "valid_from": found.valid_from.isoformat(),
            "valid_until": found.valid_until.isoformat(),
        }
        self.session.delete(found)
        self.session.flush()
        self._audit(
            "delegation.deleted",
            "delegation",
            f"{delegator_id}->{delegate_id}",
            {**period, "company": company, "step": step},
        )

    def remove_assignment(
        self, approver_id: str, account_id: str, company_id: str, step: str | None = None
    ) -> None:
        """Remove an approver from an account; refused while orders of that account wait for them."""
        approver, account, company = (
            self.account(approver_id),
            self.account(account_id),
            self.company(company_id),
        )
        assignment = self._find_assignment(approver, account, company, step)
        if assignment is None:
            raise DirectoryError(
                "unknown_assignment",
                f"{approver_id!r} is not assigned to approve for {account_id!r} in {company_id!r}",
            )
        self._refuse_if_pending(
            approver, f"removing it as approver of {account_id!r}", company=company, buyer=account
        )
        self.session.delete(assignment)
        self.session.flush()
        self._audit(
            "assignment.removed",
            "assignment",
            f"{approver_id}->{account_id}@{company_id}" + (f"#{step}" if step else ""),
        )

    # pending approvals

    def pending_orders_for_approver(
        self, account: Account, company: Company | None = None, buyer: Account | None = None
    ) -> list[str]:
        """External ids of pending orders that ``account`` is (still) eligible to approve."""
        query = (
            select(ApprovalRequest.steps, ApprovalRequest.current_step, Order.external_id)
            .join(Order, ApprovalRequest.order_id == Order.id)
            .where(ApprovalRequest.tenant_id == self.tenant.id, ApprovalRequest.status == "pending")
            .order_by(Order.external_id)
        )
        if company is not None:
            query = query.where(Order.company_id == company.id)
        if buyer is not None:
            query = query.where(Order.buyer_id == buyer.id)
        # the eligibility index answers for requests the workflow wrote; the
        # steps JSON covers any request written without it
        indexed = query.join(
            ApprovalEligibility, ApprovalEligibility.request_id == ApprovalRequest.id
        ).where(
            ApprovalEligibility.tenant_id == self.tenant.id,
            ApprovalEligibility.account_id == account.external_id,
            ApprovalEligibility.step_index >= ApprovalRequest.current_step,
        )
        found = {order_id for _, _, order_id in self.session.execute(indexed)}
        unindexed = query.where(
            ~ApprovalRequest.id.in_(
                select(ApprovalEligibility.request_id).where(
                    ApprovalEligibility.tenant_id == self.tenant.id
                )
            )
        )
        found.update(
            order_id
            for steps, current_step, order_id in self.session.execute(unindexed)
            if account.external_id in eligible_approver_ids(steps, current_step or 0)
        )
        return sorted(found)

    def _refuse_if_pending(
        self,
        account: Account,
        doing: str,
        company: Company | None = None,
        buyer: Account | None = None,
    ) -> None:
        orders = self.pending_orders_for_approver(account, company, buyer)
        if orders:
            shown = ", ".join(orders[:5]) + (", ..." if len(orders) > 5 else "")
            raise DirectoryError(
                "approver_has_pending",
                f"account {account.external_id!r} is an approver of {len(orders)} pending order(s) ({shown}); "
                f"refusing {doing}: decide or reassign those orders first",
                details={"orders": orders},
            )

    # fixtures

    def load_records(self, records: Mapping[str, Iterable[Any]]) -> None:
        """Upsert the records of ``approvalrules.engine.directory.records_from_dict``.

        Members whose group changes leave their old group first, so a fixture
        that moves people between groups loads; one that puts an account in two
        groups breaks the one-group rule and is refused.
        """
        companies = list(records.get("companies", ()))
        for c in companies:
            self.upsert_company(c.id, name=c.name, ruleset=c.ruleset, attributes=dict(c.attributes))
        for c in companies:
            self.upsert_company(c.id, parent=c.parent_id)
        for g in records.get("groups", ()):
            self.upsert_group(g.company_id, g.id, name=g.name)
        for a in records.get("accounts", ()):
            self.upsert_account(
                a.id, name=a.name, email=a.email, email_enabled=a.email_enabled, active=a.active
            )
        memberships = list(records.get("memberships", ()))
        # leave groups before joining others, so a fixture that swaps two members loads
        for m in memberships:
            existing = self._find_membership(self.account(m.account_id), self.company(m.company_id))
            if (
                existing is not None
                and existing.group is not None
                and existing.group.external_id != m.group
            ):
                self.upsert_membership(m.account_id, m.company_id, group=None)
        for m in memberships:
            self.upsert_membership(
                m.account_id,
                m.company_id,
                role=m.role,
                group=m.group,
                master=m.master,
                default=m.default,
                status=m.status,
                settings=dict(m.settings),
                attributes=dict(m.attributes),
            )
        for a in records.get("assignments", ()):
            self.upsert_assignment(
                a.approver_id,
                a.account_id,
                a.company_id,
                threshold=a.threshold,
                limit=a.limit,
                step=a.step,
            )
        for x in records.get("delegations", ()):
            self.upsert_delegation(
                x.delegator_id,
                x.delegate_id,
                x.valid_from,
                x.valid_until,
                company=x.company_id,
                step=x.step,
            )

    def load_fixture(self, data: Mapping[str, Any]) -> None:
        """Upsert a directory fixture (the format of ``schemas/directory.schema.json``)."""
        from ..engine.directory import records_from_dict

        self.load_records(records_from_dict(data))
