#!/usr/bin/env python
"""Memory: resident size of one process holding compiled policies for 1,000 tenants.

    .venv/bin/python bench/memory.py [--quick] [--tenants N]

Generates N distinct rule sets (default 1,000; --quick 200): tenant i takes
rules/<file>.yaml number i modulo the 11 rule sets that extend
``tenant-default``, with every amount threshold (``gt``/``gte``/``lt``/``lte``/
``amount``) scaled by a tenant-specific factor and a tenant-specific
description, so no two texts are equal.  Each is validated and compiled with
``approvalrules.engine.compile_ruleset`` (its parent resolved from rules/)
and kept in an ``approvalrules.engine.PolicyCache`` keyed by the hash of its
text, as a worker does.  RSS (VmRSS from /proc/self/status) after
``gc.collect()``: before any compile (engine imported), after the first
policy (lazy imports, schema), after all; per policy = (after all - after
first) / (N - 1).  Also prints the mean compile time (what a cache miss costs)
and the sizes of the two per-process caches in the code.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0] or ".") == _HERE:
    sys.path.pop(0)
    sys.path.append(_HERE)

import argparse  # noqa: E402
import gc  # noqa: E402
import hashlib  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402

import common  # noqa: E402

THRESHOLD = re.compile(r"\b(gt|gte|lt|lte|amount): *(\d+(?:\.\d+)?)")


def variants(n: int, offset: int = 0) -> list[tuple[str, str]]:
    bases = sorted(p for p in common.RULES.glob("*.yaml") if p.stem != "tenant-default")
    texts = [(p, p.read_text("utf-8")) for p in bases]
    out = []
    for i in range(offset, offset + n):
        path, text = texts[i % len(texts)]
        factor = 1 + (i + 1) / 1000  # 1.001, 1.002, ...: distinct thresholds per tenant

        def scale(m: re.Match, factor: float = factor) -> str:
            return f"{m.group(1)}: {round(float(m.group(2)) * factor, 2):g}"

        body = THRESHOLD.sub(scale, text)
        body = re.sub(
            r"^description: .*$",
            f"description: tenant {i:04d}, variant of {path.name} (x{factor:.3f})",
            body,
            count=1,
            flags=re.M,
        )
        out.append((f"tenant-{i:04d}/{path.name}", body))
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tenants", type=int)
    args = parser.parse_args(argv)
    n = args.tenants or (200 if args.quick else 1000)

    print(f"machine: {common.machine()}")
    from approvalrules import engine
    from approvalrules.store import versions

    texts = variants(n)
    assert len({hashlib.sha256(t.encode()).hexdigest() for _, t in texts}) == n, (
        "variants are not distinct"
    )
    resolve = engine.folder_resolver(common.RULES)
    cache = engine.PolicyCache(size=max(2048, n))
    gc.collect()
    rss_start = common.rss_kib()

    def compile_one(source: str, text: str):
        key = hashlib.sha256(text.encode()).hexdigest()
        cache.put(key, engine.compile_ruleset(text, source, resolve))

    compile_one(*texts[0])
    gc.collect()
    rss_first = common.rss_kib()
    started = time.perf_counter()
    for source, text in texts[1:]:
        compile_one(source, text)
    compile_s = time.perf_counter() - started
    gc.collect()
    rss_all = common.rss_kib()
    assert len(cache) == n
    per = (rss_all - rss_first) / max(1, n - 1)
    print(
        f"{n} tenants, {n} distinct rule sets "
        f"({len(set(s.split('/')[1] for s, _ in texts))} bases from rules/, "
        "each extending tenant-default)"
    )
    print(f"RSS before compiling (engine imported): {rss_start / 1024:.1f} MiB")
    print(f"RSS after the first policy:             {rss_first / 1024:.1f} MiB")
    print(f"RSS with {n} compiled policies:        {rss_all / 1024:.1f} MiB")
    print(f"per policy: {per:.0f} KiB; {n} policies add {(rss_all - rss_first) / 1024:.1f} MiB")
    # RSS moves in arenas and pages (the first compile alone adds tens of MiB of imports and
    # schema objects, and later policies reuse what its garbage freed), so also count the
    # Python allocations that 100 more policies keep alive.
    import tracemalloc

    extra = variants(100, offset=n)
    tracemalloc.start()
    gc.collect()
    traced_before = tracemalloc.get_traced_memory()[0]
    for source, text in extra:
        compile_one(source, text)
    gc.collect()
    traced_per = (tracemalloc.get_traced_memory()[0] - traced_before) / len(extra)
    tracemalloc.stop()
    print(
        "retained by one compiled policy (tracemalloc, 100 more policies): "
        f"{traced_per / 1024:.0f} KiB"
    )
    print(
        "compile (validate + compile, parent resolved from disk): "
        f"{compile_s / max(1, n - 1) * 1000:.1f} ms per rule set"
    )
    # the store's process-wide cache (made on first use); its size is what a worker can hold
    store_cache_size = versions._compiled().size
    print(
        "the one per-process cache of compiled policies: approvalrules.store.versions.policy_for's,"
        f" holding {store_cache_size} (engine.compile_ruleset itself compiles every time)"
    )
    if store_cache_size < n:
        print(
            f"MISS  store.versions' policy cache ({store_cache_size}) is smaller than {n} tenants:"
            " a worker serving them all recompiles on most requests (LRU thrash)"
        )
    else:
        print(f"PASS  store.versions' policy cache holds {n} tenants")
    print(
        "| tenants | RSS before | RSS after | per policy (RSS) | per policy (tracemalloc) |\n"
        "|---:|---:|---:|---:|---:|\n"
        f"| {n} | {rss_start / 1024:.1f} MiB | {rss_all / 1024:.1f} MiB | {per:.0f} KiB "
        f"| {traced_per / 1024:.0f} KiB |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
