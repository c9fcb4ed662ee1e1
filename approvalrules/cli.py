"""The ``approvalrules`` command: everything QA does by hand, scriptable.

Exit codes: 0 success; 1 tests failed or behaviour changed; 2 invalid input
or any other error (never a traceback for bad input).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import ApprovalRulesError, DocumentError

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


def _read(path: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ApprovalRulesError("unreadable_file", f"{path}: {exc.strerror}") from None
    from .engine.load import MAX_BYTES
    from .errors import DocumentTooLarge, Problem

    if len(data) > MAX_BYTES:
        raise DocumentTooLarge(
            [
                Problem(
                    "document_too_large",
                    f"the file is {len(data):,} bytes; the limit is {MAX_BYTES:,} bytes",
                    source=path,
                )
            ]
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        from .errors import Problem

        raise DocumentError(
            [Problem("not_utf8", f"not UTF-8 text (byte {exc.start})", source=path)]
        ) from None


def _check(path: str):
    from .engine import folder_resolver
    from .engine import check_ruleset

    return check_ruleset(_read(path), path, folder_resolver(Path(path).parent))


def cmd_validate(args) -> int:
    status = EXIT_OK
    for path in args.files:
        try:
            checked = _check(path)
        except DocumentError as exc:
            status = report_error(exc)
            continue
        for warning in checked.warnings:
            print(warning.format(), file=sys.stderr)
        print(
            f"{path}: ok ({checked.name}, {len((checked.resolved.get('approval') or {}).get('steps') or [])} steps)"
        )
    return status


def directory_for(ruleset_path: str, explicit: str | None):
    """The directory a rule set's tests run against: ``--directory`` or ``directories/<stem>.yaml`` beside it."""
    from .engine import load_directory

    path = (
        Path(explicit)
        if explicit
        else Path(ruleset_path).parent / "directories" / f"{Path(ruleset_path).stem}.yaml"
    )
    if not path.is_file():
        return None, path
    return load_directory(_read(str(path)), str(path)), path


def cmd_test(args) -> int:
    from .engine import compile_policy
    from .engine.ruletests import run_tests

    passed = failed = 0
    status = EXIT_OK
    for path in args.files:
        if Path(path).name == "tenants.yaml":
            continue  # a rules folder's tenant plan (store.importer), not a rule set: `test rules/*.yaml` skips it
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
    from .engine import load_directory
    from .engine.load import load_document
    from .engine import compile_policy

    checked = _check(args.file)
    policy = compile_policy(checked)
    directory = load_directory(_read(args.directory), args.directory)
    order_text = _read(args.order) if args.order != "-" else sys.stdin.read()
    order = load_document(order_text, args.order).data
    decision = policy.evaluate(order, directory, now=args.now, budgets_spent=None)
    print(json.dumps(decision.as_dict(trace=not args.no_trace), indent=2, sort_keys=False))
    return EXIT_OK


def cmd_schema(args) -> int:
    from .engine import schema

    print(json.dumps(schema(args.name), indent=2))
    return EXIT_OK


def _store_command(name: str):
    def run(args) -> int:
        from .store import commands

        return getattr(commands, name)(args) or EXIT_OK

    return run


def cmd_diff(args) -> int:
    from . import diff

    return diff.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="approvalrules", description="B2B order-approval rules as data."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check rule sets; errors as file:line: path: message")
    p.add_argument("files", nargs="+")
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
    p.add_argument("name", nargs="?", default="ruleset", choices=("ruleset", "directory", "order"))
    p.set_defaults(func=cmd_schema)

    try:
        from . import diff

        diff.add_arguments(
            sub.add_parser(
                "diff", help="compare two rule-set versions by text, structure and behaviour"
            )
        )
    except ImportError:
        pass
    try:
        from .store import commands
    except ImportError:  # the engine works without the store's dependencies
        commands = None
    if commands is not None and hasattr(commands, "add_parsers"):
        commands.add_parsers(sub)
        from .workflow import commands as jobs

        jobs.add_parsers(sub)
    return parser


def report_error(exc: ApprovalRulesError) -> int:
    """Print an error the CLI way (every problem of a document as file:line: path: message); the exit code."""
    if isinstance(exc, DocumentError):
        for problem in exc.problems:
            print(problem.format(), file=sys.stderr)
    else:
        print(f"error: {exc}", file=sys.stderr)
    return EXIT_ERROR


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ApprovalRulesError as exc:
        return report_error(exc)
    except KeyboardInterrupt:
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
