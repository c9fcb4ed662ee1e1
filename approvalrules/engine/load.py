"""Load YAML text into plain data, safely, keeping line numbers.

A rule set comes from merchants, admin forms and API uploads, so the loader
treats it as hostile input:

* only plain data: maps, lists, strings, numbers, booleans, null; any explicit
  tag other than the standard ``!!str`` family (``!!python/object``...) is refused;
* YAML 1.2 scalars: ``no``, ``on``, ``1:30`` and ``2026-01-01`` stay strings,
  never silently becoming False, 5400 or a date -- the schema then says what
  it expected;
* duplicate keys at any depth are errors;
* limits on size, nesting depth, aliases and their expansion (billion laughs),
  and self-referencing anchors;
* every key and item keeps its line, so errors read ``file:line: path: message``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.reader import ReaderError

from ..errors import DocumentError, DocumentTooLarge, Problem
from .yaml_build import (  # noqa: F401  (MAX_* and format_path are part of this module's API)
    _POSITIONS_IN_BYTES,
    MAX_ALIASES,
    MAX_BYTES,
    MAX_DEPTH,
    MAX_NODES,
    MAX_SCALAR_DIGITS,
    Path,
    _Builder,
    _fast_build,
    _Parser,
    _Slow,
    format_path,
)

GUARD_CODES = frozenset(
    [
        "document_too_large",
        "too_deep",
        "too_many_aliases",
        "too_many_nodes",
        "recursive_alias",
        "not_utf8",
        "invalid_character",
    ]
)


@dataclass
class Document:
    """Plain data from YAML text, with the line of every key and item.

    A document that loads cleanly keeps its lines per container (``_index``:
    ``id(container) -> (container, {key or index: line})``), cheaper to
    record than a path per value; ``lines`` (path -> line) is then built on
    first use by parsing the text again.
    """

    data: Any
    text: str
    source: str | None = None
    #: the line where the root value starts, so root-level problems have a line too
    root_line: int | None = None
    _lines: dict | None = field(default=None, repr=False, compare=False)
    _index: dict | None = field(default=None, repr=False, compare=False)

    @property
    def lines(self) -> dict[Path, int]:
        if self._lines is None:
            shadow = Document(data=None, text=self.text, source=self.source, _lines={})
            parser = _Parser(self.text)
            try:
                _Builder(shadow).build(parser)
            finally:
                _dispose(parser)
            self._lines = shadow._lines
        return self._lines

    def line_of(self, path) -> int | None:
        """The line of ``path`` or of its nearest ancestor that has one (the root's, at worst)."""
        path = tuple(path)
        if self._lines is None and self._index is not None:
            line = self._indexed_line(path)
            return self._root_line() if line is None else line
        while True:
            line = self.lines.get(path)
            if line is not None:
                return line
            if not path:
                return self._root_line()
            path = path[:-1]

    def _root_line(self) -> int:
        # an empty document (or only comments) has no root value: blame its first line
        return 1 if self.root_line is None else self.root_line

    def _indexed_line(self, path: tuple) -> int | None:
        node, found = self.data, None
        for part in path:
            entry = self._index.get(id(node))
            if entry is None or entry[0] is not node:
                break
            try:
                line = entry[1].get(part)
            except TypeError:  # an unhashable part
                break
            if line is None:
                break
            found = line
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                break
        return found

    def problem(self, code: str, message: str, path=(), severity: str = "error") -> Problem:
        return Problem(code, message, format_path(path), self.line_of(path), self.source, severity)


def text_hash(text: str) -> str:
    """Content hash of a rule set's verbatim text: the identity of a version."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_document(
    text: str | bytes, source: str | None = None, *, max_bytes: int = MAX_BYTES
) -> Document:
    """Parse one YAML document into a :class:`Document`.

    Raises :class:`DocumentError` when the text is unsafe or malformed.
    """
    if isinstance(text, bytes):
        if len(text) > max_bytes:
            raise _too_large(len(text), max_bytes, source)
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = text.count(b"\n", 0, exc.start) + 1
            message = (
                f"the document is not UTF-8 text (byte {exc.start}, on line {line}): "
                "save it as UTF-8"
            )
            raise DocumentError([Problem("not_utf8", message, "", line, source)]) from None
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise _too_large(len(text.encode("utf-8", "surrogatepass")), max_bytes, source)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        line = text.count("\n", 0, exc.start) + 1
        raise DocumentError(
            [
                Problem(
                    "invalid_character",
                    f"character {exc.object[exc.start]!r} at offset {exc.start} "
                    "cannot be encoded as UTF-8",
                    "",
                    line,
                    source,
                )
            ]
        ) from None
    fast = _Parser(text)
    try:
        data, index, root_line = _fast_build(fast, source)
    except (_Slow, yaml.YAMLError):
        pass  # the full builder reports it, with line and path
    else:
        return Document(data=data, text=text, source=source, root_line=root_line, _index=index)
    finally:
        _dispose(fast)
    doc = Document(data=None, text=text, source=source, _lines={})
    parser = _Parser(text)
    try:
        doc.data = _Builder(doc).build(parser)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        message = " ".join(filter(None, [exc.context, exc.problem])) or "malformed YAML"
        raise DocumentError(
            [Problem("yaml_syntax", f"malformed YAML: {message}", "", line, source)]
        ) from None
    except ReaderError as exc:
        line = _line_at(text, exc.position)
        character = exc.character if isinstance(exc.character, int) else ord(exc.character)
        reason = (
            f"character U+{character:04X} on line {line}: {exc.reason}; remove it, "
            f'or write the escape "\\u{character:04X}" inside double quotes'
        )
        raise DocumentError(
            [Problem("yaml_syntax", f"malformed YAML: {reason}", "", line, source)]
        ) from None
    except yaml.YAMLError as exc:
        raise DocumentError(
            [Problem("yaml_syntax", f"malformed YAML: {exc}", "", 1, source)]
        ) from None
    finally:
        _dispose(parser)
    return doc


def guard_problems(text: str | bytes, source: str | None = None) -> list[Problem]:
    """Load ``text`` as :func:`load_document` does and sort out what it finds.

    Raises :class:`DocumentError` (:class:`DocumentTooLarge` over :data:`MAX_BYTES`) when
    the text fails one of the loader's guards (:data:`GUARD_CODES`: size, nesting depth,
    aliases and their expansion, encoding): such a text is never kept, not even as a draft,
    and nothing else may parse it.  Returns the other loading problems (malformed YAML,
    duplicate keys...), which a draft may have; an empty list when the text loads.
    """
    try:
        load_document(text, source)
    except DocumentError as exc:
        if any(p.code in GUARD_CODES for p in exc.problems):
            raise
        return list(exc.problems)
    return []


def _line_at(text: str, position: int) -> int:
    """The 1-based line of a reader error's ``position`` in ``text``."""
    if _POSITIONS_IN_BYTES:
        return text.encode("utf-8")[: max(position, 0)].count(b"\n") + 1
    return text.count("\n", 0, max(position, 0)) + 1


def _dispose(parser) -> None:
    dispose = getattr(parser, "dispose", None)
    if dispose:
        dispose()


def _too_large(size: int, limit: int, source: str | None) -> DocumentTooLarge:
    # line 1: the whole document is at fault, and it is never parsed to find a better one
    message = (
        f"the document is {size:,} bytes; the limit is {limit:,} bytes -- split it or use `extends`"
    )
    return DocumentTooLarge([Problem("document_too_large", message, "", 1, source)])
