"""SQLAlchemy models: every table of the product, per tenant.

Internal primary keys are integers; the ids the storefront and the engine see
are the ``external_id`` columns (unique per tenant, or per company for groups).
Money is ``Numeric(18, 4)``; JSON is JSONB on PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    bindparam,
    event,
    update,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from ..engine.directory import CONTACT_KINDS
from ..errors import Conflict
from .meta import Base

#: JSON everywhere, JSONB where the database has it
Json = JSON().with_variant(JSONB(), "postgresql")
Money = Numeric(18, 4)

MEMBERSHIP_STATUSES = ("active", "invited", "declined", "inactive")
ADMIN_ROLES = ("owner", "editor", "viewer")
#: what an API key may do (docs/security.md "API key scopes"; the grants are in store/services.py)
API_KEY_SCOPES = ("storefront", "merchant", "read_only")
VERSION_STATUSES = ("draft", "published", "retired")
REQUEST_STATUSES = ("pending", "approved", "rejected", "expired", "withdrawn")
ACTION_KINDS = ("approve", "reject", "reverse")
LEDGER_KINDS = ("draw", "release")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _one_of(column: str, values: tuple[str, ...], name: str | None = None) -> CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=name or column)


def _fk(target: str, ondelete: str = "CASCADE") -> ForeignKey:
    return ForeignKey(target, ondelete=ondelete)


class Tenant(Base):
    """A merchant; the isolation boundary.  ``settings`` holds directory policies
    such as ``{"groups": {"one_per_account": true, "delete_policy": "remove_members"}}``."""

    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    settings: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    #: bumped by every directory change: names the snapshot a process may cache
    directory_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: bumped by every change of an active rule-set version (publish, rollback, retire):
    #: names the active versions a process may cache
    rules_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def setting(self, dotted: str, default: Any = None) -> Any:
        """A setting by dotted path (``groups.one_per_account``); flat dotted keys work too."""
        settings = self.settings or {}
        if dotted in settings:
            return settings[dotted]
        node: Any = settings
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node


class ApiKey(Base):
    """A storefront's key: only a prefix (to find it) and the sha256 of the token are kept.

    ``scope`` says what the key may do: ``storefront`` (evaluate, orders, approvals),
    ``merchant`` (also held orders, rule sets and the directory) or ``read_only`` (rule sets,
    their versions and the directory, read only: QA's remote diff).
    """

    __tablename__ = "api_keys"
    __table_args__ = (_one_of("scope", API_KEY_SCOPES),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(_fk("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    hash: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(16), default="storefront")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: requests a minute this key may make; None: the service's default
    #: (``approvalrules.api.rate_per_minute``)
    rate_per_minute: Mapped[int | None] = mapped_column(Integer)

    tenant: Mapped[Tenant] = relationship()


class AdminUser(Base):
    """A merchant's admin login; the password is hashed with argon2."""

    __tablename__ = "admin_users"
    __table_args__ = (UniqueConstraint("tenant_id", "login"), _one_of("role", ADMIN_ROLES))

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(_fk("tenants.id"))
    login: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="viewer")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: a session cookie names the generation it was issued in; logging out moves this on,
    #: so a copy of the cookie taken before is worthless (the cookie alone cannot be revoked)
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    tenant: Mapped[Tenant] = relationship()


class Company(Base):
    __tablename__ = "companies"
    __table_args__ = (UniqueConstraint("tenant_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(_fk("tenants.id"))
    external_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[int | None] = mapped_column(_fk("companies.id", "SET NULL"), index=True)
    ruleset_name: Mapped[str | None] = mapped_column(String(200))
    attributes: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    parent: Mapped[Company | None] = relationship(remote_side=[id])


class Location(Base):
    __tablename__ = "locations"
    __table_args__ = (UniqueConstraint("company_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(_fk("companies.id"))
    external_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200), default="")
    address: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("tenant_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(_fk("tenants.id"))
    external_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    email_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CompanyContact(Base):
    """An account assigned to a company as its primary, billing or logistics contact."""

    __tablename__ = "company_contacts"
    __table_args__ = (
        UniqueConstraint("company_id", "account_id", "kind"),
        _one_of("kind", CONTACT_KINDS),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(_fk("companies.id"))
    account_id: Mapped[int] = mapped_column(_fk("accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))


class Group(Base):
    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("company_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(_fk("companies.id"))
    external_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200), default="")

    company: Mapped[Company] = relationship()


class Membership(Base):
    """Account x company; ``group_id`` is the one group slot of the membership."""

    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("account_id", "company_id"),
        _one_of("status", MEMBERSHIP_STATUSES),
        CheckConstraint("NOT (master AND group_id IS NOT NULL)", name="master_or_member"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(_fk("accounts.id"))
    company_id: Mapped[int] = mapped_column(_fk("companies.id"), index=True)
    role: Mapped[str] = mapped_column(String(100))
    group_id: Mapped[int | None] = mapped_column(_fk("groups.id", "SET NULL"), index=True)
    master: Mapped[bool] = mapped_column(Boolean, default=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="active")
    settings: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    attributes: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)

    account: Mapped[Account] = relationship()
    company: Mapped[Company] = relationship()
    group: Mapped[Group | None] = relationship()


class Assignment(Base):
    """Approver -> account within a company, with optional threshold, limit and step."""

    __tablename__ = "assignments"
    __table_args__ = (
        Index("ix_assignments_account", "company_id", "account_id"),
        Index("ix_assignments_approver", "company_id", "approver_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(_fk("companies.id"))
    approver_id: Mapped[int] = mapped_column(_fk("accounts.id"))
    account_id: Mapped[int] = mapped_column(_fk("accounts.id"))
    threshold: Mapped[Decimal | None] = mapped_column(Money)
    limit: Mapped[Decimal | None] = mapped_column(Money)
    step: Mapped[str | None] = mapped_column(String(200))

    approver: Mapped[Account] = relationship(foreign_keys=[approver_id])
    account: Mapped[Account] = relationship(foreign_keys=[account_id])
    company: Mapped[Company] = relationship()


class Delegation(Base):
    """Out of office: ``delegate`` approves for ``delegator``.

    From ``valid_from`` to ``valid_until``, both inclusive.
    """

    __tablename__ = "delegations"
    __table_args__ = (
        Index("ix_delegations_delegator", "tenant_id", "delegator_id"),
        CheckConstraint("valid_from <= valid_until", name="valid_period"),
        CheckConstraint("delegator_id <> delegate_id", name="not_self"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(_fk("tenants.id"))
    delegator_id: Mapped[int] = mapped_column(_fk("accounts.id"))
    delegate_id: Mapped[int] = mapped_column(_fk("accounts.id"))
    company_id: Mapped[int | None] = mapped_column(_fk("companies.id"))
    step: Mapped[str | None] = mapped_column(String(200))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    delegator: Mapped[Account] = relationship(foreign_keys=[delegator_id])
    delegate: Mapped[Account] = relationship(foreign_keys=[delegate_id])
    company: Mapped[Company | None] = relationship()


SLICE_VERSION_KINDS = ("company", "account")


class SliceVersion(Base):
    """The tenant's ``directory_version`` at which a company's slice (``kind`` "company") or an
    account's memberships ("account") last changed; no row reads as 0.

    Written at the commit of the change (``store/slice_versions.py``), with the tenant's
    version that commit ends at, so no two changes of a row share a value and a row's
    version only grows: what changed after version N is what has a version above N.  No
    foreign key:
    writing a row never waits on the company or account row (which directory writes lock
    before they bump the tenant's version), and a row outlives a deleted company, so the
    slices of its descendants see that it went.
    """

    __tablename__ = "slice_versions"
    __table_args__ = (
        _one_of("kind", SLICE_VERSION_KINDS),
        # what changed in a tenant since a version: one range of this index
        Index("ix_slice_versions_tenant_version", "tenant_id", "version"),
    )

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    row_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    tenant_id: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)


class RuleSet(Base):
    """A named rule set: its editable draft and a pointer to the active version."""

    __tablename__ = "rule_sets"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(_fk("tenants.id"))
    name: Mapped[str] = mapped_column(String(200))
    extends: Mapped[str | None] = mapped_column(String(200))
    # use_alter: rule_sets and rule_set_versions reference each other
    active_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("rule_set_versions.id", ondelete="SET NULL", use_alter=True)
    )
    draft_text: Mapped[str | None] = mapped_column(Text)
    draft_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    active_version: Mapped[RuleSetVersion | None] = relationship(
        foreign_keys=[active_version_id], post_update=True
    )


class RuleSetVersion(Base):
    """An immutable, numbered publication of a rule set: the YAML text verbatim."""

    __tablename__ = "rule_set_versions"
    __table_args__ = (
        UniqueConstraint("ruleset_id", "number"),
        _one_of("status", VERSION_STATUSES),
        Index("ix_rule_set_versions_hash", "content_hash"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ruleset_id: Mapped[int] = mapped_column(_fk("rule_sets.id"))
    number: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(128))
    #: the parent rule set this version names in ``extends`` (its active version applies)
    extends: Mapped[str | None] = mapped_column(String(200))
    author: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="draft")

    ruleset: Mapped[RuleSet] = relationship(foreign_keys=[ruleset_id])

    @validates("text", "content_hash", "number")
    def _immutable_once_published(self, key: str, value: Any) -> Any:
        # The database refuses it too (a trigger); this names the problem earlier.
        state = sa_inspect(self)
        if state.persistent and self.status != "draft" and getattr(self, key) != value:
            raise Conflict(
                "immutable_version",
                f"version {self.number} is {self.status}: its {key} can never change; "
                "publish a new version instead",
            )
        return value


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("tenant_id", "external_id"),
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_orders_idempotency_key"),
        Index("ix_orders_tenant_status_created", "tenant_id", "status", "created_at"),
        Index("ix_orders_buyer", "buyer_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(_fk("tenants.id"))
    external_id: Mapped[str] = mapped_column(String(200))
    company_id: Mapped[int | None] = mapped_column(_fk("companies.id", "SET NULL"), index=True)
    buyer_id: Mapped[int | None] = mapped_column(_fk("accounts.id", "SET NULL"))
    payload: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    total: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    type: Mapped[str] = mapped_column(String(32), default="regular")
    status: Mapped[str] = mapped_column(String(32))
    decision: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    #: decisions this order had before a re-evaluation (new rule-set version, approver edit),
    #: oldest first
    previous_decisions: Mapped[list[Any] | None] = mapped_column(Json)
    ruleset_version_id: Mapped[int | None] = mapped_column(_fk("rule_set_versions.id", "RESTRICT"))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    company: Mapped[Company | None] = relationship()
    buyer: Mapped[Account | None] = relationship()
    ruleset_version: Mapped[RuleSetVersion | None] = relationship()
    #: its approval request, if its decision needed one (the request that opens it sets it)
    approval_request: Mapped[ApprovalRequest | None] = relationship(
        back_populates="order",
        uselist=False,
        passive_deletes=True,  # the FK cascades
    )


class ApprovalRequest(Base):
    """The lifecycle of a pending order.

    ``steps`` is the decision's approval chain (name, required, eligible
    approvers by external account id).  ``version_id`` is SQLAlchemy's
    optimistic-lock counter: every UPDATE is conditional on it, so two
    approvers racing on the same request cannot both decide it.
    """

    __tablename__ = "approval_requests"
    __table_args__ = (
        _one_of("status", REQUEST_STATUSES),
        Index("ix_approval_requests_inbox", "tenant_id", "status", "created_at"),
        Index("ix_approval_requests_expiry", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(_fk("tenants.id"))
    order_id: Mapped[int] = mapped_column(_fk("orders.id"), unique=True)
    ruleset_version_id: Mapped[int | None] = mapped_column(_fk("rule_set_versions.id", "RESTRICT"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    current_step: Mapped[int] = mapped_column(Integer, default=0)
    #: bumped by a reversal, so an approver may act again on the reopened request
    generation: Mapped[int] = mapped_column(Integer, default=0)
    steps: Mapped[list[Any]] = mapped_column(Json, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version_id: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: when the reminder job last reminded this request's approvers
    last_reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: when the current step became current (escalation timeouts count from it); null: created_at
    step_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    order: Mapped[Order] = relationship(back_populates="approval_request")
    actions: Mapped[list[ApprovalAction]] = relationship(
        back_populates="request", order_by="ApprovalAction.id", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version_id}


class ApprovalEligibility(Base):
    """Who may act on which step of a pending request: the approver inbox's index.

    One row per (request, step, eligible approver), written with the request;
    ``account_id`` is the external account id, as in the decision's steps.
    """

    __tablename__ = "approval_eligibility"
    __table_args__ = (
        UniqueConstraint("request_id", "step_index", "account_id"),
        # the inbox: one approver's requests by status, newest first, from the index alone
        Index(
            "ix_approval_eligibility_approver",
            "tenant_id",
            "account_id",
            "status",
            "created_at",
            "request_id",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(_fk("approval_requests.id"))
    tenant_id: Mapped[int] = mapped_column(_fk("tenants.id"))
    account_id: Mapped[str] = mapped_column(String(200))
    step_index: Mapped[int] = mapped_column(Integer, default=0)
    #: a copy of the request's status, kept equal by ``eligibility_status`` (run by every write
    #: of the request's status)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


#: the statement of :func:`eligibility_status`, built once (building it cost more than running it);
#: its parameters are ``of_request`` and ``status``
ELIGIBILITY_STATUS = update(ApprovalEligibility.__table__).where(
    ApprovalEligibility.__table__.c.request_id == bindparam("of_request")
)


def eligibility_status(request_id: int, status: str) -> tuple[Any, dict[str, Any]]:
    """The UPDATE that copies a request's new ``status`` onto its eligibility rows, and its
    parameters: ``connection.execute(*eligibility_status(...))``."""
    # the inbox index carries the status so that it can answer alone: every write of a
    # request's status (the ORM's below, a Core update's) is followed by this one
    return ELIGIBILITY_STATUS, {"of_request": request_id, "status": status}


@event.listens_for(ApprovalRequest, "after_update")
def _copy_status_to_eligibility(mapper, connection, request) -> None:
    # in the same flush as the change
    history = sa_inspect(request).attrs.status.history
    if history.has_changes():
        connection.execute(*eligibility_status(request.id, request.status))


class ApprovalAction(Base):
    """One approver's act on one step.

    Unique per (request, step, approver, action, generation): approving twice
    counts once; after a reversal the request's generation moves on, so the
    same approver can approve the reopened request again.
    """

    __tablename__ = "approval_actions"
    __table_args__ = (
        UniqueConstraint(
            "request_id",
            "step",
            "approver_id",
            "action",
            "generation",
            name="uq_approval_actions_once",
        ),
        _one_of("action", ACTION_KINDS),
        Index("ix_approval_actions_approver", "approver_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(_fk("approval_requests.id"))
    step: Mapped[str] = mapped_column(String(200))
    approver_id: Mapped[int] = mapped_column(_fk("accounts.id", "RESTRICT"))
    on_behalf_of_id: Mapped[int | None] = mapped_column(_fk("accounts.id", "SET NULL"))
    action: Mapped[str] = mapped_column(String(16))
    generation: Mapped[int] = mapped_column(Integer, default=0)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    request: Mapped[ApprovalRequest] = relationship(back_populates="actions")
    approver: Mapped[Account] = relationship(foreign_keys=[approver_id])
    #: whom the approver acted for (a delegate's action)
    on_behalf_of: Mapped[Account | None] = relationship(foreign_keys=[on_behalf_of_id])


class BudgetLedger(Base):
    """Budget draws (approved orders) and releases, per scope and period (``2026-11``)."""

    __tablename__ = "budget_ledger"
    __table_args__ = (
        _one_of("kind", LEDGER_KINDS),
        Index("ix_budget_ledger_scope", "tenant_id", "company_id", "scope_key", "period_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(_fk("tenants.id"))
    company_id: Mapped[int] = mapped_column(_fk("companies.id"))
    scope_key: Mapped[str] = mapped_column(String(200))
    period_key: Mapped[str] = mapped_column(String(16))
    order_id: Mapped[int | None] = mapped_column(_fk("orders.id", "SET NULL"), index=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OutboxEvent(Base):
    """An e-mail or webhook to deliver, written in the same transaction as the change."""

    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_events_due", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(_fk("tenants.id"), index=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    event_type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    recipients: Mapped[list[Any]] = mapped_column(Json, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), default=utcnow
    )
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)


class AuditEvent(Base):
    """Who did what to which subject; append-only (a trigger refuses UPDATE and DELETE)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_tenant_created", "tenant_id", "created_at"),
        Index("ix_audit_events_subject", "tenant_id", "subject_type", "subject_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # no ON DELETE CASCADE: an audit row outlives nothing it describes by accident
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"))
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    subject_type: Mapped[str] = mapped_column(String(100))
    subject_id: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


DECISION_KINDS = ("evaluate", "submit")


class DecisionLogEntry(Base):
    """One decision the engine made for a storefront call, in the spirit of OPA's decision log.

    Written off the request path in batches (``approvalrules.decision_log = table``) and
    kept for ``approvalrules.decision_log.retention_days``.  The input is kept only as a
    digest: the order's body holds buyers' data, and the digest is enough to match a
    replayed order to its decision.
    """

    __tablename__ = "decision_log"
    __table_args__ = (
        _one_of("kind", DECISION_KINDS),
        Index("ix_decision_log_tenant_decided", "tenant_id", "decided_at"),
        Index("ix_decision_log_decided", "decided_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(_fk("tenants.id"))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(64))
    ruleset: Mapped[str] = mapped_column(String(200))
    version: Mapped[int | None] = mapped_column(Integer)
    policy_hash: Mapped[str] = mapped_column(String(64))
    input_digest: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(32))
    steps: Mapped[list[Any]] = mapped_column(Json, default=list)
