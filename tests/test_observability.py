"""Observability outside one app: the cron jobs' metrics, several processes' metrics summed
(PROMETHEUS_MULTIPROC_DIR), and the log formatters the .ini files name."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from approvalrules import observability
from approvalrules.cli import main
from approvalrules.store import migrate
from approvalrules.store.db import create_engine_for_url
from approvalrules.store.importer import load_folder
from approvalrules.store.services import resolve_tenant
from approvalrules.workflow import actions

ROOT = Path(__file__).resolve().parent.parent


def samples(registry) -> dict[tuple[str, frozenset], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_dispatch_run_counts_its_failed_deliveries_and_itself(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    engine = create_engine_for_url(url)
    migrate.upgrade(engine)
    with Session(engine) as session, session.begin():
        load_folder(session, ROOT / "rules")
        demo = resolve_tenant(session, "demo")
        demo.settings = {
            **(demo.settings or {}),
            "webhook": {"url": f"http://127.0.0.1:{_closed_port()}/hooks", "secret": "s"},
        }
        actions.submit(session, demo, {"id": "obs-1", "buyer": "bob", "total": 200})
    engine.dispose()
    ini = tmp_path / "jobs.ini"
    ini.write_text(
        f"[app:main]\nuse = egg:approvalrules\nsqlalchemy.url = {url}\n"
        f"approvalrules.smtp_host = 127.0.0.1\napprovalrules.smtp_port = {_closed_port()}\n"
        "approvalrules.smtp_timeout = 2\napprovalrules.webhook_timeout = 2\n"
    )
    registry = observability.exposition_registry()
    before = samples(registry)

    assert main(["dispatch", str(ini)]) == 1  # every delivery failed
    failed = int(re.search(r"(\d+) failed", capsys.readouterr().out).group(1))

    after = samples(registry)

    def moved(name, **labels):
        key = (name, frozenset(labels.items()))
        return after.get(key, 0) - before.get(key, 0)

    assert failed >= 2
    assert moved("approvalrules_outbox_delivery_failures_total", channel="webhook") >= 1
    assert moved("approvalrules_outbox_delivery_failures_total", channel="email") >= 1
    assert (
        sum(
            moved("approvalrules_outbox_delivery_failures_total", channel=channel)
            for channel in ("webhook", "email")
        )
        == failed
    )
    assert moved("approvalrules_job_runs_total", job="dispatch", result="ok") == 1
    assert moved("approvalrules_job_duration_seconds_count", job="dispatch") == 1


def test_a_job_that_raises_counts_as_an_error():
    registry = observability.exposition_registry()
    key = ("approvalrules_job_runs_total", frozenset({("job", "remind"), ("result", "error")}))
    before = samples(registry).get(key, 0)
    try:
        with observability.job_run("remind"):
            raise RuntimeError("the database went away")
    except RuntimeError:
        pass
    assert samples(registry)[key] == before + 1


RECORD_IN_A_WORKER = """
from approvalrules import observability
observability.count_decision("evaluate", "approved")
observability.count_decision("evaluate", "approved")
with observability.job_run("expire"):
    pass
"""


def test_several_processes_metrics_are_summed_in_multiprocess_mode(tmp_path, monkeypatch):
    """Two worker processes write to PROMETHEUS_MULTIPROC_DIR; a scrape sums them."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    environment = {**os.environ, observability.MULTIPROCESS_ENV: str(folder)}
    for _ in range(2):
        subprocess.run(
            [sys.executable, "-c", RECORD_IN_A_WORKER], env=environment, check=True, timeout=60
        )
    assert len(list(folder.glob("*.db"))) >= 2  # one file per process and kind of metric

    monkeypatch.setenv(observability.MULTIPROCESS_ENV, str(folder))
    summed = samples(observability.exposition_registry())
    evaluated = frozenset({("kind", "evaluate"), ("outcome", "approved")})
    assert summed[("approvalrules_decisions_total", evaluated)] == 4
    assert (
        summed[("approvalrules_job_runs_total", frozenset({("job", "expire"), ("result", "ok")}))]
        == 2
    )
    assert summed[("approvalrules_job_duration_seconds_count", frozenset({("job", "expire")}))] == 2
    # the same as prometheus_client's own collector reads there
    direct = CollectorRegistry()
    MultiProcessCollector(direct, path=str(folder))
    assert samples(direct)[("approvalrules_decisions_total", evaluated)] == 4


def _log_with(tmp_path, formatter: str) -> str:
    """What development.ini's logging writes for one line outside a request (a new process,
    as pserve configures it), with the console handler's formatter set to ``formatter``."""
    text = (ROOT / "development.ini").read_text()
    text = text.replace(
        "[handler_console]\nclass = StreamHandler\nargs = (sys.stderr,)\nlevel = NOTSET\n",
        "[handler_console]\nclass = StreamHandler\nargs = (sys.stdout,)\nlevel = NOTSET\n",
    )
    text = re.sub(r"(?m)^formatter = generic$", f"formatter = {formatter}", text)
    ini = tmp_path / f"{formatter}.ini"
    ini.write_text(text)
    program = (
        "import logging, logging.config\n"
        f"logging.config.fileConfig({str(ini)!r}, disable_existing_loggers=False)\n"
        "logging.getLogger('approvalrules.example').warning('outside any request')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def test_the_text_format_shows_a_dash_outside_a_request(tmp_path):
    line = _log_with(tmp_path, "generic")
    assert line.rstrip().endswith("[approvalrules.example:3][MainThread][-] outside any request")


def test_the_json_format_gives_one_object_per_line(tmp_path):
    line = json.loads(_log_with(tmp_path, "json"))
    assert line["message"] == "outside any request"
    assert line["logger"] == "approvalrules.example"
    assert line["level"] == "WARNING"
    assert (line["request_id"], line["tenant"], line["route"]) == ("-", "-", "-")


def test_json_lines_carry_the_request_context_and_the_traceback():
    token = observability.begin_request("abc-1")
    try:
        observability.note_tenant("demo")
        try:
            raise ValueError("bad value")
        except ValueError:
            record = logging.getLogger("t").makeRecord(
                "t", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info()
            )
        line = json.loads(observability.JsonFormatter().format(record))
    finally:
        observability.end_request(token)
    assert line["message"] == "failed here"
    assert (line["request_id"], line["tenant"], line["route"]) == ("abc-1", "demo", "-")
    assert "ValueError: bad value" in line["exc_info"]
    assert observability.current_request_id() == "-"


def test_a_database_that_does_not_answer_leaves_the_gauges_out(tmp_path):
    from approvalrules.store.gauges import DatabaseGauges

    engine = create_engine_for_url(f"sqlite:///{tmp_path / 'missing' / 'no.sqlite'}")
    registry = CollectorRegistry()
    registry.register(DatabaseGauges(engine))
    found = samples(registry)
    engine.dispose()
    assert found == {("approvalrules_database_metrics_ok", frozenset()): 0}


def test_the_gauges_count_requests_by_status_and_the_outbox(tmp_path):
    from approvalrules.store.gauges import DatabaseGauges

    engine = create_engine_for_url(f"sqlite:///{tmp_path / 'gauges.sqlite'}")
    migrate.upgrade(engine)
    with Session(engine) as session, session.begin():
        load_folder(session, ROOT / "rules")
        demo = resolve_tenant(session, "demo")
        actions.submit(session, demo, {"id": "g-1", "buyer": "bob", "total": 800})
        actions.submit(session, demo, {"id": "g-2", "buyer": "bob", "total": 900})
    registry = CollectorRegistry()
    registry.register(DatabaseGauges(engine))
    found = samples(registry)
    engine.dispose()
    assert found[("approvalrules_database_metrics_ok", frozenset())] == 1
    assert found[("approvalrules_approval_requests", frozenset({("status", "pending")}))] == 2
    assert found[("approvalrules_approval_requests", frozenset({("status", "approved")}))] == 0
    assert found[("approvalrules_outbox_undelivered_events", frozenset())] >= 2
    assert found[("approvalrules_outbox_failing_events", frozenset())] == 0
    assert 0 <= found[("approvalrules_outbox_oldest_undelivered_age_seconds", frozenset())] < 600


def test_waitress_queue_warnings_come_as_one_line_every_few_seconds(monkeypatch, caplog):
    """A saturated waitress warns for every request that waits for a thread; the app sums
    those warnings up in one line per interval, with how many it stands for."""
    from waitress.task import ThreadedTaskDispatcher

    queue_log = logging.getLogger("waitress.queue")
    kept = list(queue_log.filters)
    for installed in kept:
        queue_log.removeFilter(installed)
    clock = [1000.0]
    monkeypatch.setattr(observability.time, "monotonic", lambda: clock[0])
    dispatcher = ThreadedTaskDispatcher()  # no thread: every task waits
    try:
        observability.summarize_queue_warnings(10)
        observability.summarize_queue_warnings(10)  # once per process, however often asked
        assert len(queue_log.filters) == 1
        with caplog.at_level(logging.WARNING, logger="waitress.queue"):
            for _ in range(5):
                dispatcher.add_task(object())
            clock[0] += 10
            dispatcher.add_task(object())
    finally:
        for installed in list(queue_log.filters):
            queue_log.removeFilter(installed)
        for installed in kept:
            queue_log.addFilter(installed)
    assert [r.getMessage() for r in caplog.records if r.name == "waitress.queue"] == [
        "Task queue depth is 1",
        "Task queue depth is 6 (4 more such warnings in the last 10 s, the deepest 6)",
    ]
