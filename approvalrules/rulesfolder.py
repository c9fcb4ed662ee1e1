"""List the rule files of a folder, for the temporary pages shown before the store exists.

Files are read with the engine's loader (:func:`approvalrules.engine.load.load_document`):
the same YAML 1.2 rules, limits and line numbers as a published rule set.
"""

from __future__ import annotations

from pathlib import Path

from approvalrules.engine.load import load_document
from approvalrules.errors import DocumentError

#: what a listed field may hold: the loader gives plain scalars only
_SCALARS = (str, int, float, bool)


def _text(value):
    if value is None:
        return None
    if isinstance(value, _SCALARS):
        return str(value)
    raise ValueError(f"expected a text value, got {type(value).__name__}")


def _describe(exc: Exception) -> str:
    if isinstance(exc, DocumentError):
        # the first problem, by line only: its source would name the full server path
        problem = exc.problems[0] if exc.problems else None
        if problem is None or problem.line is None:
            return exc.message
        return f"line {problem.line}: {problem.message}"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc)


def _read(path: Path) -> dict:
    entry = {"file": path.name, "ruleset": None, "description": None, "error": None}
    try:
        data = load_document(path.read_bytes(), path.name).data
        if not isinstance(data, dict):
            raise ValueError(f"top level is {type(data).__name__}, expected a mapping")
        entry["ruleset"] = _text(data.get("ruleset"))
        entry["description"] = _text(data.get("description"))
    except (OSError, DocumentError, ValueError) as exc:
        entry["ruleset"] = entry["description"] = None
        entry["error"] = _describe(exc)
    return entry


def list_rule_files(folder) -> list[dict]:
    """One entry per ``*.yaml`` file directly in *folder*, sorted by file name.

    Each entry is ``{"file", "ruleset", "description", "error"}``; a file that cannot be read
    or parsed gets an ``error`` message instead of failing the listing. A missing, empty or
    unreadable folder gives an empty list.
    """
    if not folder:
        return []
    try:
        paths = sorted(p for p in Path(folder).glob("*.yaml") if p.is_file())
    except OSError:
        return []
    return [_read(path) for path in paths]
