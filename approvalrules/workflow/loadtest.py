"""Many due items for the jobs, and runners that work them off from other processes.

The two-runner tests (tests/workflow/test_jobs_two_runners.py) and the jobs
benchmark (bench/jobs.py) share it:

* :func:`prepare` migrates a database, publishes three rule sets (requests that
  expire, steps that escalate after an hour, reminders after a day), fills a small
  directory and submits one order per rule set through the workflow: the
  templates whose rows :func:`seed` copies.
* :func:`seed` writes N due items of one kind with bulk Core inserts (orders,
  approval requests and their eligibility rows as the workflow wrote them, timers
  in the past; or outbox events due now).
* :func:`run_runners` starts R processes (``python -m approvalrules.workflow.loadtest
  JOB INI START``) that each run the cron job's own code (``workflow.commands``:
  one transaction per run, as ``approvalrules expire|remind|dispatch INI``) again
  and again until a run finds nothing to do.
* :func:`check` says what went wrong: an item acted on twice, or left due.
* :class:`WebhookCounter` receives the dispatcher's webhooks and counts deliveries
  per event id.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from ..store import migrate, versions
from ..store.db import create_engine_for_url
from ..store.directory_service import DirectoryService
from ..store.models import (
    ApprovalEligibility,
    ApprovalRequest,
    AuditEvent,
    Order,
    OutboxEvent,
    Tenant,
)
from ..store.services import ensure_tenant

#: what each job does to the items of a kind: the job, the audit action and the event
KINDS = {
    "expire": ("expire", "order.expired", "order_expired"),
    "escalate": ("expire", "approval.escalated", "approval_escalated"),
    "remind": ("remind", None, "approval_reminder"),
    "dispatch": ("dispatch", None, None),
}
TENANT = "jobs-load"
#: the companies (and rule sets) of the request kinds
COMPANIES = {"expire": "exp-co", "escalate": "esc-co", "remind": "rem-co"}
PREFIX = "LOAD-"

RULESETS = {
    "expiring": """\
ruleset: expiring
roles:
  buyer:   {label: Buyer,   permissions: [place_orders]}
  manager: {label: Manager, permissions: [place_orders, approve_orders]}
approval:
  expiry: {after: P7D, then: cancel}
  steps:
    - name: manager
      when: {total: {gt: 500}}
      approvers: {any_of: [{role: manager}]}
""",
    "escalating": """\
ruleset: escalating
roles:
  buyer:    {label: Buyer,    permissions: [place_orders]}
  manager:  {label: Manager,  permissions: [place_orders, approve_orders]}
  director: {label: Director, permissions: [place_orders, approve_orders]}
approval:
  steps:
    - name: manager
      when: {total: {gt: 500}}
      approvers: {any_of: [{role: manager}]}
      escalate_after: PT1H
      escalate_to: {role: director}
""",
    "reminding": """\
ruleset: reminding
roles:
  buyer:   {label: Buyer,   permissions: [place_orders]}
  manager: {label: Manager, permissions: [place_orders, approve_orders]}
approval:
  reminders: {after: P1D, every: P30D}
  steps:
    - name: manager
      when: {total: {gt: 500}}
      approvers: {any_of: [{role: manager}]}
""",
}
RULESET_OF = {"expire": "expiring", "escalate": "escalating", "remind": "reminding"}


def write_ini(folder: Path, url: str) -> Path:
    """An .ini for the cron jobs: the database, e-mail into ``folder/mail``, short webhook
    timeouts."""
    path = folder / "jobs.ini"
    path.write_text(
        "[app:main]\nuse = egg:approvalrules\n"
        f"sqlalchemy.url = {url}\n"
        "approvalrules.mail_transport = file\n"
        f"approvalrules.mail_dir = {folder / 'mail'}\n"
        "approvalrules.webhook_timeout = 10\n"
    )
    return path


def prepare(url: str, webhook_url: str | None = None) -> None:
    """Migrate the database at ``url``, publish the rule sets, fill the directory and submit one
    template order per request kind (``webhook_url``: where the tenant's webhooks go)."""
    from . import actions

    migrate.upgrade(url)
    engine = create_engine_for_url(url)
    try:
        with Session(engine) as session:
            tenant = ensure_tenant(session, TENANT, "Jobs under load")
            if webhook_url:
                tenant.settings = {
                    **(tenant.settings or {}),
                    "webhook": {"url": webhook_url, "secret": "load-secret"},
                }
            for name, text in RULESETS.items():
                versions.publish(session, tenant.id, name, "loadtest", text=text)
            directory = DirectoryService(session, tenant, actor="loadtest")
            for kind, company in COMPANIES.items():
                directory.upsert_company(company, name=company, ruleset=RULESET_OF[kind])
            for account in ("bea", "max", "dirk"):
                directory.upsert_account(account, name=account.title(), email=f"{account}@l.test")
            for company in COMPANIES.values():
                directory.upsert_membership("bea", company, role="buyer")
                directory.upsert_membership("max", company, role="manager")
            directory.upsert_membership("dirk", COMPANIES["escalate"], role="director")
            session.flush()
            for kind, company in COMPANIES.items():
                order, _ = actions.submit(
                    session,
                    tenant,
                    {
                        "id": f"TEMPLATE-{kind}",
                        "buyer": "bea",
                        "company": company,
                        "total": "800.00",
                        "currency": "USD",
                    },
                )
                assert order.status == "pending", order.status
            # the templates' own events are not part of the load
            session.execute(update(OutboxEvent).values(delivered_at=func.now()))
            session.commit()
    finally:
        engine.dispose()


def seed(url: str, kind: str, count: int, batch: str = "a", now: datetime | None = None) -> None:
    """``count`` items of ``kind`` due at ``now``, copied from the template with bulk inserts;
    ``batch`` names them apart from earlier ones (:func:`check` looks at one batch)."""
    now = now or datetime.now(UTC)
    engine = create_engine_for_url(url)
    try:
        with Session(engine) as session:
            tenant = session.scalar(select(Tenant).where(Tenant.slug == TENANT))
            if kind == "dispatch":
                _seed_events(session, tenant, count, now, batch)
            else:
                _seed_requests(session, tenant, kind, count, now, batch)
            session.commit()
    finally:
        engine.dispose()


def _columns(row: Any, table, skip: tuple[str, ...] = ("id",)) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in table.columns if c.key not in skip}


def _seed_requests(
    session: Session, tenant: Tenant, kind: str, count: int, now: datetime, batch: str
) -> None:
    template = session.scalar(
        select(Order).where(Order.tenant_id == tenant.id, Order.external_id == f"TEMPLATE-{kind}")
    )
    request = session.scalar(select(ApprovalRequest).where(ApprovalRequest.order_id == template.id))
    eligibility = session.scalars(
        select(ApprovalEligibility).where(ApprovalEligibility.request_id == request.id)
    ).all()
    started = {
        "expire": now - timedelta(days=8),
        "escalate": now - timedelta(hours=2),
        "remind": now - timedelta(days=2),
    }[kind]
    expires = now - timedelta(hours=1) if kind == "expire" else None
    order_row = _columns(template, Order.__table__)
    request_row = _columns(request, ApprovalRequest.__table__)
    chunk = 2000
    for first in range(0, count, chunk):
        numbers = range(first, min(first + chunk, count))
        order_ids = session.scalars(
            insert(Order).returning(Order.id, sort_by_parameter_order=True),
            [
                {
                    **order_row,
                    "external_id": f"{PREFIX}{kind}-{batch}-{n:06d}",
                    "idempotency_key": None,
                    "created_at": started,
                    "updated_at": started,
                }
                for n in numbers
            ],
        ).all()
        request_ids = session.scalars(
            insert(ApprovalRequest).returning(ApprovalRequest.id, sort_by_parameter_order=True),
            [
                {
                    **request_row,
                    "order_id": order_id,
                    "created_at": started,
                    "step_started_at": started,
                    "expires_at": expires,
                    "version_id": 1,
                }
                for order_id in order_ids
            ],
        ).all()
        session.execute(
            insert(ApprovalEligibility),
            [
                {
                    **_columns(row, ApprovalEligibility.__table__),
                    "request_id": request_id,
                    "created_at": started,
                }
                for request_id in request_ids
                for row in eligibility
            ],
        )


def _seed_events(session: Session, tenant: Tenant, count: int, now: datetime, batch: str) -> None:
    template = session.scalar(
        select(OutboxEvent).where(OutboxEvent.tenant_id == tenant.id).order_by(OutboxEvent.id)
    )
    # the events the other jobs queued are not part of this load
    session.execute(
        update(OutboxEvent).where(OutboxEvent.delivered_at.is_(None)).values(delivered_at=now)
    )
    rows = [
        {
            "tenant_id": tenant.id,
            "event_id": uuid.uuid4(),
            "event_type": template.event_type,
            "payload": {
                **template.payload,
                "order": {**template.payload["order"], "id": f"{PREFIX}event-{batch}-{n:06d}"},
            },
            # the webhook only: e-mail files carry no count (a second delivery replaces its file)
            "recipients": [],
            "created_at": now - timedelta(minutes=5),
            "attempts": 0,
            "next_attempt_at": now - timedelta(minutes=1),
        }
        for n in range(count)
    ]
    for first in range(0, count, 2000):
        session.execute(insert(OutboxEvent), rows[first : first + 2000])


# ------------------------------------------------------------------ the runners


def run_job(ini: str, job: str) -> tuple[int, int]:
    """Run the cron job ``job`` on ``ini`` until a run finds nothing; (runs, items acted on)."""
    from . import commands

    runs = acted = 0
    while True:
        runs += 1
        if job == "dispatch":
            report = commands.dispatch(ini)
            done = report.delivered + report.failed
        else:
            done = getattr(commands, job)(ini)
        acted += done
        if not done:
            return runs, acted


def run_runners(ini: Path, job: str, runners: int, *, start_delay: float = 4.0) -> dict:
    """``runners`` processes running ``job`` at once (each starts at the same instant, once it
    has imported the service); what each did and the seconds from start to the last one's
    end."""
    start_at = time.time() + start_delay
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", __name__, job, str(ini), repr(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(runners)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"runner of {job} exited {proc.returncode}: {err[-2000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return {
        "runners": results,
        # from the first runner's start (one still importing at ``start_at`` starts late)
        "seconds": max(r["ended"] for r in results) - min(r["started"] for r in results),
        "acted": sum(r["acted"] for r in results),
        # the runners' own CPU seconds (not PostgreSQL's): equal work splits, not repeats
        "cpu": sum(r["cpu"] for r in results),
    }


def _runner_main(argv: list[str]) -> int:
    job, ini, start_at = argv[0], argv[1], float(argv[2])
    from . import commands  # noqa: F401 - imported before the start, not timed

    time.sleep(max(0.0, start_at - time.time()))
    started, cpu = time.time(), time.process_time()
    runs, acted = run_job(ini, job)
    print(
        json.dumps(
            {
                "runs": runs,
                "acted": acted,
                "started": started,
                "ended": time.time(),
                "cpu": time.process_time() - cpu,
            }
        )
    )
    return 0


# -------------------------------------------------------------------- checks


def check(
    url: str, kind: str, count: int, deliveries: Counter | None = None, batch: str = "a"
) -> list[str]:
    """What is wrong after the jobs ran over the ``count`` items of ``kind`` seeded as ``batch``:
    items acted on more than once or not at all, items still due (empty: each exactly once)."""
    engine = create_engine_for_url(url)
    problems: list[str] = []
    try:
        with Session(engine) as session:
            if kind == "dispatch":
                return _check_events(
                    session, count, deliveries or Counter(), f"{PREFIX}event-{batch}-"
                )
            _, action, event_type = KINDS[kind]
            prefix = f"{PREFIX}{kind}-{batch}-"
            requests = session.execute(
                select(Order.external_id, ApprovalRequest.status, ApprovalRequest.steps)
                .join(ApprovalRequest, ApprovalRequest.order_id == Order.id)
                .where(Order.external_id.like(f"{prefix}%"))
            ).all()
            if len(requests) != count:
                problems.append(f"{len(requests)} requests seeded, not {count}")
            if kind == "expire":
                left = [oid for oid, status, _ in requests if status != "expired"]
            else:
                left = [
                    oid
                    for oid, status, steps in requests
                    if status != "pending"
                    or (kind == "escalate" and not steps[0].get("escalated_at"))
                ]
            if left:
                problems.append(f"{len(left)} not acted on, e.g. {left[:3]}")
            if kind == "remind":
                reminded = session.scalar(
                    select(func.count())
                    .select_from(ApprovalRequest)
                    .join(Order, ApprovalRequest.order_id == Order.id)
                    .where(
                        Order.external_id.like(f"{prefix}%"),
                        ApprovalRequest.last_reminded_at.is_not(None),
                    )
                )
                if reminded != count:
                    problems.append(f"{reminded} of {count} requests note a reminder")
            if action:
                audits = Counter(
                    session.scalars(
                        select(AuditEvent.subject_id).where(
                            AuditEvent.action == action,
                            AuditEvent.subject_id.like(f"{prefix}%"),
                        )
                    )
                )
                problems += _exactly_once(f"audit {action}", audits, count)
            events = Counter(
                payload["order"]["id"]
                for payload in session.scalars(
                    select(OutboxEvent.payload).where(OutboxEvent.event_type == event_type)
                )
                if payload["order"]["id"].startswith(prefix)
            )
            problems += _exactly_once(f"event {event_type}", events, count)
    finally:
        engine.dispose()
    return problems


def _exactly_once(what: str, seen: Counter, count: int) -> list[str]:
    twice = {k: v for k, v in seen.items() if v > 1}
    problems = []
    if twice:
        problems.append(f"{what}: {len(twice)} items more than once, e.g. {list(twice)[:3]}")
    if len(seen) != count:
        problems.append(f"{what}: {len(seen)} items of {count}")
    return problems


def _check_events(session: Session, count: int, deliveries: Counter, prefix: str) -> list[str]:
    rows = [
        row
        for row in session.execute(
            select(OutboxEvent.event_id, OutboxEvent.payload, OutboxEvent.attempts).where(
                OutboxEvent.delivered_at.is_(None) | (OutboxEvent.attempts > 0)
            )
        )
        if row.payload["order"]["id"].startswith(prefix)
    ]
    problems = []
    if len(rows) != count:
        problems.append(f"{len(rows)} of {count} seeded events were delivered")
    retried = [str(r.event_id) for r in rows if r.attempts != 1]
    if retried:
        problems.append(f"{len(retried)} events not delivered in exactly one attempt")
    seeded = {str(r.event_id) for r in rows}
    twice = [event for event, times in deliveries.items() if times > 1]
    if twice:
        problems.append(f"{len(twice)} events delivered more than once, e.g. {twice[:3]}")
    return problems + _exactly_once(
        "webhook deliveries", Counter({e: deliveries[e] for e in seeded if e in deliveries}), count
    )


class WebhookCounter:
    """A local webhook receiver (a thread) that counts the deliveries of each event id."""

    def __init__(self) -> None:
        self.deliveries: Counter = Counter()
        lock = threading.Lock()
        counter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    counter.deliveries[self.headers["X-Approvalrules-Event-Id"]] += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):  # quiet
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookCounter:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    sys.exit(_runner_main(sys.argv[1:]))
