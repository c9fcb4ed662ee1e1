"""The ``approvalrules`` command: everything QA does by hand, scriptable.

Exit codes: 0 success; 1 tests failed or behaviour changed; 2 invalid input
or any other error (never a traceback for bad input).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..engine import (
    check_ruleset,
    compile_policy,
    directory_problems,
    folder_resolver,
    load_directory,
    schema,
)
from ..engine.load import load_document
from ..engine.ruletests import run_tests
from ..engine.schema import SCHEMA_NAMES
from ..errors import ApprovalRulesError, DocumentError
from ..store import commands as store_commands
from ..workflow import commands as job_commands
from . import decisions, diff, directory_sync
from .common import EXIT_ERROR, EXIT_FAILED, EXIT_OK, directory_for, read_text, report_error

__all__ = ["EXIT_ERROR", "EXIT_FAILED", "EXIT_OK", "build_parser", "directory_for", "main"]


def _check(path: str):
    return check_ruleset(read_text(path), path, folder_resolver(Path(path).parent))


def cmd_validate(args) -> int:
    """``approvalrules validate FILE... [--directory D]``: check rule sets; warnings on standard
    error.  With a directory, it is checked too, and the rule sets are checked against it
    (steps needing more approvals than its members can give, accounts it does not have)."""
    status = EXIT_OK
    directory = None
    if args.directory:
        try:
            directory = load_directory(read_text(args.directory), args.directory)
        except DocumentError as exc:
            status = report_error(exc)
    for path in args.files:
        try:
            checked = _check(path)
        except DocumentError as exc:
            # every finding in line order: the warnings too, so nothing is left for later
            everything = exc.problems + getattr(exc, "warnings", [])
            if len(everything) > len(exc.problems) and everything[0].source == path:
                everything.sort(key=lambda p: (p.source != path, p.line or 0))
                for problem in everything:
                    print(problem.format(), file=sys.stderr)
                status = EXIT_ERROR
            else:
                status = report_error(exc)
            continue
        warnings = list(checked.warnings)
        if directory is not None:
            warnings += directory_problems(checked, directory)
        for warning in warnings:
            print(warning.format(), file=sys.stderr)
        steps = (checked.resolved.get("approval") or {}).get("steps") or []
        print(f"{path}: ok ({checked.name}, {len(steps)} steps)")
    return status


def cmd_test(args) -> int:
    """``approvalrules test FILE...``: run the tests inside rule sets against their directories."""
    passed = failed = 0
    status = EXIT_OK
    for path in args.files:
        if Path(path).name == "tenants.yaml":
            # a rules folder's tenant plan (store.importer), not a rule set:
            # `test rules/*.yaml` skips it
            continue
        try:
            checked = _check(path)
            policy = compile_policy(checked)
            directory, directory_path = directory_for(path, args.directory)
        except DocumentError as exc:
            status = report_error(exc)
            continue
        tests = checked.data.get("tests") or []
        if tests and directory is None:
            print(
                f"{path}: no directory for its tests: expected {directory_path} or --directory",
                file=sys.stderr,
            )
            status = EXIT_ERROR
            continue
        for result in run_tests(checked, policy, directory) if tests else []:
            if result.passed:
                passed += 1
                if args.verbose:
                    print(f"PASS {path}:{result.line}: {result.name}")
            else:
                failed += 1
                for failure in result.failures:
                    print(f"FAIL {path}:{result.line}: {result.name}: {failure}")
    print(f"{passed} passed, {failed} failed")
    if status == EXIT_ERROR:
        return EXIT_ERROR
    return EXIT_FAILED if failed else EXIT_OK


def cmd_evaluate(args) -> int:
    """``approvalrules evaluate FILE --directory D --order O``: the decision as JSON."""
    checked = _check(args.file)
    policy = compile_policy(checked)
    directory = load_directory(read_text(args.directory), args.directory)
    order_text = read_text(args.order) if args.order != "-" else sys.stdin.read()
    order = load_document(order_text, args.order).data
    decision = policy.evaluate(order, directory, now=args.now, budgets_spent=None)
    print(json.dumps(decision.as_dict(trace=not args.no_trace), indent=2, sort_keys=False))
    return EXIT_OK


def cmd_schema(args) -> int:
    """``approvalrules schema [NAME]``: print a JSON Schema."""
    print(json.dumps(schema(args.name), indent=2))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand: the engine's, the diff's, the store's and the workflow's."""
    parser = argparse.ArgumentParser(
        prog="approvalrules", description="B2B order-approval rules as data."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check rule sets; errors as file:line: path: message")
    p.add_argument("files", nargs="+")
    p.add_argument(
        "--directory",
        help="directory file: check it too, and warn where the rule sets cannot work with it",
    )
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("test", help="run the tests inside rule sets")
    p.add_argument("files", nargs="+")
    p.add_argument(
        "--directory",
        help="directory fixture (default: directories/<stem>.yaml beside each rule set)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("evaluate", help="evaluate one order; prints the decision as JSON")
    p.add_argument("file")
    p.add_argument("--directory", required=True)
    p.add_argument(
        "--order", required=True, help="order as YAML or JSON file, or - for standard input"
    )
    p.add_argument("--now", help="ISO 8601 instant to evaluate at (default: the current time)")
    p.add_argument("--no-trace", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("schema", help="print a JSON Schema")
    p.add_argument("name", nargs="?", default="ruleset", choices=SCHEMA_NAMES)
    p.set_defaults(func=cmd_schema)

    diff.add_arguments(
        sub.add_parser(
            "diff", help="compare two rule-set versions by text, structure and behaviour"
        )
    )
    store_commands.add_parsers(sub)
    directory_sync.add_parsers(sub)
    job_commands.add_parsers(sub)
    decisions.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``approvalrules`` console script: run one subcommand; its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
        sys.stdout.flush()  # here, so that a closed pipe is caught below and not at exit
        return status
    except ApprovalRulesError as exc:
        return report_error(exc)
    except KeyboardInterrupt:
        return EXIT_ERROR
    except BrokenPipeError:
        # the reader stopped reading (``approvalrules evaluate ... | head``): no traceback, and
        # standard output goes nowhere so the interpreter's last flush does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
