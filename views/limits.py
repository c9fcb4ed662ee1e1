"""Request limits for the storefront API: body size and requests per API key per minute.

A tween, so that an oversized body is refused before anything reads it and a
client over its rate never reaches a view (nor, when its key is in the process's key
cache, the database).  Fixed one-minute windows per
API key (the key's own ``rate_per_minute``, else ``approvalrules.rate_limit_per_minute``)
and, with ``approvalrules.api.tenant_rate_per_minute``, per tenant (all its keys).

With ``approvalrules.redis_url`` the windows are counted in Redis, shared by
every process and host (:class:`RedisRateLimiter`); without it each process
counts its own (:class:`RateLimiter`): with N processes a key gets at most N
times its limit.  When Redis does not answer, each process counts on its own
again until it does (fail open, with a warning): a rate limit is never the
reason for a 500.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import OrderedDict

from pyramid.response import Response
from sqlalchemy.exc import SQLAlchemyError

from approvalrules.store.keycache import KeyCache, VerifiedKey, token_digest
from approvalrules.store.services import DEFAULT_KEY_RATE, default_key_rate

from .errors import error_response
from .routes import under_api

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 1_048_576
DEFAULT_PER_MINUTE = DEFAULT_KEY_RATE
#: Redis answers within this or counts as down (seconds)
REDIS_TIMEOUT = 0.2
#: after Redis failed, count in the process for this long before asking it again (seconds)
REDIS_RETRY_AFTER = 5.0
#: ``request.environ`` key of the key the limits tween verified (a VerifiedKey, or None)
VERIFIED_KEY = "approvalrules.verified_key"
#: ``request.environ`` key of the database failure that kept the tween from verifying the key
VERIFY_FAILED = "approvalrules.verify_failed"


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

    def hit(self, key: str, limit: int | None = None) -> int:
        """Count one request; returns 0 if allowed, else the seconds until the window resets.

        ``limit``: this key's own limit (default: ``per_minute``).
        """
        limit = self.per_minute if limit is None else limit
        now = self.clock()
        with self._lock:
            count = self._count(key, now) + 1
            self._windows[key] = (int(now // 60), count)
            self._windows.move_to_end(key)
            while len(self._windows) > self.max_keys:
                self._windows.popitem(last=False)
        return self._wait(now) if count > limit else 0

    def exhausted(self, key: str, limit: int | None = None) -> int:
        """Without counting: 0 if another hit would be allowed.

        Else the seconds until the window resets.
        """
        limit = self.per_minute if limit is None else limit
        now = self.clock()
        with self._lock:
            count = self._count(key, now)
        return self._wait(now) if count >= limit else 0

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


_PLAIN_KEY = re.compile(r"[A-Za-z0-9._-]{1,64}")


class RedisRateLimiter:
    """:class:`RateLimiter`'s fixed one-minute windows, counted in Redis for every process.

    One pipelined ``INCR`` + ``EXPIRE`` per hit on ``approvalrules:rl:<name>:<key>:<window>``
    (the window is the wall-clock minute, the same on every host).  When Redis fails or
    is slower than :data:`REDIS_TIMEOUT`, ``fallback`` (a per-process limiter) counts
    instead for :data:`REDIS_RETRY_AFTER` seconds, and a warning is logged at most once
    a minute.
    """

    def __init__(self, client, name: str, per_minute: int, clock=time.time):
        self.client = client
        self.name = name
        self.per_minute = per_minute
        self.clock = clock
        self.fallback = RateLimiter(per_minute, clock=clock)
        self._down_until = 0.0
        self._warned_at = -math.inf

    def _key(self, key: str, now: float) -> str:
        if not _PLAIN_KEY.fullmatch(key):  # what a person typed (a login): digested
            key = token_digest(key)
        return f"approvalrules:rl:{self.name}:{key}:{int(now // 60)}"

    def hit(self, key: str, limit: int | None = None) -> int:
        """Count one request; 0 if allowed, else the seconds until the window resets."""
        limit = self.per_minute if limit is None else limit
        now = self.clock()
        if now < self._down_until:
            return self.fallback.hit(key, limit)
        name = self._key(key, now)
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.incr(name)
            pipe.expire(name, 120)
            count = int(pipe.execute()[0])
        except Exception as failure:  # noqa: BLE001 - any Redis failure: count here instead
            self._redis_failed(failure, now)
            return self.fallback.hit(key, limit)
        return RateLimiter._wait(now) if count > limit else 0

    def exhausted(self, key: str, limit: int | None = None) -> int:
        """Without counting: 0 if another hit would be allowed, else the seconds to wait."""
        limit = self.per_minute if limit is None else limit
        now = self.clock()
        if now < self._down_until:
            return self.fallback.exhausted(key, limit)
        try:
            count = int(self.client.get(self._key(key, now)) or 0)
        except Exception as failure:  # noqa: BLE001
            self._redis_failed(failure, now)
            return self.fallback.exhausted(key, limit)
        return RateLimiter._wait(now) if count >= limit else 0

    def clear(self) -> None:
        """Forget every window of this limiter (in Redis and in the process)."""
        self.fallback.clear()
        try:
            names = list(self.client.scan_iter(match=f"approvalrules:rl:{self.name}:*"))
            if names:
                self.client.delete(*names)
        except Exception as failure:  # noqa: BLE001
            self._redis_failed(failure, self.clock())

    def _redis_failed(self, failure: Exception, now: float) -> None:
        self._down_until = now + REDIS_RETRY_AFTER
        if now - self._warned_at >= 60:
            self._warned_at = now
            log.warning(
                "rate limits: Redis did not answer (%s); counting per process for now",
                type(failure).__name__,
            )


def redis_client(settings):
    """A Redis client for ``approvalrules.redis_url`` with short timeouts, or None."""
    url = (settings.get("approvalrules.redis_url") or "").strip()
    if not url:
        return None
    import redis

    return redis.Redis.from_url(
        url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
    )


def rate_limiter(settings, name: str, per_minute: int, client=None):
    """A limiter named ``name``: in Redis when ``approvalrules.redis_url`` is set, else per
    process.  ``client``: a Redis client to share (default: one for the setting)."""
    client = client or redis_client(settings)
    if client is None:
        return RateLimiter(per_minute)
    return RedisRateLimiter(client, name, per_minute)


def verified_key(request, cache: KeyCache) -> VerifiedKey | None:
    """The live key of the request's ``Authorization: Bearer``, or None (none, unknown,
    revoked, or the database did not answer: the view then reads it and says why)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    found = cache.get(token_digest(token))
    if found is not None:
        request.environ[VERIFIED_KEY] = found
        return found
    try:
        found = cache.verify(request.dbsession, token)
    except SQLAlchemyError as failure:
        # the view answers 503 with this failure at once instead of waiting out the same
        # deadlines a second time (views/api.py ``api_key``)
        request.environ[VERIFY_FAILED] = failure
        return None
    request.environ[VERIFIED_KEY] = found
    return found


def _rate_limited(limit: int, wait: int, what: str) -> Response:
    return error_response(
        429,
        "rate_limited",
        f"more than {limit} requests a minute {what}; retry in {wait} s",
        headers={"Retry-After": str(wait)},
    )


def default_rate(settings) -> int:
    """Requests a minute of a key without its own rate (see ``services.default_key_rate``)."""
    return default_key_rate(settings)


def limits_tween_factory(handler, registry):
    settings = registry.settings
    max_body = int(settings.get("approvalrules.max_body_bytes", DEFAULT_MAX_BODY))
    per_minute = default_rate(settings)
    per_tenant = int(settings.get("approvalrules.api.tenant_rate_per_minute", 0) or 0)
    client = redis_client(settings)
    limiter = rate_limiter(settings, "key", per_minute, client) if per_minute > 0 else None
    tenant_limiter = rate_limiter(settings, "tenant", per_tenant, client) if per_tenant else None
    key_cache: KeyCache = registry["key_cache"]

    def limits_tween(request):
        if not under_api(request):
            return handler(request)
        length = request.content_length
        if length is not None and length > max_body:
            return error_response(
                413,
                "body_too_large",
                f"the request body is {length:,} bytes; the limit is {max_body:,} bytes",
            )
        if length is None and request.method in ("POST", "PUT", "PATCH"):
            # chunked: read at most one byte past the limit, never the whole stream
            data = request.body_file_raw.read(max_body + 1)
            if len(data) > max_body:
                return error_response(
                    413,
                    "body_too_large",
                    f"the request body is over the limit of {max_body:,} bytes",
                )
            request.body = data
        if limiter is not None:
            key = verified_key(request, key_cache)
            if key is not None:
                limit = key.rate_per_minute or per_minute
                # by its prefix: unique, random, and not a secret (a fresh database's key
                # ids would meet an older database's windows in a shared Redis)
                wait = limiter.hit(f"key{key.prefix}", limit)
                if wait:
                    return _rate_limited(limit, wait, "with this API key")
                if tenant_limiter is not None:
                    wait = tenant_limiter.hit(str(key.tenant_id))
                    if wait:
                        return _rate_limited(per_tenant, wait, "for all of this tenant's API keys")
            else:
                # no key, or an unknown one: counted by what was sent (digested), else by address
                header = request.headers.get("Authorization", "")
                who = token_digest(header) if header else request.client_addr or "anonymous"
                wait = limiter.hit(who)
                if wait:
                    return _rate_limited(per_minute, wait, "with this API key")
        return handler(request)

    return limits_tween
