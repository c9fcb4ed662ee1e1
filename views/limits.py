"""Request limits for the storefront API: body size and requests per API key per minute.

A tween, so that an oversized body is refused before anything reads it and a
client over its rate never reaches the database.  The rate limit is kept per
process (a fixed one-minute window per key): with N processes a key gets at
most N times the limit, which is what a per-host limit behind a proxy gives too.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict

from pyramid.response import Response

DEFAULT_MAX_BODY = 1_048_576
DEFAULT_PER_MINUTE = 1200


def _error(status: int, code: str, message: str, headers=None) -> Response:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    response = Response(body=body, status=status, content_type="application/json", charset="utf-8")
    if headers:
        response.headers.update(headers)
    return response


class RateLimiter:
    """Fixed one-minute windows per key, bounded in memory.

    The least recently used keys are forgotten.
    """

    def __init__(self, per_minute: int, clock=time.monotonic, max_keys: int = 10_000):
        self.per_minute = per_minute
        self.clock = clock
        self.max_keys = max_keys
        self._windows: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str) -> int:
        """Count one request; returns 0 if allowed, else the seconds until the window resets."""
        now = self.clock()
        with self._lock:
            count = self._count(key, now) + 1
            self._windows[key] = (int(now // 60), count)
            self._windows.move_to_end(key)
            while len(self._windows) > self.max_keys:
                self._windows.popitem(last=False)
        return self._wait(now) if count > self.per_minute else 0

    def exhausted(self, key: str) -> int:
        """Without counting: 0 if another hit would be allowed.

        Else the seconds until the window resets.
        """
        now = self.clock()
        with self._lock:
            count = self._count(key, now)
        return self._wait(now) if count >= self.per_minute else 0

    def clear(self) -> None:
        """Forget every window."""
        with self._lock:
            self._windows.clear()

    def _count(self, key: str, now: float) -> int:
        """Hits of ``key`` in the current window (the caller holds the lock)."""
        window, count = self._windows.get(key, (None, 0))
        return count if window == int(now // 60) else 0

    @staticmethod
    def _wait(now: float) -> int:
        return max(1, int(60 - now % 60))


def limits_tween_factory(handler, registry):
    settings = registry.settings
    max_body = int(settings.get("approvalrules.max_body_bytes", DEFAULT_MAX_BODY))
    per_minute = int(settings.get("approvalrules.rate_limit_per_minute", DEFAULT_PER_MINUTE))
    limiter = RateLimiter(per_minute) if per_minute > 0 else None

    def limits_tween(request):
        if not request.path.startswith("/api/"):
            return handler(request)
        length = request.content_length
        if length is not None and length > max_body:
            return _error(
                413,
                "body_too_large",
                f"the request body is {length:,} bytes; the limit is {max_body:,} bytes",
            )
        if length is None and request.method in ("POST", "PUT", "PATCH"):
            # chunked: read at most one byte past the limit, never the whole stream
            data = request.body_file_raw.read(max_body + 1)
            if len(data) > max_body:
                return _error(
                    413,
                    "body_too_large",
                    f"the request body is over the limit of {max_body:,} bytes",
                )
            request.body = data
        if limiter is not None:
            key = (
                request.headers.get("Authorization", "")[:200] or request.client_addr or "anonymous"
            )
            wait = limiter.hit(key)
            if wait:
                return _error(
                    429,
                    "rate_limited",
                    f"more than {per_minute} requests a minute with this API key; "
                    f"retry in {wait} s",
                    {"Retry-After": str(wait)},
                )
        return handler(request)

    return limits_tween
