#!/usr/bin/env python
"""Instructions per request, counted by valgrind's callgrind: figures a noisy machine cannot
move.

    .venv/bin/python bench/instructions.py [--orders N] [--evaluations N] [--sqlite]

Timings on this 2-vCPU machine drift by up to 1.5x with its neighbours, and so does a CPU
time; the number of instructions the CPU executes for the same work does not (repeated
runs agree within about 2%).  So this benchmark compares code, not moments:

* the app of a throw-away database (PostgreSQL by default, ``--sqlite`` a file) with
  ``rules/`` and the development key, called in-process through webtest (no sockets; the
  webtest client's own instructions are in the figures, the same for every endpoint);
* after a warm-up, callgrind counts only while ``--orders`` submit + approve pairs run
  (Acme's Bob, 15 lines, pending then approved by Ann: what ``bench/db.py`` sends), then
  only while ``--evaluations`` evaluates and as many ``GET /health`` run;
* prints millions of instructions per order (submit + approve), and thousands per evaluate
  and per ``/health``, with their ratio (issue 18: in-process evaluate <= 3x /health).

Needs ``valgrind`` (Debian's package; ``apt-get install -y valgrind``); the script runs
itself under it.  Takes about a minute.  Exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import common

#: set in the environment of the run under valgrind
UNDER_VALGRIND = "APPROVALRULES_BENCH_UNDER_CALLGRIND"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=20)
    parser.add_argument("--evaluations", type=int, default=100)
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file, not PostgreSQL")
    args = parser.parse_args(argv)
    if os.environ.get(UNDER_VALGRIND):
        return measure(args)
    return run_under_valgrind(argv, args)


def run_under_valgrind(argv: list[str], args) -> int:
    print(common.machine())
    if not shutil.which("valgrind"):
        print("valgrind is missing: apt-get install -y valgrind (Debian's package); not measured")
        return 0
    if not args.sqlite and not common.postgres_available():
        print("no PostgreSQL: not measured (--sqlite measures on a file)")
        return 0
    with tempfile.TemporaryDirectory(prefix="ar_bench_instr_") as tmp:
        out = Path(tmp) / "callgrind.out"
        run = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                *argv,
            ],
            # the system allocator: valgrind sees every allocation; and one hash seed, so
            # that sets and dicts are laid out alike from run to run
            env={
                **os.environ,
                UNDER_VALGRIND: "1",
                "PYTHONMALLOC": "malloc",
                "PYTHONHASHSEED": "0",
            },
            capture_output=True,
            text=True,
        )
        print(run.stdout, end="")
        if run.returncode:
            print(run.stderr[-3000:])
            return 0
        # each toggle of the instrumentation dumps the counts so far into its own file
        parts = sorted(Path(tmp).glob("callgrind.out*"), key=_part_number)
        counts = [_instructions(p) for p in parts]
    report(args, [c for c in counts if c])
    return 0


def _part_number(path: Path) -> int:
    found = re.search(r"\.(\d+)$", path.name)
    return int(found.group(1)) if found else 0


def _instructions(path: Path) -> int:
    # a dump's "totals:" line: the instructions since the last --zero ("summary:" is the
    # part since the dump before, which a zeroed count may leave at 0)
    for line in path.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    return 0


def report(args, counts: list[int]) -> None:
    if len(counts) != 3:
        print(f"expected 3 measured parts, got {len(counts)}: {counts}")
        return
    orders, evaluations, health = counts
    per_order = orders / args.orders / 1e6
    per_evaluate = evaluations / args.evaluations / 1e3
    per_health = health / args.evaluations / 1e3
    database = "SQLite" if args.sqlite else "PostgreSQL"
    print(f"in-process through webtest, {database}; instructions counted by callgrind")
    print(f"  submit + approve: {per_order:.2f} M instructions an order ({args.orders} orders)")
    print(f"  evaluate:         {per_evaluate:.0f} k instructions ({args.evaluations} requests)")
    print(f"  /health:          {per_health:.0f} k instructions ({args.evaluations} requests)")
    ratio = per_evaluate / per_health
    print(f"{common.verdict(ratio <= 3)}  in-process evaluate <= 3x /health ({ratio:.2f}x)")


def measure(args) -> int:
    from pyramid.paster import get_app
    from webtest import TestApp

    tmp = Path(tempfile.mkdtemp(prefix="ar_bench_instr_"))
    url = f"sqlite:///{tmp / 'bench.sqlite'}" if args.sqlite else common.create_pg_database()
    try:
        ini = common.write_ini(tmp, url, common.free_port())
        common.setup_database(ini)
        app = TestApp(get_app(str(ini), "main"))
        headers = {"Authorization": f"Bearer {common.DEV_KEY}"}
        cart = common.cart(15)

        def order(n: int) -> None:
            body = common.cart(15, order_id=f"instructions-{n}")
            submitted = app.post_json("/api/v1/orders", body, headers=headers)
            app.post_json(
                f"/api/v1/approvals/{submitted.json['approval']['id']}/approve",
                {"approver": "ann"},
                headers=headers,
            )

        def evaluate() -> None:
            app.post_json("/api/v1/evaluate", cart, headers=headers)

        def health() -> None:
            app.get("/health")

        for n in range(10):  # warm: caches fill, statements are prepared
            order(n)
            evaluate()
            health()
        _counted(lambda: [order(n) for n in range(100, 100 + args.orders)])
        _counted(lambda: [evaluate() for _ in range(args.evaluations)])
        _counted(lambda: [health() for _ in range(args.evaluations)])
        app.app.registry["dbengine"].dispose()
    finally:
        if not args.sqlite:
            common.drop_pg_database(url)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _counted(work) -> None:
    """Run ``work`` with callgrind counting, and dump its count into a file of its own."""
    pid = str(os.getpid())
    subprocess.run(["callgrind_control", "--zero", pid], capture_output=True, check=True)
    subprocess.run(["callgrind_control", "-i", "on", pid], capture_output=True, check=True)
    work()
    subprocess.run(["callgrind_control", "-i", "off", pid], capture_output=True, check=True)
    subprocess.run(["callgrind_control", "--dump", pid], capture_output=True, check=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
