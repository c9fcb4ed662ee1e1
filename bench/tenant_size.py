#!/usr/bin/env python
"""Tenant size: does evaluating an order cost the same in a 50,000-account tenant as in a
100-account one, while the big tenant's directory changes once a second?

    .venv/bin/python bench/tenant_size.py [--quick] [--seconds S] [--companies N]

Builds a SQLite database (a temporary file) with two tenants under one rule set: *big*
(``--companies`` companies, default 5,000; --quick 500; ten accounts each: an admin, two
approvers, seven buyers; every tenth company the parent of the next nine) and *small*
(10 companies, 100 accounts).  Directory rows are inserted in bulk (not timed).

Then, with a writer thread committing one membership change a second through
``DirectoryService`` in a big-tenant company nobody orders from, it times
``approvalrules.workflow.deciding.evaluate`` (dry run, as the storefront's
evaluate endpoint) in-process, each call as a request does it: a new session, the
tenant row, the evaluation, the session closed.  Buyers come from 20 companies of
each tenant (the big tenant's spread over it); the two tenants' orders take turns
for ``--seconds`` (default 20; --quick 8) after a warm-up.  Prints p50 / p99 per
tenant, the ratio big p99 / small p99 (target <= 2x), the process's RSS (VmRSS)
and peak (ru_maxrss) (target < 300 MB), and, when the code has them, the company
slice cache's figures.
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from approvalrules.store import migrate  # noqa: E402
from approvalrules.store.db import create_engine_for_url  # noqa: E402
from approvalrules.store.directory import load_memory_directory  # noqa: E402
from approvalrules.store.directory_service import DirectoryService  # noqa: E402
from approvalrules.store.models import Account, Company, Membership, Tenant  # noqa: E402
from approvalrules.store.services import ensure_tenant  # noqa: E402
from approvalrules.store.versions import publish  # noqa: E402
from approvalrules.workflow import deciding  # noqa: E402

try:  # absent from the code before the slices, which this script also measures
    from approvalrules.store import company_slice  # noqa: E402
except ImportError:
    company_slice = None

RULESET = """\
ruleset: bench
description: Tenant-size benchmark.
roles:
  admin:    {label: Admin,    permissions: [place_orders, approve_orders]}
  approver: {label: Approver, permissions: [place_orders, approve_orders]}
  buyer:    {label: Buyer,    permissions: [place_orders]}
approval:
  steps:
    - name: manager
      when: {total: {gt: 500}}
      approvers: {any_of: [{role: approver}]}
      required: 1
    - name: director
      when: {total: {gt: 5000}}
      approvers: {any_of: [{role: admin}]}
      required: 1
"""
ROLES = ["admin", "approver", "approver"] + ["buyer"] * 7
HOT_COMPANIES = 20


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))]


def fill(engine, slug: str, n_companies: int) -> int:
    """A tenant of ``n_companies`` companies with ten accounts each, inserted in bulk."""
    now = datetime.now(UTC)
    with Session(engine) as session:
        tenant = ensure_tenant(session, slug, slug)
        publish(session, tenant, "bench", text=RULESET)
        tenant_id = tenant.id
        session.commit()
    with Session(engine) as session:
        rows = [
            {
                "tenant_id": tenant_id,
                "external_id": f"c{i:05d}",
                "name": f"Company {i}",
                "ruleset_name": "bench" if i % 10 == 0 else None,
                "attributes": {},
                "created_at": now,
            }
            for i in range(n_companies)
        ]
        session.execute(insert(Company), rows)
        ids = dict(
            session.execute(
                select(Company.external_id, Company.id).where(Company.tenant_id == tenant_id)
            ).all()
        )
        for i in range(n_companies):
            if i % 10:
                session.query(Company).filter(Company.id == ids[f"c{i:05d}"]).update(
                    {"parent_id": ids[f"c{i - i % 10:05d}"]}
                )
        session.execute(
            insert(Account),
            [
                {
                    "tenant_id": tenant_id,
                    "external_id": f"u{i:05d}-{j}",
                    "name": f"User {i}-{j}",
                    "email": f"u{i}-{j}@bench.test",
                    "email_enabled": True,
                    "active": True,
                    "created_at": now,
                }
                for i in range(n_companies)
                for j in range(len(ROLES))
            ],
        )
        accounts = dict(
            session.execute(
                select(Account.external_id, Account.id).where(Account.tenant_id == tenant_id)
            ).all()
        )
        session.execute(
            insert(Membership),
            [
                {
                    "account_id": accounts[f"u{i:05d}-{j}"],
                    "company_id": ids[f"c{i:05d}"],
                    "role": role,
                    "master": j == 0,
                    "is_default": True,
                    "status": "active",
                    "settings": {},
                    "attributes": {},
                }
                for i in range(n_companies)
                for j, role in enumerate(ROLES)
            ],
        )
        session.query(Tenant).filter(Tenant.id == tenant_id).update(
            {"directory_version": Tenant.directory_version + 1}
        )
        session.commit()
    return tenant_id


class Writer(threading.Thread):
    """One membership change a second in the big tenant, in companies nobody orders from."""

    def __init__(self, engine, tenant_id: int, companies: list[int]):
        super().__init__(daemon=True)
        self.engine, self.tenant_id, self.companies = engine, tenant_id, companies
        self.stop = threading.Event()
        self.changes = 0
        self.refused = 0

    def run(self) -> None:
        attempt = 0
        while not self.stop.wait(1.0):
            i = self.companies[attempt % len(self.companies)]
            role = "approver" if attempt % 2 == 0 else "buyer"
            attempt += 1
            try:
                with Session(self.engine) as session:
                    DirectoryService(session, self.tenant_id, actor="bench").upsert_membership(
                        f"u{i:05d}-9", f"c{i:05d}", role=role
                    )
                    session.commit()
            except OperationalError:
                # SQLite's lock waited past approvalrules.db.lock_timeout: a reader held the
                # database that long (a whole-tenant load does)
                self.refused += 1
            else:
                self.changes += 1


def run(engine, tenants: dict[str, tuple[int, list[int]]], seconds: float) -> dict:
    """Evaluate for ``seconds`` after a warm-up, the tenants' orders taking turns (so what
    else the machine runs slows both alike); the seconds each call took, per tenant."""
    rng = random.Random(7)
    bodies = {
        name: [
            {"buyer": f"u{i:05d}-{j}", "total": total}
            for i in companies
            for j in range(3, 10)
            for total in (120, 900, 7000)
        ]
        for name, (_, companies) in tenants.items()
    }

    def once(name: str) -> float:
        body = rng.choice(bodies[name])
        started = time.perf_counter()
        with Session(engine) as session:
            tenant = session.get(Tenant, tenants[name][0])
            deciding.evaluate(session, tenant, body, dry_run=True)
        return time.perf_counter() - started

    warm_until = time.perf_counter() + min(3.0, seconds / 4)
    while time.perf_counter() < warm_until:
        for name in tenants:
            once(name)
    times: dict[str, list[float]] = {name: [] for name in tenants}
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        for name in tenants:
            times[name].append(once(name))
    return times


def bytes_per_record(engine, tenant_id: int) -> str:
    """What one directory record costs in memory: the big tenant's whole directory read
    into a MemoryDirectory (what every process held before the slices), RSS growth / records."""
    with Session(engine) as session:
        gc.collect()
        before = rss_mib()
        started = time.perf_counter()
        whole = load_memory_directory(session, tenant_id)
        took = time.perf_counter() - started
        gc.collect()
        grown = rss_mib() - before
    records = len(whole._companies) + len(whole._accounts) * 2  # an account, its membership
    return (
        f"whole-tenant snapshot of the big tenant: {took:.1f} s to load, +{grown:.0f} MB RSS for "
        f"{records:,} records = {grown * 1024 * 1024 / records:,.0f} bytes a record"
    )


def slice_figures() -> str:
    if company_slice is None:
        return "company slices: not in this code (whole-tenant snapshots)"
    cache, stats = company_slice.slice_cache(), company_slice.STATS
    checks = getattr(stats, "checks", None)  # absent before the slice versions
    checked = "" if checks is None else f"{checks} version checks (no re-read), "
    return (
        f"company slices: {len(cache)} cached, ~{cache.bytes / 1024:.0f} KiB estimated, "
        f"{checked}{stats.reads} reads, {stats.builds} builds, {cache.evictions} evictions"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 companies, 8 s phases")
    parser.add_argument("--companies", type=int, help="companies of the big tenant")
    parser.add_argument("--seconds", type=float, help="length of the timed run")
    parser.add_argument(
        "--no-writer", action="store_true", help="no directory changes: what the rest costs"
    )
    args = parser.parse_args()
    big_n = args.companies or (500 if args.quick else 5000)
    seconds = args.seconds or (8.0 if args.quick else 20.0)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/tenant_size.sqlite"
        migrate.upgrade(url)
        engine = create_engine_for_url(url)
        started = time.perf_counter()
        small = fill(engine, "small", 10)
        big = fill(engine, "big", big_n)
        print(
            f"filled: big {big_n:,} companies / {big_n * len(ROLES):,} accounts, small 10 / 100 "
            f"({time.perf_counter() - started:.1f} s)"
        )
        gc.collect()
        rss_start = rss_mib()
        rng = random.Random(7)
        hot_big = sorted(rng.sample(range(big_n), HOT_COMPANIES))
        cold = [
            i
            for i in range(big_n)
            if i not in hot_big and i // 10 not in {h // 10 for h in hot_big}
        ]
        # its own engine: a connection whose commit failed never reaches the readers' pool
        writer_engine = create_engine_for_url(url)
        writer = Writer(writer_engine, big, cold)
        if not args.no_writer:
            writer.start()
        try:
            times = run(engine, {"small": (small, list(range(10))), "big": (big, hot_big)}, seconds)
        finally:
            writer.stop.set()
            if writer.is_alive():
                writer.join()
        gc.collect()
        rss_end, peak = rss_mib(), peak_mib()
        row_bytes = bytes_per_record(engine, big)
        engine.dispose()
        writer_engine.dispose()
    ms = 1000
    print(
        f"directory changes committed during the run: {writer.changes}, refused (database "
        f"locked): {writer.refused}"
    )
    small_times, big_times = times["small"], times["big"]
    for name, times in (("small", small_times), ("big", big_times)):
        print(
            f"{name:>5}: {len(times):6,} evaluates  p50 {pct(times, 0.5) * ms:7.2f} ms  "
            f"p99 {pct(times, 0.99) * ms:8.2f} ms  p99.9 {pct(times, 0.999) * ms:8.2f} ms  "
            f"max {max(times) * ms:8.2f} ms  over 100 ms: {sum(t > 0.1 for t in times)}"
        )
    ratio = pct(big_times, 0.99) / pct(small_times, 0.99)
    print(f"big p99 / small p99: {ratio:.2f}x (target <= 2x: {'PASS' if ratio <= 2 else 'MISS'})")
    print(
        f"RSS: {rss_start:.0f} MB after filling, {rss_end:.0f} MB after the run "
        f"(target < 300 MB: {'PASS' if rss_end < 300 else 'MISS'}); peak {peak:.0f} MB, the "
        "bulk fill's rows included"
    )
    print(slice_figures())
    print(row_bytes)


if __name__ == "__main__":
    main()
