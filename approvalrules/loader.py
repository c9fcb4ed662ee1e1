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

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml import nodes

from .errors import DocumentError, DocumentTooLarge, Problem

try:  # libyaml parses ~10x faster; the pure parser is the fall-back
    from yaml._yaml import CParser as _Parser

    _C = True
except ImportError:  # pragma: no cover - depends on the platform's wheel
    from yaml.composer import Composer
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    _C = False

MAX_BYTES = 1_000_000
MAX_DEPTH = 32
MAX_ALIASES = 100
MAX_NODES = 200_000
MAX_SCALAR_DIGITS = 30
#: flow brackets give a cheap upper bound on nesting, checked before composing
#: so that 100,000 nested ``[`` never reach the recursive composer
_MAX_BRACKET_DEPTH = 1000

STR = "tag:yaml.org,2002:str"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
BOOL = "tag:yaml.org,2002:bool"
NULL = "tag:yaml.org,2002:null"
MAP = "tag:yaml.org,2002:map"
SEQ = "tag:yaml.org,2002:seq"


class _Yaml12Resolver(yaml.resolver.BaseResolver):
    """YAML 1.2 core schema: the only implicit types are null, bool, int, float."""


_Yaml12Resolver.yaml_implicit_resolvers = {}
_Yaml12Resolver.add_implicit_resolver(BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Yaml12Resolver.add_implicit_resolver(INT, re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789"))
_Yaml12Resolver.add_implicit_resolver(
    FLOAT,
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)
_Yaml12Resolver.add_implicit_resolver(NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])

if _C:

    class _NodeLoader(_Parser, _Yaml12Resolver):
        def __init__(self, stream):
            _Parser.__init__(self, stream)
            _Yaml12Resolver.__init__(self)

else:  # pragma: no cover

    class _NodeLoader(Reader, Scanner, Parser, Composer, _Yaml12Resolver):
        def __init__(self, stream):
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            Composer.__init__(self)
            _Yaml12Resolver.__init__(self)


Path = tuple  # a tuple of str keys and int indexes


@dataclass
class Document:
    """Plain data from YAML text, with the line of every key and item."""

    data: Any
    text: str
    source: str | None = None
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path) -> int | None:
        """The line of ``path`` or of its nearest ancestor that has one."""
        path = tuple(path)
        while True:
            line = self.lines.get(path)
            if line is not None or not path:
                return line
            path = path[:-1]

    def problem(self, code: str, message: str, path=(), severity: str = "error") -> Problem:
        return Problem(code, message, format_path(path), self.line_of(path), self.source, severity)


def format_path(path) -> str:
    """``approval.steps[2].when`` from ``('approval', 'steps', 2, 'when')``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def load_document(text: str | bytes, source: str | None = None, *, max_bytes: int = MAX_BYTES) -> Document:
    """Parse one YAML document into a :class:`Document`; raise :class:`DocumentError` when unsafe or malformed."""
    if isinstance(text, bytes):
        if len(text) > max_bytes:
            raise _too_large(len(text), max_bytes, source)
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DocumentError([Problem("not_utf8", f"the document is not UTF-8 text (byte {exc.start})", source=source)]) from None
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise _too_large(len(text.encode("utf-8", "surrogatepass")), max_bytes, source)
    _check_bracket_depth(text, source)
    loader = _NodeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        message = " ".join(filter(None, [exc.context, exc.problem])) or "malformed YAML"
        raise DocumentError([Problem("yaml_syntax", f"malformed YAML: {message}", "", line, source)]) from None
    except yaml.YAMLError as exc:
        raise DocumentError([Problem("yaml_syntax", f"malformed YAML: {exc}", "", None, source)]) from None
    finally:
        dispose = getattr(loader, "dispose", None)
        if dispose:
            dispose()
    doc = Document(data=None, text=text, source=source)
    if root is None:
        doc.data = None
        return doc
    builder = _Builder(doc)
    doc.data = builder.build(root, (), 0)
    return doc


def _too_large(size: int, limit: int, source: str | None) -> DocumentTooLarge:
    return DocumentTooLarge(
        [Problem("document_too_large", f"the document is {size:,} bytes; the limit is {limit:,} bytes -- split it or use `extends`", source=source)]
    )


def _check_bracket_depth(text: str, source: str | None) -> None:
    if text.count("[") + text.count("{") <= _MAX_BRACKET_DEPTH:
        return
    depth = 0
    for match in re.finditer(r"[\[\]{}]", text):
        depth += 1 if match.group() in "[{" else -1
        if depth > _MAX_BRACKET_DEPTH:
            line = text.count("\n", 0, match.start()) + 1
            raise DocumentError([Problem("too_deep", f"nesting deeper than {MAX_DEPTH} levels", "", line, source)])


class _Builder:
    """Turns the node graph into plain data, enforcing the limits as it goes."""

    def __init__(self, doc: Document):
        self.doc = doc
        self.nodes_built = 0
        self.aliases = 0
        self.seen: set[int] = set()
        self.on_stack: set[int] = set()

    def fail(self, code: str, message: str, node: nodes.Node, path) -> DocumentError:
        return DocumentError([Problem(code, message, format_path(path), node.start_mark.line + 1, self.doc.source)])

    def build(self, node: nodes.Node, path: Path, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail("too_deep", f"nesting deeper than {MAX_DEPTH} levels", node, path)
        self.nodes_built += 1
        if self.nodes_built > MAX_NODES:
            raise self.fail("too_many_nodes", f"the document expands to more than {MAX_NODES:,} values (alias expansion?)", node, path)
        key = id(node)
        if isinstance(node, nodes.ScalarNode):
            return self.scalar(node, path)
        if key in self.on_stack:
            raise self.fail("recursive_alias", "an alias refers to the collection that contains it", node, path)
        if key in self.seen:
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise self.fail("too_many_aliases", f"more than {MAX_ALIASES} aliases", node, path)
        self.seen.add(key)
        self.on_stack.add(key)
        try:
            if isinstance(node, nodes.MappingNode):
                return self.mapping(node, path, depth)
            return self.sequence(node, path, depth)
        finally:
            self.on_stack.discard(key)

    def mapping(self, node: nodes.MappingNode, path: Path, depth: int) -> dict:
        if node.tag not in (MAP,):
            raise self.fail("unsupported_tag", f"tag {node.tag!r} is not allowed; use plain YAML maps", node, path)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise self.fail("unsupported_merge", "merge keys (<<) are not supported; use `extends`", key_node, path)
            if not isinstance(key_node, nodes.ScalarNode):
                raise self.fail("invalid_key", "keys must be plain scalars", key_node, path)
            key = key_node.value
            child = path + (key,)
            if key in out:
                first = self.doc.lines.get(child)
                raise self.fail("duplicate_key", f"duplicate key {key!r} (first defined on line {first})", key_node, child)
            self.doc.lines[child] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, child, depth + 1)
        return out

    def sequence(self, node: nodes.SequenceNode, path: Path, depth: int) -> list:
        if node.tag != SEQ:
            raise self.fail("unsupported_tag", f"tag {node.tag!r} is not allowed; use plain YAML lists", node, path)
        out = []
        for index, item in enumerate(node.value):
            child = path + (index,)
            self.doc.lines[child] = item.start_mark.line + 1
            out.append(self.build(item, child, depth + 1))
        return out

    def scalar(self, node: nodes.ScalarNode, path: Path) -> Any:
        tag, value = node.tag, node.value
        if tag == STR:
            return value
        if tag == NULL:
            return None
        if tag == BOOL:
            return value.lower() == "true"
        if tag == INT:
            digits = value.lstrip("+-")
            if len(digits) > MAX_SCALAR_DIGITS:
                raise self.fail("number_too_large", f"number with {len(digits):,} digits; at most {MAX_SCALAR_DIGITS} are allowed", node, path)
            return int(value)
        if tag == FLOAT:
            if len(value) > MAX_SCALAR_DIGITS + 10:
                raise self.fail("number_too_large", f"number of {len(value):,} characters; at most {MAX_SCALAR_DIGITS} digits are allowed", node, path)
            return float(value)
        raise self.fail("unsupported_tag", f"tag {tag!r} is not allowed; rule sets hold plain data only", node, path)
