"""Load a rules folder into the store, and export rule sets back, byte for byte.

Layout of the folder (``rules/``)::

    rules/*.yaml                 rule sets (``ruleset: NAME``), published if changed
    rules/directories/*.yaml     directory fixtures, upserted by external id
    rules/tenants.yaml           optional: which tenants get what (default: one tenant ``demo``)

``tenants.yaml``::

    tenants:
      acme-store:
        name: ACME web store
        settings: {groups: {one_per_account: true, delete_policy: refuse_if_members}}
        rulesets: [acme-purchasing]      # rule-set names or file stems; default: all
        directories: [acme]              # file stems under directories/; default: all

Loading is idempotent: a rule set whose text equals its active version's is
not published again, and directory upserts that change nothing write nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..engine import check_directory, check_ruleset, directory_problems
from ..engine.directory import records_from_dict
from ..engine.load import load_document
from ..errors import DirectoryError, DocumentError, NotFound, Problem
from .directory import directory_for
from .directory_service import DirectoryService
from .models import AuditEvent, RuleSet, RuleSetVersion, Tenant
from .services import ensure_tenant, resolve_tenant
from .versions import active_version, get_version, publish, resolver

DEFAULT_TENANT = "demo"
TENANTS_FILE = "tenants.yaml"


@dataclass
class LoadReport:
    tenants: list[str] = field(default_factory=list)
    #: (tenant, rule set, number) of versions published by this load
    published: list[tuple[str, str, int]] = field(default_factory=list)
    #: (tenant, rule set, number) of rule sets already up to date
    unchanged: list[tuple[str, str, int]] = field(default_factory=list)
    #: (tenant, file name) of directory fixtures loaded
    directories: list[tuple[str, str]] = field(default_factory=list)
    #: audit events written: 0 when the load changed nothing
    changes: int = 0
    #: what the loaded rule sets and their tenant's directory tell about each other (steps
    #: needing more approvals than members can give, names one of them lacks): warnings
    warnings: list[Problem] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.tenants)} tenant(s); {len(self.published)} version(s) published, "
            f"{len(self.unchanged)} rule set(s) unchanged; "
            f"{len(self.directories)} directory file(s); "
            f"{self.changes} change(s)"
        )


@dataclass
class _RuleFile:
    path: Path
    text: str
    name: str
    extends: str | None


def _read_text(path: Path) -> str:
    # bytes -> str without newline translation: the stored text must be verbatim
    return path.read_bytes().decode("utf-8")


def _read_rule_file(path: Path) -> _RuleFile:
    text = _read_text(path)
    doc = load_document(text, str(path))
    data = doc.data if isinstance(doc.data, dict) else {}
    name = data.get("ruleset")
    if not isinstance(name, str) or not name:
        raise DocumentError(
            [
                Problem(
                    "missing_ruleset_name",
                    "a rule set starts with `ruleset: <name>`",
                    "ruleset",
                    1,
                    str(path),
                )
            ]
        )
    extends = data.get("extends") if isinstance(data.get("extends"), str) else None
    return _RuleFile(path, text, name, extends)


def _in_dependency_order(files: list[_RuleFile]) -> list[_RuleFile]:
    """Parents before the rule sets that extend them (others by file name)."""
    by_name = {f.name: f for f in files}
    ordered: list[_RuleFile] = []
    placed: set[str] = set()

    def place(f: _RuleFile, visiting: tuple[str, ...]) -> None:
        if f.name in placed or f.name in visiting:
            return  # a cycle is reported by the checker when publishing
        parent = by_name.get(f.extends) if f.extends else None
        if parent is not None:
            place(parent, visiting + (f.name,))
        placed.add(f.name)
        ordered.append(f)

    for f in sorted(files, key=lambda f: f.path.name):
        place(f, ())
    return ordered


def _tenant_plan(folder: Path) -> list[dict[str, Any]]:
    path = folder / TENANTS_FILE
    if not path.is_file():
        return [{"slug": DEFAULT_TENANT}]
    data = load_document(_read_text(path), str(path)).data or {}
    tenants = data.get("tenants", data) if isinstance(data, dict) else data
    if isinstance(tenants, dict):
        plan = [{"slug": slug, **(spec or {})} for slug, spec in tenants.items()]
    elif isinstance(tenants, list):
        plan = [dict(t) for t in tenants]
    else:
        plan = []
    for entry in plan:
        if not isinstance(entry.get("slug"), str):
            raise DocumentError(
                [Problem("invalid_tenants", "each tenant needs a slug", "tenants", None, str(path))]
            )
    return plan


def _selected(items: Iterable[Any], wanted: list[str] | None, keys) -> list[Any]:
    items = list(items)
    if wanted is None:
        return items
    wanted_set = set(wanted)
    return [item for item in items if wanted_set & set(keys(item))]


def _audit_count(session: Session) -> int:
    session.flush()
    return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def load_folder(session: Session, folder: str | Path, author: str = "importer") -> LoadReport:
    """Load rule sets and directories from ``folder`` into the tenants it names (see module doc).

    Any invalid file raises (:class:`DocumentError` naming file, line and
    path, or :class:`DirectoryError`); run it in a transaction so that
    nothing of a failed load is kept.
    """
    folder = Path(folder)
    if not any(folder.glob("*.yaml")) and (folder / "rules").is_dir():
        folder = folder / "rules"
    report = LoadReport()
    before = _audit_count(session)

    rule_files = [
        _read_rule_file(p)
        for p in sorted(folder.glob("*.yaml"))
        if p.name != TENANTS_FILE and p.is_file()
    ]
    directory_files = sorted(p for p in (folder / "directories").glob("*.yaml") if p.is_file())

    for spec in _tenant_plan(folder):
        tenant = ensure_tenant(
            session, spec["slug"], spec.get("name"), spec.get("settings"), actor=author
        )
        report.tenants.append(tenant.slug)
        chosen = _selected(rule_files, spec.get("rulesets"), lambda f: (f.name, f.path.stem))
        for f in _in_dependency_order(chosen):
            previous = active_version(session, tenant.id, f.name)
            version = publish(session, tenant.id, f.name, author, text=f.text, source=str(f.path))
            entry = (tenant.slug, f.name, version.number)
            (
                report.unchanged
                if previous is not None and previous.id == version.id
                else report.published
            ).append(entry)
        service = DirectoryService(session, tenant, actor=author)
        loaded = _selected(directory_files, spec.get("directories"), lambda p: (p.stem, p.name))
        for path in loaded:
            _load_directory_file(service, path)
            report.directories.append((tenant.slug, path.name))
        if loaded:
            directory = directory_for(session, tenant)
            resolve = resolver(session, tenant.id)
            for f in chosen:
                checked = check_ruleset(f.text, str(f.path), resolve, published=True)
                report.warnings.extend(directory_problems(checked, directory))

    report.changes = _audit_count(session) - before
    return report


def _load_directory_file(service: DirectoryService, path: Path) -> None:
    doc = check_directory(_read_text(path), str(path))
    try:
        service.load_records(records_from_dict(doc.data))
    except DirectoryError as exc:
        raise type(exc)(  # the same kind (e.g. DirectoryValueError), with the file's name
            exc.code, f"{path.name}: {exc.message}", path=exc.path, details=exc.details
        ) from None


def export_ruleset(
    session: Session, tenant: Tenant | int | str, name: str, version: int | None = None
) -> str:
    """The verbatim text of a version (default: the active one).

    Byte-identical to what was published.
    """
    tenant_obj = resolve_tenant(session, tenant)
    if version is not None:
        return get_version(session, tenant_obj.id, name, version).text
    found = active_version(session, tenant_obj.id, name)
    if found is None:
        raise NotFound("no_active_version", f"rule set {name!r} has no published version")
    return found.text


def export_folder(session: Session, tenant: Tenant | int | str, folder: str | Path) -> list[Path]:
    """Write every active rule set of a tenant to ``folder/NAME.yaml``.

    Returns the paths written.
    """
    tenant_obj = resolve_tenant(session, tenant)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    rows = session.execute(
        select(RuleSet.name, RuleSetVersion.text)
        .join(RuleSetVersion, RuleSet.active_version_id == RuleSetVersion.id)
        .where(RuleSet.tenant_id == tenant_obj.id)
        .order_by(RuleSet.name)
    )
    for name, text in rows:
        path = folder / f"{name}.yaml"
        path.write_bytes(text.encode("utf-8"))
        written.append(path)
    return written
