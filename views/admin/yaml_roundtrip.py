"""Saving edited data back into a rule set's YAML without losing it.

:func:`save_into_yaml` applies only what changed to the original text:
unchanged lines stay byte for byte, comments included (ruamel.yaml round trip).
"""

from __future__ import annotations

import difflib
import io
from decimal import Decimal
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from approvalrules.engine import load_document

from .form_values import dump_snippet, equivalent, represent_decimal, to_plain


def _represent_none(representer, value):
    # ruamel writes an empty value; the rule sets spell it out
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


def round_trip_yaml() -> YAML:
    """ruamel.yaml in round-trip mode, styled like the sample rule sets."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    # [{role: approver}], as the rule sets write it, not ruamel's [role: approver]
    yaml.brace_single_entry_mapping_in_flow_sequence = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.representer.add_representer(Decimal, represent_decimal)
    yaml.representer.add_representer(type(None), _represent_none)
    return yaml


def load_round_trip(text: str) -> Any:
    """Round-trip data of ``text`` (comments kept), for saving edits back into it.

    The engine's safe loader reads the text first and raises :class:`DocumentError` for
    anything it refuses: ruamel expands every alias, and a 467-byte billion-laughs text
    took it 36 s and 3.5 GB; only a text within the loader's guards reaches it.
    """
    load_document(text, "draft")
    return round_trip_yaml().load(text)


def _dump(data: Any) -> str:
    stream = io.StringIO()
    round_trip_yaml().dump(data, stream)
    return stream.getvalue()


def merge(old: Any, new: Any) -> Any:
    """``new`` written into ``old`` in place where both are containers; the value to store."""
    if isinstance(old, CommentedMap) and isinstance(new, dict):
        for key in [k for k in old if k not in new]:
            del old[key]
        for key, value in new.items():
            if key in old:
                merged = merge(old[key], value)
                if merged is not old[key]:
                    old[key] = merged
            else:
                old[key] = _fresh(value)
        return old
    if isinstance(old, CommentedSeq) and isinstance(new, list):
        names = [item.get("name") if isinstance(item, dict) else None for item in new]
        old_names = [item.get("name") if isinstance(item, dict) else None for item in old]
        if names != old_names and all(names) and all(old_names):
            # steps added, removed or moved: keep each surviving item (and its comments)
            by_name = {item["name"]: item for item in old}
            rebuilt = [
                merge(by_name[n], item) if n in by_name else _fresh(item)
                for n, item in zip(names, new, strict=True)
            ]
            del old[:]
            old.extend(rebuilt)
            return old
        for index, value in enumerate(new):
            if index < len(old):
                merged = merge(old[index], value)
                if merged is not old[index]:
                    old[index] = merged
            else:
                old.append(_fresh(value))
        del old[len(new) :]
        return old
    if equivalent(to_plain(old), to_plain(new)) and type(to_plain(old)) is type(to_plain(new)):
        return old
    return _fresh(new)


def _fresh(value: Any) -> Any:
    """A new value as round-trip data; small mappings and lists in flow style, like the samples."""
    if isinstance(value, dict):
        node = CommentedMap((k, _fresh(v)) for k, v in value.items())
        if _is_small(value):
            node.fa.set_flow_style()
        return node
    if isinstance(value, list):
        node = CommentedSeq(_fresh(v) for v in value)
        if _is_small(value):
            node.fa.set_flow_style()
        return node
    return value


def _is_small(value: Any) -> bool:
    return len(dump_snippet(value)) <= 60


def save_into_yaml(original: str, new_data: dict) -> str:
    """The original text with ``new_data`` applied; untouched lines (and their comments) verbatim.

    ruamel keeps comments and key order but normalises some spacing; so the
    changed document is dumped, compared line by line with a dump of the
    unchanged one, and only the lines that differ are taken from it.  When
    the normalised dump does not line up with the original, it is used as is.
    """
    baseline = _dump(load_round_trip(original))
    document = load_round_trip(original)
    merge(document, new_data)
    changed = _dump(document)
    old_lines = original.splitlines(keepends=True)
    base_lines = baseline.splitlines(keepends=True)
    new_lines = changed.splitlines(keepends=True)
    if len(old_lines) != len(base_lines):
        return changed
    out: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(
        None, base_lines, new_lines, autojunk=False
    ).get_opcodes():
        out.extend(old_lines[i1:i2] if tag == "equal" else new_lines[j1:j2])
    text = "".join(out)
    if original and not original.endswith("\n") and text.endswith("\n"):
        text = text[:-1]
    return text
