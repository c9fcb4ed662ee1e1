"""``approvalrules sync-directory`` and ``approvalrules dump-directory``: the bulk sync and
export of the API (``POST /api/v1/directory/sync``, ``GET .../export``) from the command line,
for an ERP job that runs beside the database.

Exit codes: 0 applied (or a clean dry run), 1 bad rows (nothing applied; each printed as
``FILE:LINE: message``), 2 an error before any row (unreadable file, unknown tenant...).
"""

from __future__ import annotations

import sys
from pathlib import Path

from sqlalchemy.orm import Session

from ..errors import ApprovalRulesError
from ..store.db import get_engine, settings_from_ini
from ..store.directory_sync import FORMATS, SyncRefused, export_directory, sync_directory
from ..store.services import resolve_tenant
from .common import EXIT_ERROR, EXIT_FAILED, EXIT_OK, report_error


def _format(path: str, given: str | None) -> str:
    return given or ("csv" if path.lower().endswith(".csv") else "json")


def _print_rows(source: str, rows: list[dict]) -> None:
    for row in rows:
        if row["action"] == "error":
            message = row["error"]["message"].removeprefix(f"line {row['line']}: ")
            print(f"{source}:{row['line']}: {message}", file=sys.stderr)


def cmd_sync(args) -> int:
    """Import FILE into the tenant's directory; prints the counts (and each bad line)."""
    try:
        text = Path(args.file).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return report_error(ApprovalRulesError("unreadable_file", f"{args.file}: {exc}"))
    engine = get_engine(settings_from_ini(args.ini))
    try:
        with Session(engine) as session, session.begin():
            report = sync_directory(
                session,
                resolve_tenant(session, args.tenant),
                text,
                _format(args.file, args.format),
                dry_run=args.dry_run,
                atomic="company" if args.per_company else "all",
                company=args.company,
                actor="cli",
            )
    except SyncRefused as refused:
        _print_rows(args.file, refused.details.get("rows", []))
        print(f"refused: {refused}", file=sys.stderr)
        return EXIT_FAILED
    except ApprovalRulesError as exc:
        return report_error(exc)
    finally:
        engine.dispose()
    _print_rows(args.file, report.rows)
    counts = ", ".join(f"{count} {action}" for action, count in report.counts().items())
    state = (
        "dry run, nothing kept"
        if report.dry_run
        else (
            f"applied, directory version {report.directory_version}"
            if report.applied
            else "nothing to change"
        )
    )
    print(f"{args.file}: {counts} ({state})")
    return EXIT_FAILED if report.errors and not report.applied else EXIT_OK


def cmd_dump(args) -> int:
    """Print (or write) the directory as JSON or CSV, in the shape ``sync-directory`` reads."""
    engine = get_engine(settings_from_ini(args.ini))
    try:
        with Session(engine) as session:
            text = export_directory(
                session, resolve_tenant(session, args.tenant), args.format, args.company
            )
    except ApprovalRulesError as exc:
        return report_error(exc)
    finally:
        engine.dispose()
    if args.output:
        Path(args.output).write_text(text, "utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "sync-directory",
        help="import a company's or the tenant's directory from JSON or CSV in one transaction",
    )
    p.add_argument("ini")
    p.add_argument("file", help="the records (.csv or .json; see docs/api.md, Bulk sync)")
    p.add_argument("--tenant", default="demo", help="tenant slug (default: demo)")
    p.add_argument("--format", choices=FORMATS, help="default: from the file's extension")
    p.add_argument("--company", help="a sync of this company alone: other rows are refused")
    p.add_argument("--dry-run", action="store_true", help="report the changes, keep nothing")
    p.add_argument("--per-company", action="store_true", help="each company stands or falls alone")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser(
        "dump-directory", help="print the directory as JSON or CSV, as sync-directory reads it"
    )
    p.add_argument("ini")
    p.add_argument("--tenant", default="demo", help="tenant slug (default: demo)")
    p.add_argument("--format", choices=FORMATS, default="json")
    p.add_argument("--company", help="only this company (its groups, members, approvers)")
    p.add_argument("-o", "--output", help="write to this file instead of standard output")
    p.set_defaults(func=cmd_dump)


__all__ = ["EXIT_ERROR", "add_parsers", "cmd_dump", "cmd_sync"]
