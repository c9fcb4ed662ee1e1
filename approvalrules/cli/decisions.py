"""``approvalrules decisions INI``: read the decision log's table, or prune it.

Newest first, filtered by tenant, kind, outcome, rule set, time, request id or order;
a readable table, or JSON lines with ``--json``.  ``--prune`` deletes what is older than
``approvalrules.decision_log.retention_days``.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select

from ..errors import ApprovalRulesError
from ..store.db import get_engine, settings_from_ini
from ..store.decision_log import SETTING, DecisionLogSettings, prune
from ..store.models import DECISION_KINDS, DecisionLogEntry, Tenant

#: the engine's outcomes (the OpenAPI document's decision.outcome)
OUTCOMES = ("approved", "pending", "blocked", "held")
DEFAULT_LIMIT = 50
MAX_LIMIT = 100_000


class BadFilter(ApprovalRulesError):
    """A filter of ``approvalrules decisions`` that cannot be used as given."""

    def __init__(self, option: str, message: str):
        super().__init__("bad_filter", message, path=option)


def parse_moment(text: str, option: str, *, end_of_day: bool = False) -> datetime:
    """``--since``/``--until``: an ISO date (``2026-11-27``: the day's start, or with
    ``end_of_day`` the next day's start) or date-time (naive: UTC), as an aware UTC instant."""
    value = text.strip()
    try:
        day = date.fromisoformat(value)
    except ValueError:
        pass
    else:
        moment = datetime.combine(day, time(), tzinfo=UTC)
        return moment + timedelta(days=1) if end_of_day else moment
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadFilter(
            option,
            f"{text!r} is not an ISO date or date-time; write e.g. 2026-11-27, "
            "2026-11-27T14:30 (UTC) or 2026-11-27T14:30+01:00",
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _as_utc(value: datetime) -> datetime:
    # SQLite gives back naive values; every stored instant is UTC
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def query(session, args):
    """The ``select`` of the rows ``args`` asks for, newest first, with each row's tenant slug."""
    table = DecisionLogEntry
    statement = select(table, Tenant.slug).join(Tenant, Tenant.id == table.tenant_id)
    if args.tenant:
        tenant_id = session.scalar(select(Tenant.id).where(Tenant.slug == args.tenant))
        if tenant_id is None:
            known = session.scalars(select(Tenant.slug).order_by(Tenant.slug).limit(20)).all()
            raise BadFilter(
                "--tenant",
                f"no tenant {args.tenant!r} in this database; tenants: "
                + (", ".join(known) or "none"),
            )
        statement = statement.where(table.tenant_id == tenant_id)
    if args.outcome:
        if args.outcome not in OUTCOMES:
            raise BadFilter(
                "--outcome", f"{args.outcome!r} is not an outcome; use one of {', '.join(OUTCOMES)}"
            )
        statement = statement.where(table.outcome == args.outcome)
    if args.kind:
        statement = statement.where(table.kind == args.kind)
    if args.ruleset:
        statement = statement.where(table.ruleset == args.ruleset)
    since = parse_moment(args.since, "--since") if args.since else None
    until = parse_moment(args.until, "--until", end_of_day=True) if args.until else None
    if since and until and since >= until:
        raise BadFilter(
            "--since",
            f"{args.since} is not before --until {args.until}: nothing could match; "
            "swap them or widen the range",
        )
    if since:
        statement = statement.where(table.decided_at >= since)
    if until:
        statement = statement.where(table.decided_at < until)
    if args.request_id:
        statement = statement.where(table.request_id == args.request_id)
    if args.order:
        statement = statement.where(table.order_id == args.order)
    return statement.order_by(table.decided_at.desc(), table.id.desc()).limit(args.limit)


def entry_data(entry: DecisionLogEntry, tenant: str) -> dict:
    """One row as ``--json`` prints it."""
    return {
        "id": entry.id,
        "decided_at": _as_utc(entry.decided_at).isoformat(),
        "tenant": tenant,
        "kind": entry.kind,
        "request_id": entry.request_id,
        "ruleset": entry.ruleset,
        "version": entry.version,
        "policy_hash": entry.policy_hash,
        "input_digest": entry.input_digest,
        "order_id": entry.order_id,
        "outcome": entry.outcome,
        "steps": list(entry.steps or ()),
    }


COLUMNS = ("decided (UTC)", "tenant", "kind", "rule set", "outcome", "steps", "order", "request")


def _table_row(entry: DecisionLogEntry, tenant: str) -> tuple[str, ...]:
    return (
        _as_utc(entry.decided_at).strftime("%Y-%m-%d %H:%M:%S"),
        tenant,
        entry.kind,
        f"{entry.ruleset} v{entry.version}" if entry.version is not None else entry.ruleset,
        entry.outcome,
        ", ".join(entry.steps or ()) or "-",
        entry.order_id or "-",
        entry.request_id or "-",
    )


def render_table(rows: list[tuple[str, ...]]) -> str:
    """Columns padded to their widest cell, a header and a rule."""
    widths = [max(len(cell) for cell in column) for column in zip(COLUMNS, *rows, strict=False)]
    lines = [COLUMNS, tuple("-" * w for w in widths), *rows]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def run(args) -> int:
    """``approvalrules decisions``: list (or ``--prune``) the decision log's table."""
    from sqlalchemy.orm import Session

    if args.limit < 1 or args.limit > MAX_LIMIT:
        raise BadFilter("--limit", f"{args.limit} is out of range; give 1 to {MAX_LIMIT:,}")
    settings = settings_from_ini(args.ini)
    engine = get_engine(settings)
    try:
        if args.prune:
            try:
                config = DecisionLogSettings.from_settings(settings)
            except ValueError as exc:
                raise ApprovalRulesError("bad_setting", f"{args.ini}: {exc}") from None
            if not config.retention_days:
                print(f"{SETTING}.retention_days is 0 in {args.ini}: records are kept forever")
                return 0
            deleted = prune(engine, config.retention_days)
            print(
                f"decisions: {deleted} record{'s' if deleted != 1 else ''} older than "
                f"{config.retention_days} days deleted"
            )
            return 0
        with Session(engine) as session:
            found = session.execute(query(session, args)).all()
        if args.json:
            for entry, tenant in found:
                print(json.dumps(entry_data(entry, tenant), separators=(",", ":")))
        elif found:
            print(render_table([_table_row(entry, tenant) for entry, tenant in found]))
        else:
            print("no decisions match" if _filtered(args) else "the decision log is empty")
            sink = str(settings.get(SETTING) or "off").strip()
            if sink != "table":
                print(
                    f"({args.ini} has {SETTING} = {sink}: the app writes decisions to this "
                    "table only with table)"
                )
        return 0
    finally:
        engine.dispose()


def _filtered(args) -> bool:
    return any(
        getattr(args, name)
        for name in (
            "tenant",
            "outcome",
            "kind",
            "ruleset",
            "since",
            "until",
            "request_id",
            "order",
        )
    )


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "decisions",
        help="list the decision log (approvalrules.decision_log = table), newest first; "
        "--prune deletes records past the retention",
    )
    p.add_argument("ini", help="the .ini file naming the database (sqlalchemy.url)")
    p.add_argument("--tenant", metavar="SLUG", help="one tenant's decisions")
    p.add_argument("--kind", choices=DECISION_KINDS, help="evaluate or submit")
    p.add_argument("--outcome", help=f"one of {', '.join(OUTCOMES)}")
    p.add_argument("--ruleset", metavar="NAME", help="decisions under this rule set")
    p.add_argument(
        "--since",
        metavar="WHEN",
        help="from this ISO date or date-time on (a date: its start; no offset: UTC)",
    )
    p.add_argument(
        "--until",
        metavar="WHEN",
        help="before this ISO date-time, or up to the end of this ISO date",
    )
    p.add_argument("--request-id", metavar="ID", help="the decision of one request")
    p.add_argument("--order", metavar="ID", help="the storefront's order id (submits)")
    p.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"at most this many (default {DEFAULT_LIMIT})",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument(
        "--prune",
        action="store_true",
        help=f"delete records older than {SETTING}.retention_days (default 30) instead",
    )
    p.set_defaults(func=run)
