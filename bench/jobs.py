#!/usr/bin/env python
"""The cron jobs under load: items/s with one runner and with two at once, on PostgreSQL.

    .venv/bin/python bench/jobs.py [--items N] [--quick] [--only expire,escalate,remind,dispatch]

For each kind of due item (requests past their expiry; steps past ``escalate_after``;
requests due a reminder; outbox events due for a webhook to a local receiver), N
items (default 2,000; --quick 500) are written with bulk inserts
(``approvalrules.workflow.loadtest``), then worked off by one runner, and N more by
two runners started at the same instant.  A runner is an OS process running the
cron job's code (``approvalrules expire|remind|dispatch INI``: one transaction per
run, at most 500 requests / 100 events a run) until a run finds nothing to do.
items/s = N / seconds from the first runner's start to the last one's end (the
runners' imports are not counted); CPU ms/item = the runners' own CPU time (not
PostgreSQL's) over N, which shows whether two runners split the work or repeat it;
split = how many items each of the two runners acted on.  After each run the
items are checked: each acted on exactly once, none left due (``loadtest.check``).

Exits 0 whatever the numbers; skipped without PostgreSQL.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import common

KINDS = ("expire", "escalate", "remind", "dispatch")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, help="due items of each kind (2,000; --quick 500)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=",".join(KINDS), help="kinds, comma-separated")
    args = parser.parse_args(argv)
    items = args.items or (500 if args.quick else 2000)
    kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    print(f"machine: {common.machine()}")
    print(f"\n## cron jobs, {items:,} due items of each kind, 1 runner then 2 runners")
    if not common.postgres_available():
        print("MISS  not measured: no PostgreSQL")
        return 0
    from approvalrules.workflow import loadtest

    print(
        f"{'kind':<9} {'job':<9} {'1 runner':>10} {'2 runners':>10} {'ratio':>6} "
        f"{'CPU ms/item 1 | 2':>18}  split (2)    checks"
    )
    for kind in kinds:
        job = loadtest.KINDS[kind][0]
        rates, cpus, problems = [], [], []
        split = ""
        for runners in (1, 2):
            # a database of its own for each measurement: no other kind's items in the scans
            url = common.create_pg_database("ar_bench_jobs")
            tmp = Path(tempfile.mkdtemp(prefix="ar_bench_jobs_"))
            try:
                ini = loadtest.write_ini(tmp, url)
                with loadtest.WebhookCounter() as hooks:
                    loadtest.prepare(url, hooks.url)
                    loadtest.seed(url, kind, items)
                    result = loadtest.run_runners(ini, job, runners)
                    rates.append(items / result["seconds"])
                    cpus.append(result["cpu"] / items * 1000)
                    split = "/".join(str(r["acted"]) for r in result["runners"])
                    problems += loadtest.check(url, kind, items, hooks.deliveries)
            finally:
                common.drop_pg_database(url)
                shutil.rmtree(tmp, ignore_errors=True)
        print(
            f"{kind:<9} {job:<9} {rates[0]:>8.0f}/s {rates[1]:>8.0f}/s "
            f"{rates[1] / rates[0]:>5.2f}x {cpus[0]:>8.2f} | {cpus[1]:<7.2f}  {split:<11}  "
            + ("each item exactly once" if not problems else "; ".join(problems)),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
