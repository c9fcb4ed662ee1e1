#!/usr/bin/env python
"""Database benchmarks: submit+approve throughput and the approver inbox at scale.

    .venv/bin/python bench/db.py [--quick] [--only submit,inbox] [--requests N]
                                 [--sqlite-requests N] [--statements] [--processes 1,2]
                                 [--client wrk|python]

(a) submit + approve on PostgreSQL: a throw-away database with ``rules/`` and
    the development key, served by ``pserve`` (waitress, threads as in
    production.ini, not pinned).  C clients (1, then 4), each with its own
    keep-alive HTTP connection, loop for ``--seconds`` (10; --quick 4):
    POST /api/v1/orders (Acme's Bob, 15 lines, 1,849.70 USD -> pending, one
    step, 1 approval) then POST /api/v1/approvals/{id}/approve as Ann.
    orders/s = approved orders per second.  Target (issue 18): >= 150 with 4 clients.
    ``--client wrk`` (the default when ``wrk`` is installed): wrk with one connection per
    wrk thread (``-t C -c C``) and a Lua script (``SUBMIT_APPROVE_LUA``) that alternates
    the two requests with the same bodies as the Python client; its latency percentiles
    are per request (a submit or an approve).  ``--client python``: C threads of this
    process (http.client, json), whose latencies are per submit+approve; on 2 CPUs they
    take a share of the CPU the server would otherwise have.  After each run the database's
    approved orders of the run are counted against the client's figure (wrk may leave an
    approve per connection unanswered at the deadline, which the server may have done).
    ``--processes 1,2``: the runs again with 2 pserve processes on 2 ports (the deployment's
    one process per core), client i on port i mod 2; each figure names its process count.
    Each run also prints the server's CPU per order (its processes' user + system time,
    from /proc, over the approved orders): what the service costs, whatever else runs;
    PostgreSQL's (every ``postgres`` process of this machine, so another database's work
    counts too); and the client's (this process's CPU time, or the wrk processes').
    Before the timed runs, the SQL statements of one submit and of one approve
    are counted in-process (``--statements``: by kind and table).

(b) approver inbox: bulk-load N approval requests (default 1,000,000 on
    PostgreSQL with COPY, 100,000 on SQLite with executemany; --quick 100,000
    and 20,000) on the migrated schema of tenant ``demo``: orders,
    approval_requests and approval_eligibility rows for 1,000 companies
    (SQLite: 100, so the inbox of an approver has the same size), each with a
    master eligible for all its requests and 4 approvers eligible for a
    quarter each; 5% pending, the rest approved/rejected/expired/withdrawn;
    created_at spread over a year.  Then GET
    /api/v1/approvals?approver=X&status=pending through the WSGI app
    (webtest, in-process: no socket) for a few hundred approvers (masters and
    approvers mixed): p50/p95.  Target: p95 < 20 ms.  Prints EXPLAIN
    (ANALYZE) of the view's three SQL statements for the busiest approver,
    and the query count of one page.

Exits 0 whatever the numbers; PostgreSQL parts are skipped when the server
at $APPROVALRULES_BENCH_PG (default postgres@127.0.0.1:5432) is not there.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import common
from http_bench import lua_string, wrk_summary

STATUSES = (
    ["pending"] * 5 + ["approved"] * 70 + ["rejected"] * 10 + ["expired"] * 10 + ["withdrawn"] * 5
)
APPROVERS_PER_COMPANY = 4


# ---------------------------------------------------------------- (a) submit + approve


def _client(
    port: int, prefix: str, deadline: float, done: list, errors: list, latencies: list
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {common.DEV_KEY}", "Content-Type": "application/json"}
    n = 0
    while time.monotonic() < deadline:
        n += 1
        started = time.perf_counter()
        try:
            conn.request(
                "POST",
                "/api/v1/orders",
                json.dumps(common.cart(15, order_id=f"{prefix}-{n}")),
                headers,
            )
            response = conn.getresponse()
            data = json.loads(response.read())
            if response.status != 201:
                errors.append(f"submit {response.status} {str(data)[:200]}")
                continue
            request_id = data["approval"]["id"]
            conn.request(
                "POST",
                f"/api/v1/approvals/{request_id}/approve",
                json.dumps({"approver": "ann"}),
                headers,
            )
            response = conn.getresponse()
            data = json.loads(response.read())
            if response.status != 200 or data.get("status") != "approved":
                errors.append(f"approve {response.status} {str(data)[:200]}")
                continue
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        latencies.append(time.perf_counter() - started)
        done.append(1)
    conn.close()


# One wrk thread per connection (wrk -t C -c C): a wrk thread's Lua state is then its connection's
# state.  The Python side puts before it, as locals, the submit body's text around the order id
# (json.dumps of common.cart(15, order_id=...), what _client sends), the approve body, the API
# key and the run's order-id prefix.  request() is pure (wrk calls it once more than it sends, to
# check the script): what it returns follows from the state response() keeps.
SUBMIT_APPROVE_LUA = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key

local threads = {}

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter = 1        -- the next order of this connection
  approval = nil     -- the approval request to approve next (nil: submit next)
  approved = 0
  errors = 0
  first_error = ""
end

function request()
  if approval then
    return wrk.format(nil, "/api/v1/approvals/" .. approval .. "/approve", nil, approve_body)
  end
  local order_id = prefix .. "-" .. index .. "-" .. counter
  return wrk.format(nil, "/api/v1/orders", nil, submit_head .. order_id .. submit_tail)
end

local function note_error(text)
  errors = errors + 1
  if first_error == "" then first_error = text:sub(1, 300) end
end

function response(status, headers, body)
  if approval then
    approval = nil
    if status == 200 and body:match('"status":%s*"(%a+)"') == "approved" then
      approved = approved + 1
    else
      note_error("approve " .. status .. " " .. body)
    end
    return
  end
  counter = counter + 1
  if status ~= 201 then
    note_error("submit " .. status .. " " .. body)
    return
  end
  approval = body:match('"approval":%s*{%s*"id":%s*(%d+)')
  if not approval then note_error("submit 201 without an approval id: " .. body) end
end

local function json_text(text)
  local escaped = text:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end)
  return '"' .. escaped .. '"'
end

function done(summary, latency, requests)
  local rows = {}
  for _, thread in ipairs(threads) do
    table.insert(rows, string.format(
      '{"index": %d, "approved": %d, "errors": %d, "approving": %s, "first_error": %s}',
      thread:get("index"), thread:get("approved"), thread:get("errors"),
      tostring(thread:get("approval") ~= nil), json_text(thread:get("first_error"))))
  end
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p95_us": %d, "p99_us": %d, "threads": [%s]}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    table.concat(rows, ", ")))
end
"""


def _wrk_script(folder: Path, prefix: str) -> Path:
    """The submit+approve wrk script for orders ``{prefix}-{thread}-{n}``, written to ``folder``."""
    marker = "@ORDER-ID@"
    submit_head, submit_tail = json.dumps(common.cart(15, order_id=marker)).split(marker)
    values = {
        "key": common.DEV_KEY,
        "prefix": prefix,
        "submit_head": submit_head,
        "submit_tail": submit_tail,
        "approve_body": json.dumps({"approver": "ann"}),
    }
    script = folder / f"{prefix}.lua"
    script.write_text(
        "".join(f"local {name} = {lua_string(value)}\n" for name, value in values.items())
        + SUBMIT_APPROVE_LUA
    )
    return script


def _statement_kind(statement: str) -> str:
    """``INSERT outbox_events``, ``SELECT accounts``, ``SAVEPOINT``: what one SQL statement is."""
    words = statement.split()
    verb = words[0].upper() if words else "?"
    if verb == "WITH":  # data-modifying parts: "WITH (UPDATE a, UPDATE b)"
        parts = re.findall(r"\b(UPDATE|INSERT INTO|DELETE FROM) (\w+)", statement, re.IGNORECASE)
        written = ", ".join(f"{kind.split()[0].upper()} {table}" for kind, table in parts)
        return f"WITH ({written})" if written else "WITH"
    upper = [w.upper() for w in words]
    table = ""
    for keyword in ("INTO", "UPDATE", "FROM"):
        if keyword in upper[: 60 if keyword != "FROM" else len(upper)]:
            index = upper.index(keyword) + 1
            if index < len(words):
                table = words[index].strip('"(')
                break
    return f"{verb} {table}".strip()


def statements_per_order(ini: Path, orders: int = 20, detail: bool = False) -> tuple[float, float]:
    """SQL statements per submit and per approve, counted in-process (the app of ``ini`` through
    webtest, the same request path as the server) with SQLAlchemy's ``before_cursor_execute``.

    Prints the averages, and with ``detail`` how many statements of each kind each call made.
    """
    from collections import Counter

    from pyramid.paster import get_app
    from sqlalchemy import event
    from webtest import TestApp

    app = TestApp(get_app(str(ini), "main"))
    engine = app.app.registry["dbengine"]
    seen: list[str] = []

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    headers = {"Authorization": f"Bearer {common.DEV_KEY}"}
    counts = {"submit": Counter(), "approve": Counter()}
    totals = {"submit": 0, "approve": 0}
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        for n in range(orders + 2):
            seen.clear()
            submitted = app.post_json(
                "/api/v1/orders", common.cart(15, order_id=f"count-{n}"), headers=headers
            )
            submit, seen[:] = list(seen), []
            app.post_json(
                f"/api/v1/approvals/{submitted.json['approval']['id']}/approve",
                {"approver": "ann"},
                headers=headers,
            )
            approve = list(seen)
            if n < 2:
                continue  # warm-up: caches (rule sets, directory snapshot, API key) fill
            for name, statements in (("submit", submit), ("approve", approve)):
                totals[name] += len(statements)
                counts[name].update(_statement_kind(s) for s in statements)
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        engine.dispose()
    per_submit, per_approve = totals["submit"] / orders, totals["approve"] / orders
    print(
        f"SQL statements per order (in-process, {orders} orders after 2 warm-up): "
        f"submit {per_submit:.1f}, approve {per_approve:.1f}, "
        f"together {per_submit + per_approve:.1f}"
    )
    if detail:
        for name in ("submit", "approve"):
            kinds = ", ".join(
                f"{kind} {count / orders:g}" for kind, count in counts[name].most_common()
            )
            print(f"  {name}: {kinds}")
    return per_submit, per_approve


def wrk_path() -> str | None:
    """The ``wrk`` binary (Debian's package installs /usr/bin/wrk), or None."""
    return shutil.which("wrk") or ("/usr/bin/wrk" if Path("/usr/bin/wrk").exists() else None)


def submit_approve(
    seconds: float,
    statements_detail: bool = False,
    processes: tuple[int, ...] = (1,),
    client: str = "python",
) -> list[tuple[int, int, float, float, float, int]]:
    """The timed runs: for each count in ``processes``, that many pserve processes (each on its
    own port, as docs/deployment.md runs one per core; not pinned: PostgreSQL shares the
    CPUs), with 1 then 4 clients spread over them, the clients being ``client``'s (``python``:
    threads of this process, ``_client``; ``wrk``: ``SUBMIT_APPROVE_LUA``).  Rows: (processes,
    clients, orders/s, p50 ms, p95 ms, errors); wrk's percentiles are per request."""
    print("\n## (a) submit + approve on PostgreSQL")
    if not common.postgres_available():
        print("MISS  not measured: no PostgreSQL")
        return []
    tmp = Path(tempfile.mkdtemp(prefix="ar_bench_db_"))
    url = common.create_pg_database("ar_bench_submit")
    results = []
    try:
        ports = [common.free_port() for _ in range(max(processes))]
        inis = [common.write_ini(tmp, url, port, name=f"bench-{port}.ini") for port in ports]
        common.setup_database(inis[0])
        statements_per_order(inis[0], detail=statements_detail)
        how = (
            "wrk -t C -c C (one keep-alive connection per wrk thread), one wrk per port"
            if client == "wrk"
            else "threads in this process, keep-alive HTTP"
        )
        for count in processes:
            print(
                f"{count} process(es): pserve (waitress threads={common.production_threads()}) "
                f"on {count} port(s), not pinned; clients: {how}, client i on port i mod "
                f"{count}; {seconds:g} s each"
            )
            servers = [common.Server(inis[i], ports[i]) for i in range(count)]
            try:
                for server in servers:
                    server.start()
                for port in ports[:count]:
                    warm_errors: list = []
                    _client(
                        port, f"warm{count}-{port}", time.monotonic() + 1.0, [], warm_errors, []
                    )
                    if warm_errors:
                        print(f"warm-up errors: {warm_errors[:3]}")
                pids = [server.proc.pid for server in servers]
                for clients in (1, 4):
                    if client == "wrk":
                        row = _wrk_run(tmp, ports[:count], clients, seconds, count, pids, url)
                    else:
                        row = _timed_run(ports[:count], clients, seconds, count, pids, url)
                    results.append(row)
            finally:
                for server in servers:
                    server.stop()
    finally:
        common.drop_pg_database(url)
        shutil.rmtree(tmp, ignore_errors=True)
    for count, clients, rate, *_ in results:
        if clients == 4:
            print(
                f"{common.verdict(rate >= 150)}  submit+approve with 4 clients >= 150 orders/s "
                f"({rate:.0f}; {count} process{'es' if count > 1 else ''})"
            )
    return results


def _postgres_cpu_seconds() -> float | None:
    """User + system CPU seconds of the PostgreSQL server's processes on this machine (the
    ``postgres`` ones in ``/proc``); None where there is none to read."""
    import os

    pids = []
    try:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/comm") as f:
                        if f.read().strip() == "postgres":
                            pids.append(int(entry))
                except OSError:
                    continue  # ended meanwhile
    except OSError:
        return None
    if not pids:
        return None
    total = 0.0
    for pid in pids:
        one = common.cpu_seconds([pid])
        total += one or 0.0  # a backend that ended meanwhile took its time with it
    return total


def _approved_in_database(url: str, prefix: str) -> int:
    """How many orders whose id starts with ``prefix-`` the database holds as approved."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.scalar(
                text(
                    "SELECT count(*) FROM orders "
                    "WHERE external_id LIKE :pattern AND status = 'approved'"
                ),
                {"pattern": f"{prefix}-%"},
            )
    finally:
        engine.dispose()


def _check_approved(url: str, prefix: str, reported: int, in_flight: int = 0) -> None:
    """Print whether the database's approved orders of a run match what its client counted.

    ``in_flight``: approves the client may have sent without reading the answer when the run
    stopped (wrk's connections stop at the deadline), which the server may have carried out.
    """
    stored = _approved_in_database(url, prefix)
    ok = reported <= stored <= reported + in_flight
    allowance = f" + up to {in_flight} approve(s) in flight at the end" if in_flight else ""
    print(
        f"    database: {stored} orders {prefix}-* approved, the client counted "
        f"{reported}{allowance}: {'OK' if ok else 'MISMATCH'}"
    )


def _cpu_per_order(
    cpu_before: float | None,
    cpu_after: float | None,
    orders: int,
    client_cpu: float,
    database_cpu: float | None = None,
) -> str:
    """The server's own CPU per order (what the service costs, whatever else the machine runs),
    PostgreSQL's (``database_cpu`` seconds over the run) and the client's (``client_cpu``):
    together, what an order takes of the machine's CPUs."""
    if not orders:
        return ""
    parts = []
    if cpu_before is not None and cpu_after is not None:
        parts.append(f"server CPU {(cpu_after - cpu_before) * 1000 / orders:.1f} ms")
    if database_cpu is not None:
        parts.append(f"PostgreSQL {database_cpu * 1000 / orders:.1f} ms")
    parts.append(f"client {client_cpu * 1000 / orders:.1f} ms")
    return "; " + ", ".join(parts) + " an order"


def _elapsed(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def _children_cpu() -> float:
    """User + system CPU seconds of this process's ended and waited-for children."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wrk_run(
    folder: Path,
    ports: list[int],
    clients: int,
    seconds: float,
    count: int,
    pids: list[int],
    url: str,
) -> tuple[int, int, float, float, float, int]:
    """One timed run with wrk: client i on port i mod len(ports), one wrk per port with as many
    threads as connections; the figures of the instances added up (latencies: the worse)."""
    wrk = wrk_path()
    prefix = f"wrk-p{count}c{clients}"
    cpu_before, wrk_cpu, database_cpu = (
        common.cpu_seconds(pids),
        _children_cpu(),
        _postgres_cpu_seconds(),
    )
    procs = []
    for i, port in enumerate(ports):
        connections = len(range(i, clients, len(ports)))
        if not connections:
            continue
        script = _wrk_script(folder, f"{prefix}-{i}")
        command = [wrk, f"-t{connections}", f"-c{connections}", f"-d{seconds:g}s"]
        command += ["--timeout", "5s", "-s", str(script), f"http://127.0.0.1:{port}/"]
        procs.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True))
    summaries = []
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 60)
        summary = wrk_summary(out)
        if summary is None:
            raise RuntimeError(f"wrk printed no summary: {out[-500:]}")
        summaries.append(summary)
    cpu_after, wrk_cpu = common.cpu_seconds(pids), _children_cpu() - wrk_cpu
    database_cpu = _elapsed(database_cpu, _postgres_cpu_seconds())
    threads = [thread for summary in summaries for thread in summary["threads"]]
    approved = sum(thread["approved"] for thread in threads)
    socket_errors = sum(summary["socket_errors"] for summary in summaries)
    errors = sum(thread["errors"] for thread in threads) + socket_errors
    requests = sum(summary["requests"] for summary in summaries)
    elapsed = max(summary["duration_us"] for summary in summaries) / 1e6
    rate = approved / elapsed
    p50 = max(summary["p50_us"] for summary in summaries) / 1000
    p95 = max(summary["p95_us"] for summary in summaries) / 1000
    print(
        f"  {clients} client(s): {approved} orders in {elapsed:.1f} s = {rate:.0f} orders/s "
        f"({requests / elapsed:.0f} requests/s); per request (submit or approve) "
        f"p50 {p50:.1f} ms, p95 {p95:.1f} ms; errors {errors}"
        f"{_cpu_per_order(cpu_before, cpu_after, approved, wrk_cpu, database_cpu)}",
        flush=True,
    )
    print(
        f"    per connection: {', '.join(str(thread['approved']) for thread in threads)} "
        f"approved; socket errors {socket_errors}"
    )
    first_errors = [thread["first_error"] for thread in threads if thread["first_error"]]
    if first_errors:
        print(f"    first errors: {first_errors[:3]}")
    _check_approved(url, prefix, approved, sum(thread["approving"] for thread in threads))
    return (count, clients, rate, p50, p95, errors)


def _timed_run(
    ports: list[int], clients: int, seconds: float, count: int, pids: list[int], url: str
) -> tuple[int, int, float, float, float, int]:
    cpu_before, client_cpu = common.cpu_seconds(pids), time.process_time()
    database_cpu = _postgres_cpu_seconds()
    done: list = []
    errors: list = []
    latencies: list = []
    deadline = time.monotonic() + seconds
    started = time.perf_counter()
    threads = [
        threading.Thread(
            target=_client,
            args=(
                ports[i % len(ports)],
                f"p{count}c{clients}-{i}",
                deadline,
                done,
                errors,
                latencies,
            ),
        )
        for i in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    elapsed = time.perf_counter() - started
    rate = len(done) / elapsed
    cpu_after, client_cpu = common.cpu_seconds(pids), time.process_time() - client_cpu
    database_cpu = _elapsed(database_cpu, _postgres_cpu_seconds())
    p50, p95 = common.pct(latencies, 0.5) * 1000, common.pct(latencies, 0.95) * 1000
    print(
        f"  {clients} client(s): {len(done)} orders in {elapsed:.1f} s = {rate:.0f} orders/s; "
        f"submit+approve p50 {p50:.1f} ms, p95 {p95:.1f} ms; errors {len(errors)}"
        f"{_cpu_per_order(cpu_before, cpu_after, len(done), client_cpu, database_cpu)}",
        flush=True,
    )
    if errors:
        print(f"    first errors: {errors[:3]}")
    _check_approved(url, f"p{count}c{clients}", len(done))
    return (count, clients, rate, p50, p95, len(errors))


# ------------------------------------------------------------------- (b) inbox


def generate(
    n_requests: int, n_companies: int, tenant_id: int, base_company_id: int, seed: int = 20260115
):
    """Rows for companies, orders, approval_requests and approval_eligibility.

    The ids are assigned here.
    """
    rng = random.Random(seed)
    now = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    companies = [
        (base_company_id + c, tenant_id, f"bench-co-{c:04d}", f"Bench company {c}", "{}", now)
        for c in range(n_companies)
    ]

    def rows():
        for i in range(1, n_requests + 1):
            c = i % n_companies
            status = STATUSES[rng.randrange(len(STATUSES))]
            created = now - timedelta(seconds=rng.randrange(365 * 86400))
            master = f"bench-{c:04d}-master"
            approver = f"bench-{c:04d}-a{rng.randrange(APPROVERS_PER_COMPANY)}"
            total = f"{rng.randrange(50_00, 50_000_00) / 100:.2f}"
            steps = json.dumps(
                [
                    {
                        "name": "approval",
                        "required": 1,
                        "approvers": [
                            {
                                "account": master,
                                "name": "Master",
                                "role": "master",
                                "role_label": "Master",
                                "why": ["master"],
                                "email": None,
                            },
                            {
                                "account": approver,
                                "name": approver,
                                "role": "approver",
                                "role_label": "Approver",
                                "why": ["role approver"],
                                "email": None,
                            },
                        ],
                    }
                ]
            )
            order_status = {
                "pending": "pending",
                "approved": "approved",
                "rejected": "rejected",
                "expired": "expired",
                "withdrawn": "withdrawn",
            }[status]
            decision = json.dumps(
                {
                    "outcome": order_status,
                    "buyer": {"account": f"bench-{c:04d}-buyer", "company": companies[c][2]},
                }
            )
            decided = (
                None if status == "pending" else created + timedelta(hours=rng.randrange(1, 96))
            )
            order = (
                i,
                tenant_id,
                f"B{i:08d}",
                companies[c][0],
                "{}",
                total,
                "USD",
                "regular",
                order_status,
                decision,
                created,
                created,
            )
            request = (
                i,
                tenant_id,
                i,
                status,
                0,
                0,
                steps,
                created + timedelta(days=14),
                1,
                created,
                decided,
            )
            eligibility = [
                (2 * i - 1, i, tenant_id, master, 0, status, created),
                (2 * i, i, tenant_id, approver, 0, status, created),
            ]
            yield order, request, eligibility

    return companies, rows()


ORDER_COLS = (
    "id, tenant_id, external_id, company_id, payload, total, currency, type, status, decision, "
    "created_at, updated_at"
)
REQUEST_COLS = (
    "id, tenant_id, order_id, status, current_step, generation, steps, expires_at, version_id, "
    "created_at, decided_at"
)
ELIG_COLS = "id, request_id, tenant_id, account_id, step_index, status, created_at"


def bulk_load_pg(url: str, n_requests: int, n_companies: int) -> None:
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        tenant_id = conn.execute("SELECT id FROM tenants WHERE slug = 'demo'").fetchone()[0]
        base = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM companies").fetchone()[0]
        companies, rows = generate(n_requests, n_companies, tenant_id, base)
        with conn.cursor() as cur:
            with cur.copy(
                "COPY companies (id, tenant_id, external_id, name, attributes, created_at) "
                "FROM STDIN"
            ) as copy:
                for row in companies:
                    copy.write_row(row)
            # one pass over the generator, three COPY streams would need three cursors at once;
            # buffer the requests and eligibility rows per chunk instead
            chunk = 100_000
            batch = []
            for item in rows:
                batch.append(item)
                if len(batch) == chunk:
                    _copy_chunk(cur, batch)
                    batch = []
            if batch:
                _copy_chunk(cur, batch)
            for table in ("companies", "orders", "approval_requests", "approval_eligibility"):
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def _copy_chunk(cur, batch) -> None:
    with cur.copy(f"COPY orders ({ORDER_COLS}) FROM STDIN") as copy:
        for order, _, _ in batch:
            copy.write_row(order)
    with cur.copy(f"COPY approval_requests ({REQUEST_COLS}) FROM STDIN") as copy:
        for _, request, _ in batch:
            copy.write_row(request)
    with cur.copy(f"COPY approval_eligibility ({ELIG_COLS}) FROM STDIN") as copy:
        for _, _, eligibility in batch:
            for row in eligibility:
                copy.write_row(row)


def bulk_load_sqlite(path: str, n_requests: int, n_companies: int) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    tenant_id = conn.execute("SELECT id FROM tenants WHERE slug = 'demo'").fetchone()[0]
    base = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM companies").fetchone()[0]
    companies, rows = generate(n_requests, n_companies, tenant_id, base)

    def iso(value):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(value, datetime) else value

    conn.executemany(
        "INSERT INTO companies (id, tenant_id, external_id, name, attributes, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [tuple(iso(v) for v in c) for c in companies],
    )
    orders, requests, eligibility = [], [], []
    for order, request, elig in rows:
        orders.append(tuple(iso(v) for v in order))
        requests.append(tuple(iso(v) for v in request))
        eligibility.extend(tuple(iso(v) for v in e) for e in elig)
    conn.executemany(f"INSERT INTO orders ({ORDER_COLS}) VALUES ({', '.join('?' * 12)})", orders)
    conn.executemany(
        f"INSERT INTO approval_requests ({REQUEST_COLS}) VALUES ({', '.join('?' * 11)})", requests
    )
    conn.executemany(
        f"INSERT INTO approval_eligibility ({ELIG_COLS}) VALUES ({', '.join('?' * 7)})", eligibility
    )
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


def inbox_statements(session, tenant_id: int, approver: str):
    """The three statements of GET /api/v1/approvals?approver=X&status=pending (page 1, 50), built
    by the workflow's queries."""
    from approvalrules.workflow.queries import INBOX_ORDER, inbox_queries, page_statements

    query, counts_query = inbox_queries(tenant_id, approver=approver, status="pending")
    total, page = page_statements(query, INBOX_ORDER, 1, 50)
    return {"total": total, "page": page, "counts": counts_query}


def explain(engine, tenant_id: int, approver: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        for name, stmt in inbox_statements(session, tenant_id, approver).items():
            sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
            if engine.dialect.name == "postgresql":
                plan = session.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql)).scalars().all()
            else:
                plan = [
                    f"{r[1]}|{r[2]}: {r[3]}"
                    for r in session.execute(text("EXPLAIN QUERY PLAN " + sql)).all()
                ]
            print(f"\n-- {name}: {' '.join(sql.split())[:400]}")
            for line in plan:
                print(f"   {line}")


def eager_page_times(engine, tenant_id: int, approvers: list[str]) -> dict:
    """The page of the inbox rendered by views/api.py's approval_view.

    Timed with lazy loads (as now) and eager loads (proposal).
    """
    from sqlalchemy import event
    from sqlalchemy.orm import Session, contains_eager, selectinload

    from approvalrules.store.models import ApprovalRequest
    from approvalrules.views.api import approval_view

    count = [0]

    def on_execute(*args, **kwargs):
        count[0] += 1

    event.listen(engine, "before_cursor_execute", on_execute)
    out = {}
    try:
        for mode in ("lazy", "eager"):
            times, statements = [], 0
            for approver in approvers:
                with Session(engine) as session:
                    count[0] = 0
                    t0 = time.perf_counter()
                    stmts = inbox_statements(session, tenant_id, approver)
                    session.scalar(stmts["total"])
                    page = stmts["page"]
                    if mode == "eager":
                        page = page.options(
                            contains_eager(ApprovalRequest.order),
                            selectinload(ApprovalRequest.actions),
                        )
                    rows = session.scalars(page).unique().all()
                    session.execute(stmts["counts"]).all()
                    [approval_view(session, r, brief=True) for r in rows]
                    times.append((time.perf_counter() - t0) * 1000)
                    statements = max(statements, count[0])
            out[f"{mode}_p50"], out[f"{mode}_p95"], out[f"{mode}_statements"] = (
                common.pct(times, 0.5),
                common.pct(times, 0.95),
                statements,
            )
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    return out


def inbox(url: str, n_requests: int, n_companies: int, queries: int, label: str) -> dict:
    from pyramid.paster import get_app
    from sqlalchemy import event, select
    from sqlalchemy.orm import Session
    from webtest import TestApp

    from approvalrules.store.db import create_engine_for_url
    from approvalrules.store.models import ApprovalEligibility, Tenant

    tmp = Path(tempfile.mkdtemp(prefix="ar_bench_inbox_"))
    try:
        ini = common.write_ini(tmp, url, 0)
        common.setup_database(ini)
        started = time.perf_counter()
        if url.startswith("postgresql"):
            bulk_load_pg(url, n_requests, n_companies)
            how = "COPY"
        else:
            bulk_load_sqlite(url.removeprefix("sqlite:///"), n_requests, n_companies)
            how = "executemany"
        print(
            f"{label}: loaded {n_requests:,} approval requests "
            f"({n_requests:,} orders, {2 * n_requests:,} eligibility rows) "
            f"across {n_companies:,} companies with {how} "
            f"in {time.perf_counter() - started:.0f} s",
            flush=True,
        )

        engine = create_engine_for_url(url)
        with Session(engine) as session:
            tenant_id = session.scalar(select(Tenant.id).where(Tenant.slug == "demo"))
            busiest = session.execute(
                select(ApprovalEligibility.account_id)
                .where(ApprovalEligibility.tenant_id == tenant_id)
                .group_by(ApprovalEligibility.account_id)
                .order_by(__import__("sqlalchemy").func.count().desc())
                .limit(1)
            ).scalar()
        rng = random.Random(7)
        approvers = []
        for _ in range(queries):
            c = rng.randrange(n_companies)
            approvers.append(
                f"bench-{c:04d}-master"
                if rng.random() < 0.5
                else f"bench-{c:04d}-a{rng.randrange(APPROVERS_PER_COMPANY)}"
            )

        app = TestApp(get_app(str(ini), "main"))
        headers = {"Authorization": f"Bearer {common.DEV_KEY}"}
        app_engine = app.app.registry["dbengine"] if hasattr(app.app, "registry") else None
        statements = [0]
        if app_engine is not None:
            event.listen(
                app_engine,
                "before_cursor_execute",
                lambda *a, **k: statements.__setitem__(0, statements[0] + 1),
            )
        for approver in approvers[:20]:
            app.get(
                "/api/v1/approvals", {"approver": approver, "status": "pending"}, headers=headers
            )
        times, items = [], []
        for approver in approvers:
            statements[0] = 0
            t0 = time.perf_counter()
            response = app.get(
                "/api/v1/approvals", {"approver": approver, "status": "pending"}, headers=headers
            )
            times.append((time.perf_counter() - t0) * 1000)
            items.append(len(response.json["items"]))
        per_page_statements = statements[0]
        p50, p95 = common.pct(times, 0.5), common.pct(times, 0.95)
        print(
            f"{label}: {queries} inbox queries "
            "(GET /api/v1/approvals?approver=X&status=pending, webtest in-process): "
            f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(times):.1f} ms; "
            f"items per page: median {common.pct(items, 0.5)}, max {max(items)}; "
            f"SQL statements for the last page: {per_page_statements}"
        )
        print(f"{common.verdict(p95 < 20)}  {label}: inbox p95 < 20 ms ({p95:.1f} ms)")
        print(f"EXPLAIN for the busiest approver {busiest!r}:")
        explain(engine, tenant_id, busiest)
        # the page's SQL alone, without the view's rendering (to split SQL from the rest)
        with Session(engine) as session:
            sql_times = []
            for approver in approvers[: min(200, len(approvers))]:
                t0 = time.perf_counter()
                for stmt in inbox_statements(session, tenant_id, approver).values():
                    session.execute(stmt).all()
                sql_times.append((time.perf_counter() - t0) * 1000)
                session.expunge_all()
        print(
            f"\n{label}: the view's 3 SELECTs alone (same approvers, no rendering): "
            f"p50 {common.pct(sql_times, 0.5):.1f} ms, p95 {common.pct(sql_times, 0.95):.1f} ms"
        )
        eager = eager_page_times(engine, tenant_id, approvers[: min(200, len(approvers))])
        print(
            f"{label}: proposal for views/api.py "
            "(page query with contains_eager(order) + selectinload(actions), "
            "then the same approval_view(brief=True)), in-process without HTTP: "
            f"p50 {eager['eager_p50']:.1f} ms, p95 {eager['eager_p95']:.1f} ms, "
            f"{eager['eager_statements']} statements; "
            f"as now (lazy loads, same code path): p50 {eager['lazy_p50']:.1f} ms, "
            f"p95 {eager['lazy_p95']:.1f} ms, {eager['lazy_statements']} statements"
        )
        engine.dispose()
        return {
            "label": label,
            "p50": p50,
            "p95": p95,
            "sql_p95": common.pct(sql_times, 0.95),
            "statements": per_page_statements,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="submit,inbox", help="submit, inbox (comma-separated)")
    parser.add_argument(
        "--seconds", type=float, help="seconds per submit+approve run (10; --quick 4)"
    )
    parser.add_argument(
        "--requests", type=int, help="approval requests on PostgreSQL (1,000,000; --quick 100,000)"
    )
    parser.add_argument(
        "--sqlite-requests", type=int, help="approval requests on SQLite (100,000; --quick 20,000)"
    )
    parser.add_argument("--queries", type=int, help="inbox queries timed (300; --quick 100)")
    parser.add_argument(
        "--statements",
        action="store_true",
        help="submit: also print the SQL statements of each kind per submit and per approve",
    )
    parser.add_argument(
        "--client",
        choices=("wrk", "python"),
        help="submit: the load generator, wrk (the default when installed) or python "
        "(client threads in this process)",
    )
    parser.add_argument(
        "--processes",
        default="1",
        help="submit: server process counts to measure, e.g. 1,2 (default 1: one process)",
    )
    args = parser.parse_args(argv)
    only = {x.strip() for x in args.only.split(",")}
    print(f"machine: {common.machine()}")
    if "submit" in only:
        client = args.client or ("wrk" if wrk_path() else "python")
        if client == "wrk" and not wrk_path():
            print("wrk is not installed (apt-get install -y wrk): the Python client instead")
            client = "python"
        if client == "wrk":
            version = subprocess.run([wrk_path(), "-v"], capture_output=True, text=True).stdout
            print(f"client: wrk ({(version.splitlines() or ['?'])[0]})")
        else:
            print("client: python (threads of this process: http.client, json)")
        submit_approve(
            args.seconds or (4.0 if args.quick else 10.0),
            args.statements,
            tuple(int(x) for x in args.processes.split(",")),
            client,
        )
    if "inbox" in only:
        print("\n## (b) approver inbox")
        queries = args.queries or (100 if args.quick else 300)
        n_pg = args.requests or (100_000 if args.quick else 1_000_000)
        n_lite = args.sqlite_requests or (20_000 if args.quick else 100_000)
        if common.postgres_available():
            url = common.create_pg_database("ar_bench_inbox")
            try:
                inbox(url, n_pg, 1000, queries, f"PostgreSQL {n_pg:,}")
            finally:
                common.drop_pg_database(url)
        tmp = Path(tempfile.mkdtemp(prefix="ar_bench_lite_"))
        try:
            inbox(
                f"sqlite:///{tmp}/inbox.sqlite",
                n_lite,
                max(1, n_lite // 1000),
                queries,
                f"SQLite {n_lite:,}",
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
