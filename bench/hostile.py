"""CPU cost of checking hostile rule sets of up to 1 MB (issue 15, defect 3).

Not a test: it prints the CPU seconds ``check_ruleset`` spends on each document (best and
median of ``--runs``, after one warm-up run that compiles the validators) against the
target, and exits 0 whatever the numbers say.

Target: under 1 s of CPU per document, whatever it holds, up to the size cap
(``approvalrules.engine.load.MAX_BYTES``): the loader's guards (size, depth, aliases, at
most 200,000 values) bound the loading, and the problem cap (``MAX_PROBLEMS``, counting
at most ``MAX_COUNTED`` more) bounds the schema and semantic checks.  Before the fix the
400 KB ``steps: [1, 1, ...]`` took 8.3 s (20 s on a busy machine) and listed 199,991
problems.

    .venv/bin/python bench/hostile.py [--runs 3] [--quick] [--only steps-400k,...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from approvalrules.engine import check_ruleset  # noqa: E402
from approvalrules.engine.load import MAX_BYTES  # noqa: E402
from approvalrules.errors import DocumentError  # noqa: E402

TARGET_SECONDS = 1.0


def _fill(prefix: str, item: str, suffix: str, separator: str = ",") -> str:
    """``prefix`` + as many ``item`` as fit in MAX_BYTES + ``suffix``."""
    room = MAX_BYTES - len(prefix) - len(suffix) - 16
    count = room // (len(item) + len(separator))
    return prefix + separator.join([item] * count) + suffix


def documents() -> dict[str, str]:
    """The hostile documents, by name: each at most MAX_BYTES."""
    roles = "".join(f"  r{n}: {{label: R{n}, permissions: [approve_orders]}}\n" for n in range(90))
    step = "    - {{name: s{n}, approvers: {{any_of: [{{role: missing{n}}}]}}}}\n"
    steps, n = [], 0
    size = len(roles) + 100
    while size < MAX_BYTES - 200:
        line = step.format(n=n)
        steps.append(line)
        size += len(line)
        n += 1
    steps_5000 = "".join(
        step.format(n=n).replace("missing", "gone") for n in range(5_000)
    )  # the schema's maximum of steps, each naming an undefined role
    return {
        # the reproduction: 199,990 items, each a schema problem
        "steps-400k": "ruleset: hostile\napproval:\n  steps: [" + ",".join(["1"] * 199_990) + "]\n",
        # the same, to 1 MB: past the loader's 200,000 values
        "steps-1m": _fill("ruleset: hostile\napproval:\n  steps: [", "1", "]\n"),
        # fewer, longer items: 1 MB of numbers where steps belong
        "steps-1m-numbers": _fill("ruleset: hostile\napproval:\n  steps: [", "12345678", "]\n"),
        # schema-valid, every step naming an undefined role: semantic problems
        "undefined-roles-1m": f"ruleset: hostile\nroles:\n{roles}approval:\n  steps:\n"
        + "".join(steps),
        # the same within the schema (5,000 steps): 5,000 semantic problems
        "undefined-roles-5000": f"ruleset: hostile\nroles:\n{roles}approval:\n  steps:\n"
        + steps_5000,
        # a condition list: every item fails each alternative of the condition's anyOf
        "conditions-1m": _fill(
            "ruleset: hostile\napproval:\n  steps:\n    - name: s\n"
            "      approvers: {any_of: [{role: r}]}\n      when: {all: [",
            "1",
            "]}\nroles:\n  r: {label: R}\n",
        ),
        # uniqueItems over maps: jsonschema compares unsortable items pairwise
        "unique-items-1m": _fill(
            "ruleset: hostile\nroles:\n  r: {label: R, permissions: [", "{a: 1}", "]}\n"
        ),
        # one long line: a valid rule set whose description is nearly 1 MB
        "description-1m": "ruleset: hostile\ndescription: " + "x" * (MAX_BYTES - 40) + "\n",
    }


def cpu_seconds(text: str) -> tuple[float, str]:
    started = time.process_time()
    try:
        check_ruleset(text, "hostile.yaml")
        outcome = "valid"
    except DocumentError as exc:
        last = exc.problems[-1]
        outcome = f"{len(exc.problems)} problem(s), last {last.code}"
    return time.process_time() - started, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated document names")
    parser.add_argument("--quick", action="store_true", help="one run per document")
    args = parser.parse_args()
    if args.quick:
        args.runs = 1
    chosen = [n for n in args.only.split(",") if n]
    docs = {k: v for k, v in documents().items() if not chosen or k in chosen}
    cpu_seconds(docs[next(iter(docs))])  # warm-up: compiles the validators once per process
    print(f"target: under {TARGET_SECONDS:.1f} s of CPU per document (best of {args.runs})")
    print(f"{'document':<22} {'bytes':>9} {'best s':>7} {'median s':>9}  verdict  outcome")
    for name, text in docs.items():
        times, outcome = [], ""
        for _ in range(args.runs):
            seconds, outcome = cpu_seconds(text)
            times.append(seconds)
        best, median = min(times), statistics.median(times)
        verdict = "PASS" if best < TARGET_SECONDS else "MISS"
        size = len(text.encode("utf-8"))
        print(f"{name:<22} {size:>9,} {best:>7.3f} {median:>9.3f}  {verdict:<7}  {outcome}")


if __name__ == "__main__":
    main()
