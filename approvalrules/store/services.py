"""Tenants, the audit log, API keys and admin users.

The directory's writes and rules are in :mod:`approvalrules.store.directory_service`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from ..errors import Conflict, DirectoryError, DirectoryValueError, NotFound
from .db import insert_rows
from .models import ADMIN_ROLES, API_KEY_SCOPES, AdminUser, ApiKey, AuditEvent, Tenant, utcnow

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


#: a tenant's slug: what the admin login and the CLI name it by
TENANT_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def create_tenant(
    session: Session,
    slug: str,
    name: str,
    owner_login: str,
    owner_password: str,
    actor: str = "system",
) -> tuple[Tenant, AdminUser]:
    """A new tenant and its first admin, an owner (who then adds users and keys in the admin).

    Refuses (409 ``tenant_exists``) a slug already taken: this never changes a tenant.
    """
    if not TENANT_SLUG.match(slug or ""):
        raise DirectoryValueError(
            "invalid_tenant_slug",
            f"a tenant slug is 1 to 64 lower-case letters, digits and '-', "
            f"starting with a letter or digit, not {slug!r}",
            path="slug",
        )
    if session.scalar(select(Tenant.id).where(Tenant.slug == slug)) is not None:
        raise Conflict("tenant_exists", f"tenant {slug!r} exists already; choose another slug")
    tenant = ensure_tenant(session, slug, name or slug, actor=actor)
    check_new_admin(session, tenant, owner_login, owner_password)
    owner = create_admin_user(session, tenant, owner_login, owner_password, "owner", actor=actor)
    return tenant, owner


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
) -> None:
    """Append one row to the audit log, written at once (a Core insert: the log is never read
    back in the transaction that writes it)."""
    insert_rows(
        session,
        AuditEvent,
        [
            {
                "tenant_id": tenant_id,
                "actor": actor,
                "action": action,
                "subject_type": subject_type,
                "subject_id": str(subject_id),
                "data": _jsonable(data or {}),
            }
        ],
    )


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


#: what each scope grants; every API view names the grant it needs (views/api.py ``api_grant``)
SCOPE_GRANTS = {
    "storefront": frozenset({"storefront"}),
    "merchant": frozenset({"storefront", "merchant", "read"}),
    "read_only": frozenset({"read"}),
}

#: what each scope lets a key do, in the words the admin and the error messages use
SCOPE_DESCRIPTIONS = {
    "storefront": "evaluate carts, submit and follow orders, approvals",
    "merchant": "everything a storefront key does, and held orders, rule sets (publish, "
    "roll back) and directory changes",
    "read_only": "read rule sets, their versions and the directory (QA's remote diff)",
}

#: the scopes that hold a grant, narrowest first (what an error suggests)
GRANT_SCOPES = {
    grant: tuple(s for s in ("read_only", "storefront", "merchant") if grant in SCOPE_GRANTS[s])
    for grant in ("storefront", "merchant", "read")
}


def scope_allows(scope: str, grant: str) -> bool:
    """Whether a key of ``scope`` may call an endpoint that needs ``grant``."""
    return grant in SCOPE_GRANTS.get(scope, ())


def _checked_scope(scope: str) -> str:
    if scope not in API_KEY_SCOPES:
        raise DirectoryValueError(
            "invalid_scope",
            f"an API key's scope is one of {', '.join(API_KEY_SCOPES)}, not {scope!r}",
            path="scope",
        )
    return scope


#: requests a minute of a key without its own rate, unless the settings say otherwise
DEFAULT_KEY_RATE = 1200


def default_key_rate(settings: Mapping[str, Any]) -> int:
    """Requests a minute of a key without its own rate: ``approvalrules.api.rate_per_minute``,
    or its older name ``approvalrules.rate_limit_per_minute`` (0: no rate limit at all)."""
    for name in ("approvalrules.api.rate_per_minute", "approvalrules.rate_limit_per_minute"):
        value = str(settings.get(name) or "").strip()
        if value:
            return int(value)
    return DEFAULT_KEY_RATE


#: the highest rate a key may be given (requests a minute)
MAX_KEY_RATE = 1_000_000


def checked_rate(rate: int | str | None) -> int | None:
    """A key's requests a minute: a whole number from 1 to MAX_KEY_RATE, or None (empty, 0:
    the service's default)."""
    if rate is None or (isinstance(rate, str) and not rate.strip()):
        return None
    try:
        value = int(str(rate).strip())
    except ValueError:
        value = -1
    if value == 0:
        return None
    if not 1 <= value <= MAX_KEY_RATE:
        raise DirectoryValueError(
            "invalid_rate",
            f"requests a minute must be a whole number from 1 to {MAX_KEY_RATE:,}, not "
            f'"{str(rate)[:20]}"; leave it empty (or 0) for the service\'s default',
            path="rate_per_minute",
        )
    return value


def create_api_key(
    session: Session,
    tenant: Tenant,
    name: str = "",
    actor: str = "system",
    scope: str = "storefront",
    rate_per_minute: int | None = None,
) -> tuple[ApiKey, str]:
    """Create a key of ``scope``; the plain key is returned here once and never stored.

    ``rate_per_minute``: the key's own limit (None: the service's default).
    """
    scope = _checked_scope(scope)
    rate_per_minute = checked_rate(rate_per_minute)
    prefix = secrets.token_hex(API_KEY_PREFIX_LENGTH // 2)
    token = secrets.token_urlsafe(32)
    key = ApiKey(
        tenant_id=tenant.id,
        name=name,
        prefix=prefix,
        hash=_hash_token(token),
        scope=scope,
        rate_per_minute=rate_per_minute,
    )
    session.add(key)
    session.flush()
    audit(
        session,
        tenant.id,
        actor,
        "api_key.created",
        "api_key",
        prefix,
        {"name": name, "scope": scope}
        | ({"rate_per_minute": rate_per_minute} if rate_per_minute else {}),
    )
    return key, f"ar_{prefix}_{token}"


def set_api_key_rate(
    session: Session, key: ApiKey, rate_per_minute: int | str | None, actor: str = "system"
) -> None:
    """Give ``key`` its own requests a minute (None, empty or 0: the service's default).

    Every process applies it within a second (the write notifies them, store/bus.py).
    """
    rate = checked_rate(rate_per_minute)
    if key.revoked_at is not None:
        raise Conflict("key_revoked", f"key {key.prefix} is revoked; its rate no longer matters")
    if rate != key.rate_per_minute:
        before, key.rate_per_minute = key.rate_per_minute, rate
        session.flush()
        audit(
            session,
            key.tenant_id,
            actor,
            "api_key.rate_changed",
            "api_key",
            key.prefix,
            {"from": before, "to": rate},
        )


def rotate_api_key(session: Session, key: ApiKey, actor: str = "system") -> tuple[ApiKey, str]:
    """Replace ``key`` by a new one of the same name and scope; the old one stops working now.

    Returns the new key and its plain text (shown once).  A revoked key cannot be rotated
    (409 ``key_revoked``): create a new key instead.
    """
    if key.revoked_at is not None:
        raise Conflict(
            "key_revoked",
            f"key {key.prefix} ({key.name or 'unnamed'}) is revoked; create a new key instead",
        )
    tenant = session.get(Tenant, key.tenant_id)
    new, plain = create_api_key(
        session, tenant, key.name, actor=actor, scope=key.scope, rate_per_minute=key.rate_per_minute
    )
    key.revoked_at = utcnow()
    audit(
        session,
        key.tenant_id,
        actor,
        "api_key.rotated",
        "api_key",
        key.prefix,
        {"name": key.name, "scope": key.scope, "replaced_by": new.prefix},
    )
    return new, plain


def ensure_api_key(
    session: Session,
    tenant: Tenant,
    plain: str,
    name: str = "development",
    scope: str = "merchant",
) -> ApiKey:
    """Make ``plain`` (``ar_<prefix>_<token>``) a live key of ``tenant``.

    For development set-ups only, where a known key saves copying a fresh one
    after every reset; a merchant key by default, so that it can try every endpoint.
    """
    scope = _checked_scope(scope)
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
        key = ApiKey(
            tenant_id=tenant.id, name=name, prefix=prefix, hash=_hash_token(token), scope=scope
        )
        session.add(key)
        session.flush()
        audit(
            session,
            tenant.id,
            "system",
            "api_key.created",
            "api_key",
            prefix,
            {"name": name, "scope": scope},
        )
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
    """The key stops working now (revoking twice changes nothing)."""
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        audit(session, key.tenant_id, actor, "api_key.revoked", "api_key", key.prefix)


def _password_hasher() -> PasswordHasher:
    return PasswordHasher()


#: the shortest password an admin user may be given
MIN_PASSWORD_LENGTH = 10


def _check_admin_role(role: str) -> None:
    if role not in ADMIN_ROLES:
        raise DirectoryError(
            "invalid_role", f"admin role must be one of {', '.join(ADMIN_ROLES)}, not {role!r}"
        )


def create_admin_user(
    session: Session,
    tenant: Tenant,
    login: str,
    password: str,
    role: str = "viewer",
    actor: str = "system",
) -> AdminUser:
    """A new admin login of ``tenant`` with an argon2 hash of ``password``; audited."""
    _check_admin_role(role)
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


def check_new_admin(session: Session, tenant: Tenant, login: str, password: str) -> None:
    """Refuse an admin user the admin's form or the CLI is about to create, field by field:
    a login of 1 to 200 characters not taken in the tenant, a password of at least
    ``MIN_PASSWORD_LENGTH`` characters (422 naming the field)."""
    if not login or len(login) > 200 or login != login.strip():
        raise DirectoryValueError(
            "invalid_login",
            "a login is 1 to 200 characters, without blanks around it",
            path="login",
        )
    taken = session.scalar(
        select(AdminUser.id).where(AdminUser.tenant_id == tenant.id, AdminUser.login == login)
    )
    if taken is not None:
        raise DirectoryValueError(
            "login_taken", f"there is an admin user {login!r} already", path="login"
        )
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise DirectoryValueError(
            "weak_password",
            f"a password has at least {MIN_PASSWORD_LENGTH} characters",
            path="password",
        )


def _owners(session: Session, tenant_id: int) -> int:
    return len(
        session.scalars(
            select(AdminUser.id).where(AdminUser.tenant_id == tenant_id, AdminUser.role == "owner")
        ).all()
    )


def _keep_an_owner(session: Session, user: AdminUser, what: str) -> None:
    if user.role == "owner" and _owners(session, user.tenant_id) <= 1:
        raise Conflict(
            "last_owner",
            f"{user.login} is the last owner: {what} would leave nobody to manage users "
            "and keys; make another user owner first",
        )


def set_admin_role(session: Session, user: AdminUser, role: str, actor: str = "system") -> None:
    """Change ``user``'s admin role; the tenant's last owner stays an owner (409 ``last_owner``)."""
    _check_admin_role(role)
    if role == user.role:
        return
    if role != "owner":
        _keep_an_owner(session, user, f"making them {role}")
    previous, user.role = user.role, role
    # a changed role takes effect on the next request: permissions are read per request
    audit(
        session,
        user.tenant_id,
        actor,
        "admin_user.role_changed",
        "admin_user",
        user.login,
        {"from": previous, "to": role},
    )


def remove_admin_user(session: Session, user: AdminUser, actor: str = "system") -> None:
    """Delete ``user``: their sessions end at once (each request loads the user again).

    The tenant's last owner is never removed (409 ``last_owner``).
    """
    _keep_an_owner(session, user, "removing them")
    audit(
        session,
        user.tenant_id,
        actor,
        "admin_user.removed",
        "admin_user",
        user.login,
        {"role": user.role},
    )
    session.delete(user)
    session.flush()
