#!/usr/bin/env python
"""What the request-id tween and the metrics cost per request, in process (no sockets).

    .venv/bin/python bench/observability_bench.py [-n 2000]

* The tween alone: ``request_id_tween`` around a handler that returns a ready response,
  against the bare handler (with an incoming X-Request-Id, and with one to generate).
* Through the whole app (webtest): /health and POST /api/v1/evaluate per request, and a
  scrape of /metrics (its database gauges included).
* A/B in the same process: the app's tween chain with and without the request-id tween,
  in alternating rounds so that a busy machine weighs on both alike.

Prints microseconds and the tween's share of /health's and evaluate's time; exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import common


def per_call_us(call, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - started) / n * 1e6


def tween_alone(n: int) -> tuple[float, float, float]:
    """Microseconds: the bare handler, the tween with a given id, the tween generating one."""
    from pyramid.request import Request
    from pyramid.response import Response

    from approvalrules.views.observability import request_id_tween_factory

    response = Response(b'{"status": "ok"}', content_type="application/json")

    def handler(request):
        return response

    tween = request_id_tween_factory(handler, None)
    given = Request.blank("/health", headers={"X-Request-Id": "lb-1234.abcd"})
    fresh = Request.blank("/health")
    bare = per_call_us(lambda: handler(given), n)
    with_id = per_call_us(lambda: tween(given), n)
    generated = per_call_us(lambda: tween(fresh), n)
    return bare, with_id - bare, generated - bare


def a_b(app, raw: str, headers: dict, n: int) -> tuple[dict, dict]:
    """Per-request microseconds of /health and evaluate through the app's tweens with and
    without the request-id tween: the best of 5 alternating rounds each."""
    from pyramid.interfaces import ITweens

    from approvalrules.views.observability import TWEEN

    router = app.app
    with_tween = router.handle_request
    handler = router.orig_handle_request
    for name, factory in reversed(router.registry.queryUtility(ITweens).implicit()):
        if name != TWEEN:
            handler = factory(handler, router.registry)
    calls = {
        "/health": lambda: app.get("/health"),
        "evaluate": lambda: app.post("/api/v1/evaluate", raw, headers=headers),
    }
    best = ({path: float("inf") for path in calls}, {path: float("inf") for path in calls})
    for _round in range(5):
        for index, chain in enumerate((with_tween, handler)):
            router.handle_request = chain
            for path, call in calls.items():
                count = n if path == "/health" else max(50, n // 5)
                best[index][path] = min(best[index][path], per_call_us(call, count))
    router.handle_request = with_tween
    return best


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="requests per measurement")
    args = parser.parse_args(argv)
    print(common.machine())
    bare, given_us, generated_us = tween_alone(args.n * 50)
    print(
        f"tween alone ({args.n * 50} calls): +{given_us:.2f} us with an incoming X-Request-Id, "
        f"+{generated_us:.2f} us generating one (bare handler {bare:.2f} us)"
    )
    from pyramid.paster import get_app
    from webtest import TestApp

    with tempfile.TemporaryDirectory() as tmp:
        ini = common.write_ini(Path(tmp), f"sqlite:///{Path(tmp) / 'bench.sqlite'}")
        common.setup_database(ini)
        app = TestApp(get_app(str(ini), "main"))
        headers = {"Authorization": f"Bearer {common.DEV_KEY}", "Content-Type": "application/json"}
        raw = json.dumps(common.cart())
        for _ in range(50):
            app.post("/api/v1/evaluate", raw, headers=headers)
        health_us = per_call_us(lambda: app.get("/health"), args.n)
        evaluate_us = per_call_us(
            lambda: app.post("/api/v1/evaluate", raw, headers=headers), args.n
        )
        metrics_us = per_call_us(lambda: app.get("/metrics"), max(20, args.n // 50))
        with_tween, without_tween = a_b(app, raw, headers, args.n)
    print(
        f"in-process (webtest), {args.n} requests each: /health {health_us:.0f} us, "
        f"evaluate {evaluate_us:.0f} us, a /metrics scrape {metrics_us:.0f} us"
    )
    print(
        f"the tween's share: {generated_us / health_us:.1%} of /health, "
        f"{generated_us / evaluate_us:.1%} of evaluate"
    )
    for path in ("/health", "evaluate"):
        print(
            f"A/B {path}: {with_tween[path]:.0f} us with the tween, {without_tween[path]:.0f} us "
            f"without (ratio {with_tween[path] / without_tween[path]:.3f}; best of 5 rounds)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
