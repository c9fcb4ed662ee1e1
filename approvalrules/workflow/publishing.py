"""Publishing a rule set: the one way the admin and the API both use.

1. check the text (schema, semantics, its parents; its ``ruleset:`` must be the
   rule set's name): :class:`DocumentError` with every problem;
2. run its own tests (``tests:``) against the tenant's directory: any failure is
   :class:`TestsFailed`, listing the failing tests, and nothing is published;
3. publish it as the next version and make it active;
4. clear the draft: the published text supersedes it -- the draft read under the rule
   set's row lock, taken before anything else, and only that one: a draft saved
   concurrently waits for the publish and stays (``versions.clear_draft``);
5. decide the pending requests again where ``pending_on_new_version: reevaluate``
   says so (:func:`.reevaluate.on_publish`).

A rollback publishes an old version's text again and re-evaluates the same way;
its tests are not run again: they passed when that version was published, and a
rollback is the way back when something is wrong now.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from ..engine import ValidatedRuleSet, check_ruleset, compile_policy
from ..engine.ruletests import TestResult, run_tests, updated_expectations
from ..errors import DocumentError, NotFound, Problem, TestsFailed
from ..store import versions
from ..store.directory import directory_for
from ..store.etags import check_if_match
from ..store.models import RuleSetVersion, Tenant
from ..store.services import audit
from . import reevaluate


@dataclass
class Published:
    """What a publish did: the active version, its checks, and the re-evaluated requests."""

    version: RuleSetVersion
    pending: dict
    tests: list[TestResult] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def name_mismatch(
    checked: ValidatedRuleSet, name: str, source: str | None = None
) -> Problem | None:
    """The problem of a text whose ``ruleset:`` is not ``name``, or None."""
    if checked.name == name:
        return None
    return Problem(
        "name_mismatch",
        f"the document says `ruleset: {checked.name}` but this is rule set {name!r}",
        "ruleset",
        1,
        source or name,
    )


def check(
    session: Session, tenant: Tenant, name: str, text: str, *, source: str | None = None
) -> ValidatedRuleSet:
    """``text`` validated as rule set ``name`` of ``tenant`` (its parents from the tenant's
    active versions); raises :class:`DocumentError` listing every problem."""
    checked = check_ruleset(text, source or name, versions.resolver(session, tenant.id))
    mismatch = name_mismatch(checked, name, source)
    if mismatch is not None:
        raise DocumentError([mismatch])
    return checked


def run_embedded_tests(
    session: Session, tenant: Tenant, checked: ValidatedRuleSet
) -> list[TestResult]:
    """Run the rule set's own tests against the tenant's directory; every result, pass or fail."""
    return run_tests(checked, compile_policy(checked), directory_for(session, tenant))


def expectation_updates(session: Session, tenant: Tenant, name: str, text: str) -> dict[int, dict]:
    """The failing embedded tests of ``text``, their ``expect`` rewritten from the decisions
    ``text`` makes today against the tenant's directory, by test index.

    Raises :class:`DocumentError` when ``text`` is not a valid rule set ``name``.  The
    caller writes the blocks into the text (keeping its comments) and shows the change
    for review before saving it.
    """
    checked = check(session, tenant, name, text)
    return updated_expectations(checked, compile_policy(checked), directory_for(session, tenant))


def save_draft(session: Session, tenant: Tenant, name: str, text: str, *, author: str) -> bool:
    """Keep ``text`` as rule set ``name``'s draft; False when that leaves no draft.

    A text equal to the active version's is no unpublished change: it discards any draft
    (audited) instead of saving one, so saving an unchanged form leaves nothing to publish.
    Raises :class:`DocumentError` for a text the loader's guards refuse.
    """
    ruleset = versions.get_ruleset(session, tenant.id, name)
    active = ruleset.active_version if ruleset is not None else None
    if active is not None and active.text == text:
        versions.discard_draft(session, tenant, name, author)
        return False
    versions.save_draft(session, tenant.id, name, text, author=author)
    return True


def save_updated_tests(
    session: Session, tenant: Tenant, name: str, text: str, tests: list[str], *, author: str
) -> None:
    """Save ``text``, whose failing tests' expectations a merchant reviewed and accepted, as
    the draft, and audit which tests were rewritten."""
    versions.save_draft(session, tenant.id, name, text, author=author)
    audit(session, tenant.id, author, "ruleset.tests_updated", "ruleset", name, {"tests": tests})


def require_passing(results: list[TestResult], name: str = "") -> None:
    """Raise :class:`TestsFailed` when any of ``results`` failed."""
    if any(not r.passed for r in results):
        raise TestsFailed(results, name)


def publish(
    session: Session,
    tenant: Tenant,
    name: str,
    text: str | None = None,
    *,
    author: str,
    source: str | None = None,
    if_match: str | None = None,
) -> Published:
    """Check, test and publish ``text`` (default: the draft) as rule set ``name``; then clear the
    draft and re-evaluate the pending requests.

    Nothing is written when the text is invalid (:class:`DocumentError`) or a test
    fails (:class:`TestsFailed`).  Publishing the active version's text again is a
    no-op that still clears the draft.
    """
    # the lock before the draft is read: a draft saved meanwhile waits, then stays
    ruleset = versions.get_ruleset(session, tenant.id, name, lock=True)
    if if_match:
        check_if_match(if_match, versions.ruleset_etag(ruleset), f"rule set {name!r}")
    seen_draft = ruleset.draft_text if ruleset is not None else None
    if text is None:
        text = seen_draft
        if text is None:
            raise NotFound("no_draft", f"rule set {name!r} has no draft to publish")
    active = ruleset.active_version if ruleset is not None else None
    results: list[TestResult] = []
    warnings: list[Problem] = []
    if active is None or active.text != text:
        checked = check(session, tenant, name, text, source=source)
        warnings = list(checked.warnings)
        results = run_embedded_tests(session, tenant, checked)
        require_passing(results, name)
    version = versions.publish(session, tenant.id, name, author, text=text, source=source)
    versions.clear_draft(session, versions.get_ruleset(session, tenant.id, name), seen_draft)
    pending = reevaluate.on_publish(session, tenant, name, actor=author)
    return Published(version, pending, results, warnings)


def rollback(
    session: Session,
    tenant: Tenant,
    name: str,
    number: int,
    *,
    author: str,
    if_match: str | None = None,
) -> Published:
    """Make version ``number``'s text active again (as a new version) and re-evaluate the
    pending requests; the draft stays.  With ``if_match``: refused (412) when the rule set
    changed since the caller read it."""
    versions.check_ruleset_if_match(session, tenant, name, if_match)
    version = versions.rollback(session, tenant.id, name, number, author=author)
    pending = reevaluate.on_publish(session, tenant, name, actor=author)
    return Published(version, pending)
