"""``approvalrules expire|remind|dispatch INI`` and ``approvalrules api-key INI TENANT``: cron jobs.

Each job runs in short transactions and is idempotent; several hosts may run
the same job at once (conditional updates and SKIP LOCKED keep them apart).
"""

from __future__ import annotations

import sys

import transaction
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from .. import observability
from ..errors import NotFound
from ..store.commands import settings_from_ini
from ..store.db import get_engine, get_tm_session
from ..store.models import API_KEY_SCOPES, ApiKey
from ..store.services import (
    create_api_key,
    default_key_rate,
    resolve_tenant,
    set_api_key_rate,
)
from . import jobs, outbox


def _with_session(ini_path: str, job, name: str | None = None):
    """``job(session, settings)`` in one committed transaction; a ``name``d job's run and
    duration are recorded (approvalrules_job_*, docs/deployment.md "Observability")."""
    settings = settings_from_ini(ini_path)
    engine = get_engine(settings)
    try:
        factory = sessionmaker(bind=engine)
        manager = transaction.TransactionManager(explicit=True)
        with observability.job_run(name), manager:
            session = get_tm_session(factory, manager)
            return job(session, settings)
    finally:
        engine.dispose()


def expire(ini_path: str) -> int:
    """Handle timed-out steps (escalate, approve, cancel) and cancel requests past their expiry;
    returns how many."""
    return _with_session(ini_path, lambda session, settings: jobs.expire_due(session), "expire")


def remind(ini_path: str) -> int:
    """Queue reminders for requests pending longer than their rule set allows; returns how many."""
    return _with_session(ini_path, lambda session, settings: jobs.remind_due(session), "remind")


def dispatch(ini_path: str) -> outbox.DispatchReport:
    """Deliver due outbox events (e-mail and webhooks)."""
    return _with_session(
        ini_path, lambda session, settings: outbox.dispatch(session, settings), "dispatch"
    )


def run_dispatch(ini_path: str) -> int:
    """``approvalrules dispatch``: a summary on standard output, one line per failed delivery
    (event id, channel, recipient, error) on standard error; exit 1 when any delivery failed,
    so cron and monitoring notice."""
    report = dispatch(ini_path)
    print(report.summary())
    if report.emails and not report.mail_where.startswith("SMTP"):
        print(f"e-mail went to {report.mail_where}")  # development: no mail server needed
    for failure in report.failures:
        print(f"failed: {failure.describe()}", file=sys.stderr)
    return 1 if report.failed else 0


def create_key(
    ini_path: str, tenant: str, name: str, scope: str = "storefront", rate: int | None = None
) -> str:
    """A new API key of ``scope`` (and its own ``rate`` a minute) for ``tenant``; its plain text
    (shown once)."""
    return _with_session(
        ini_path,
        lambda session, settings: create_api_key(
            session,
            resolve_tenant(session, tenant),
            name,
            actor="cli",
            scope=scope,
            rate_per_minute=rate,
        )[1],
    )


def set_key_rate(ini_path: str, tenant: str, prefix: str, rate: int | None) -> str:
    """Give the tenant's key ``prefix`` its own rate (None or 0: the default); a line to print."""

    def job(session, settings):
        found = resolve_tenant(session, tenant)
        key = session.scalar(
            select(ApiKey).where(ApiKey.tenant_id == found.id, ApiKey.prefix == prefix)
        )
        if key is None:
            raise NotFound("unknown_api_key", f"tenant {tenant} has no API key {prefix}")
        set_api_key_rate(session, key, rate, actor="cli")
        limit = key.rate_per_minute or default_key_rate(settings)
        own = "its own" if key.rate_per_minute else "the service's default"
        return f"key {key.prefix} ({key.name}): {limit} requests a minute ({own})"

    return _with_session(ini_path, job)


def api_key_command(args) -> int:
    """``approvalrules api-key``: create a key, or with ``--key PREFIX`` change a key's rate."""
    if args.key:
        if args.rate is None:
            print(
                "--key PREFIX changes a key's rate: give --rate N (0: the default)", file=sys.stderr
            )
            return 2
        print(set_key_rate(args.ini, args.tenant, args.key, args.rate))
    else:
        print(create_key(args.ini, args.tenant, args.name, args.scope, args.rate))
    return 0


def add_parsers(sub) -> None:
    for name, job, help_text in (
        (
            "expire",
            expire,
            "escalate timed-out steps and cancel pending approval requests past their expiry",
        ),
        ("remind", remind, "send reminders for requests pending too long"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("ini")
        p.set_defaults(func=lambda args, job=job, name=name: print(f"{name}: {job(args.ini)}") or 0)
    p = sub.add_parser(
        "dispatch",
        help="deliver queued e-mails and webhooks; exit 1 and one line per failure if any failed",
    )
    p.add_argument("ini")
    p.set_defaults(func=lambda args: run_dispatch(args.ini))
    p = sub.add_parser("api-key", help="create an API key for a tenant; the key is shown once")
    p.add_argument("ini")
    p.add_argument("tenant", help="tenant slug")
    p.add_argument("--name", default="storefront")
    p.add_argument(
        "--scope",
        choices=API_KEY_SCOPES,
        default="storefront",
        help="storefront (default): evaluate, orders, approvals; merchant: also held orders, "
        "rule sets and the directory; read_only: rule sets, versions and directory reads",
    )
    p.add_argument(
        "--rate",
        type=int,
        metavar="N",
        help="the key's own requests a minute (0: the service's default, "
        "approvalrules.api.rate_per_minute)",
    )
    p.add_argument(
        "--key", metavar="PREFIX", help="change this existing key's --rate instead of creating one"
    )
    p.set_defaults(func=api_key_command)
