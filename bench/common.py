"""Shared helpers for the service benchmarks (http_bench.py, db.py, memory.py).

Nothing here is timed but the machine's CPU check (``cpu_check_ms``).  It writes
throw-away .ini files, creates and drops PostgreSQL databases, loads ``rules/`` and the
development API key, starts and stops waitress processes (``pserve``) and builds the cart
the storefront benchmarks send.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
RULES = ROOT / "rules"
DEV_KEY = "ar_0000dev0_development-key-not-secret"
PG_BASE = os.environ.get(
    "APPROVALRULES_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


# ------------------------------------------------------------------ machine

CPU_CHECK_ITERATIONS = 5_000_000


def cpu_check_ms(iterations: int = CPU_CHECK_ITERATIONS, runs: int = 3) -> tuple[float, float]:
    """Milliseconds of CPU time and of wall clock for a fixed pure-Python loop, each the best
    of ``runs``.

    This machine's speed drifts over time (by up to 1.5x, with its neighbours), so every run
    prints these figures: runs made at different moments are compared through them.  The CPU
    time is the speed the benchmarks' CPU figures see (other processes taking turns on the
    cores do not count in it); the wall clock adds what waiting for a core cost at that moment.
    """
    best_cpu = best_wall = float("inf")
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        total = 0
        for i in range(iterations):
            total += i
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return best_cpu * 1000, best_wall * 1000


def machine() -> str:
    """The CPUs, memory, Python and kernel, and the CPU check (``cpu_check_ms``) of this moment."""
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    cpu_ms, wall_ms = cpu_check_ms()
    return (
        f"{os.cpu_count()} CPUs ({model}), {mem} RAM, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; CPU check: {cpu_ms:.0f} ms of CPU for a "
        f"{CPU_CHECK_ITERATIONS / 1e6:g}M-iteration loop (lower is faster; wall clock "
        f"{wall_ms:.0f} ms)"
    )


def _stat_cpu_seconds(stat_path: str) -> float:
    with open(stat_path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime (fields 14 and 15 of proc(5), counted after the ")" of the name)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU seconds the processes ``pids`` have used (Linux ``/proc``; None
    elsewhere or when one of them has ended)."""
    try:
        return sum(_stat_cpu_seconds(f"/proc/{pid}/stat") for pid in pids)
    except OSError:
        return None


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """User + system CPU seconds of each thread of process ``pid``, by thread id (Linux
    ``/proc``; empty elsewhere).  The thread whose id is ``pid`` is the main thread: in
    ``pserve``, waitress's I/O loop."""
    seconds = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return seconds
    for tid in tids:
        try:
            seconds[int(tid)] = _stat_cpu_seconds(f"/proc/{pid}/task/{tid}/stat")
        except OSError:
            continue  # ended meanwhile
    return seconds


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values, nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# ----------------------------------------------------------------- the cart


def cart(
    n_lines: int = 15, *, order_id: str | None = None, buyer: str = "bob", total: str = "1849.70"
) -> dict:
    """A realistic storefront cart: Acme's Bob (Marketing), over 500, so one approval step.

    15 lines with sku, category, quantity and the storefront's own extra
    fields (name, unit price), ~1.5 KB of JSON.
    """
    categories = ["office", "paper", "toner", "furniture", "cleaning", "breakroom"]
    lines = []
    for i in range(n_lines):
        lines.append(
            {
                "sku": f"SKU-{10_000 + i * 37}",
                "category": categories[i % len(categories)],
                "quantity": 1 + (i * 7) % 12,
                "name": f"Item {i} from the catalogue",
                "price": f"{3 + i * 2.35:.2f}",
            }
        )
    body = {
        "buyer": buyer,
        "company": "acme",
        "total": total,
        "currency": "USD",
        "type": "regular",
        "cost_centre": "CC-4711",
        "ship_to": {"manual": False},
        "lines": lines,
    }
    if order_id:
        body["id"] = order_id
    return body


# -------------------------------------------------------------- databases


def create_pg_database(prefix: str = "ar_bench") -> str:
    """A new empty database on the benchmark's PostgreSQL server (the test suite's helper)."""
    from approvalrules.store.testing import create_postgres_database

    return create_postgres_database(PG_BASE, prefix)


def drop_pg_database(url: str) -> None:
    from approvalrules.store import bus
    from approvalrules.store.testing import drop_postgres_database

    bus.stop_listeners()  # this process's apps are done with it
    drop_postgres_database(url, PG_BASE)


def postgres_available() -> bool:
    try:
        from sqlalchemy import create_engine, text

        engine = create_engine(PG_BASE)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception as exc:  # noqa: BLE001 - any failure means "no PostgreSQL"
        print(f"PostgreSQL at {PG_BASE} is not available: {exc}"[:300])
        return False


INI_TEMPLATE = """\
[app:main]
use = egg:approvalrules
pyramid.reload_templates = false
pyramid.debug_authorization = false
pyramid.debug_notfound = false
pyramid.debug_routematch = false
sqlalchemy.url = {url}
{pool}
approvalrules.rules_dir = {rules}
approvalrules.session_secret = bench-{secret}
approvalrules.dev_api_key = {key}
approvalrules.dev_admin = admin:admin
# the per-key rate limit (views/limits.py, 1,200/min by default) stays in the request path
# but is set out of reach: the benchmarks measure the service, not the limiter's 429s
approvalrules.rate_limit_per_minute = 1000000000
# as production.ini
approvalrules.tune_gc = true
retry.attempts = 3
tm.manager_hook = pyramid_tm.explicit_manager

[server:main]
use = egg:waitress#main
listen = 127.0.0.1:{port}
threads = {threads}
connection_limit = 1000
backlog = 2048
asyncore_use_poll = true

[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARN
handlers = console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(asctime)s %(levelname)-5.5s [%(name)s] %(message)s
"""


def production_threads() -> int:
    """``threads`` of production.ini's [server:main] (waitress' default 4 when absent)."""
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "production.ini")
    return int(parser.get("server:main", "threads", fallback="4"))


def write_ini(
    folder: Path, url: str, port: int = 6543, threads: int | None = None, name: str = "bench.ini"
) -> Path:
    pool = ""
    if url.startswith("postgresql"):
        # the ping on checkout as production.ini has it (a round trip a request; this line
        # said false from the start, which the engine took as true until it read .ini booleans)
        pool = (
            "sqlalchemy.pool_size = 10\n"
            "sqlalchemy.max_overflow = 10\n"
            "sqlalchemy.pool_pre_ping = true"
        )
    path = folder / name
    path.write_text(
        INI_TEMPLATE.format(
            url=url,
            pool=pool,
            rules=RULES,
            secret=uuid.uuid4().hex,
            key=DEV_KEY,
            port=port,
            threads=threads or production_threads(),
        )
    )
    return path


def setup_database(ini: Path) -> None:
    """Migrate, load rules/ and create the dev API key (what ``make setup-db`` does)."""
    from approvalrules.store.commands import dev_credentials, load

    load(ini, RULES)
    dev_credentials(ini)


# ----------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One ``pserve INI`` process, optionally pinned to CPUs with taskset."""

    def __init__(self, ini: Path, port: int, cpus: str | None = None):
        self.ini, self.port, self.cpus = ini, port, cpus
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> Server:
        cmd = [str(BIN / "pserve"), str(self.ini)]
        if self.cpus is not None:
            cmd = ["taskset", "-c", self.cpus, *cmd]
        self.log_path = self.ini.with_suffix(f".{self.port}.log")
        # the child holds its own copy of the descriptor; ours can be closed at once
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pserve exited {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"pserve on port {self.port} did not answer within {timeout}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def http(
    method: str,
    url: str,
    body: dict | None = None,
    headers: dict | None = None,
    timeout: float = 10,
) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
