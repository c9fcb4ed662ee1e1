"""``approvalrules diff A B``: the command line of :mod:`approvalrules.diff`.

Arguments, colours, the progress bar, reading orders from JSONL files and
looking versions up in the store (``tenant/ruleset@version`` with ``--ini``)
or on a running server (with ``--server``, :mod:`.remote`) live here; the
comparison itself is :func:`approvalrules.diff.compare`.
Exit codes: 0 no change, 1 changed (per ``--fail-on``), 2 error, 3 no change
found but some dimension of the orders could not be explored (the diff cannot
vouch for "no changes"; ``--fail-on structural`` with no structural change
still exits 3).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .. import diff
from ..engine import check_ruleset, folder_resolver
from ..errors import ApprovalRulesError
from ..store.commands import open_version_lookup
from ..store.versions import VersionLookup
from .common import EXIT_ERROR, EXIT_OK, directory_for, read_text, report_error
from .remote import KEY_ENV, RemoteVersions

EXIT_CHANGED = 1
#: no change found, but part of the orders' space was not explored: never a silent 0
EXIT_UNEXPLORED = 3
REFERENCE = re.compile(
    r"^(?P<tenant>[A-Za-z0-9][A-Za-z0-9_.-]*)/(?P<ruleset>[A-Za-z0-9][A-Za-z0-9_.-]*)@(?P<version>\d+|latest|active|draft)$"
)
STORE_NEEDED = (
    "database references need the store: approvalrules diff --ini development.ini ... "
    "(or a running server's API: --server URL, with a key in $APPROVALRULES_API_KEY)"
)


EXIT_CODES = """exit codes:
  0  no behaviour change (with --fail-on structural: no structural change either)
  1  behaviour changed (with --fail-on structural: anything changed)
  2  error: unreadable or invalid version, no directory for the behavioural diff
  3  no change found, but some dimension of the orders could not be explored
     (listed under "not explored"): the diff cannot vouch for "no changes"

The JSON report is byte-identical for the same arguments (--replay included);
timings appear only in the text report."""


def add_arguments(parser) -> None:
    """The ``diff`` subcommand's arguments; it runs :func:`main`."""
    parser.epilog = EXIT_CODES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "old",
        metavar="A",
        help="old version: a rule-set file (or tenant/ruleset@version with --ini or --server)",
    )
    parser.add_argument(
        "new",
        metavar="B",
        help="new version: a rule-set file (or tenant/ruleset@version with --ini or --server)",
    )
    parser.add_argument(
        "--directory", help="directory fixture (default: directories/<stem of A>.yaml beside A)"
    )
    parser.add_argument("--format", choices=("text", "json", "unified"), default="text")
    parser.add_argument(
        "--fail-on",
        choices=("structural", "behavioural"),
        default="behavioural",
        help="exit 1 on any structural change, or only on behaviour changes (default)",
    )
    parser.add_argument(
        "--replay",
        metavar="FILE.jsonl",
        help="also replay recorded orders (one order JSON per line) and count changes per class",
    )
    parser.add_argument(
        "--now", help="ISO 8601 instant to evaluate at (default 2026-01-15T12:00:00Z)"
    )
    parser.add_argument("--no-color", action="store_true", help="no colours even on a terminal")
    parser.add_argument(
        "--ini", help="settings file naming the database, for tenant/ruleset@version references"
    )
    parser.add_argument(
        "--server",
        metavar="URL",
        help="read tenant/ruleset@version references (and the directory) from a running "
        f"server's API instead of the database; the key comes from ${KEY_ENV} or --key",
    )
    parser.add_argument(
        "--key",
        help=f"API key for --server (a read_only key is enough); prefer ${KEY_ENV}: "
        "arguments show in the process list",
    )
    parser.add_argument(
        "--replay-recorded",
        action="store_true",
        help="with --ini: also replay every order recorded under this rule set",
    )
    parser.set_defaults(func=main)


def is_reference(arg: str) -> bool:
    """``tenant/ruleset@version``, and no file of that name."""
    return bool(REFERENCE.match(arg)) and not Path(arg).exists()


def resolve_reference(
    ref: str, store: VersionLookup | RemoteVersions | None = None
) -> tuple[str, str, Any]:
    """``tenant/ruleset@version`` -> (text, source name, resolver for ``extends``).

    ``store`` is an open :class:`VersionLookup` (opened from ``--ini``) or a
    :class:`RemoteVersions` (``--server``);
    without it, references are refused.
    """
    if store is None:
        raise ApprovalRulesError("store_required", STORE_NEEDED)
    match = REFERENCE.match(ref)
    return store.text_of(match["tenant"], match["ruleset"], match["version"])


def read_jsonl(path: str | Path) -> Iterable[dict]:
    """Orders from a JSONL file, one JSON object per line; blank lines skipped."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ApprovalRulesError(
                    "invalid_jsonl", f"{path}:{number}: not JSON ({exc.msg})"
                ) from None


class Progress:
    """A one-line progress bar on standard error, only when it is a terminal."""

    def __init__(self, total: int | None, enabled: bool | None = None, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total = total
        self.last = 0.0

    def update(self, done: int, force: bool = False) -> None:
        """Show ``done`` orders, at most ten times a second unless ``force``."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        if self.total:
            width = 30
            filled = int(width * done / self.total)
            self.stream.write(
                f"\rreplay [{'#' * filled}{'.' * (width - filled)}] {done:,}/{self.total:,}"
            )
        else:
            self.stream.write(f"\rreplay {done:,} orders")
        self.stream.flush()

    def close(self, done: int) -> None:
        """The final count, and the line ended."""
        if self.enabled:
            self.update(done, force=True)
            self.stream.write("\n")
            self.stream.flush()


class Colour:
    """ANSI colours, or none."""

    def __init__(self, on: bool):
        self.on = on

    def __call__(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.on else text


def main(args) -> int:
    """``approvalrules diff``: exit 0 unchanged, 1 changed (per --fail-on), 2 on error, 3 when
    nothing changed in what could be explored but something could not."""
    store = None
    references = any(is_reference(a) for a in (args.old, args.new))
    try:
        if references and getattr(args, "server", None):
            store = RemoteVersions(args.server, args.key or os.environ.get(KEY_ENV))
        elif references and getattr(args, "ini", None):
            store = open_version_lookup(args.ini)
    except ApprovalRulesError as exc:
        return report_error(exc)
    try:
        return _main(args, store)
    finally:
        if store is not None:
            store.close()


def _main(args, store: VersionLookup | RemoteVersions | None) -> int:
    try:
        old_text, old_source, old_resolve = _load_version(args.old, store)
        new_text, new_source, new_resolve = _load_version(args.new, store)
        # a stored version is read as it was published: rules made stricter since then warn
        old_check = check_ruleset(
            old_text, old_source, old_resolve, published=is_reference(args.old)
        )
        new_check = check_ruleset(
            new_text, new_source, new_resolve, published=is_reference(args.new)
        )
        old = (old_text, old_source, old_check)
        new = (new_text, new_source, new_check)
        directory, directory_path = None, None
        if not is_reference(args.old):
            directory, directory_path = directory_for(args.old, args.directory)
        elif args.directory:
            directory, directory_path = directory_for(args.new, args.directory)
        elif store is not None:
            directory = store.directory(REFERENCE.match(args.old)["tenant"])
        if directory is None and args.fail_on == "behavioural":
            print(
                "error: no directory for the behavioural diff: "
                f"expected {directory_path} or --directory",
                file=sys.stderr,
            )
            return EXIT_ERROR
        bar = Progress(None)
        orders = _orders_to_replay(args, store, bar)
        report = diff.compare(
            old, new, directory, now=args.now, orders=orders, on_progress=bar.update
        )
        if report.replayed is not None:
            bar.close(report.replayed.orders)
    except ApprovalRulesError as exc:
        return report_error(exc)
    _print(report, args)
    if report.behaviour_changed:
        return EXIT_CHANGED
    if args.fail_on == "structural" and report.structural:
        return EXIT_CHANGED
    if report.behaviour is not None and not report.behaviour.complete:
        return EXIT_UNEXPLORED
    return EXIT_OK


def _load_version(arg: str, store: VersionLookup | RemoteVersions | None) -> tuple[str, str, Any]:
    """(text, source name, resolver for ``extends``) of a file or a stored version."""
    if is_reference(arg):
        return resolve_reference(arg, store)
    return read_text(arg), arg, folder_resolver(Path(arg).parent)


def _orders_to_replay(args, store: VersionLookup | None, bar: Progress):
    """The orders ``--replay`` or ``--replay-recorded`` asks for, or None.

    A function: :func:`diff.compare` calls it only when there is a directory to replay against.
    """
    if args.replay:

        def from_file() -> Iterable[dict]:
            bar.total = _count_lines(args.replay)
            return read_jsonl(args.replay)

        return from_file
    if not getattr(args, "replay_recorded", False):
        return None

    def recorded() -> Iterable[Any]:
        if store is None:
            raise ApprovalRulesError(
                "store_required",
                "--replay-recorded reads the orders recorded in the database: "
                "give tenant/ruleset@version references and --ini",
            )
        match = REFERENCE.match(args.old)
        bar.total, orders = store.recorded_orders(match["tenant"], match["ruleset"])
        return orders

    return recorded


def _print(report: diff.DiffReport, args) -> None:
    if args.format == "json":
        print(diff.as_json(report))
    elif args.format == "unified":
        sys.stdout.write(diff.unified_of(report))
    else:
        colour = Colour(
            sys.stdout.isatty() and not args.no_color and not os.environ.get("NO_COLOR")
        )
        for line in diff.text_lines(report, colour):
            print(line)


def _count_lines(path: str) -> int | None:
    try:
        with open(path, "rb") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError:
        return None
