#!/usr/bin/env python
"""Benchmark: this checkout's engine against another checkout's, side by side, in one run.

Not a test.  A restructuring or an optimisation of the engine is judged here: both engines
get the same generated directory, rule sets (20, 50 and 1,000 steps) and orders as
``bench/evaluate.py`` makes them, and each round runs both, alternating, in fresh
processes, so both see the same machine.  The figures are CPU time (``process_time``):
on a shared machine the wall clock also counts waiting for a core.

    git worktree add /tmp/before <commit>          # the engine to compare with
    .venv/bin/python bench/side_by_side.py --old /tmp/before [--orders 2000] [--rounds 5]

It prints, per measure, the best round of each engine and new/old; the target is
"within 10%" (new/old at most 1.10 for times).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from evaluate import build_directory, build_order_dicts, build_ruleset  # noqa: E402

TARGET = 1.10

#: runs inside each checkout's process: only that checkout's approvalrules is importable first
RUNNER = r"""
import json, sys, time
from datetime import UTC, datetime
from pathlib import Path

tree, data = sys.argv[1], Path(sys.argv[2])
sys.path.insert(0, tree)
try:  # the engine as one package
    from approvalrules.engine import Order, check_ruleset, compile_policy, load_directory
except ImportError:  # the engine as loose modules (before the restructuring)
    from approvalrules.engine import load_directory
    from approvalrules.policy import Order, compile_policy
    from approvalrules.validate import check_ruleset
import approvalrules
assert approvalrules.__file__.startswith(tree), approvalrules.__file__

now = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
directory = load_directory((data / "directory.yaml").read_text(), "directory.yaml")
orders = [Order.from_dict(o) for o in json.loads((data / "orders.json").read_text())]
out = {}
for steps in (20, 50):
    policy = compile_policy(check_ruleset((data / f"rules-{steps}.yaml").read_text(), "r.yaml"))
    for order in orders[:200]:  # warm the caches the engine keeps per directory
        policy.evaluate(order, directory, now=now)
    start = time.process_time()
    for order in orders:
        policy.evaluate(order, directory, now=now)
    out[f"evaluate {steps} steps (us/decision)"] = (time.process_time() - start) / len(orders) * 1e6
text = (data / "rules-1000.yaml").read_text()
checks, compiles = [], []
for _ in range(3):
    t0 = time.process_time()
    checked = check_ruleset(text, "r.yaml")
    t1 = time.process_time()
    compile_policy(checked)
    t2 = time.process_time()
    checks.append((t1 - t0) * 1e3)
    compiles.append((t2 - t1) * 1e3)
out["check 1,000 steps (ms)"] = min(checks)
out["compile 1,000 steps (ms)"] = min(compiles)
print(json.dumps(out))
"""


def write_inputs(folder: Path, n_orders: int) -> None:
    """The directory, the three rule sets and the orders, as files both engines read."""
    directory, buyers = build_directory()
    (folder / "directory.yaml").write_text(yaml.safe_dump(directory, sort_keys=False))
    for steps in (20, 50, 1000):
        text, _ = build_ruleset(steps, directory)
        (folder / f"rules-{steps}.yaml").write_text(text)
    (folder / "orders.json").write_text(json.dumps(build_order_dicts(n_orders, buyers)))


def run_engine(tree: Path, data: Path) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, str(tree), str(data)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        raise SystemExit(f"the engine in {tree} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", required=True, type=Path, help="the other checkout")
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    old, new = args.old.resolve(), ROOT
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        write_inputs(data, args.orders)
        rounds: dict[str, list[dict]] = {"old": [], "new": []}
        for index in range(args.rounds):
            # alternate which goes first, so neither always meets a warmer machine
            order = (("old", old), ("new", new)) if index % 2 == 0 else (("new", new), ("old", old))
            for name, tree in order:
                rounds[name].append(run_engine(tree, data))
    print(f"bench/side_by_side.py: {args.orders:,} orders, {args.rounds} rounds, CPU time")
    print(f"  old: {old}\n  new: {new}\n")
    print(f"{'measure':<34} {'old (best)':>11} {'new (best)':>11} {'new/old':>8}")
    verdicts = []
    for measure in rounds["new"][0]:
        best_old = min(r[measure] for r in rounds["old"])
        best_new = min(r[measure] for r in rounds["new"])
        ratio = best_new / best_old
        verdicts.append(ratio <= TARGET)
        print(f"{measure:<34} {best_old:>11.1f} {best_new:>11.1f} {ratio:>8.2f}")
    passed = all(verdicts)
    print(f"\ntarget: every new/old at most {TARGET:.2f} -> {'PASS' if passed else 'MISS'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
