"""Rule sets as drafts and immutable, numbered versions.

* ``save_draft`` keeps any text, even invalid: a draft is work in progress -- but
  never one that fails the loader's guards (size, depth, aliases: ``guard_problems``),
  which nothing may parse.
* ``publish`` takes the rule set's row lock *before* it reads the draft, and clears only
  the draft it read (``clear_draft``): a draft saved concurrently is never lost.  It
  validates (``approvalrules.engine.check_ruleset``), numbers the
  new version max+1 under a row lock on the rule set, and switches the active
  version in the same transaction.  Publishing the text that is already
  active changes nothing.
* ``rollback`` publishes an old version's text anew, as a new number.
* A published version's text, hash and number never change: the model
  refuses it (``Conflict("immutable_version")``) and so does a trigger.
* ``policy_for`` compiles a version once per process, keyed by content hash
  (and the hashes of the parents it extends).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, contains_eager, defer, object_session

from ..engine import PolicyCache, check_ruleset, compile_ruleset, guard_problems
from ..engine.durations import isoformat
from ..errors import DocumentError, NotFound, Problem
from . import bus
from .db import TenantCache, known_row, transaction_memo
from .directory import directory_for
from .etags import check_if_match, etag_for
from .models import Order, RuleSet, RuleSetVersion, Tenant, utcnow
from .services import audit, resolve_tenant

#: attempts at numbering a version before giving up (the lock makes one enough;
#: the unique constraint on (ruleset, number) is the last guard)
PUBLISH_ATTEMPTS = 3


def _check_ruleset(
    text: str,
    source: str | None,
    resolve: Callable[[str], str | None],
    published: bool = False,
):
    # one indirection, so tests may substitute a checker
    return check_ruleset(text, source, resolve, published=published)


def _compile_ruleset(
    text: str, source: str | None, resolve: Callable[[str], str | None], version: int | None
):
    # a stored version was valid when published: stricter checks since then only warn
    return compile_ruleset(text, source, resolve, version=version, published=True)


def _tenant_id(session: Session, tenant: Tenant | int | str) -> int:
    return tenant if isinstance(tenant, int) else resolve_tenant(session, tenant).id


def get_ruleset(
    session: Session, tenant: Tenant | int | str, name: str, *, lock: bool = False
) -> RuleSet | None:
    query = select(RuleSet).where(
        RuleSet.tenant_id == _tenant_id(session, tenant), RuleSet.name == name
    )
    if lock:
        # FOR UPDATE on PostgreSQL; SQLite serialises writers anyway and ignores it
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalar(query)


def _ensure_ruleset(session: Session, tenant_id: int, name: str) -> RuleSet:
    ruleset = get_ruleset(session, tenant_id, name)
    if ruleset is not None:
        return ruleset
    try:
        with session.begin_nested():
            ruleset = RuleSet(tenant_id=tenant_id, name=name)
            session.add(ruleset)
            session.flush()
        return ruleset
    except IntegrityError:
        # created concurrently by another transaction, which has committed by now
        found = get_ruleset(session, tenant_id, name)
        if found is None:
            raise
        return found


def active_version(
    session: Session, tenant: Tenant | int | str, name: str
) -> RuleSetVersion | None:
    """The active version of a rule set.

    One query on the (tenant, name) unique index and a primary key.
    """
    return session.scalar(
        select(RuleSetVersion)
        .join(RuleSet, RuleSet.active_version_id == RuleSetVersion.id)
        .where(RuleSet.tenant_id == _tenant_id(session, tenant), RuleSet.name == name)
    )


def get_version(
    session: Session, tenant: Tenant | int | str, name: str, number: int
) -> RuleSetVersion:
    version = session.scalar(
        select(RuleSetVersion)
        .join(RuleSet, RuleSetVersion.ruleset_id == RuleSet.id)
        .where(
            RuleSet.tenant_id == _tenant_id(session, tenant),
            RuleSet.name == name,
            RuleSetVersion.number == number,
        )
    )
    if version is None:
        raise NotFound("unknown_version", f"rule set {name!r} has no version {number}")
    return version


def list_versions(session: Session, tenant: Tenant | int | str, name: str) -> list[RuleSetVersion]:
    return list(
        session.scalars(
            select(RuleSetVersion)
            .join(RuleSet, RuleSetVersion.ruleset_id == RuleSet.id)
            .where(RuleSet.tenant_id == _tenant_id(session, tenant), RuleSet.name == name)
            .order_by(RuleSetVersion.number)
        )
    )


def resolver(session: Session, tenant: Tenant | int | str) -> Callable[[str], str | None]:
    """``extends: NAME`` -> the text of NAME's active version in this tenant (None if none)."""
    tenant_id = _tenant_id(session, tenant)

    def resolve(name: str) -> str | None:
        version = active_version(session, tenant_id, name)
        return version.text if version is not None else None

    return resolve


def ruleset_etag(ruleset: RuleSet | None) -> str | None:
    """The rule set's entity tag: it changes when its draft or its active version does."""
    if ruleset is None:
        return None
    active = ruleset.active_version
    return etag_for({"active": active.number if active else None, "draft": ruleset.draft_text})


def check_ruleset_if_match(
    session: Session, tenant: Tenant | int | str, name: str, if_match: str | None
) -> None:
    """Lock the rule set's row and refuse (412) unless ``if_match`` names its current tag."""
    if if_match:
        ruleset = get_ruleset(session, tenant, name, lock=True)
        check_if_match(if_match, ruleset_etag(ruleset), f"rule set {name!r}")


def save_draft(
    session: Session,
    tenant: Tenant | int | str,
    name: str,
    text: str,
    author: str | None = None,
    *,
    if_match: str | None = None,
) -> RuleSet:
    """Keep ``text`` as the rule set's draft, valid or not; publishing is what validates.

    A text that fails the loader's guards (over the size cap, too deep, an alias bomb,
    not UTF-8) is refused with :class:`DocumentError` (:class:`DocumentTooLarge` for
    size): every page that shows a draft would otherwise have to survive it.  With
    ``if_match``, a rule set changed since the caller read it is refused (412).
    """
    guard_problems(text, name)
    check_ruleset_if_match(session, tenant, name, if_match)
    tenant_id = _tenant_id(session, tenant)
    ruleset = _ensure_ruleset(session, tenant_id, name)
    if ruleset.draft_text != text:
        ruleset.draft_text = text
        ruleset.draft_updated_at = utcnow()
        audit(
            session,
            tenant_id,
            author or "system",
            "ruleset.draft_saved",
            "ruleset",
            name,
            {"length": len(text)},
        )
    return ruleset


def publish(
    session: Session,
    tenant: Tenant | int | str,
    name: str,
    author: str | None = None,
    text: str | None = None,
    *,
    source: str | None = None,
    action: str = "ruleset.published",
    published_before: bool = False,
) -> RuleSetVersion:
    """Validate and publish ``text`` (default: the draft) as the next version, and make it active.

    Raises :class:`DocumentError` when the text is invalid -- nothing is saved
    and the active version stays active.  ``source`` names the text in error
    messages (a file name; default: the rule set's name).  ``published_before``: the text
    is an earlier version's (a rollback), checked as published versions are (checks added
    since then warn instead of refusing it).
    """
    tenant_id = _tenant_id(session, tenant)
    # the lock first, then the draft: a draft saved meanwhile waits for this transaction
    existing = get_ruleset(session, tenant_id, name, lock=True)
    seen_draft = existing.draft_text if existing is not None else None
    from_draft = text is None
    if from_draft:
        text = seen_draft
        if text is None:
            raise NotFound("no_draft", f"rule set {name!r} has no draft to publish")
    if (
        existing is not None
        and existing.active_version is not None
        and existing.active_version.text == text
    ):
        # already active (and validated when published): nothing to do
        if from_draft:
            clear_draft(session, existing, seen_draft)
        return existing.active_version
    # validate before writing anything: an invalid text leaves no trace
    checked = _check_ruleset(text, source or name, resolver(session, tenant_id), published_before)
    if checked.name != name:
        raise DocumentError(
            [
                Problem(
                    "name_mismatch",
                    f"the document is `ruleset: {checked.name}` but is published as {name!r}",
                    path="ruleset",
                    line=1,
                    source=source or name,
                )
            ]
        )

    # Serialise publishers of this rule set: whoever holds the row lock numbers next.
    _ensure_ruleset(session, tenant_id, name)
    ruleset = get_ruleset(session, tenant_id, name, lock=True)
    current = (
        session.get(RuleSetVersion, ruleset.active_version_id)
        if ruleset.active_version_id
        else None
    )
    if current is not None and current.text == text:
        if from_draft:
            clear_draft(session, ruleset, seen_draft)
        return current

    for attempt in range(PUBLISH_ATTEMPTS):
        number = (
            session.scalar(
                select(func.max(RuleSetVersion.number)).where(
                    RuleSetVersion.ruleset_id == ruleset.id
                )
            )
            or 0
        ) + 1
        version = RuleSetVersion(
            ruleset_id=ruleset.id,
            number=number,
            text=text,
            content_hash=checked.content_hash,
            extends=checked.data.get("extends"),
            author=author,
            published_at=utcnow(),
            status="published",
        )
        try:
            with session.begin_nested():
                session.add(version)
                session.flush()
            break
        except IntegrityError:
            if attempt == PUBLISH_ATTEMPTS - 1:
                raise
    if current is not None:
        current.status = "retired"
    ruleset.active_version_id = version.id
    ruleset.extends = version.extends
    _bump_rules_version(session, tenant_id)
    if from_draft:
        clear_draft(session, ruleset, seen_draft)
    session.flush()
    audit(
        session,
        tenant_id,
        author or "system",
        action,
        "ruleset",
        name,
        {
            "number": number,
            "content_hash": version.content_hash,
            "previous": current.number if current else None,
        },
    )
    return version


def discard_draft(
    session: Session, tenant: Tenant | int | str, name: str, author: str | None = None
) -> bool:
    """Throw the rule set's draft away (audited); False when there was none."""
    tenant_id = _tenant_id(session, tenant)
    ruleset = get_ruleset(session, tenant_id, name, lock=True)
    if ruleset is None or ruleset.draft_text is None:
        return False
    length = len(ruleset.draft_text)
    ruleset.draft_text = None
    ruleset.draft_updated_at = utcnow()
    audit(
        session,
        tenant_id,
        author or "system",
        "ruleset.draft_discarded",
        "ruleset",
        name,
        {"length": length},
    )
    return True


def clear_draft(session: Session, ruleset: RuleSet, seen: str | None) -> None:
    """Clear the draft ``seen`` by a publisher, and only that one.

    The publisher read it under the row lock, so on PostgreSQL it is still the draft; the
    condition keeps a draft saved since (SQLite has no row lock: a writer may commit
    between the read and this write) rather than clearing it unseen.
    """
    if seen is None:
        return
    session.flush()
    session.execute(
        update(RuleSet)
        .where(RuleSet.id == ruleset.id, RuleSet.draft_text == seen)
        .values(draft_text=None)
        .execution_options(synchronize_session=False)
    )
    session.expire(ruleset, ["draft_text"])


def rollback(
    session: Session, tenant: Tenant | int | str, name: str, number: int, author: str | None = None
) -> RuleSetVersion:
    """Publish version ``number``'s text anew, as a new version (history only grows)."""
    old = get_version(session, tenant, name, number)
    return publish(
        session,
        tenant,
        name,
        author,
        text=old.text,
        action="ruleset.rolled_back",
        published_before=True,
    )


def retire(
    session: Session, tenant: Tenant | int | str, name: str, author: str | None = None
) -> None:
    """Deactivate a rule set: no version is active any more (its versions stay)."""
    tenant_id = _tenant_id(session, tenant)
    ruleset = get_ruleset(session, tenant_id, name, lock=True)
    if ruleset is None or ruleset.active_version_id is None:
        return
    session.get(RuleSetVersion, ruleset.active_version_id).status = "retired"
    ruleset.active_version_id = None
    _bump_rules_version(session, tenant_id)
    audit(session, tenant_id, author or "system", "ruleset.retired", "ruleset", name)


def _bump_rules_version(session: Session, tenant_id: int) -> None:
    # a SQL expression (rules_version + 1): concurrent publishers of one tenant never lose a
    # bump, and the session reloads the new value when it is next read
    tenant = session.get(Tenant, tenant_id)
    tenant.rules_version = Tenant.rules_version + 1
    session.flush()
    transaction_memo(session).pop("active_versions", None)


# -- active versions, cached per process ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActiveVersion:
    """What evaluation needs of an active version, without its text.

    Safe to share between requests.
    """

    id: int
    number: int
    name: str
    extends: str | None
    content_hash: str
    #: the active versions it extends, nearest first (:func:`parent_chain`), as of its load
    parents: tuple[ActiveVersion, ...] = ()


#: tenants whose active versions a process keeps
ACTIVE_KEPT = 1024
_ACTIVE = TenantCache(ACTIVE_KEPT, "active")


def cached_active_versions(session: Session, tenant: Tenant) -> dict[str, ActiveVersion]:
    """The tenant's active versions by rule-set name, cached per process by (tenant, rules version).

    Every publish, rollback and retire bumps ``Tenant.rules_version`` in its own
    transaction, so an entry is exactly the active versions its key names and
    never needs invalidating (as the directory snapshots, see ``store.directory.snapshot``).
    The tenant's creation time is part of the key too: a tenant made again after a rollback
    (as test suites do) may get the same id and count its versions from the start.
    """
    return _ACTIVE.get(
        session,
        tenant.id,
        (tenant.rules_version, tenant.created_at),
        lambda: _load_active(session, tenant.id),
    )


#: the tenant's rules version, as the transaction reads it
_RULES_VERSION = select(Tenant.rules_version).where(Tenant.id == bindparam("tenant_id"))


#: transaction_memo key: {tenant id: its rules version, as a statement of the transaction read it}
_RULES_VERSION_READ = "rules_version_read"


def note_rules_version(session: Session, tenant_id: int, rules_version: int) -> None:
    """Keep the tenant's rules version that a statement of the session's transaction read
    along with something else (a submit's search for an earlier submission), so that
    :func:`transaction_active_versions` need not read it again."""
    transaction_memo(session).setdefault(_RULES_VERSION_READ, {})[tenant_id] = rules_version


def transaction_active_versions(
    session: Session, tenant: Tenant
) -> dict[str, ActiveVersion] | None:
    """The tenant's active versions as the session's transaction reads them, from the
    per-process cache: one query reads the tenant's rules version, instead of every
    active version (a tenant may have a rule set per company).

    What a submit records: the rules in force when its transaction reads them, as
    :func:`active_versions` gives them, without an object per rule set.  None when the
    transaction wrote the tenant's row (a publish in it: what it reads is not yet
    committed, and no cache may keep it) or already read its versions: ask
    :func:`active_versions` then.
    """
    rules_version = transaction_memo(session).get(_RULES_VERSION_READ, {}).get(tenant.id)
    if rules_version is None:
        rules_version = session.scalar(_RULES_VERSION, {"tenant_id": tenant.id})  # flushes
    else:
        session.flush()  # a tenant written in the session shows in bus.wrote_tenant
    if bus.wrote_tenant(session, tenant.id) or tenant.id in transaction_memo(session).get(
        "active_versions", ()
    ):
        return None
    return _ACTIVE.get(
        session,
        tenant.id,
        (rules_version, tenant.created_at),
        lambda: _load_active(session, tenant.id),
    )


def _load_active(session: Session, tenant_id: int) -> dict[str, ActiveVersion]:
    rows = session.execute(
        select(
            RuleSetVersion.id,
            RuleSetVersion.number,
            RuleSet.name,
            RuleSetVersion.extends,
            RuleSetVersion.content_hash,
        )
        .join(RuleSet, RuleSet.active_version_id == RuleSetVersion.id)
        .where(RuleSet.tenant_id == tenant_id)
    )
    bare = {
        row.name: ActiveVersion(row.id, row.number, row.name, row.extends, row.content_hash)
        for row in rows
    }
    return {
        name: replace(version, parents=tuple(_chain(name, version.extends, bare)))
        if version.extends
        else version
        for name, version in bare.items()
    }


def cached_policy(session: Session, version: ActiveVersion):
    """The compiled policy of an active version (see :func:`cached_active_versions`), from the
    process's policy cache; the texts are read only to compile it."""
    policy = _compiled().get(_policy_key(version, list(version.parents)))
    if policy is None:
        policy = policy_for(session.get(RuleSetVersion, version.id), session)
    return policy


def version_ref(session: Session, version: ActiveVersion) -> RuleSetVersion:
    """The session's ``RuleSetVersion`` of an active version: its own when it has loaded it,
    otherwise one put in it with what ``version`` knows, whose other columns load on first
    access (an order's response reads the number without a query)."""
    return known_row(
        session,
        RuleSetVersion,
        {
            "id": version.id,
            "number": version.number,
            "extends": version.extends,
            "content_hash": version.content_hash,
        },
    )


def ruleset_name(version: RuleSetVersion | ActiveVersion) -> str:
    """The name of the rule set ``version`` belongs to."""
    return version.name if isinstance(version, ActiveVersion) else version.ruleset.name


# -- compiled policies -----------------------------------------------------------------------


def _policy_cache():
    # 2,048 compiled policies take about 70 MiB (bench/memory.py: ~33 KiB each) and
    # keep a worker serving 1,000 tenants from recompiling
    return PolicyCache(2048)


_policies = None


def _compiled():
    """This process's cache of compiled policies, made on first use."""
    global _policies
    if _policies is None:
        _policies = _policy_cache()
    return _policies


def active_versions(session: Session, tenant_id: int) -> dict[str, RuleSetVersion]:
    """Every rule set's active version in the tenant, by name.

    One query answers for a whole ``extends`` chain.

    Read once per transaction (kept in its :func:`~.db.transaction_memo`, and dropped
    by a publish, rollback or retire in it): a submit or an approval asks for the
    policy of its version several times.
    """
    memo = transaction_memo(session).setdefault("active_versions", {})
    found = memo.get(tenant_id)
    if found is None:
        found = memo[tenant_id] = _load_active_versions(session, tenant_id)
    return found


def _load_active_versions(session: Session, tenant_id: int) -> dict[str, RuleSetVersion]:
    # texts stay unread: a compiled policy is cached by content hash, so a text
    # is needed only to compile it (it then loads on access)
    rows = session.scalars(
        select(RuleSetVersion)
        .join(RuleSet, RuleSet.active_version_id == RuleSetVersion.id)
        .where(RuleSet.tenant_id == tenant_id)
        .options(
            defer(RuleSetVersion.text),
            contains_eager(RuleSetVersion.ruleset).load_only(
                RuleSet.id,
                RuleSet.tenant_id,
                RuleSet.name,
                RuleSet.extends,
                RuleSet.active_version_id,
            ),
        )
    )
    return {version.ruleset.name: version for version in rows}


def parent_chain(
    session: Session, version: RuleSetVersion, active: dict[str, RuleSetVersion] | None = None
) -> list[RuleSetVersion]:
    """The active versions ``version`` extends, nearest first (cycles cut).

    ``active``: the tenant's :func:`active_versions`, when the caller has them.
    """
    if isinstance(version, ActiveVersion):
        return list(version.parents)
    if active is None:
        active = active_versions(session, version.ruleset.tenant_id)
    return _chain(version.ruleset.name, version.extends, active)


def _chain(name: str, extends: str | None, active: Mapping[str, Any]) -> list:
    """The entries of ``active`` (rule-set name -> version) that rule set ``name`` extends,
    nearest first; stops at a parent with no active version, and where a cycle would start."""
    chain: list = []
    seen = {name}
    while extends and extends not in seen:
        seen.add(extends)
        parent = active.get(extends)
        if parent is None:
            break
        chain.append(parent)
        extends = parent.extends
    return chain


def _policy_key(version, parents: list) -> str:
    """A compiled policy's cache key.

    Its version's content hash and number, and its parents' hashes.
    """
    return ":".join([version.content_hash, str(version.number)] + [p.content_hash for p in parents])


def policy_for(
    version: RuleSetVersion,
    session: Session | None = None,
    active: dict[str, RuleSetVersion] | None = None,
):
    """The compiled :class:`~approvalrules.engine.Policy` of a version, cached per process.

    The key is the version's content hash plus its parents' (a rule set that
    extends another is compiled against the parents' active versions).
    """
    if isinstance(version, ActiveVersion):
        return cached_policy(session, version)
    session = session or object_session(version)
    parents = parent_chain(session, version, active) if version.extends else []
    key = _policy_key(version, parents)
    policy = _compiled().get(key)
    if policy is None:
        texts = {p.ruleset.name: p.text for p in parents}
        policy = _compiled().put(
            key, _compile_ruleset(version.text, version.ruleset.name, texts.get, version.number)
        )
    return policy


def active_policy(session: Session, tenant: Tenant | int | str, name: str):
    version = active_version(session, tenant, name)
    if version is None:
        raise NotFound("no_active_version", f"rule set {name!r} has no published version")
    return policy_for(version, session)


__all__ = [
    "active_policy",
    "active_version",
    "active_versions",
    "cached_active_versions",
    "cached_policy",
    "get_ruleset",
    "get_version",
    "list_versions",
    "parent_chain",
    "policy_for",
    "publish",
    "resolver",
    "retire",
    "rollback",
    "clear_draft",
    "discard_draft",
    "save_draft",
]


class VersionLookup:
    """Read-only access to stored versions for tools.

    For example ``approvalrules diff --ini ... demo/acme@3``;
    :func:`approvalrules.store.commands.open_version_lookup` opens one from an .ini file.
    """

    def __init__(self, session: Session, engine=None):
        self.session = session
        self._engine = engine

    def text_of(
        self, tenant: str, name: str, which: str
    ) -> tuple[str, str, Callable[[str], str | None]]:
        """(text, source label, extends resolver) of ``which``.

        ``which`` is a number, ``active``/``latest`` or ``draft``.
        """
        if which == "draft":
            ruleset = get_ruleset(self.session, tenant, name)
            if ruleset is None or ruleset.draft_text is None:
                raise NotFound(
                    "unknown_draft", f"rule set {name!r} of tenant {tenant!r} has no draft"
                )
            text = ruleset.draft_text
        elif which in ("active", "latest"):
            version = active_version(self.session, tenant, name)
            if version is None:
                raise NotFound(
                    "unknown_version",
                    f"rule set {name!r} of tenant {tenant!r} has no active version",
                )
            text = version.text
        else:
            text = get_version(self.session, tenant, name, int(which)).text
        return text, f"{tenant}/{name}@{which}", resolver(self.session, tenant)

    def recorded_orders(self, tenant: str, name: str):
        """(count, iterator of ``{"order": payload, "now": submitted}``) of every order decided
        under any version.

        Every version of the rule set counts.  Each order is replayed at its submission
        instant, so rules that read the order's date decide it as they did then.
        """
        query = (
            select(Order.payload, Order.created_at)
            .join(RuleSetVersion, Order.ruleset_version_id == RuleSetVersion.id)
            .join(RuleSet, RuleSetVersion.ruleset_id == RuleSet.id)
            .where(RuleSet.tenant_id == _tenant_id(self.session, tenant), RuleSet.name == name)
            .order_by(Order.id)
        )
        count = self.session.scalar(select(func.count()).select_from(query.subquery()))
        rows = self.session.execute(query.execution_options(yield_per=1000))
        return count, (
            # SQLite gives the stored UTC instant back without its zone
            {"order": payload, "now": isoformat(created.replace(tzinfo=created.tzinfo or UTC))}
            for payload, created in rows
        )

    def directory(self, tenant: str):
        """The directory the tenant's orders are evaluated against (see ``directory_for``)."""
        return directory_for(self.session, resolve_tenant(self.session, tenant))

    def close(self) -> None:
        self.session.close()
        if self._engine is not None:
            self._engine.dispose()
