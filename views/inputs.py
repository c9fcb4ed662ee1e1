"""The request-input layer of the storefront API, derived from the OpenAPI document.

A tween, over pyramid_tm, so that nothing here opens a transaction or touches the
database.  For every request under ``/api/`` it checks, in this order:

1. the path and the query string are valid UTF-8 without control characters (``%ff``
   or ``%00`` anywhere is a 400, never a 500 from the router);
2. the path names an operation of the OpenAPI document (``views/openapi.py``); a known
   path with another method is a 405 with ``Allow``;
3. each path, query and header parameter the operation declares matches its schema there:
   integers are ASCII digits within ``minimum``/``maximum`` (``²`` or ``٢٠٤٩`` is never
   request 2049), strings respect ``minLength``/``maxLength``/``pattern``/``enum``.

The limits are declared once, in the OpenAPI document; this module only reads them.
JSON bodies are checked by :func:`json_body` (depth, NUL, lone surrogates) and, where the
document gives the body a schema that the view does not check itself, by
:func:`checked_body`.
"""

from __future__ import annotations

import functools
import io
import json
import re
from decimal import Decimal
from typing import Any
from urllib.parse import unquote_to_bytes

import jsonschema
from pyramid.request import Request as PyramidRequest
from pyramid.response import Response

from approvalrules.engine.schema import fast_validator_for
from approvalrules.errors import ApprovalRulesError, OrderError

from . import openapi
from .errors import error_response

#: JSON bodies nest at most this deep; real orders and directory records need < 10
MAX_JSON_DEPTH = 32
#: a string parameter whose schema sets no maxLength still gets this one
DEFAULT_MAX_LENGTH = 1000
#: an integer parameter whose schema sets no maximum: the 32-bit ids of the database
DEFAULT_MAXIMUM = MAX_ID = openapi.MAX_ID

#: C0 controls and DEL: never part of an id, a key or a filter (NUL breaks PostgreSQL)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
ASCII_DIGITS = re.compile(r"[0-9]{1,30}")
#: PostgreSQL text cannot hold NUL, and a lone surrogate cannot be encoded as UTF-8
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class InvalidParameter(Exception):
    """A parameter outside what the OpenAPI document allows."""

    def __init__(self, name: str, where: str, problem: str, allowed: str):
        super().__init__(problem)
        self.name, self.where, self.problem, self.allowed = name, where, problem, allowed

    def response(self) -> Response:
        return error_response(
            400,
            "invalid_parameter",
            f"the {self.where} parameter {self.name!r} {self.problem}; allowed: {self.allowed}",
            {"parameter": self.name, "in": self.where, "allowed": self.allowed},
        )


# ---------------------------------------------------------------- operations of the document


class Route:
    """One path of the OpenAPI document: its regular expression and its operations."""

    def __init__(self, template: str, item: dict):
        self.template = template
        self.operations = {method.upper(): op for method, op in item.items()}
        slashed = {
            p["name"]
            for op in item.values()
            for p in op.get("parameters", [])
            if p["in"] == "path" and p.get("x-may-contain-slash")
        }
        pattern = re.sub(
            r"\\\{(\w+)\\\}",
            lambda m: f"(?P<{m[1]}>.+)" if m[1] in slashed else f"(?P<{m[1]}>[^/]+)",
            re.escape(template),
        )
        self.regex = re.compile(pattern + r"\Z")
        #: literal text first: /orders/{id}/withdraw before /orders/{id}
        self.specificity = len(re.sub(r"\{\w+\}", "", template))

    def allowed(self) -> list[str]:
        methods = set(self.operations)
        if "GET" in methods:
            methods.add("HEAD")
        return sorted(methods)

    def operation(self, method: str) -> dict | None:
        return self.operations.get("GET" if method == "HEAD" else method)


@functools.cache
def routes() -> tuple[Route, ...]:
    """The document's paths, most specific first."""
    found = [Route(template, item) for template, item in openapi.document()["paths"].items()]
    return tuple(sorted(found, key=lambda r: -r.specificity))


@functools.cache
def _literal_routes() -> dict[str, Route]:
    """The document's paths without parameters, by path: an exact match is the most specific
    route there is (its literal text is the whole path), so it needs no scan."""
    return {route.template: route for route in routes() if "{" not in route.template}


def find_operation(path: str, method: str):
    """``(route, operation, path values)`` for the request; operation None for a wrong method;
    None when no path of the document matches."""
    literal = _literal_routes().get(path)
    if literal is not None:
        operation = literal.operation(method)
        if operation is not None:
            return literal, operation, {}
    return scan_operation(path, method)


def scan_operation(path: str, method: str):
    """What :func:`find_operation` answers, found by matching every route of the document,
    most specific first: the one way for paths with parameters, and the reference the
    literal lookup must agree with."""
    first = None
    for route in routes():
        match = route.regex.match(path)
        if match is None:
            continue
        operation = route.operation(method)
        if operation is not None:
            return route, operation, match.groupdict()
        first = first or (route, None, match.groupdict())
    return first


# ---------------------------------------------------------------- values against schemas


def check_value(name: str, where: str, value: str, schema: dict) -> None:
    """Raise :class:`InvalidParameter` unless ``value`` matches the parameter's ``schema``."""
    if CONTROL.search(value):
        raise InvalidParameter(
            name, where, "contains a control character (such as NUL)", _allowed(schema)
        )
    if schema.get("type") == "integer":
        if not ASCII_DIGITS.fullmatch(value):
            raise InvalidParameter(
                name, where, f"is not a whole number: {value[:40]!r}", _allowed(schema)
            )
        number = int(value)
        if not schema.get("minimum", 0) <= number <= schema.get("maximum", DEFAULT_MAXIMUM):
            raise InvalidParameter(name, where, f"is out of range: {value[:40]}", _allowed(schema))
        return
    if "enum" in schema and value not in schema["enum"]:
        raise InvalidParameter(
            name, where, f"is not one of the choices: {value[:40]!r}", _allowed(schema)
        )
    if len(value) > schema.get("maxLength", DEFAULT_MAX_LENGTH):
        raise InvalidParameter(name, where, f"is {len(value):,} characters long", _allowed(schema))
    if len(value) < schema.get("minLength", 0):
        raise InvalidParameter(name, where, "is empty", _allowed(schema))
    if "pattern" in schema and not re.search(schema["pattern"], value):
        raise InvalidParameter(
            name, where, f"has characters not allowed: {value[:40]!r}", _allowed(schema)
        )


def _allowed(schema: dict) -> str:
    """What a parameter's schema allows, in words."""
    if schema.get("type") == "integer":
        low, high = schema.get("minimum", 0), schema.get("maximum", DEFAULT_MAXIMUM)
        return f"a whole number of ASCII digits from {low} to {high:,}"
    if "enum" in schema:
        return "one of " + ", ".join(schema["enum"])
    shortest, longest = schema.get("minLength", 0), schema.get("maxLength", DEFAULT_MAX_LENGTH)
    parts = [f"text of {shortest} to {longest} characters"]
    if "pattern" in schema:
        parts.append(f"matching {schema['pattern']}")
    if schema.get("description"):
        parts.append(f"({schema['description']})")
    parts.append("without control characters")
    return ", ".join(parts)


def _decoded(raw: str, what: str) -> str:
    """A WSGI (latin-1) string as the UTF-8 text it carries."""
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise InvalidParameter(what, "path", "is not valid UTF-8", "UTF-8 text") from None


def query_pairs(query_string: str) -> list[tuple[str, str]]:
    """The query string as (name, value) pairs, each strictly UTF-8."""
    pairs = []
    for part in query_string.split("&"):
        if not part:
            continue
        raw_name, _, raw_value = part.partition("=")
        name = _query_text(raw_name, "?")
        pairs.append((name, _query_text(raw_value, name)))
    return pairs


def _query_text(raw: str, name: str) -> str:
    try:
        return unquote_to_bytes(raw.replace("+", " ")).decode("utf-8")
    except UnicodeError:
        raise InvalidParameter(
            name[:40], "query", "is not valid UTF-8", "UTF-8 text, percent-encoded"
        ) from None


def check_request(environ: dict, method: str, headers) -> Response | None:
    """The error response for a request the document does not allow, else None."""
    try:
        path = _decoded(environ.get("PATH_INFO", ""), "path")
        if CONTROL.search(path):
            raise InvalidParameter("path", "path", "contains a control character", "printable text")
        query = query_pairs(environ.get("QUERY_STRING", ""))
        for name, value in query:
            if CONTROL.search(name) or CONTROL.search(value):
                raise InvalidParameter(
                    name[:40],
                    "query",
                    "contains a control character (such as NUL)",
                    "printable text",
                )
        found = find_operation(path, method)
        if found is None:
            return None  # no such path: the router answers 404
        route, operation, path_values = found
        if operation is None:
            allow = ", ".join(route.allowed())
            return error_response(
                405,
                "method_not_allowed",
                f"{method} is not allowed on {route.template}; use {allow}",
                {"allowed": route.allowed()},
                {"Allow": allow},
            )
        values = {"path": path_values, "query": {}, "header": {}}
        for name, value in query:
            values["query"].setdefault(name, []).append(value)
        for parameter in operation.get("parameters", []):
            name, where = parameter["name"], parameter["in"]
            if where == "path":
                given = [path_values[name]]
            elif where == "query":
                given = values["query"].get(name, [])
            else:
                given = [headers[name]] if name in headers else []
            for value in given:
                check_value(name, where, value, parameter.get("schema", {}))
    except InvalidParameter as invalid:
        return invalid.response()
    return None


def input_tween_factory(handler, registry):
    """Refuse a request outside the OpenAPI document before it reaches the database."""

    def input_tween(request):
        raw_path = request.environ.get("PATH_INFO", "")
        # the router decodes every path: refuse what it cannot decode, wherever it goes
        if not raw_path.startswith("/api/"):
            try:
                raw_path.encode("latin-1").decode("utf-8")
            except UnicodeError:
                return InvalidParameter(
                    "path", "path", "is not valid UTF-8", "UTF-8 text"
                ).response()
            return handler(request)
        refused = check_request(request.environ, request.method, request.headers)
        return refused if refused is not None else handler(request)

    return input_tween


# ---------------------------------------------------------------- the body as sent


class Request(PyramidRequest):
    """Pyramid's request, reading a body the server already holds in memory in place.

    pyramid_retry makes every body seekable before the first attempt, and webob does that by
    copying ``wsgi.input`` into a new buffer: about 5% of a warm evaluate's time in the app.
    waitress hands over a body under 512 KB (its ``inbuf_overflow``) as a ``BytesIO`` holding
    exactly the body, at its start: that stream is seekable as it is, so it is marked so
    instead of copied.  Any other stream (a
    temporary file, a socket, one shorter or longer than ``Content-Length``) is copied as
    webob always did, with its errors (a body shorter than announced is a disconnection).
    """

    def make_body_seekable(self):
        """webob's ``make_body_seekable``, without the copy when the body is already in
        memory (:func:`holds_exactly`)."""
        if not self.is_body_seekable and holds_exactly(
            self.environ.get("wsgi.input"), self.content_length
        ):
            self.is_body_seekable = True
        super().make_body_seekable()

    def _body_held(self) -> bytes:
        """webob's ``body``, taken whole from the in-memory body (see the class) instead of
        read through webob's file wrappers: a fifth of reading a cart, which evaluate does
        on every request."""
        stream, length = self.environ.get("wsgi.input"), self.content_length
        if length and holds_exactly(stream, length):
            return stream.getvalue()
        return PyramidRequest.body.fget(self)

    body = property(_body_held, PyramidRequest.body.fset, PyramidRequest.body.fdel)


def holds_exactly(stream, length: int | None) -> bool:
    """Whether ``stream`` is a ``BytesIO`` at its start holding ``length`` bytes (the
    ``Content-Length`` as webob reads it): reading it from there gives the body, and seeking
    back to the start gives it again."""
    if type(stream) is not io.BytesIO or length is None or stream.tell() != 0:
        return False
    with stream.getbuffer() as held:
        return held.nbytes == length


# ---------------------------------------------------------------- JSON bodies


class JsonNumber(Decimal):
    """A JSON number with a fraction or exponent, exact, remembering the text it was sent as."""

    __slots__ = ("text",)


def _json_number(text: str) -> JsonNumber:
    number = JsonNumber(text)
    number.text = text
    return number


def _bounded_int(text: str) -> int:
    if len(text) > MAX_INT_TEXT:
        raise ValueError(f"integer with {len(text)} digits")
    return int(text)


#: an integer's text (sign included) may be at most this long (:func:`_bounded_int`)
MAX_INT_TEXT = 30
#: every ASCII digit to ``0``, every other byte to a blank: a run of digits stays a run
_DIGITS_AS_ZEROS = bytes(48 if 48 <= byte <= 57 else 32 for byte in range(256))


def _long_digit_run(raw: bytes) -> bool:
    """Whether ``raw`` has :data:`MAX_INT_TEXT` digits in a row: without such a run, no
    integer in it (a sign and at most 29 digits) can be refused by :func:`_bounded_int`."""
    return b"0" * MAX_INT_TEXT in raw.translate(_DIGITS_AS_ZEROS)


def _plainly_storable(raw: bytes | None) -> bool:
    """Whether the raw body can hold neither an unstorable character nor deep nesting, so that
    its parsed value needs no walk: no escape (``\\u0000``, ``\\ud800``), no NUL byte, no
    UTF-8 surrogate (lead byte 0xED), and fewer brackets than the depth limit.  A cart of
    plain text passes in a few byte scans; anything else gets the full walk."""
    if not raw:
        return True
    if b"\\u" in raw or b"\x00" in raw or b"\xed" in raw:
        return False
    return raw.count(b"{") + raw.count(b"[") <= MAX_JSON_DEPTH


def parse_json(raw: bytes):
    """The body's JSON, numbers with a fraction as :class:`JsonNumber`; 400 when it is not
    JSON, nests deeper than :data:`MAX_JSON_DEPTH` or holds text no database can store."""
    return parse_json_noting_fractions(raw)[0]


def parse_json_noting_fractions(raw: bytes) -> tuple[Any, bool]:
    """:func:`parse_json`, and whether the body held a number with a fraction or an exponent
    (a :class:`JsonNumber`): without one, :func:`numbers_as_text` has nothing to do."""
    fractions = []

    def noted_number(text: str) -> JsonNumber:
        fractions.append(True)
        return _json_number(text)

    # the hook costs a call per integer: only a body with a run of digits as long as the
    # bound can hold an integer over it, so any other body's integers are read by json itself
    bounded = _bounded_int if not isinstance(raw, bytes) or _long_digit_run(raw) else None
    try:
        body = json.loads(raw or b"null", parse_float=noted_number, parse_int=bounded)
    except (ValueError, RecursionError) as exc:
        raise ApprovalRulesError(
            "invalid_json", f"the request body is not valid JSON: {exc}"[:300]
        ) from None
    if not _plainly_storable(raw):
        refuse_unstorable(body)
    return body, bool(fractions)


def refuse_unstorable(body, depth: int = 1) -> None:
    """400 when ``body`` nests too deep or holds a string no database can store; ``depth``:
    how deep ``body`` itself sits in the request body (a field of it: 2)."""
    stack = [(body, depth)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if UNSTORABLE.search(item):
                raise ApprovalRulesError(
                    "invalid_json",
                    "the request body contains a NUL character (\\u0000) or a lone surrogate "
                    "(\\ud800-\\udfff), which are not accepted; send valid Unicode text",
                )
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            raise ApprovalRulesError(
                "invalid_json",
                f"the request body nests deeper than {MAX_JSON_DEPTH} levels of objects and "
                "lists; flatten it",
            )
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)


def numbers_as_text(value):
    """``value`` with every :class:`JsonNumber` back to its text, as the workflow has always
    received fractional numbers (exponents written out when that stays short)."""
    if isinstance(value, JsonNumber):
        if "e" in value.text.lower() and -30 <= value.adjusted() <= 30:
            return format(value, "f")
        return value.text
    if isinstance(value, dict):
        return {key: numbers_as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [numbers_as_text(item) for item in value]
    return value


# ---------------------------------------------------------------- the order body


@functools.cache
def _order_schema() -> dict:
    # the document's components, reachable as #/components/schemas/... from the Order schema
    return {"$ref": "#/components/schemas/Order", "components": openapi.document()["components"]}


@functools.cache
def _order_validator():
    return jsonschema.Draft202012Validator(_order_schema())


@functools.cache
def _fast_order_validator():
    # every cart goes through here: the generated validator answers "valid" in a fraction of
    # jsonschema's time, and jsonschema still decides and words every rejection
    return fast_validator_for(_without_alternatives(_order_schema()))


def _without_alternatives(schema: dict) -> dict:
    """``schema`` with its ``money`` written as one schema instead of ``oneOf`` a number or a
    string: the same set of valid values (``minimum``/``maximum`` apply to numbers alone,
    ``pattern`` to strings alone), but the generated validator no longer raises and catches
    an exception for the branch each amount fails, sixteen times for a 15-line cart."""
    schemas = schema["components"]["schemas"]
    money = schemas["money"]
    number, text = money["oneOf"]
    assert number["type"] == "number" and text["type"] == "string", money
    merged = {
        "type": ["number", "string"],
        **{key: value for key, value in number.items() if key != "type"},
        **{key: value for key, value in text.items() if key != "type"},
    }
    components = {**schema["components"], "schemas": {**schemas, "money": merged}}
    return {**schema, "components": components}


_MONEY_FIELDS = ("total", "price")
#: the engine's codes for a top-level field with a wrong value (``Order.from_dict``)
_FIELD_CODES = {
    "currency": "unknown_currency",
    "type": "invalid_order_type",
    "payer": "invalid_payer",
    "requested_date": "invalid_date",
    "lines": "invalid_lines",
    "ship_to": "invalid_ship_to",
}


def check_order(body: dict) -> None:
    """The order body against the document's ``Order`` schema: strict amounts (ASCII digits,
    no sign, blanks or ``_``), quantities as JSON numbers, the documented lengths.

    Raises :class:`OrderError` (422) naming the field, e.g. ``order.lines[0].price``.
    """
    fast = _fast_order_validator()
    if fast is not None:
        try:
            fast(body)
            return
        except Exception:  # invalid, or too odd for it: jsonschema decides and explains
            pass
    errors = list(_order_validator().iter_errors(body))
    if not errors:
        return
    error = min(errors, key=lambda e: (len(e.absolute_path), [str(p) for p in e.absolute_path]))
    raise _order_error(error)


def _field_path(path) -> str:
    text = "order"
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _order_error(error) -> OrderError:
    path = list(error.absolute_path)
    where = _field_path(path)
    field = path[-1] if path else None
    if error.validator == "additionalProperties":
        known = error.schema.get("properties", {})
        key = next(k for k in error.instance if k not in known)
        return OrderError(
            "unknown_key",
            f"unknown field {key!r} in {where}; allowed: {', '.join(sorted(known))}",
            path=_field_path([*path, key]),
        )
    if error.validator == "required":
        key = next(k for k in error.validator_value if k not in error.instance)
        code = {"buyer": "missing_buyer", "total": "missing_total"}.get(key, "missing_key")
        return OrderError(
            code, f"{_field_path([*path, key])} is required", path=_field_path([*path, key])
        )
    value = error.instance
    if field in _MONEY_FIELDS:
        if isinstance(value, (int, Decimal)) and not isinstance(value, bool) and value < 0:
            return OrderError("negative_amount", f"{where} must not be negative", path=where)
        return OrderError(
            "invalid_amount",
            f"{where} must be a number from 0 to 10^15, or a string of ASCII digits with at "
            f"most 4 decimals like \"999999.99\" (no sign, blanks, '_' or exponent); "
            f"got {str(value)[:40]!r}",
            path=where,
        )
    if field == "quantity":
        return OrderError(
            "invalid_quantity",
            f"{where} must be a JSON number from 0 to 10^9, not {type(value).__name__} "
            f"{str(value)[:40]!r}",
            path=where,
        )
    if len(path) == 1 and field in _FIELD_CODES:
        return OrderError(_FIELD_CODES[field], f"{where}: {error.message}"[:300], path=where)
    if len(path) == 2 and path[0] == "lines":
        return OrderError("invalid_line", f"{where} must be an object with a sku", path=where)
    if error.validator == "maxLength":
        return OrderError(
            "too_long", f"{where} is longer than {error.validator_value} characters", path=where
        )
    if error.validator == "type":
        return OrderError("wrong_type", f"{where} must be {error.validator_value}", path=where)
    return OrderError("invalid_value", f"{where}: {error.message}"[:300], path=where)
