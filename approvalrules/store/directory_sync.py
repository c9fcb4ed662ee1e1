"""Bulk directory sync from an ERP: a whole company's directory, or the tenant's, in one call.

Input and output share one shape, the records the directory reads show
(:mod:`~approvalrules.store.directory_records`):

* JSON: ``{"companies": [...], "groups": [...], "accounts": [...], "memberships": [...],
  "assignments": [...], "delegations": [...]}`` (``etag`` fields are ignored);
* CSV: one record a row, its kind in the ``type`` column, the other columns those of
  :data:`CSV_COLUMNS` (an empty cell is null; JSON objects as JSON text).

Every row goes through :class:`~approvalrules.store.directory_service.DirectoryService`, so
the rules of single writes hold (pending orders, roles the rule set defines, e-mail
addresses...); a membership may move its account between groups (the ERP is the source of
truth).  Each row runs in its own savepoint and is reported with its line: created,
updated (with the fields that changed), unchanged, or its error.

``atomic="all"`` (default): one bad row refuses the whole batch and nothing changes.
``atomic="company"``: each company's rows (its groups, memberships, assignments and
delegations; accounts and company-less delegations form one unit of their own, applied
first) stand or fall together.  A dry run reports what would change and keeps nothing.
Whatever the number of rows, the tenant's directory version moves once.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..engine.load import load_document
from ..engine.money import parse_amount
from ..errors import ApprovalRulesError, DirectoryError, DirectoryValueError, DocumentError
from .directory_records import DirectoryListings, DirectoryRecords
from .directory_service import DirectoryService
from .models import Tenant

#: kinds in the order they are applied (what a row refers to exists before it)
KINDS = ("companies", "groups", "accounts", "memberships", "assignments", "delegations")
#: the ``type`` column's word for each kind
TYPES = {
    "company": "companies",
    "group": "groups",
    "account": "accounts",
    "membership": "memberships",
    "assignment": "assignments",
    "delegation": "delegations",
}
CSV_COLUMNS = (
    "type",
    "id",
    "company",
    "account",
    "name",
    "parent",
    "ruleset",
    "email",
    "email_enabled",
    "active",
    "role",
    "group",
    "master",
    "default",
    "status",
    "approver",
    "threshold",
    "limit",
    "step",
    "delegator",
    "delegate",
    "valid_from",
    "valid_until",
    "settings",
    "attributes",
)
#: the fields of each kind (as the reads show them)
FIELDS = {
    "companies": ("id", "name", "parent", "ruleset", "attributes"),
    "groups": ("company", "id", "name"),
    "accounts": ("id", "name", "email", "email_enabled", "active"),
    "memberships": (
        "account",
        "company",
        "role",
        "group",
        "master",
        "default",
        "status",
        "settings",
        "attributes",
    ),
    "assignments": ("approver", "account", "company", "threshold", "limit", "step"),
    "delegations": ("delegator", "delegate", "valid_from", "valid_until", "company", "step"),
}
REQUIRED = {
    "companies": ("id",),
    "groups": ("company", "id"),
    "accounts": ("id",),
    "memberships": ("account", "company", "role"),
    "assignments": ("approver", "account", "company"),
    "delegations": ("delegator", "delegate", "valid_from", "valid_until"),
}
BOOLEANS = {"email_enabled": True, "active": True, "master": False, "default": False}
OBJECTS = ("settings", "attributes")
FORMATS = ("json", "csv")
#: rows one sync takes (a whole tenant of a large ERP)
MAX_ROWS = 50_000


class SyncRefused(DirectoryValueError):
    """The batch (or, per company, every unit) was refused: the report names each bad line."""

    code = "sync_refused"


@dataclass
class SyncRow:
    """One record of the input: where it was, what it is, its values."""

    line: int
    kind: str
    values: dict[str, Any]

    def key(self) -> str:
        v = self.values
        return {
            "companies": lambda: v["id"],
            "groups": lambda: f"{v['company']}/{v['id']}",
            "accounts": lambda: v["id"],
            "memberships": lambda: f"{v['account']}@{v['company']}",
            "assignments": lambda: f"{v['approver']}->{v['account']}@{v['company']}",
            "delegations": lambda: f"{v['delegator']}->{v['delegate']}",
        }[self.kind]()

    def company(self) -> str | None:
        """The company whose unit the row belongs to (None: the tenant-wide unit)."""
        if self.kind == "companies":
            return self.values["id"]
        return self.values.get("company") if self.kind != "accounts" else None


@dataclass
class SyncReport:
    """What a sync did (or would do), row by row."""

    dry_run: bool
    atomic: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    applied: bool = False
    directory_version: int | None = None

    def counts(self) -> dict[str, int]:
        counts = {"created": 0, "updated": 0, "unchanged": 0, "error": 0, "rolled_back": 0}
        for row in self.rows:
            counts[row["action"]] += 1
        return counts

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [row for row in self.rows if row["action"] == "error"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "atomic": self.atomic,
            "applied": self.applied,
            "directory_version": self.directory_version,
            "counts": self.counts(),
            "rows": self.rows,
        }


# ------------------------------------------------------------------ reading the input


def _row_error(line: int, code: str, message: str) -> ApprovalRulesError:
    return DirectoryError(code, f"line {line}: {message}", details={"line": line})


def _typed(line: int, kind: str, raw: dict[str, Any], from_csv: bool) -> dict[str, Any]:
    """The row's values with their types: booleans, objects, amounts and dates checked."""
    values: dict[str, Any] = {}
    unknown = sorted(set(raw) - set(FIELDS[kind]) - {"etag", "type"})
    if unknown:
        raise _row_error(
            line,
            "unknown_field",
            f"a {kind[:-1]} has no field {unknown[0]!r}; fields: {', '.join(FIELDS[kind])}",
        )
    for name in FIELDS[kind]:
        value = raw.get(name)
        if from_csv and value == "":
            value = None
        if name in BOOLEANS:
            if value is None:
                value = BOOLEANS[name]
            elif from_csv and value in ("true", "false"):
                value = value == "true"
            if not isinstance(value, bool):
                raise _row_error(line, "invalid_value", f"{name} must be true or false")
        elif name in OBJECTS:
            if from_csv and value is not None:
                try:
                    value = json.loads(value)
                except ValueError:
                    raise _row_error(
                        line, "invalid_value", f"{name} must be a JSON object"
                    ) from None
            value = {} if value is None else value
            if not isinstance(value, dict):
                raise _row_error(line, "invalid_value", f"{name} must be a JSON object")
        elif name in ("threshold", "limit") and value is not None:
            try:
                value = parse_amount(value, name)
            except ApprovalRulesError as exc:
                raise _row_error(line, "invalid_amount", f"{name}: {exc}") from None
        elif name in ("valid_from", "valid_until") and value is not None:
            try:
                value = date.fromisoformat(str(value))
            except ValueError:
                raise _row_error(
                    line, "invalid_date", f"{name} must be a date like 2026-12-24"
                ) from None
        elif value is not None and not isinstance(value, str):
            raise _row_error(line, "invalid_value", f"{name} must be text")
        values[name] = value
    if kind == "memberships" and values["status"] is None:
        values["status"] = "active"
    missing = [name for name in REQUIRED[kind] if not values.get(name)]
    if missing:
        raise _row_error(line, "missing_field", f"a {kind[:-1]} needs {', '.join(missing)}")
    return values


def parse_rows(text: str, fmt: str) -> tuple[list[SyncRow], list[dict[str, Any]]]:
    """The rows of ``text`` (JSON or CSV) and the report entries of rows that cannot be read."""
    if fmt not in FORMATS:
        raise ApprovalRulesError("invalid_format", f"format is json or csv, not {fmt!r}")
    rows, bad = [], []
    for line, kind, raw in _csv_records(text) if fmt == "csv" else _json_records(text):
        try:
            if kind not in KINDS:
                raise _row_error(
                    line, "unknown_type", f"type must be one of {', '.join(TYPES)}, not {kind!r}"
                )
            rows.append(SyncRow(line, kind, _typed(line, kind, raw, fmt == "csv")))
        except DirectoryError as exc:
            bad.append({"line": line, "kind": kind, "action": "error", "error": exc.as_dict()})
        if len(rows) + len(bad) > MAX_ROWS:
            raise ApprovalRulesError(
                "too_many_rows", f"one sync takes at most {MAX_ROWS:,} rows; split the file"
            )
    return rows, bad


def _csv_records(text: str) -> Iterable[tuple[int, str, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("type",) if c not in (reader.fieldnames or ())]
    if missing:
        raise ApprovalRulesError(
            "invalid_csv",
            "line 1: the header needs a 'type' column; columns: " + ", ".join(CSV_COLUMNS),
        )
    unknown = [c for c in reader.fieldnames if c not in CSV_COLUMNS]
    if unknown:
        raise ApprovalRulesError(
            "invalid_csv",
            f"line 1: unknown column {unknown[0]!r}; columns: {', '.join(CSV_COLUMNS)}",
        )
    for raw in reader:
        kind = TYPES.get(raw.get("type") or "", raw.get("type") or "")
        cells = {k: v for k, v in raw.items() if k != "type" and k in FIELDS.get(kind, ())}
        # a cell of another kind's column must be empty: it would be silently ignored otherwise
        stray = [k for k, v in raw.items() if v and k != "type" and k not in cells]
        if stray and kind in KINDS:
            cells[stray[0]] = raw[stray[0]]  # refused as an unknown field, with its line
        yield reader.line_num, kind, cells


def _json_records(text: str) -> Iterable[tuple[int, str, dict[str, Any]]]:
    try:
        document = load_document(text, "directory.json")
    except DocumentError as exc:
        raise SyncRefused(
            "invalid_json", str(exc), details={"problems": [p.as_dict() for p in exc.problems]}
        ) from None
    data = document.data
    if not isinstance(data, dict) or set(data) - set(KINDS):
        raise SyncRefused(
            "invalid_json",
            "the body is a JSON object with the lists " + ", ".join(KINDS),
        )
    for kind in KINDS:
        records = data.get(kind) or []
        if not isinstance(records, list):
            raise SyncRefused("invalid_json", f"{kind} must be a list of records")
        for index, record in enumerate(records):
            line = document.line_of((kind, index)) or 0
            if not isinstance(record, dict):
                yield line, kind, {"id": record}
                continue
            yield line, kind, record


# ------------------------------------------------------------------ applying


def _read(records: DirectoryRecords, row: SyncRow) -> dict[str, Any] | None:
    v = row.values
    return {
        "companies": lambda: records.company(v["id"]),
        "groups": lambda: records.group(v["company"], v["id"]),
        "accounts": lambda: records.account(v["id"]),
        "memberships": lambda: records.membership(v["account"], v["company"]),
        "assignments": lambda: records.assignment(
            v["approver"], v["account"], v["company"], v["step"]
        ),
        "delegations": lambda: records.delegation(
            v["delegator"], v["delegate"], v["company"], v["step"]
        ),
    }[row.kind]()


def _write(service: DirectoryService, row: SyncRow, parents: bool) -> None:
    v = row.values
    if row.kind == "companies":
        if parents:
            service.upsert_company(v["id"], parent=v["parent"])
        else:
            service.upsert_company(
                v["id"], name=v["name"] or v["id"], ruleset=v["ruleset"], attributes=v["attributes"]
            )
    elif row.kind == "groups":
        service.upsert_group(v["company"], v["id"], name=v["name"] or v["id"])
    elif row.kind == "accounts":
        service.upsert_account(
            v["id"],
            name=v["name"] or v["id"],
            email=v["email"],
            email_enabled=v["email_enabled"],
            active=v["active"],
        )
    elif row.kind == "memberships":
        service.upsert_membership(
            v["account"],
            v["company"],
            role=v["role"],
            group=v["group"],
            master=v["master"],
            default=v["default"],
            status=v["status"],
            settings=v["settings"],
            attributes=v["attributes"],
            move=True,
        )
    elif row.kind == "assignments":
        service.upsert_assignment(
            v["approver"],
            v["account"],
            v["company"],
            threshold=v["threshold"],
            limit=v["limit"],
            step=v["step"],
        )
    else:
        service.upsert_delegation(
            v["delegator"],
            v["delegate"],
            v["valid_from"],
            v["valid_until"],
            company=v["company"],
            step=v["step"],
        )


def _units(rows: list[SyncRow], atomic: str) -> list[list[SyncRow]]:
    ordered = sorted(rows, key=lambda r: (KINDS.index(r.kind), r.line))
    if atomic == "all":
        return [ordered]
    tenant_wide = [r for r in ordered if r.company() is None]
    companies: dict[str, list[SyncRow]] = {}
    for row in ordered:
        if row.company() is not None:
            companies.setdefault(row.company(), []).append(row)
    return [unit for unit in [tenant_wide, *companies.values()] if unit]


def sync_directory(
    session: Session,
    tenant: Tenant,
    text: str,
    fmt: str,
    *,
    dry_run: bool = False,
    atomic: str = "all",
    company: str | None = None,
    actor: str = "sync",
) -> SyncReport:
    """Import ``text`` into ``tenant``'s directory (see the module's docstring).

    ``company``: the sync is that company's alone; a row of another company is refused.
    Raises :class:`SyncRefused` (422) carrying the report when nothing was applied because
    of bad rows; returns the report otherwise (a dry run never keeps anything).
    """
    if atomic not in ("all", "company"):
        raise ApprovalRulesError("invalid_atomic", f"atomic is all or company, not {atomic!r}")
    rows, bad = parse_rows(text, fmt)
    if company is not None:
        for row in list(rows):
            if row.company() not in (company, None) or (
                row.kind == "delegations" and row.company() is None
            ):
                rows.remove(row)
                bad.append(
                    {
                        "line": row.line,
                        "kind": row.kind,
                        "action": "error",
                        "error": _row_error(
                            row.line,
                            "other_company",
                            f"this sync is for company {company!r}; the row is not",
                        ).as_dict(),
                    }
                )
    # the tenant's row, locked: concurrent syncs and writes wait, and the version we set at
    # the end is ours alone
    start_version = session.scalar(
        select(Tenant.directory_version).where(Tenant.id == tenant.id).with_for_update()
    )
    report = SyncReport(dry_run=dry_run, atomic=atomic, rows=list(bad))
    records = DirectoryRecords(session, tenant)
    batch = session.begin_nested()
    kept_any = False
    for unit in _units(rows, atomic):
        unit_save = session.begin_nested()
        entries = _apply_unit(session, tenant, records, unit, actor)
        failed = any(e["action"] == "error" for e in entries) or (atomic == "all" and bad)
        if failed and unit_save.is_active:
            unit_save.rollback()
            records.forget()
            for entry in entries:
                if entry["action"] != "error":
                    entry["action"], entry["was"] = "rolled_back", entry["action"]
        else:
            unit_save.commit()
            kept_any = kept_any or any(e["action"] in ("created", "updated") for e in entries)
        report.rows.extend(entries)
    report.rows.sort(key=lambda e: e["line"])
    if dry_run or not kept_any:
        batch.rollback()
        session.expire(tenant, ["directory_version"])
    else:
        batch.commit()
        # every row's write bumped the counter (each savepoint forgets the last bump): the
        # batch is one change of the directory
        tenant.directory_version = start_version + 1
        session.flush()
        report.applied = True
    report.directory_version = tenant.directory_version
    if report.errors and not report.applied and not dry_run:
        first = report.errors[0]
        raise SyncRefused(
            "sync_refused",
            f"nothing was imported: {len(report.errors)} bad row(s); the first, "
            f"{first['error']['message']}",
            details=report.as_dict(),
        )
    return report


def _apply_unit(session, tenant, records, unit: list[SyncRow], actor: str) -> list[dict]:
    service = DirectoryService(session, tenant, actor=actor)
    entries: dict[int, dict[str, Any]] = {}
    befores: dict[int, dict | None] = {}
    for parents in (False, True):
        for row in unit:
            if parents and not (row.kind == "companies" and row.values["parent"]):
                continue
            if entries.get(id(row), {}).get("action") == "error":
                continue
            if not parents:
                befores[id(row)] = _read(records, row)
            savepoint = session.begin_nested()
            try:
                _write(service, row, parents)
                savepoint.commit()
            except ApprovalRulesError as exc:
                savepoint.rollback()
                # a rolled-back row may have put rows into the service's caches
                service.forget_cached_rows()
                records.forget()
                message = f"line {row.line}: {exc}"
                entries[id(row)] = {
                    "line": row.line,
                    "kind": row.kind,
                    "key": row.key(),
                    "action": "error",
                    "error": {**exc.as_dict(), "message": message},
                }
                continue
            entries.setdefault(id(row), {"line": row.line, "kind": row.kind, "key": row.key()})
    for row in unit:
        entry = entries[id(row)]
        if entry.get("action") == "error":
            continue
        before, after = befores[id(row)], _read(records, row)
        if before is None:
            entry["action"] = "created"
        elif before == after:
            entry["action"] = "unchanged"
        else:
            entry["action"] = "updated"
            entry["changes"] = sorted(k for k in after if before.get(k) != after[k])
    return [entries[id(row)] for row in unit]


# ------------------------------------------------------------------ export


def export_directory(session: Session, tenant: Tenant, fmt: str, company: str | None = None) -> str:
    """The tenant's directory (or one company's) as JSON or CSV, in the shape a sync reads."""
    if fmt not in FORMATS:
        raise ApprovalRulesError("invalid_format", f"format is json or csv, not {fmt!r}")
    listings = DirectoryListings(session, tenant)
    data: dict[str, list[dict[str, Any]]] = {}
    for kind in KINDS:
        # one company: its members' accounts, and its own groups, memberships, assignments
        # and delegations
        filters = {"company": company} if company is not None and kind != "companies" else {}
        items, cursor = [], None
        while True:
            page = listings.page(kind, filters, cursor, 200)
            items += [{k: v for k, v in item.items() if k != "etag"} for item in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        if company is not None and kind == "companies":
            items = [c for c in items if c["id"] == company]
        data[kind] = items
    if fmt == "json":
        return json.dumps(data, indent=1, sort_keys=False) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    words = {kind: word for word, kind in TYPES.items()}
    for kind in KINDS:
        for record in data[kind]:
            row = {"type": words[kind]}
            for name, value in record.items():
                if value is None:
                    value = ""
                elif isinstance(value, bool):
                    value = "true" if value else "false"
                elif isinstance(value, dict):
                    value = json.dumps(value, sort_keys=True) if value else ""
                row[name] = value
            writer.writerow(row)
    return out.getvalue()
