"""What a directory write must name correctly: a defined role, a published rule set, an e-mail
address that can receive mail (issue 15, defect 6).

Checked once here, for every writer (the storefront's directory API, the admin and the
importer all go through :class:`~approvalrules.store.directory_service.DirectoryService`), so a
bad value is refused when it is written, with a 422 that names the field, instead of
blocking that account's orders later.

Order of operations: a company's rule set and the roles of its members are read from the
tenant's *published* versions.  The importer publishes a folder's rule sets before it loads
its directories, so ``rules/`` loads as before.  A membership in a company that no rule set
governs yet (none on the company or its parents, or that rule set not published) has no
roles to check against and is accepted: orders of that company are refused with
``no_ruleset`` / ``no_active_version`` anyway until a rule set is published.
"""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from ..engine.check import HINT_NAMES, listed_names
from ..engine.schema import validator
from ..errors import DirectoryValueError
from .models import Company
from .versions import active_versions, policy_for

#: RFC 5321's limit on a forward path
MAX_EMAIL_LENGTH = 254

#: one ``@``, no spaces or control characters, a dot in the domain; deliberately loose
#: beyond that (full RFC 5322 syntax accepts addresses no mail server does)
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f.]+(\.[^@\s\x00-\x1f\x7f.]+)+")


def check_email(email: str | None, path: str = "email") -> None:
    """Refuse an address mail cannot be sent to (``None`` or empty clears it and is fine)."""
    if not email:
        return
    if len(email) > MAX_EMAIL_LENGTH:
        raise DirectoryValueError(
            "invalid_email",
            f"the e-mail address is {len(email):,} characters long; "
            f"at most {MAX_EMAIL_LENGTH} are possible",
            path=path,
        )
    if not _EMAIL.fullmatch(email):
        raise DirectoryValueError(
            "invalid_email",
            f"{email[:80]!r} is not an e-mail address; write it as name@example.com, "
            "or leave it empty for no e-mail",
            path=path,
        )


def check_settings(settings: dict, path: str = "settings") -> None:
    """Refuse membership settings the rule-set schema's ``settings`` definition does not allow
    (an unknown key, a negative amount, a list where a flag goes); the error names the key."""
    errors = sorted(
        validator("ruleset")
        .evolve(schema={"$ref": "ruleset.schema.json#/$defs/settings"})
        .iter_errors(settings),
        key=lambda e: list(map(str, e.path)),
    )
    if errors:
        first = errors[0]
        where = path + "".join(f".{p}" for p in first.absolute_path)
        raise DirectoryValueError("invalid_settings", f"{where}: {first.message}"[:300], path=where)


class RuleSetNames:
    """The tenant's published rule sets and the roles each defines, read once per service."""

    def __init__(self, session: Session, tenant_id: int, *, enabled: bool = True):
        self.session = session
        self.tenant_id = tenant_id
        self.enabled = enabled
        self._active: dict | None = None
        self._roles: dict[str, frozenset[str]] = {}

    def active(self) -> dict:
        if self._active is None:
            self._active = active_versions(self.session, self.tenant_id)
        return self._active

    def check_ruleset(self, name: str | None, path: str = "ruleset") -> None:
        """Refuse a company's rule set that the tenant has not published."""
        if not self.enabled or name is None or name in self.active():
            return
        published = self.active()
        hint = (
            f"published rule sets: {listed_names(published)}"
            if published
            else "the tenant has published no rule set yet; publish it first"
        )
        raise DirectoryValueError(
            "unknown_ruleset",
            f"rule set {name[:80]!r} is not published for this tenant ({hint})",
            path=path,
            details={"path": path, "published": sorted(published)[:HINT_NAMES]},
        )

    def governing_name(self, company: Company) -> str | None:
        """The rule set governing ``company``: its own, else its nearest parent's (or None)."""
        node, seen = company, set()
        while node is not None and node.ruleset_name is None and node.id not in seen:
            seen.add(node.id)
            node = node.parent
        return node.ruleset_name if node is not None else None

    def policy(self, name: str | None):
        """The compiled policy of the published rule set ``name`` (None when not published)."""
        version = self.active().get(name) if name else None
        return policy_for(version, self.session, self.active()) if version is not None else None

    def roles_for(self, company: Company) -> tuple[str, frozenset[str]] | None:
        """(rule set name, its roles) governing ``company`` -- its own rule set, else its
        nearest parent's -- or None when no published rule set governs it yet."""
        name = self.governing_name(company)
        if name not in self._roles:
            policy = self.policy(name)
            if policy is None:
                return None
            self._roles[name] = frozenset(policy.roles)
        return name, self._roles[name]

    def check_role(self, role: str, company: Company, path: str = "role") -> None:
        """Refuse a membership role the rule set governing ``company`` does not define."""
        governing = self.roles_for(company) if self.enabled else None
        if governing is None:
            return
        ruleset, roles = governing
        if role in roles:
            return
        raise DirectoryValueError(
            "undefined_role",
            f"role {role[:80]!r} is not defined by rule set {ruleset!r}, which governs company "
            f"{company.external_id!r}; use one of: {listed_names(roles) or '(none defined)'}, "
            "or define the role in the rule set and publish it",
            path=path,
            details={"path": path, "ruleset": ruleset, "roles": sorted(roles)},
        )
