#!/usr/bin/env python
"""Benchmark: what recording a decision costs the evaluate request, per sink.

    .venv/bin/python bench/decision_log.py [--quick] [--pg]

Not a test.  In one process, against a throw-away database with rules/ loaded:

* the engine's evaluate (``deciding.evaluate``, dry run, as the endpoint calls it) per call,
  for scale;
* ``record_evaluate`` per call with the log ``off``, ``log`` (logger disabled, and writing
  to /dev/null through a ``%(message)s`` handler) and ``table`` (the request side only:
  the record and ``put_nowait``; the writer thread runs meanwhile);
* the two input digests: sha256 of the raw body (chosen) and of its canonical JSON
  (``queries.request_hash``);
* the table writer's throughput: records written per second, batched, until ``flush``.

Each figure is the best of 5 repeats (``--quick``: 3) of a timed loop: on a shared
machine the minimum is the cost, the rest is other processes' noise.  HTTP figures under
load: ``bench/http_bench.py --decision-log compare``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import common

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import delete, func, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from approvalrules.store import decision_log  # noqa: E402
from approvalrules.store.db import get_engine, settings_from_ini  # noqa: E402
from approvalrules.store.models import DecisionLogEntry  # noqa: E402
from approvalrules.store.services import resolve_tenant  # noqa: E402
from approvalrules.workflow import deciding, queries  # noqa: E402


def best_us(call, n: int, repeats: int) -> float:
    """The best of ``repeats`` loops of ``n`` calls, in microseconds per call."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(n):
            call()
        best = min(best, (time.perf_counter() - started) / n)
    return best * 1e6


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and records")
    parser.add_argument("--pg", action="store_true", help="a throw-away PostgreSQL database")
    args = parser.parse_args(argv)
    repeats, n = (3, 2_000) if args.quick else (5, 10_000)
    print(f"machine: {common.machine()}")
    tmp = Path(tempfile.mkdtemp(prefix="ar_bench_declog_"))
    pg_url = None
    try:
        if args.pg:
            if not common.postgres_available():
                return 0
            pg_url = common.create_pg_database("ar_bench_declog")
            url = pg_url
        else:
            url = f"sqlite:///{tmp}/bench.sqlite"
        ini = common.write_ini(tmp, url)
        common.setup_database(ini)
        engine = get_engine(settings_from_ini(ini))
        body = json.loads(json.dumps(common.cart(15)))
        raw = json.dumps(body).encode()
        with Session(engine, expire_on_commit=False) as session:
            tenant = resolve_tenant(session, "demo")
            decision, version = deciding.evaluate(session, tenant, body, dry_run=True)
            evaluate_us = best_us(
                lambda: deciding.evaluate(session, tenant, body, dry_run=True), n // 10, repeats
            )
            print(
                f"database: {'PostgreSQL' if args.pg else 'SQLite'}; body {len(raw)} B, "
                f"outcome {decision.outcome}, {len(decision.steps)} step(s); "
                f"best of {repeats} loops of {n:,}"
            )
            print(f"\n  deciding.evaluate (dry run)          {evaluate_us:8.1f} us per call")
            # end the read transaction: on SQLite it would keep the writer from committing (in
            # the app each request's transaction is short); recording itself reads only the
            # per-process caches, with the tenant's attributes kept loaded
            session.commit()

            def request_with(sink):
                return SimpleNamespace(
                    registry={decision_log.REGISTRY_KEY: sink},
                    headers={"X-Request-Id": "bench-request-id"},
                    body=raw,
                    dbsession=session,
                )

            def record(request):
                return lambda: decision_log.record_evaluate(request, tenant, decision, version)

            rows = [("off", record(request_with(None)))]
            quiet = decision_log.decisions_log
            quiet.setLevel(logging.WARNING)
            rows.append(("log, logger below INFO", record(request_with(decision_log.LogSink()))))
            timings = [(label, best_us(call, n, repeats)) for label, call in rows]
            devnull = open(os.devnull, "w")  # noqa: SIM115 (closed below)
            handler = logging.StreamHandler(devnull)
            handler.setFormatter(logging.Formatter("%(message)s"))
            quiet.addHandler(handler)
            quiet.setLevel(logging.INFO)
            quiet.propagate = False
            timings.append(
                (
                    "log, to /dev/null",
                    best_us(record(request_with(decision_log.LogSink())), n, repeats),
                )
            )
            quiet.removeHandler(handler)
            devnull.close()
            writer = decision_log.TableWriter(
                engine,
                decision_log.DecisionLogSettings(
                    sink="table", queue_size=n * repeats + 1, retention_days=0
                ),
            )
            timings.append(
                ("table (request side)", best_us(record(request_with(writer)), n, repeats))
            )
            started = time.perf_counter()
            writer.flush(timeout=300)
            drained = time.perf_counter() - started
            for label, us in timings:
                print(
                    f"  record_evaluate, {label:24} {us:6.2f} us per call ({us / evaluate_us:.1%})"
                )
            sha_us = best_us(lambda: hashlib.sha256(raw).hexdigest(), n, repeats)
            canonical_us = best_us(lambda: queries.request_hash(body), n, repeats)
            print(f"\n  input digest: sha256(raw body)      {sha_us:6.2f} us (chosen)")
            print(f"  input digest: canonical JSON sha256 {canonical_us:6.2f} us")
            stored = session.scalar(select(func.count()).select_from(DecisionLogEntry))
            session.commit()
            print(
                f"\n  table writer: {writer.written:,} records written ({stored:,} rows), "
                f"{writer.dropped} dropped, {writer.failed} failed; the last of them "
                f"{drained * 1000:.0f} ms after the loops ended"
            )
            writer.close()
            with engine.begin() as connection:
                connection.execute(delete(DecisionLogEntry))
            # throughput of the writer alone: a burst, timed until written
            burst = n * 2
            writer = decision_log.TableWriter(
                engine,
                decision_log.DecisionLogSettings(
                    sink="table", queue_size=burst + 1, retention_days=0
                ),
            )
            request = request_with(writer)
            started = time.perf_counter()
            for _ in range(burst):
                decision_log.record_evaluate(request, tenant, decision, version)
            writer.flush(timeout=300)
            elapsed = time.perf_counter() - started
            print(
                f"  table writer: a burst of {burst:,} records queued and written in "
                f"{elapsed * 1000:.0f} ms ({burst / elapsed:,.0f} records/s, batches of "
                f"{writer.config.batch_size})"
            )
            writer.close()
        engine.dispose()
    finally:
        if pg_url:
            common.drop_pg_database(pg_url)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
