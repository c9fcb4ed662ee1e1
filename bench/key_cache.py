#!/usr/bin/env python
"""The verified-key cache on PostgreSQL: SQL statements and time per evaluate, cache on vs off.

    .venv/bin/python bench/key_cache.py [--requests N] [--rounds R]

Builds a throw-away PostgreSQL database (dropped afterwards), loads ``rules/`` and the
development key, and builds two apps in this process on it: ``approvalrules.key_cache``
true (as shipped) and false (every request reads its key and tenant, as before).  Both
evaluate the same 15-line cart through WebTest (no sockets, no waitress), in alternating
rounds so that the machine's other load falls on both alike.  Prints statements per
request, the mean and median time per request of each, and their ratio.  Exits 0 whatever
the numbers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import common


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="per round and app (300)")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    if not common.postgres_available():
        print("PostgreSQL not reachable: set APPROVALRULES_BENCH_PG")
        return 0
    import webtest
    from pyramid.paster import get_appsettings
    from sqlalchemy import event

    from approvalrules.app import main as make_app
    from approvalrules.store import bus

    url = common.create_pg_database("ar_bench_keys")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ini = common.write_ini(Path(tmp), url)
            common.setup_database(ini)
            settings = dict(get_appsettings(str(ini), name="main"))
            apps = {}
            for label, cached in (("cache on", "true"), ("cache off", "false")):
                app = make_app({}, **{**settings, "approvalrules.key_cache": cached})
                listener = app.registry["key_cache"].listener
                if listener is not None and not listener.wait_healthy(10):
                    print("the invalidation listener did not connect")
                    return 0
                apps[label] = (
                    webtest.TestApp(
                        app, extra_environ={"HTTP_AUTHORIZATION": f"Bearer {common.DEV_KEY}"}
                    ),
                    app.registry["dbengine"],
                )
            body = common.cart(15)
            times: dict[str, list[float]] = {label: [] for label in apps}
            statements: dict[str, int] = {}
            for label, (client, engine) in apps.items():  # warm: every cache filled
                for _ in range(20):
                    client.post_json("/api/v1/evaluate", body)
                seen = []
                record = lambda *a, seen=seen: seen.append(1)  # noqa: E731
                event.listen(engine, "before_cursor_execute", record)
                for _ in range(10):
                    client.post_json("/api/v1/evaluate", body)
                event.remove(engine, "before_cursor_execute", record)
                statements[label] = len(seen) / 10
            for _ in range(args.rounds):
                for label, (client, _engine) in apps.items():
                    for _ in range(args.requests):
                        start = time.perf_counter()
                        client.post_json("/api/v1/evaluate", body)
                        times[label].append(time.perf_counter() - start)
            print(f"PostgreSQL; {args.rounds} alternating rounds of {args.requests} evaluates each")
            for label in apps:
                data = times[label]
                print(
                    f"  {label:9}  {statements[label]:.1f} SQL statements/request  "
                    f"mean {statistics.mean(data) * 1e3:6.3f} ms  "
                    f"median {statistics.median(data) * 1e3:6.3f} ms"
                )
            on, off = times["cache on"], times["cache off"]
            print(
                f"  cache on / cache off: mean {statistics.mean(on) / statistics.mean(off):.2f}x, "
                f"median {statistics.median(on) / statistics.median(off):.2f}x"
            )
            for _client, engine in apps.values():
                engine.dispose()
            listener = apps["cache on"][0].app.registry["key_cache"].listener
            listener.stop()
            time.sleep(2 * bus.PING_EVERY)  # it lets go of the database before it is dropped
    finally:
        common.drop_pg_database(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
