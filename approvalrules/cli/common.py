"""What every ``approvalrules`` command shares: exit codes, reading files, reporting errors."""

from __future__ import annotations

import sys
from pathlib import Path

from ..engine import MemoryDirectory, load_directory
from ..engine.load import MAX_BYTES
from ..errors import ApprovalRulesError, DocumentError, DocumentTooLarge, Problem

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


def read_text(path: str) -> str:
    """A rule set, directory or order file as text: at most the loader's size limit, UTF-8."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ApprovalRulesError("unreadable_file", f"{path}: {exc.strerror}") from None
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
        raise DocumentError(
            [Problem("not_utf8", f"not UTF-8 text (byte {exc.start})", source=path)]
        ) from None


def directory_for(ruleset_path: str, explicit: str | None) -> tuple[MemoryDirectory | None, Path]:
    """The directory a rule set's tests run against.

    ``--directory`` when given, else ``directories/<stem>.yaml`` beside the rule set.
    """
    path = (
        Path(explicit)
        if explicit
        else Path(ruleset_path).parent / "directories" / f"{Path(ruleset_path).stem}.yaml"
    )
    if not path.is_file():
        return None, path
    return load_directory(read_text(str(path)), str(path)), path


def report_error(exc: ApprovalRulesError) -> int:
    """Print an error the CLI way; the exit code.

    Every problem of a document is one line: ``file:line: path: message``.
    """
    if isinstance(exc, DocumentError):
        for problem in exc.problems:
            print(problem.format(), file=sys.stderr)
    else:
        print(f"error: {exc}", file=sys.stderr)
    return EXIT_ERROR
