"""Who is logged in to the admin, and what their admin role lets them do.

* Identity: the admin user's id is kept in a signed cookie session
  (``SessionAuthenticationHelper``); every request loads the user again, so a
  deleted user is logged out at once.
* Permissions: an ACL on the admin root (:class:`AdminRoot`).  Principals are
  ``role:<owner|editor|viewer>``; the tenant is not a principal because every
  admin query is scoped by the user's own tenant instead (see
  :func:`admin_tenant`): another tenant's objects are simply not found (404).
"""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from pyramid.authentication import SessionAuthenticationHelper
from pyramid.authorization import ALL_PERMISSIONS, ACLHelper, Allow, Authenticated, Everyone
from sqlalchemy import select

from approvalrules import observability
from approvalrules.store.models import AdminUser, Tenant
from approvalrules.store.services import verify_admin_password

#: what each admin role may do; owners may also act for approvers and read the audit log;
#: owners and editors take the merchant's own review decision (``review``)
ROLE_PERMISSIONS = {
    "owner": ALL_PERMISSIONS,
    "editor": ("view", "edit", "publish", "review"),
    "viewer": ("view",),
}


# argon2 costs the same whether or not the login exists, so timing does not
# reveal which logins exist; this hash is verified when the user is unknown
@functools.cache
def _dummy_user() -> AdminUser:
    return AdminUser(password_hash=PasswordHasher().hash("not a password"))


#: the session key that holds the user's session generation at login
GENERATION_KEY = "admin.generation"


class AdminRoot:
    """Context of every admin route: the ACL mapping roles to permissions."""

    __acl__ = [
        (Allow, f"role:{role}", permissions) for role, permissions in ROLE_PERMISSIONS.items()
    ]

    def __init__(self, request):
        self.request = request


class AdminSecurityPolicy:
    """Pyramid 2 security policy: session identity + role ACL."""

    def __init__(self):
        self.helper = SessionAuthenticationHelper(prefix="admin.")
        self.acl = ACLHelper()

    def identity(self, request) -> AdminUser | None:
        userid = self.helper.authenticated_userid(request)
        if userid is None:
            return None
        user = request.dbsession.get(AdminUser, userid)
        if user is None or request.session.get(GENERATION_KEY) != user.session_generation:
            return None  # deleted, or the session was ended by a logout
        return user

    def authenticated_userid(self, request):
        user = request.identity
        return user.id if user is not None else None

    def permits(self, request, context, permission):
        return self.acl.permits(context, principals_for(request.identity), permission)

    def remember(self, request, userid, **kw):
        user = request.dbsession.get(AdminUser, userid)
        request.session[GENERATION_KEY] = user.session_generation
        return self.helper.remember(request, userid, **kw)

    def forget(self, request, **kw):
        """End the session here and server-side: every earlier cookie of this user stops working."""
        user = request.identity
        if user is not None:
            user.session_generation += 1
        return self.helper.forget(request, **kw)


def principals_for(user: AdminUser | None) -> list[str]:
    """The ACL principals of an admin user (Everyone alone when logged out)."""
    if user is None:
        return [Everyone]
    return [Everyone, Authenticated, f"user:{user.id}", f"role:{user.role}"]


def authenticate(session, tenant_slug: str, login: str, password: str) -> AdminUser | None:
    """The admin user for these credentials, or None; the password is checked with argon2."""
    user = session.scalar(
        select(AdminUser)
        .join(Tenant, AdminUser.tenant_id == Tenant.id)
        .where(Tenant.slug == tenant_slug, AdminUser.login == login)
    )
    if user is None:
        verify_admin_password(_dummy_user(), password)
        return None
    return user if verify_admin_password(user, password) else None


def admin_tenant(request) -> Tenant | None:
    """The logged-in admin's tenant: the scope of every admin query."""
    user = request.identity
    if user is None:
        return None
    observability.note_tenant(user.tenant.slug)
    return user.tenant


def actor(request) -> str:
    """How the audit log names the logged-in admin (``admin:<login>``)."""
    user = request.identity
    return f"admin:{user.login}" if user is not None else "admin:?"
