"""List the rule files of a folder, for the temporary pages shown before the store exists."""

import datetime
from pathlib import Path

import yaml

_SCALARS = (str, int, float, bool, datetime.date)


def _text(value):
    if value is None:
        return None
    if isinstance(value, _SCALARS):
        return str(value)
    raise ValueError(f"expected a text value, got {type(value).__name__}")


def _describe(exc):
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        # MarkedYAMLError's own str() names the full server path; keep line and column only.
        problem = getattr(exc, "problem", None) or "invalid YAML"
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start})"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc)


def _read(path):
    entry = {"file": path.name, "ruleset": None, "description": None, "error": None}
    try:
        with path.open(encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
        if not isinstance(data, dict):
            raise ValueError(f"top level is {type(data).__name__}, expected a mapping")
        entry["ruleset"] = _text(data.get("ruleset"))
        entry["description"] = _text(data.get("description"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError) as exc:
        entry["ruleset"] = entry["description"] = None
        entry["error"] = _describe(exc)
    return entry


def list_rule_files(folder):
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
