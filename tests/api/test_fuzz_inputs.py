"""Hostile strings in every path, query and header parameter of every operation of the served
OpenAPI document (issue 15): never a 5xx, and our JSON error format on every 4xx.

The schemathesis run (test_schemathesis.py) fuzzes bodies with schema-valid parameters;
this suite walks the parameters themselves, including what no schema generator sends:
bytes that are not UTF-8, NUL and other controls, non-ASCII digits, huge numbers and
over-long text.  Requests go to a tenant of their own, so upserts with odd ids never
touch the shared sample data.
"""

from __future__ import annotations

from urllib.parse import quote_from_bytes

import pytest
import webtest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from approvalrules.store.services import create_api_key, ensure_tenant

#: values every parameter meets, whatever its type
KNOWN_HOSTILE = [
    "",
    "\x00",
    "a\x00b",
    "²",
    "٢٠٤٩",
    "-1",
    "0",
    "1e3",
    " 1",
    "99999999999999999999",
    "9" * 400,
    "x" * 10_000,
    "../../etc/passwd",
    "a/b/c",
    "%",
    "\ufeff",
    "\u202e",
    "'; drop table orders; --",
    "<script>",
    "\r\nX-Injected: 1",
]
#: raw bytes, percent-encoded as they are: not UTF-8, overlong, surrogates encoded
KNOWN_HOSTILE_BYTES = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"%", b"\x80abc"]


def _parameters(document):
    """(template, method, parameter) for every parameter of every operation."""
    for template, item in document["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                yield template, method.upper(), parameter


def _plain_value(parameter) -> str:
    schema = parameter.get("schema", {})
    if schema.get("type") == "integer":
        return "1"
    if "enum" in schema:
        return schema["enum"][0]
    return "fuzz"


def _encode(value) -> str:
    raw = value if isinstance(value, bytes) else value.encode("utf-8")
    return quote_from_bytes(raw, safe="")


def request_with(app, document, template, method, target, value):
    """``method`` on ``template`` with ``value`` in ``target`` and plain values elsewhere."""
    operation = document["paths"][template][method.lower()]
    path, query, headers = template, [], {}
    for parameter in operation.get("parameters", []):
        given = value if parameter is target else _plain_value(parameter)
        if parameter["in"] == "path":
            path = path.replace("{" + parameter["name"] + "}", _encode(given))
        elif parameter["in"] == "query":
            query.append(f"{quote_from_bytes(parameter['name'].encode())}={_encode(given)}")
        else:
            headers[parameter["name"]] = _header_text(given)
    url = path + ("?" + "&".join(query) if query else "")
    body, content_type = b"", None
    if "requestBody" in operation:
        json_body = "application/json" in operation["requestBody"]["content"]
        body, content_type = (b"{}", "application/json") if json_body else (b"", "application/yaml")
    return app.request(
        url, method=method, body=body, headers=headers, content_type=content_type, status="*"
    )


def _header_text(value) -> str:
    """A header value WSGI can carry (latin-1 text; no line breaks, which webtest refuses)."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.encode("utf-8", "replace").decode("latin-1")
    return text.replace("\r", " ").replace("\n", " ")


def assert_answered(response, where: str) -> None:
    """No 5xx; a 4xx is our JSON error."""
    assert response.status_int < 500, f"{where}: {response.status} {response.text[:300]}"
    if response.status_int >= 400:
        assert response.content_type == "application/json", f"{where}: {response.text[:300]}"
        error = response.json["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str), where


@pytest.fixture(scope="module")
def fuzz_app(world):
    """The app as a tenant of its own, and the served OpenAPI document."""

    def setup(session):
        tenant = ensure_tenant(session, "fuzz", "Fuzzed merchant")
        return create_api_key(session, tenant, "fuzz", scope="merchant")[1]

    key = world.run(setup)
    app = webtest.TestApp(world.app, extra_environ={"HTTP_AUTHORIZATION": f"Bearer {key}"})
    return app, app.get("/api/v1/openapi.json").json


def test_every_parameter_of_every_operation_is_fuzzed(fuzz_app):
    app, document = fuzz_app
    found = list(_parameters(document))
    kinds = {parameter["in"] for _, _, parameter in found}
    assert kinds == {"path", "query", "header"}
    assert len(found) >= 40


def test_known_hostile_values_in_every_parameter(fuzz_app):
    app, document = fuzz_app
    for template, method, parameter in _parameters(document):
        for value in KNOWN_HOSTILE + KNOWN_HOSTILE_BYTES:
            response = request_with(app, document, template, method, parameter, value)
            assert_answered(response, f"{method} {template} {parameter['name']}={value[:40]!r}")


hostile_text = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=60),
    st.text(st.characters(categories=["Nd", "No", "Cc", "Cf", "Zs"]), max_size=40),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(KNOWN_HOSTILE + KNOWN_HOSTILE_BYTES),
)


def _fuzz(fuzz_app, examples: int) -> None:
    app, document = fuzz_app
    targets = list(_parameters(document))

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(target=st.sampled_from(targets), value=hostile_text)
    def run(target, value):
        template, method, parameter = target
        response = request_with(app, document, template, method, parameter, value)
        assert_answered(response, f"{method} {template} {parameter['name']}={value[:40]!r}")

    run()


def test_hostile_strings_in_parameters(fuzz_app):
    _fuzz(fuzz_app, 300)


@pytest.mark.slow
def test_hostile_strings_in_parameters_at_length(fuzz_app):
    _fuzz(fuzz_app, 5000)
