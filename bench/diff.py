"""Benchmark the diff: two generated 1,000-step rule sets, and a replay of 100,000 recorded orders.

    python bench/diff.py [--groups 50] [--steps 1000] [--orders 100000]

The rule sets: one company with ``--groups`` purchasing groups (one Approver
and one Requisitioner each, plus a master); ``--steps`` approval steps spread
over the groups, each a band ``{buyer_group: gN, total: {gt: T, lte: T + 100}}``
(a tiered policy: one step of a group applies to an order).  Version 2 raises
every 10th threshold, changes every 25th required count, drops 5 steps and
adds 5.  The orders: random buyers, totals and types, written as JSONL to a
temporary folder and replayed from the file.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from approvalrules import diff  # noqa: E402
from approvalrules.cli.diff import Progress, read_jsonl  # noqa: E402
from approvalrules.engine import (  # noqa: E402
    check_ruleset,
    compile_ruleset,
    load_directory,
)


def ruleset(groups: int, steps: int, version: int) -> str:
    lines = [
        "ruleset: bench",
        "currency: USD",
        "roles:",
        "  master: {label: Master, permissions: [place_orders, approve_orders]}",
        "  approver: {label: Approver, permissions: [place_orders, approve_orders]}",
        "  requisitioner: {label: Requisitioner, permissions: [place_orders]}",
        "groups:",
    ]
    for g in range(groups):
        lines.append(
            f"  g{g}: {{label: Group {g}, settings: {{payer: {'company' if g % 2 else 'buyer'}}}}}"
        )
    lines += ["limits:", "  max_order_total: 900000", "approval:", "  scope: own_group", "  steps:"]
    per_group = max(1, steps // groups)
    names = []
    for i in range(steps):
        g, k = i % groups, i // groups
        threshold = 100 * (k + 1) + g
        required = 1
        if version == 2:
            if i % 10 == 0:
                threshold += 50
            if i % 25 == 0:
                required = 2
            if i % 200 == 7:
                continue  # dropped in version 2
        names.append(i)
        upper = 100 * (k + 2) + g  # bands: at most one step of a group applies to an order
        lines += [
            f"    - name: s{i}",
            f"      when: {{buyer_group: g{g}, total: {{gt: {threshold}, lte: {upper}}}}}",
            "      approvers: {any_of: [{relation: group_master}, {role: approver}]}",
            f"      required: {required}",
        ]
    if version == 2:
        for j in range(5):
            lines += [
                f"    - name: new{j}",
                f"      when: {{buyer_group: g{j}, total: {{gt: {per_group * 100 + 777}}}}}",
                "      approvers: {any_of: [{relation: group_master}]}",
            ]
    return "\n".join(lines) + "\n"


def directory_text(groups: int) -> str:
    group_map = ", ".join(f"g{g}: {{name: Group {g}}}" for g in range(groups))
    lines = [
        "companies:",
        f"  bench: {{name: Bench, ruleset: bench, groups: {{{group_map}}}}}",
        "accounts:",
    ]
    lines.append(
        "  master: {name: Master, memberships: [{company: bench, role: master, master: true}]}"
    )
    for g in range(groups):
        lines.append(
            f"  a{g}: {{name: A{g}, "
            f"memberships: [{{company: bench, role: approver, group: g{g}}}]}}"
        )
        lines.append(
            f"  r{g}: {{name: R{g}, "
            f"memberships: [{{company: bench, role: requisitioner, group: g{g}}}]}}"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--orders", type=int, default=100_000)
    args = parser.parse_args(argv)

    old_text, new_text = ruleset(args.groups, args.steps, 1), ruleset(args.groups, args.steps, 2)
    directory = load_directory(directory_text(args.groups), "bench-directory")
    print(
        f"rule sets: {len(old_text):,} and {len(new_text):,} bytes; "
        f"{args.steps:,} steps over {args.groups} groups; {2 * args.groups + 1} accounts"
    )

    started = time.perf_counter()
    old_checked, new_checked = check_ruleset(old_text, "v1"), check_ruleset(new_text, "v2")
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    structural = diff.structural_diff(old_checked.resolved, new_checked.resolved)
    structural_s = time.perf_counter() - started
    old, new = compile_ruleset(old_text, "v1"), compile_ruleset(new_text, "v2")
    started = time.perf_counter()
    report = diff.behavioural_diff(old, new, directory)
    behaviour_s = time.perf_counter() - started
    started = time.perf_counter()
    result = diff.diff_versions(old_text, new_text, directory, old_name="v1", new_name="v2")
    whole_s = time.perf_counter() - started
    print(f"load + validate both:   {loaded:8.3f} s")
    print(f"structural diff:        {structural_s:8.3f} s  ({len(structural)} changes)")
    print(
        f"behavioural diff:       {behaviour_s:8.3f} s  "
        f"({report.evaluations:,} generated orders, {len(report.classes)} buyer classes, "
        f"{len(report.changes)} changes, "
        f"{report.evaluations / behaviour_s:,.0f} evaluations/s)"
    )
    print(
        f"diff_versions (all):    {whole_s:8.3f} s  "
        "(validate, compile, structural, behavioural, "
        f"unified: {len(result['unified']):,} chars)"
    )
    for line in report.lines()[:3]:
        print(f"  e.g. {line}")

    rng = random.Random(7)
    buyers = ["master"] + [f"{p}{g}" for g in range(args.groups) for p in ("a", "r")]
    types = ["regular"] * 7 + ["bulk", "subscription", "quote"]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "orders.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for n in range(args.orders):
                order = {
                    "id": f"o{n}",
                    "buyer": rng.choice(buyers),
                    "total": f"{rng.uniform(0, 4000):.2f}",
                    "type": rng.choice(types),
                }
                handle.write(json.dumps(order) + "\n")
        size = path.stat().st_size
        started = time.perf_counter()
        bar = Progress(args.orders)
        replayed = diff.replay(old, new, directory, read_jsonl(path), on_progress=bar.update)
        bar.close(replayed.orders)
        replay_s = time.perf_counter() - started
    print(
        f"replay:                 {replay_s:8.3f} s  "
        f"({replayed.orders:,} orders from {size / 1e6:.1f} MB JSONL, "
        f"{replayed.orders / replay_s:,.0f} orders/s, {replayed.changed:,} changed)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
