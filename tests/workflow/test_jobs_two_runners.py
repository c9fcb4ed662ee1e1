"""Two cron runners at once over the same due items, on PostgreSQL: every item acted on exactly
once, none left due.

Each runner is its own OS process running the cron job's code
(``approvalrules.workflow.commands``: ``approvalrules expire|remind|dispatch INI``)
again and again until a run finds nothing to do; both start at the same instant.
The due items are written with bulk inserts (``approvalrules.workflow.loadtest``):
requests past their expiry, steps past ``escalate_after``, requests due a
reminder, outbox events due for delivery to a local webhook receiver that counts
deliveries per event id.  Afterwards each request has exactly one audit row and
one event of its kind, and each event was delivered exactly once, in one attempt.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from approvalrules.store.testing import (
    DATABASE_ENV,
    create_postgres_database,
    drop_postgres_database,
)
from approvalrules.workflow import loadtest


@pytest.fixture(scope="module")
def hooks():
    with loadtest.WebhookCounter() as counter:
        yield counter


@pytest.fixture(scope="module")
def database(tmp_path_factory, hooks):
    """A committed PostgreSQL database of its own (the runners are other processes, so no
    rolled-back test transaction): migrated, with the rule sets, directory and templates."""
    base = os.environ.get(DATABASE_ENV)
    if not base or not base.startswith("postgresql"):
        pytest.skip(
            f"two runners need PostgreSQL (FOR UPDATE SKIP LOCKED, concurrent writers): "
            f"set {DATABASE_ENV}"
        )
    url = create_postgres_database(base, prefix="ar_jobs_two_runners")
    try:
        loadtest.prepare(url, hooks.url)
        yield url, loadtest.write_ini(tmp_path_factory.mktemp("jobs"), url)
    finally:
        drop_postgres_database(url, base)


def _two_runners_act_once(database, hooks, kind: str, count: int) -> None:
    url, ini = database
    batch = f"n{count}"
    loadtest.seed(url, kind, count, batch)
    hooks.deliveries.clear()
    result = loadtest.run_runners(ini, loadtest.KINDS[kind][0], 2)
    assert loadtest.check(url, kind, count, hooks.deliveries, batch) == []
    if kind != "dispatch":  # dispatch also delivers the events the other jobs queued
        assert result["acted"] == count
    assert all(runner["runs"] >= 1 for runner in result["runners"])


@pytest.mark.parametrize("kind", ["expire", "escalate", "remind", "dispatch"])
def test_two_runners_act_on_each_of_1000_due_items_exactly_once(database, hooks, kind):
    _two_runners_act_once(database, hooks, kind, 1000)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["expire", "escalate", "remind", "dispatch"])
def test_two_runners_act_on_each_of_10000_due_items_exactly_once(database, hooks, kind):
    _two_runners_act_once(database, hooks, kind, 10_000)


def test_two_runs_of_the_real_command_at_once_expire_each_request_once(database, hooks):
    """``approvalrules expire INI`` twice at the same moment (the console script's own entry
    point, two processes): together they expire every request once."""
    url, ini = database
    loadtest.seed(url, "expire", 300, "cli")
    command = [sys.executable, "-m", "approvalrules.cli", "expire", str(ini)]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    counts = [int(out.strip().rsplit(":", 1)[1]) for out in outputs]
    assert sum(counts) == 300, outputs
    assert loadtest.check(url, "expire", 300, batch="cli") == []
