#!/usr/bin/env python
"""Run every benchmark script in bench/ that this file knows, one after the other (``make bench``).

    .venv/bin/python bench/run_all.py [--quick] [--only NAME[,NAME]]

Arguments other than ``--only`` are passed on to every script (each accepts
``--quick`` for a short smoke run).  Exit status: 0 when every script exited
0, else the first non-zero status.  Benchmarks report targets as PASS/MISS in
their output; a MISS is a finding, not a failure, so it does not change the
exit status.  A script exits 2 when its peer packages are missing; install
them with ``.venv/bin/pip install -e '.[bench]'``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: benchmark scripts, in the order they run; add new ones here
SCRIPTS = [
    # decisions/s, median and p99 of compiled policies vs peers; validate+compile time
    "evaluate.py",
    # wrk: POST /api/v1/evaluate vs GET /health, 1 and 16 connections, 1 and 2 waitress processes
    "http_bench.py",
    # PostgreSQL: submit+approve orders/s with 4 clients;
    # approver inbox with 1,000,000 requests (SQLite 100,000)
    "db.py",
    # RSS of one process holding 1,000 tenants' compiled policies
    "memory.py",
    # evaluate p50/p99 and RSS: a 50,000-account tenant whose directory changes vs 100 accounts
    "tenant_size.py",
    # CPU seconds of checking hostile rule sets up to 1 MB (target: under 1 s each)
    "hostile.py",
    # PostgreSQL: the cron jobs' items/s with one runner and with two at once
    "jobs.py",
]


def main(argv: list[str]) -> int:
    only: set[str] | None = None
    passthrough: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--only":
            only = {name.strip() for name in next(args, "").split(",") if name.strip()}
        elif arg.startswith("--only="):
            only = {name.strip() for name in arg.split("=", 1)[1].split(",") if name.strip()}
        else:
            passthrough.append(arg)
    status = 0
    for script in SCRIPTS:
        if only and script not in only and script.removesuffix(".py") not in only:
            continue
        path = HERE / script
        print(f"==== bench/{script} {' '.join(passthrough)}".rstrip(), flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(path), *passthrough], cwd=HERE.parent)
        print(
            f"==== bench/{script}: exit {code} after {time.perf_counter() - started:.0f}s",
            flush=True,
        )
        if code and not status:
            status = code
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
