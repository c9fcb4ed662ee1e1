"""The YAML builders behind :mod:`.load`: parser events to plain data, within the limits.

Two builders make the same data: :func:`_fast_build`, the happy path (no anchors, no
lines per path), and :class:`_Builder`, which records every path's line and has the last
word on every problem. Neither recurses: an explicit stack bounds the depth.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import yaml

from ..errors import DocumentError, Problem

if TYPE_CHECKING:
    from .load import Document

try:  # libyaml parses ~10x faster; the pure parser is the fall-back
    from yaml._yaml import CParser as _Parser

    _POSITIONS_IN_BYTES = True  # libyaml counts a reader error's position in UTF-8 bytes
except ImportError:  # pragma: no cover - depends on the platform's wheel
    from yaml.parser import Parser as _PyParser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Parser(Reader, Scanner, _PyParser):
        def __init__(self, stream):
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            _PyParser.__init__(self)

    _POSITIONS_IN_BYTES = False

MAX_BYTES = 1_000_000
MAX_DEPTH = 32
MAX_ALIASES = 100
MAX_NODES = 200_000
MAX_SCALAR_DIGITS = 30

#: the loader's guards against hostile input: a text failing one of these is refused
#: everywhere, a draft included (other problems are allowed in a draft, and reported)
STR = "tag:yaml.org,2002:str"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
BOOL = "tag:yaml.org,2002:bool"
NULL = "tag:yaml.org,2002:null"
MAP = "tag:yaml.org,2002:map"
SEQ = "tag:yaml.org,2002:seq"

#: YAML 1.2 core schema: the only implicit types are null, bool, int and
#: finite floats (``.inf`` and ``.nan`` stay strings: no amount is infinite)
_IMPLICIT = (
    (BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")),
    (INT, re.compile(r"^[-+]?[0-9]+$")),
    (FLOAT, re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")),
    (NULL, re.compile(r"^(?:~|null|Null|NULL|)$")),
)


#: the first characters an implicit non-string scalar can start with (or it is empty)
_NON_STR_START = frozenset("tTfFnN~+-.0123456789")


def _resolve(value: str) -> str:
    if value and value[0] not in _NON_STR_START:
        return STR
    for tag, pattern in _IMPLICIT:
        if pattern.match(value):
            return tag
    return STR


Path = tuple  # a tuple of str keys and int indexes


def format_path(path) -> str:
    """``approval.steps[2].when`` from ``('approval', 'steps', 2, 'when')``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _is_nesting_limit(exc: yaml.YAMLError) -> bool:
    """PyYAML's own nesting guard (libyaml from PyYAML 6.0.4 on), which may fire before ours."""
    return isinstance(exc, yaml.MarkedYAMLError) and "maximum nesting depth" in (exc.problem or "")


class _Slow(Exception):
    """The fast builder met something it leaves to :class:`_Builder`.

    An anchor, an alias or a problem.
    """


_ScalarEvent, _MappingStartEvent, _SequenceStartEvent = (
    yaml.ScalarEvent,
    yaml.MappingStartEvent,
    yaml.SequenceStartEvent,
)
_END_EVENTS = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
_PLAIN_KEY_TAGS = frozenset([STR, INT, FLOAT, BOOL, NULL])


def _fast_build(parser, source: str | None = None) -> Any:
    """The happy path of :class:`_Builder`: same data, same limits, no paths, no lines, no anchors.

    Raises :class:`_Slow` (or the parser's error) whenever the full builder
    might say something else, so the full builder always has the last word.
    """
    stack: list = []  # [container, key or _NO_KEY, is_map, {key or index: line}]
    index: dict = {}
    root: Any = None
    root_line = None
    nodes = 0
    documents = 0
    get_event = parser.get_event
    while True:
        event = get_event()
        cls = event.__class__ if event is not None else None
        if cls is _ScalarEvent:
            nodes += 1
            if nodes > MAX_NODES:
                raise _too_many_nodes(stack, event, source)
            if event.anchor is not None:
                raise _Slow
            tag, value = event.tag, event.value
            if tag is None or tag == "!":
                tag = _resolve(value) if event.implicit[0] else STR
            if not stack:
                root_line = event.start_mark.line + 1
            else:
                frame = stack[-1]
                if frame[2] and frame[1] is _NO_KEY:  # a key
                    if tag not in _PLAIN_KEY_TAGS or value in frame[0]:
                        raise _Slow
                    frame[1] = value
                    frame[3][value] = event.start_mark.line + 1
                    continue
                if not frame[2]:
                    frame[3][len(frame[0])] = event.start_mark.line + 1
            if tag == STR:
                pass
            elif tag == NULL:
                value = None
            elif tag == BOOL:
                lowered = value.lower()
                if lowered != "true" and lowered != "false":
                    raise _Slow
                value = lowered == "true"
            elif tag == INT:
                if len(value.lstrip("+-")) > MAX_SCALAR_DIGITS:
                    raise _Slow
                value = int(value)
            elif tag == FLOAT:
                if len(value) > MAX_SCALAR_DIGITS + 10:
                    raise _Slow
                value = float(value)
                if value != value or value in (float("inf"), float("-inf")):
                    raise _Slow
            else:
                raise _Slow
        elif cls is _MappingStartEvent or cls is _SequenceStartEvent:
            is_map = cls is _MappingStartEvent
            if (
                len(stack) >= MAX_DEPTH
                or event.anchor is not None
                or event.tag not in (None, "!", MAP if is_map else SEQ)
            ):
                raise _Slow
            nodes += 1
            if nodes > MAX_NODES:
                raise _too_many_nodes(stack, event, source)
            if not stack:
                root_line = event.start_mark.line + 1
            else:
                frame = stack[-1]
                if frame[2]:
                    if frame[1] is _NO_KEY:  # a collection as a key
                        raise _Slow
                else:
                    frame[3][len(frame[0])] = event.start_mark.line + 1
            container: Any = {} if is_map else []
            lines: dict = {}
            index[id(container)] = (container, lines)
            stack.append([container, _NO_KEY, is_map, lines])
            continue
        elif cls in _END_EVENTS:
            value = stack.pop()[0]
        elif cls is None or cls is yaml.StreamEndEvent:
            return root, index, root_line
        elif cls is yaml.DocumentStartEvent:
            documents += 1
            if documents > 1:
                raise _Slow
            continue
        elif cls is yaml.StreamStartEvent or cls is yaml.DocumentEndEvent:
            continue
        else:  # an alias
            raise _Slow
        if not stack:
            root = value
            continue
        frame = stack[-1]
        if frame[2]:
            frame[0][frame[1]] = value
            frame[1] = _NO_KEY
        else:
            frame[0].append(value)


def _too_many_nodes(stack: list, event, source: str | None) -> DocumentError:
    """The full builder's ``too_many_nodes`` problem, from the fast builder's stack.

    The fast builder gives up at the first anchor, so when it counts past
    :data:`MAX_NODES` no alias was expanded: the full builder would stop at the same
    value, and parsing the text a second time to say so would double the cost of the
    largest hostile documents.
    """
    path: list = []
    for frame in stack:
        if frame[2]:
            if frame[1] is _NO_KEY:
                break  # this event is the frame's next key: the path ends at the map
            path.append(frame[1])
        else:
            path.append(len(frame[0]))
    message = f"the document expands to more than {MAX_NODES:,} values (alias expansion?)"
    return DocumentError(
        [Problem("too_many_nodes", message, format_path(path), event.start_mark.line + 1, source)]
    )


class _Frame:
    __slots__ = ("container", "path", "key", "key_line", "anchor", "nodes_at_start")

    def __init__(self, container, path, anchor, nodes_at_start):
        self.container = container
        self.path = path
        self.key = _NO_KEY
        self.key_line = 0
        self.anchor = anchor
        self.nodes_at_start = nodes_at_start


_NO_KEY = object()


class _Builder:
    """Builds plain data straight from parser events, enforcing the limits as it goes.

    No node graph and no recursion: an explicit stack keeps depth bounded by
    :data:`MAX_DEPTH` however deep the input tries to go.  Anchors remember
    the value they name and how many values it holds, so aliases are counted
    at their expanded size (billion laughs stops at :data:`MAX_NODES`).
    """

    def __init__(self, doc: Document):
        self.doc = doc
        self.nodes = 0
        self.aliases = 0
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.open_anchors: set[str] = set()

    def fail(self, code: str, message: str, event, path) -> DocumentError:
        return DocumentError(
            [Problem(code, message, format_path(path), event.start_mark.line + 1, self.doc.source)]
        )

    def build(self, parser) -> Any:
        stack: list[_Frame] = []
        root: Any = None
        documents = 0
        while True:
            try:
                event = parser.get_event()
            except yaml.MarkedYAMLError as exc:
                if not _is_nesting_limit(exc):
                    raise
                # the scanner reads ahead, so its guard can fire before the parser
                # has handed us MAX_DEPTH collections: report it as ours
                line = exc.problem_mark.line + 1 if exc.problem_mark else None
                problem = Problem(
                    "too_deep",
                    f"nesting deeper than {MAX_DEPTH} levels",
                    format_path(self._child_path(stack)),
                    line,
                    self.doc.source,
                )
                raise DocumentError([problem]) from None
            if event is None or isinstance(event, yaml.StreamEndEvent):
                return root
            if isinstance(event, (yaml.StreamStartEvent, yaml.DocumentEndEvent)):
                continue
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise self.fail(
                        "several_documents",
                        "one YAML document per rule set: remove the second `---`",
                        event,
                        (),
                    )
                continue
            path = self._child_path(stack)
            if not stack and self.doc.root_line is None:
                self.doc.root_line = event.start_mark.line + 1
            if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                frame = stack.pop()
                if frame.anchor is not None:
                    self.open_anchors.discard(frame.anchor)
                    self.anchors[frame.anchor] = (
                        frame.container,
                        self.nodes - frame.nodes_at_start,
                    )
                value = frame.container
            elif isinstance(event, yaml.AliasEvent):
                value = self._alias(event, path)
            elif isinstance(event, yaml.ScalarEvent):
                value = self._scalar(event, path, stack)
            else:  # a collection starts
                if len(stack) >= MAX_DEPTH:
                    raise self.fail(
                        "too_deep", f"nesting deeper than {MAX_DEPTH} levels", event, path
                    )
                is_map = isinstance(event, yaml.MappingStartEvent)
                tag = event.tag
                if tag not in (None, "!", MAP if is_map else SEQ):
                    raise self.fail(
                        "unsupported_tag",
                        f"tag {tag!r} is not allowed; rule sets hold plain data only",
                        event,
                        path,
                    )
                self._count(event, path)
                container = {} if is_map else []
                if event.anchor is not None:
                    self.open_anchors.add(event.anchor)
                frame = _Frame(container, path, event.anchor, self.nodes)
                self._place_line(stack, event)
                stack.append(frame)
                continue
            if not stack:
                root = value
                continue
            self._put(stack, value, event, path)

    def _child_path(self, stack) -> tuple:
        if not stack:
            return ()
        frame = stack[-1]
        if isinstance(frame.container, list):
            return frame.path + (len(frame.container),)
        if frame.key is _NO_KEY:
            return frame.path
        return frame.path + (frame.key,)

    def _place_line(self, stack, event) -> None:
        if stack and isinstance(stack[-1].container, list):
            frame = stack[-1]
            self.doc.lines[frame.path + (len(frame.container),)] = event.start_mark.line + 1

    def _put(self, stack, value, event, path) -> None:
        frame = stack[-1]
        container = frame.container
        if isinstance(container, list):
            container.append(value)
            return
        if frame.key is _NO_KEY:  # this value is a key
            if not isinstance(value, str) or getattr(event, "value", None) is None:
                raise self.fail("invalid_key", "keys must be plain scalars", event, frame.path)
            key = event.value
            child = frame.path + (key,)
            if key in container:
                raise self.fail(
                    "duplicate_key",
                    f"duplicate key {key!r} (first defined on line {self.doc.lines.get(child)})",
                    event,
                    child,
                )
            self.doc.lines[child] = event.start_mark.line + 1
            frame.key = key
            return
        container[frame.key] = value
        frame.key = _NO_KEY

    def _count(self, event, path, size: int = 1) -> None:
        self.nodes += size
        if self.nodes > MAX_NODES:
            raise self.fail(
                "too_many_nodes",
                f"the document expands to more than {MAX_NODES:,} values (alias expansion?)",
                event,
                path,
            )

    def _alias(self, event, path) -> Any:
        name = event.anchor
        if name in self.open_anchors:
            raise self.fail(
                "recursive_alias",
                f"alias *{name} refers to the collection that contains it",
                event,
                path,
            )
        if name not in self.anchors:
            raise self.fail(
                "undefined_alias", f"alias *{name} has no anchor &{name} before it", event, path
            )
        self.aliases += 1
        if self.aliases > MAX_ALIASES:
            raise self.fail("too_many_aliases", f"more than {MAX_ALIASES} aliases", event, path)
        value, size = self.anchors[name]
        self._count(event, path, size)
        return value

    def _scalar(self, event, path, stack) -> Any:
        self._count(event, path)
        is_key = bool(stack) and isinstance(stack[-1].container, dict) and stack[-1].key is _NO_KEY
        if stack and isinstance(stack[-1].container, list):
            self._place_line(stack, event)
        tag, value = event.tag, event.value
        if tag in (None, "!"):
            tag = _resolve(value) if event.implicit[0] else STR
        if is_key:
            if tag not in (STR, INT, FLOAT, BOOL, NULL):
                raise self.fail("invalid_key", "keys must be plain scalars", event, path)
            return value
        if event.anchor is not None:
            self.anchors[event.anchor] = (None, 1)
        result = self._convert(tag, value, event, path)
        if event.anchor is not None:
            self.anchors[event.anchor] = (result, 1)
        return result

    def _convert(self, tag: str, value: str, event, path) -> Any:
        if tag == STR:
            return value
        if tag == NULL:
            return None
        if tag == BOOL:
            if value.lower() not in ("true", "false"):
                raise self.fail(
                    "invalid_value", f"{value!r} is not a boolean; write true or false", event, path
                )
            return value.lower() == "true"
        if tag == INT:
            digits = value.lstrip("+-")
            if len(digits) > MAX_SCALAR_DIGITS:
                raise self.fail(
                    "number_too_large",
                    f"number with {len(digits):,} digits; at most {MAX_SCALAR_DIGITS} are allowed",
                    event,
                    path,
                )
            try:
                return int(value)
            except ValueError:
                raise self.fail(
                    "invalid_value", f"{value[:40]!r} is not an integer", event, path
                ) from None
        if tag == FLOAT:
            if len(value) > MAX_SCALAR_DIGITS + 10:
                raise self.fail(
                    "number_too_large",
                    f"number of {len(value):,} characters; "
                    f"at most {MAX_SCALAR_DIGITS} digits are allowed",
                    event,
                    path,
                )
            try:
                number = float(value)
            except ValueError:
                raise self.fail(
                    "invalid_value", f"{value[:40]!r} is not a number", event, path
                ) from None
            if number != number or number in (float("inf"), float("-inf")):
                raise self.fail(
                    "invalid_value", f"{value[:40]!r} is not a finite number", event, path
                )
            return number
        raise self.fail(
            "unsupported_tag",
            f"tag {tag!r} is not allowed; rule sets hold plain data only",
            event,
            path,
        )
