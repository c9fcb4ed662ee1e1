"""Request bodies read in place (``views/inputs.Request``): a body the server holds in memory
as exactly ``Content-Length`` bytes is marked seekable instead of copied; every other body is
copied as webob does, with webob's errors, and the limits still apply."""

from __future__ import annotations

import http.client
import io
import json

import pytest

# tests/ is on sys.path (tests/conftest.py is a rootdir conftest)
from stall import serving
from webob.request import DisconnectionError

from approvalrules.views.inputs import Request, holds_exactly

BODY = json.dumps({"buyer": "sam", "total": 10}).encode()


def posted(stream, length: int | None = None) -> Request:
    request = Request.blank("/api/v1/evaluate", method="POST")
    request.environ["wsgi.input"] = stream
    request.environ.pop("webob.is_body_seekable", None)
    if length is not None:
        request.environ["CONTENT_LENGTH"] = str(length)
    return request


def test_a_body_held_exactly_is_read_in_place():
    stream = io.BytesIO(BODY)
    request = posted(stream, len(BODY))
    request.make_body_seekable()
    assert request.environ["wsgi.input"] is stream
    assert request.body == BODY
    request.make_body_seekable()  # pyramid_retry's next attempt: the same body again
    assert request.body == BODY


@pytest.mark.parametrize(
    ("stream", "length"),
    [
        (io.BytesIO(BODY + b" extra"), len(BODY)),  # longer than announced: only the body
        (io.BufferedReader(io.BytesIO(BODY)), len(BODY)),  # not in memory: a socket's file
        (io.BytesIO(BODY), None),  # no Content-Length
    ],
)
def test_any_other_body_is_copied_as_webob_does(stream, length):
    request = posted(stream, length)
    request.make_body_seekable()
    assert request.environ["wsgi.input"] is not stream
    assert request.body == (BODY if length is not None else b"")


@pytest.mark.parametrize(
    ("stream", "length", "body"),
    [
        (io.BytesIO(BODY), len(BODY), BODY),  # taken whole, in place
        (io.BytesIO(BODY + b" extra"), len(BODY), BODY),  # webob's way: only what was announced
        (io.BytesIO(BODY), None, b""),  # no Content-Length: no body
        (io.BytesIO(b""), 0, b""),
    ],
)
def test_the_body_is_what_webob_reads_whichever_way_it_is_taken(stream, length, body):
    request = posted(stream, length)
    assert request.body == body
    assert request.body == body  # again: nothing was used up
    request.body = b'{"buyer": "ann"}'  # webob's setter still replaces it
    assert request.body == b'{"buyer": "ann"}'


def test_a_stream_already_read_from_is_copied_from_where_it_stands():
    stream = io.BytesIO(BODY)
    stream.read(1)
    assert not holds_exactly(stream, len(BODY))
    assert not holds_exactly(stream, len(BODY) - 1)


def test_a_body_shorter_than_announced_is_still_a_disconnection():
    request = posted(io.BytesIO(BODY[:-3]), len(BODY))
    with pytest.raises(DisconnectionError, match="3 more bytes were expected"):
        request.make_body_seekable()


def test_the_app_reads_the_body_in_place_under_waitress(world, api):
    seen = []

    def watching(environ, start_response):
        given = environ["wsgi.input"]
        answer = world.app(environ, start_response)
        seen.append(environ["wsgi.input"] is given and environ.get("webob.is_body_seekable"))
        return answer

    headers = {"Authorization": f"Bearer {world.keys['demo']}"}
    with serving(watching) as client:
        status, _, served, _ = client.request("POST", "/api/v1/evaluate", json.loads(BODY), headers)
    assert status == 200, served
    assert seen == [True]
    expected = api.post("/api/v1/evaluate", BODY, content_type="application/json").json
    assert served == expected


def raw_post(client, body, headers: dict, chunked: bool = False) -> tuple[int, dict]:
    connection = http.client.HTTPConnection(client.host, client.port, timeout=60)
    try:
        connection.request(
            "POST", "/api/v1/evaluate", body=body, headers=headers, encode_chunked=chunked
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_chunked_and_oversized_bodies_under_waitress(world):
    headers = {
        "Authorization": f"Bearer {world.keys['demo']}",
        "Content-Type": "application/json",
    }
    oversized = b'{"buyer": "sam", "total": 1, "note": "' + b"a" * 1_100_000 + b'"}'
    with serving(world.app) as client:
        status, answer = raw_post(client, oversized, headers)
        assert (status, answer["error"]["code"]) == (413, "body_too_large")
        chunked = {**headers, "Transfer-Encoding": "chunked"}
        status, answer = raw_post(client, iter([BODY[:7], BODY[7:]]), chunked, chunked=True)
        assert status == 200, answer
        assert answer["outcome"] in ("approved", "pending", "rejected", "blocked")
        halves = iter([oversized[:500_000], oversized[500_000:]])
        status, answer = raw_post(client, halves, chunked, chunked=True)
        assert (status, answer["error"]["code"]) == (413, "body_too_large")
