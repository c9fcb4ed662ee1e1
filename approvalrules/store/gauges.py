"""Gauges read from the database when Prometheus scrapes ``/metrics``.

Approval requests by status and the outbox's backlog live in the database, the one
place every process and host shares, so they are counted there at scrape time (two
short queries under a statement timeout) instead of being tracked by each process.
Totals only, never per tenant: every label value is a time series kept forever, and a
service with thousands of tenants would multiply each gauge by thousands.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import case, func, select
from sqlalchemy.engine import Engine

from .models import REQUEST_STATUSES, ApprovalRequest, OutboxEvent

log = logging.getLogger(__name__)

#: seconds the scrape's queries may take (PostgreSQL's statement_timeout for them)
DEFAULT_TIMEOUT = 2.0


class DatabaseGauges:
    """A prometheus_client collector: pending approvals and the outbox backlog, counted in
    the database at each scrape.  When the database does not answer in time the gauges are
    left out and ``approvalrules_database_metrics_ok`` is 0 (the scrape itself succeeds)."""

    def __init__(self, engine: Engine, timeout: float = DEFAULT_TIMEOUT):
        self.engine = engine
        self.timeout = timeout

    def describe(self):
        return []  # no query when the collector is registered

    def collect(self):
        ok = GaugeMetricFamily(
            "approvalrules_database_metrics_ok",
            "1 when the database answered this scrape's queries in time, else 0",
        )
        try:
            by_status, undelivered, oldest, failing = self._read()
        except Exception as failure:  # a scrape reports the failure, it does not fail
            log.warning("metrics: the database did not answer: %s", failure)
            ok.add_metric([], 0)
            yield ok
            return
        ok.add_metric([], 1)
        yield ok
        requests = GaugeMetricFamily(
            "approvalrules_approval_requests",
            "Approval requests by status, every tenant together",
            labels=("status",),
        )
        for status in REQUEST_STATUSES:
            requests.add_metric([status], by_status.get(status, 0))
        yield requests
        yield GaugeMetricFamily(
            "approvalrules_outbox_undelivered_events",
            "Outbox events (e-mails, webhooks) not delivered yet, given up ones included",
            value=undelivered,
        )
        yield GaugeMetricFamily(
            "approvalrules_outbox_oldest_undelivered_age_seconds",
            "Age of the oldest undelivered outbox event (0 when none waits)",
            value=oldest,
        )
        yield GaugeMetricFamily(
            "approvalrules_outbox_failing_events",
            "Undelivered outbox events whose delivery failed at least once",
            value=failing,
        )

    def _read(self) -> tuple[dict[str, int], int, float, int]:
        with self.engine.connect() as connection, connection.begin():
            if connection.dialect.name == "postgresql" and self.timeout:
                milliseconds = max(1, round(self.timeout * 1000))
                connection.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds}")
            by_status = dict(
                connection.execute(
                    select(ApprovalRequest.status, func.count()).group_by(ApprovalRequest.status)
                ).all()
            )
            undelivered, oldest, failing = connection.execute(
                select(
                    func.count(),
                    func.min(OutboxEvent.created_at),
                    func.coalesce(func.sum(case((OutboxEvent.attempts > 0, 1), else_=0)), 0),
                ).where(OutboxEvent.delivered_at.is_(None))
            ).one()
        age = 0.0
        if oldest is not None:
            oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
            age = max(0.0, (datetime.now(UTC) - oldest).total_seconds())
        return by_status, undelivered, age, int(failing)
