"""Tenants, the audit log, API keys and admin users.

The directory's writes and rules are in :mod:`approvalrules.store.directory_service`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from ..errors import DirectoryError, NotFound
from .models import ADMIN_ROLES, AdminUser, ApiKey, AuditEvent, Tenant, utcnow

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
    """Make ``plain`` (``ar_<prefix>_<token>``) a live key of ``tenant``.

    For development set-ups only, where a known key saves copying a fresh one
    after every reset.
    """
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


def _password_hasher() -> PasswordHasher:
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
    hasher = _password_hasher()
    try:
        hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    return True
