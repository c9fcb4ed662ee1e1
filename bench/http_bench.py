#!/usr/bin/env python
"""HTTP benchmark: POST /api/v1/evaluate vs GET /health on the same waitress, measured by wrk.

    .venv/bin/python bench/http_bench.py [--quick] [--duration S] [--pg] [--threads N] [--profile]
        [--decision-log off|log|table|compare]

* Installs Debian's ``wrk`` when it is missing (``apt-get install -y wrk``).
* Builds a throw-away database (SQLite by default; ``--pg`` a PostgreSQL
  database that is dropped afterwards), loads ``rules/`` and the development
  API key (what ``make setup-db`` does) and serves the app with ``pserve``
  (waitress, ``threads`` as in production.ini) on 127.0.0.1.
* Single process: the server is pinned to CPU 0 and wrk (one thread) to CPU 1
  with ``taskset``.  Each endpoint runs at 1 and 16 connections for
  ``--duration`` seconds (20; ``--quick`` 5) after a 2 s warm-up.
* Two processes: two pserve processes on two ports, one pinned to each CPU,
  and two wrk instances (8 connections each, one per port, not pinned: with 2
  cores the load generator has to share them).  waitress has no SO_REUSEPORT
  and no pre-fork mode; in production a reverse proxy spreads connections
  over the ports (docs/deployment.md).  Rates are summed; latency percentiles
  are the worse of the two instances.
* The evaluate body is a 15-line cart (~1.5 KB) for which the decision is
  "pending" with one approval step; the response carries the trace.

* ``--decision-log``: the server's ``approvalrules.decision_log`` (default off; ``log`` goes
  to a file in the temporary folder through a ``%(message)s`` handler, as in production).
  ``compare`` runs evaluate at 1 and 16 connections under each sink in turn, on one
  process, and prints each one's requests/s and p99 against ``off``.

Targets (issue 18), as ratios of one run: evaluate >= 50% of /health's requests/s at 1 and
16 connections; p50 <= 2.5x /health's at one connection; p99 <= 2x /health's; in-process
(webtest, no sockets) evaluate <= 3x /health.  Prints PASS/MISS; exits 0 whatever the
numbers.  ``--pg`` measures what production runs: on PostgreSQL the API key is verified
from the per-process cache (no query); on SQLite every request reads it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

LUA = """
wrk.method = "{method}"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"

function done(summary, latency, requests)
  io.write(string.format(
    "WRKJSON {{\\"requests\\": %d, \\"duration_us\\": %d, \\"bytes\\": %d, \
\\"status_errors\\": %d, \\"socket_errors\\": %d, \\"p50_us\\": %d, \\"p90_us\\": %d, \
\\"p99_us\\": %d, \\"max_us\\": %d}}\\n",
    summary.requests, summary.duration, summary.bytes, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def ensure_wrk() -> str | None:
    path = shutil.which("wrk")
    if path:
        return path
    print("wrk is missing: apt-get install -y wrk (Debian's package)", flush=True)
    cmd = ["apt-get", "install", "-y", "wrk"]
    if os.geteuid() != 0:
        cmd = ["sudo", "-n", *cmd]
    try:
        subprocess.run(cmd, check=False, timeout=300, stdout=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"could not install wrk: {exc}")
    return shutil.which("wrk")


def wrk_command(wrk: str, url: str, script: Path, connections: int, duration: float) -> list[str]:
    """One wrk thread with ``connections`` connections, latency and our JSON summary script."""
    return [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
        url,
    ]


def wrk_summary(stdout: str) -> dict | None:
    """The summary our wrk script prints (``WRKJSON {...}``), with requests per second."""
    for line in stdout.splitlines():
        if line.startswith("WRKJSON "):
            data = json.loads(line[len("WRKJSON ") :])
            data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
            return data
    return None


def run_wrk(
    wrk: str, url: str, script: Path, connections: int, duration: float, cpus: str | None
) -> dict:
    cmd = wrk_command(wrk, url, script, connections, duration)
    if cpus is not None:
        cmd = ["taskset", "-c", cpus, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    data = wrk_summary(out.stdout)
    if data is None:
        raise RuntimeError(f"wrk printed no summary: {out.stdout[-500:]} {out.stderr[-500:]}")
    return data


def server_cpu_per_request(pid: int, before: dict[int, float], requests: int) -> str:
    """The server's CPU a request since ``before`` (:func:`common.thread_cpu_seconds`): its
    main thread (waitress's I/O loop: reading requests, handing them over, writing what a
    worker could not) apart from the rest (the request threads, the listener)."""
    after = common.thread_cpu_seconds(pid)
    if not after or not requests:
        return ""
    spent = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
    io_loop = spent.pop(pid, 0.0) / requests * 1e6
    threads = sum(spent.values()) / requests * 1e6
    return (
        f"server CPU {io_loop + threads:.0f} us a request "
        f"(I/O loop {io_loop:.0f}, threads {threads:.0f})"
    )


def combine(results: list[dict]) -> dict:
    return {
        "rps": sum(r["rps"] for r in results),
        "requests": sum(r["requests"] for r in results),
        "status_errors": sum(r["status_errors"] for r in results),
        "socket_errors": sum(r["socket_errors"] for r in results),
        "p50_us": max(r["p50_us"] for r in results),
        "p99_us": max(r["p99_us"] for r in results),
    }


def run_parallel(
    wrk: str, urls: list[str], script: Path, connections: int, duration: float
) -> dict:
    procs = [
        subprocess.Popen(
            wrk_command(wrk, url, script, connections, duration),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for url in urls
    ]
    results = []
    for proc in procs:
        out, _err = proc.communicate(timeout=duration + 60)
        data = wrk_summary(out)
        if data is not None:
            results.append(data)
    if len(results) != len(urls):
        raise RuntimeError("a wrk instance printed no summary")
    return combine(results)


DECISION_LOG_CHOICES = ("off", "log", "table")


def with_decision_log(ini: Path, sink: str, port: int | None = None) -> Path:
    """``ini`` with ``approvalrules.decision_log = sink``; for ``log``, the decisions logger at
    INFO into ``<ini>.decisions.jsonl`` with a bare ``%(message)s`` format (one JSON object a
    line), the rest of the logging as it was."""
    text = ini.read_text()
    text = text.replace("[app:main]\n", f"[app:main]\napprovalrules.decision_log = {sink}\n", 1)
    if sink == "log":
        target = ini.with_suffix(".decisions.jsonl")
        text = text.replace("[loggers]\nkeys = root\n", "[loggers]\nkeys = root, decisions\n", 1)
        text = text.replace(
            "[handlers]\nkeys = console\n", "[handlers]\nkeys = console, decisions\n", 1
        )
        text = text.replace(
            "[formatters]\nkeys = generic\n", "[formatters]\nkeys = generic, bare\n", 1
        )
        text += (
            "\n[logger_decisions]\nlevel = INFO\nhandlers = decisions\n"
            "qualname = approvalrules.decisions\npropagate = 0\n"
            f"\n[handler_decisions]\nclass = FileHandler\nargs = ({str(target)!r}, 'a')\n"
            "level = NOTSET\nformatter = bare\n"
            "\n[formatter_bare]\nformat = %(message)s\n"
        )
    if port is not None:
        text = re.sub(r"(?m)^listen = 127\.0\.0\.1:\d+$", f"listen = 127.0.0.1:{port}", text)
    out = ini.with_name(f"{ini.stem}-{sink}.ini")
    out.write_text(text)
    return out


def compare_decision_logs(
    wrk: str, tmp: Path, ini: Path, script: Path, duration: float, rounds: int, cpus
) -> None:
    """Evaluate under each decision-log sink: one server per sink (same CPU), loaded in turn,
    ``rounds`` times; each sink's best round (a shared machine's load drifts: interleaving
    and the best round keep that drift from favouring one sink)."""
    server_cpu, wrk_cpu = cpus
    ports = {sink: common.free_port() for sink in DECISION_LOG_CHOICES}
    servers = [
        common.Server(with_decision_log(ini, sink, ports[sink]), ports[sink], server_cpu).start()
        for sink in DECISION_LOG_CHOICES
    ]
    results: dict[tuple[str, int], list[dict]] = {}
    try:
        for connections in (1, 16):
            for sink in DECISION_LOG_CHOICES:
                target = f"http://127.0.0.1:{ports[sink]}/api/v1/evaluate"
                run_wrk(wrk, target, script, connections, 2, wrk_cpu)
            for _ in range(rounds):
                for sink in DECISION_LOG_CHOICES:
                    target = f"http://127.0.0.1:{ports[sink]}/api/v1/evaluate"
                    result = run_wrk(wrk, target, script, connections, duration, wrk_cpu)
                    results.setdefault((sink, connections), []).append(result)
    finally:
        for server in servers:
            server.stop()
    rows = {
        key: {
            "rps": max(r["rps"] for r in runs),
            "p50_us": min(r["p50_us"] for r in runs),
            "p99_us": min(r["p99_us"] for r in runs),
            "requests": sum(r["requests"] for r in runs),
        }
        for key, runs in results.items()
    }
    print(
        f"\nbest of {rounds} interleaved rounds of {duration:g} s per sink "
        "(requests/s: the highest; p50, p99: the lowest)"
    )
    print("| decision log | connections | requests/s | p50 ms | p99 ms | rps vs off | p99 vs off |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for (sink, connections), r in rows.items():
        off = rows[("off", connections)]
        print(
            f"| {sink} | {connections} | {r['rps']:.0f} | {r['p50_us'] / 1000:.2f} "
            f"| {r['p99_us'] / 1000:.2f} | {r['rps'] / off['rps']:.0%} "
            f"| {r['p99_us'] / max(off['p99_us'], 1):.2f}x |"
        )
    from sqlalchemy import func, select

    from approvalrules.store.db import get_engine, settings_from_ini
    from approvalrules.store.models import DecisionLogEntry

    engine = get_engine(settings_from_ini(ini))
    with engine.connect() as connection:
        stored = connection.scalar(select(func.count()).select_from(DecisionLogEntry))
    engine.dispose()
    table_requests = sum(r["requests"] for (sink, _), r in rows.items() if sink == "table")
    print(
        f"table sink: {stored} rows stored for about {table_requests} measured requests "
        "(and the warm-ups'; a record still queued when the server is stopped is lost)"
    )
    logged = ini.with_suffix(".decisions.jsonl")
    if logged.exists():
        with logged.open() as lines:
            print(f"log sink: {sum(1 for _ in lines)} JSON lines written")


def decision_log_in_process(
    inis: dict[str, Path], body: dict, rounds: int, n: int, threads: int = 8
) -> None:
    """Evaluate through the WSGI app (webtest, no sockets) under each sink, in interleaved
    rounds (a machine whose load drifts favours no sink): one thread, ``n`` requests a
    round, the median round per request; then ``threads`` threads at once (the writer and
    the requests sharing the interpreter and, on SQLite, the database file), each sink's
    best round in requests per second."""
    import statistics
    import threading

    from pyramid.paster import get_app
    from webtest import TestApp

    from approvalrules.store.decision_log import REGISTRY_KEY

    headers = {"Authorization": f"Bearer {common.DEV_KEY}", "Content-Type": "application/json"}
    raw = json.dumps(body)
    apps = {sink: TestApp(get_app(str(ini), "main")) for sink, ini in inis.items()}

    def post(app, count):
        for _ in range(count):
            app.post("/api/v1/evaluate", raw, headers=headers)

    def threaded_rps(app, count) -> float:
        workers = [threading.Thread(target=post, args=(app, count)) for _ in range(threads)]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return threads * count / (time.perf_counter() - started)

    for app in apps.values():
        post(app, 50)
    per_request: dict[str, list[float]] = {sink: [] for sink in apps}
    rps: dict[str, list[float]] = {sink: [] for sink in apps}
    for _ in range(rounds):
        for sink, app in apps.items():
            started = time.perf_counter()
            post(app, n)
            per_request[sink].append((time.perf_counter() - started) / n * 1e6)
        for sink, app in apps.items():
            rps[sink].append(threaded_rps(app, max(n // threads, 10)))
    for app in apps.values():
        sink = app.app.registry.get(REGISTRY_KEY)
        if sink is not None:
            sink.flush()
    off = statistics.median(per_request["off"])
    best_off = max(rps["off"])
    print(f"\nin process (webtest), {rounds} interleaved rounds per sink:")
    for sink in apps:
        median = statistics.median(per_request[sink])
        best = max(rps[sink])
        print(
            f"  {sink:5} 1 thread: {median:6.0f} us per request (median round, "
            f"{median / off:.0%} of off); {threads} threads: {best:5.0f} requests/s "
            f"(best round, {best / best_off:.0%} of off)"
        )


def check_endpoints(port: int, body: dict) -> tuple[int, int]:
    status, data = common.http("GET", f"http://127.0.0.1:{port}/health")
    assert status == 200, (status, data)
    status, data = common.http(
        "POST",
        f"http://127.0.0.1:{port}/api/v1/evaluate",
        body,
        {"Authorization": f"Bearer {common.DEV_KEY}"},
    )
    assert status == 200, (status, data)
    assert data["outcome"] == "pending" and data.get("trace"), data
    return len(json.dumps(body)), len(json.dumps(data))


def in_process(ini: Path, body: dict, n: int, profile: bool = False) -> tuple[float, float]:
    """``/health`` and evaluate through the WSGI app (webtest, no sockets): microseconds per
    request, the best of 3 alternating rounds of ``n`` each; with ``profile``, a JSON split
    and pyinstrument over evaluate."""
    from pyramid.paster import get_app
    from webtest import TestApp

    app = TestApp(get_app(str(ini), "main"))
    headers = {"Authorization": f"Bearer {common.DEV_KEY}"}
    raw = json.dumps(body)
    for _ in range(50):
        app.post("/api/v1/evaluate", raw, headers={**headers, "Content-Type": "application/json"})
    health_rounds, evaluate_rounds = [], []
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(n):
            app.get("/health")
        health_rounds.append((time.perf_counter() - started) / n * 1e6)
        started = time.perf_counter()
        for _ in range(n):
            response = app.post(
                "/api/v1/evaluate", raw, headers={**headers, "Content-Type": "application/json"}
            )
        evaluate_rounds.append((time.perf_counter() - started) / n * 1e6)
    health_us, evaluate_us = min(health_rounds), min(evaluate_rounds)
    print(
        f"\nin-process (webtest, no sockets), best of 3 rounds of {n}: /health "
        f"{health_us:.0f} us, evaluate {evaluate_us:.0f} us per request "
        f"({evaluate_us / health_us:.2f}x)"
    )
    if not profile:
        return health_us, evaluate_us
    text = response.body
    started = time.perf_counter()
    for _ in range(n):
        json.loads(raw)
    loads_us = (time.perf_counter() - started) / n * 1e6
    decoded = json.loads(text)
    started = time.perf_counter()
    for _ in range(n):
        json.dumps(decoded)
    dumps_us = (time.perf_counter() - started) / n * 1e6
    print(
        f"\nin-process (webtest, no sockets), {n} requests each: /health {health_us:.0f} us, "
        f"evaluate {evaluate_us:.0f} us per request"
    )
    print(
        f"  json.loads(request body {len(raw)} B) {loads_us:.1f} us; "
        f"json.dumps(response {len(text)} B) {dumps_us:.1f} us"
    )
    try:
        from pyinstrument import Profiler
    except ImportError:
        print("  (pyinstrument is not installed: no profile)")
        return health_us, evaluate_us
    profiler = Profiler(interval=0.001)
    profiler.start()
    for _ in range(min(n, 300)):
        app.post("/api/v1/evaluate", raw, headers={**headers, "Content-Type": "application/json"})
    profiler.stop()
    print(profiler.output_text(unicode=False, color=False, show_all=False))
    return health_us, evaluate_us


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 s per measurement instead of 20")
    parser.add_argument(
        "--duration", type=float, help="seconds per measurement (default 20, --quick 5)"
    )
    parser.add_argument(
        "--pg",
        action="store_true",
        help="serve from a throw-away PostgreSQL database instead of SQLite",
    )
    parser.add_argument("--threads", type=int, help="waitress threads (default: production.ini's)")
    parser.add_argument(
        "--no-two-processes", action="store_true", help="skip the 2-process comparison"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also profile evaluate in-process with pyinstrument"
    )
    parser.add_argument(
        "--decision-log",
        choices=(*DECISION_LOG_CHOICES, "compare"),
        default="off",
        help="the served app's approvalrules.decision_log (default off); compare: evaluate "
        "under each in turn, against off",
    )
    args = parser.parse_args(argv)
    duration = args.duration or (5.0 if args.quick else 20.0)

    print(f"machine: {common.machine()}")
    wrk = ensure_wrk()
    if not wrk:
        print("wrk is not available: HTTP benchmark skipped (MISS: not measured)")
        return 0
    wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout
    print(f"wrk: {(wrk_version.splitlines() or ['?'])[0]}")
    threads = args.threads or common.production_threads()
    two_cpus = (os.cpu_count() or 1) >= 2

    tmp = Path(tempfile.mkdtemp(prefix="ar_bench_http_"))
    pg_url = None
    servers: list[common.Server] = []
    try:
        if args.pg:
            if not common.postgres_available():
                return 0
            pg_url = common.create_pg_database("ar_bench_http")
            url = pg_url
        else:
            url = f"sqlite:///{tmp}/bench.sqlite"
        port_a, port_b = common.free_port(), common.free_port()
        ini_a = common.write_ini(tmp, url, port_a, threads, "a.ini")
        ini_b = common.write_ini(tmp, url, port_b, threads, "b.ini")
        common.setup_database(ini_a)
        if args.decision_log not in ("off", "compare"):
            ini_a = with_decision_log(ini_a, args.decision_log)
            ini_b = with_decision_log(ini_b, args.decision_log)
        body = common.cart(15)
        scripts = {
            "health": tmp / "health.lua",
            "evaluate": tmp / "evaluate.lua",
        }
        scripts["health"].write_text(LUA.format(method="GET", body="nil", key=common.DEV_KEY))
        scripts["evaluate"].write_text(
            LUA.format(method="POST", body=lua_string(json.dumps(body)), key=common.DEV_KEY)
        )
        paths = {"health": "/health", "evaluate": "/api/v1/evaluate"}
        db_name = "PostgreSQL" if args.pg else "SQLite"
        print(
            f"server: pserve (waitress, threads={threads}), {db_name}; "
            f"{duration:g} s per run, wrk -t1, 2 s warm-up"
        )

        rows = []  # (setup, endpoint, connections, result)
        server_cpu, wrk_cpu = ("0", "1") if two_cpus else (None, None)
        if args.decision_log == "compare":
            with common.Server(ini_a, port_a, server_cpu):
                check_endpoints(port_a, body)
            print(f"decision log sinks, 1 process: server on CPU {server_cpu}, wrk on {wrk_cpu}")
            compare_decision_logs(
                wrk,
                tmp,
                ini_a,
                scripts["evaluate"],
                duration,
                3 if args.quick else 5,
                (server_cpu, wrk_cpu),
            )
            decision_log_in_process(
                {sink: with_decision_log(ini_a, sink) for sink in DECISION_LOG_CHOICES},
                body,
                rounds=5 if args.quick else 15,
                n=200,
            )
            return 0
        print(f"decision log: {args.decision_log}")
        with common.Server(ini_a, port_a, server_cpu) as server:
            req_size, resp_size = check_endpoints(port_a, body)
            print(
                f"evaluate: request {req_size} B, response {resp_size} B "
                "(decision pending, with trace)"
            )
            print(f"1 process: server pinned to CPU {server_cpu}, wrk to CPU {wrk_cpu}")
            for connections in (1, 16):
                for endpoint in ("health", "evaluate"):
                    target = f"http://127.0.0.1:{port_a}{paths[endpoint]}"
                    run_wrk(wrk, target, scripts[endpoint], connections, 2, wrk_cpu)
                    cpu_before = common.thread_cpu_seconds(server.proc.pid)
                    result = run_wrk(wrk, target, scripts[endpoint], connections, duration, wrk_cpu)
                    cpu = server_cpu_per_request(server.proc.pid, cpu_before, result["requests"])
                    rows.append(("1 process", endpoint, connections, result))
                    print(
                        f"  {endpoint:8} c={connections:<3} {result['rps']:8.0f} req/s  "
                        f"p50 {result['p50_us'] / 1000:6.2f} ms  "
                        f"p99 {result['p99_us'] / 1000:6.2f} ms  {cpu}",
                        flush=True,
                    )
        if two_cpus and not args.no_two_processes:
            print(
                "2 processes: pserve on 2 ports pinned to CPU 0 and CPU 1; "
                "2 wrk instances x 8 connections, not pinned"
            )
            servers = [
                common.Server(ini_a, port_a, "0").start(),
                common.Server(ini_b, port_b, "1").start(),
            ]
            for endpoint in ("health", "evaluate"):
                urls = [f"http://127.0.0.1:{p}{paths[endpoint]}" for p in (port_a, port_b)]
                run_parallel(wrk, urls, scripts[endpoint], 8, 2)
                result = run_parallel(wrk, urls, scripts[endpoint], 8, duration)
                rows.append(("2 processes", endpoint, 16, result))
                print(
                    f"  {endpoint:8} c=2x8 {result['rps']:8.0f} req/s  "
                    f"p50 {result['p50_us'] / 1000:6.2f} ms  "
                    f"p99 {result['p99_us'] / 1000:6.2f} ms",
                    flush=True,
                )
            for s in servers:
                s.stop()
            servers = []

        errors = sum(r["status_errors"] + r["socket_errors"] for *_, r in rows)
        print()
        print(
            "| setup | connections | endpoint | requests/s | p50 ms | p99 ms "
            "| evaluate/health rps | evaluate/health p99 |"
        )
        print("|---|---:|---|---:|---:|---:|---:|---:|")
        by = {(s, e, c): r for s, e, c, r in rows}
        for setup, endpoint, connections, r in rows:
            h = by[(setup, "health", connections)]
            ratio = f"{r['rps'] / h['rps']:.0%}" if endpoint == "evaluate" else ""
            p99r = f"{r['p99_us'] / max(h['p99_us'], 1):.2f}x" if endpoint == "evaluate" else ""
            conns = "2x8" if setup == "2 processes" else str(connections)
            print(
                f"| {setup} | {conns} | {paths[endpoint]} | {r['rps']:.0f} "
                f"| {r['p50_us'] / 1000:.2f} | {r['p99_us'] / 1000:.2f} | {ratio} | {p99r} |"
            )
        print(f"\nnon-2xx or socket errors over all runs: {errors}")
        health_us, evaluate_us = in_process(ini_a, body, 500 if args.quick else 2000, args.profile)
        print(
            "\ntargets (issue 18), each a ratio of this one run; /health passes through the same "
            "tweens (request id, metrics, limits):"
        )
        for setup in ("1 process", "2 processes"):
            for connections in (1, 16):
                if (setup, "evaluate", connections) not in by:
                    continue
                e, h = by[(setup, "evaluate", connections)], by[(setup, "health", connections)]
                label = f"{setup}, {'2x8' if setup == '2 processes' else connections} conn"
                print(
                    f"  {common.verdict(e['rps'] >= 0.5 * h['rps'])}  {label}: "
                    f"evaluate requests/s >= 50% of /health  ({e['rps'] / h['rps']:.0%})"
                )
                print(
                    f"  {common.verdict(e['p99_us'] <= 2 * h['p99_us'])}  {label}: "
                    f"evaluate p99 <= 2x /health  ({e['p99_us'] / max(h['p99_us'], 1):.2f}x)"
                )
        e1, h1 = by[("1 process", "evaluate", 1)], by[("1 process", "health", 1)]
        print(
            f"  {common.verdict(e1['p50_us'] <= 2.5 * h1['p50_us'])}  1 process, 1 conn: "
            f"evaluate p50 <= 2.5x /health  ({e1['p50_us'] / max(h1['p50_us'], 1):.2f}x)"
        )
        print(
            f"  {common.verdict(evaluate_us <= 3 * health_us)}  in-process: "
            f"evaluate <= 3x /health  ({evaluate_us / health_us:.2f}x)"
        )
    finally:
        for s in servers:
            s.stop()
        if pg_url:
            common.drop_pg_database(pg_url)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
