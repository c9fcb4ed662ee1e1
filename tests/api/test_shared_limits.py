"""Rate limits shared in Redis, each key's own rate, a tenant's total, and the key cache.

The Redis tests use APPROVALRULES_TEST_REDIS_URL (default redis://127.0.0.1:6379/0) and
skip when it does not answer; every test counts under its own limiter name.
"""

from __future__ import annotations

import logging
import os
import uuid

import pytest
import webtest

from approvalrules.app import main
from approvalrules.store.keycache import KeyCache, token_digest
from approvalrules.store.services import create_api_key, resolve_tenant, set_api_key_rate
from approvalrules.views.limits import RateLimiter, RedisRateLimiter, redis_client

REDIS_ENV = "APPROVALRULES_TEST_REDIS_URL"


@pytest.fixture
def redis_url():
    url = os.environ.get(REDIS_ENV, "redis://127.0.0.1:6379/0")
    client = redis_client({"approvalrules.redis_url": url})
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"Redis not reachable at {url} ({type(exc).__name__}): set {REDIS_ENV}")
    return url


def test_redis_windows_are_shared_by_every_limiter_of_a_name(redis_url):
    name = f"test{uuid.uuid4().hex[:8]}"
    settings = {"approvalrules.redis_url": redis_url}
    # two processes: two clients, two limiters, one count
    first = RedisRateLimiter(redis_client(settings), name, 4)
    second = RedisRateLimiter(redis_client(settings), name, 4)
    waits = [(first if i % 2 else second).hit("k") for i in range(6)]
    assert waits[:4] == [0] * 4
    assert all(1 <= w <= 60 for w in waits[4:])
    assert first.exhausted("k") and second.exhausted("k")
    assert second.hit("other") == 0
    assert first.hit("k", limit=100) == 0  # a key's own limit
    assert first.client.ttl(first._key("k", first.clock())) > 0  # windows expire
    first.clear()
    assert second.exhausted("k") == 0


def test_a_login_typed_by_a_person_is_digested_in_the_redis_key(redis_url):
    limiter = RedisRateLimiter(redis_client({"approvalrules.redis_url": redis_url}), "t", 5)
    assert "ines" not in limiter._key("demo\nines", 0) and "\n" not in limiter._key("demo\nines", 0)
    assert limiter._key("id42", 0) == "approvalrules:rl:t:id42:0"


def test_without_redis_the_limits_fail_open_to_the_process_and_warn_once(caplog):
    # nothing listens on port 1: the connection is refused at once
    client = redis_client({"approvalrules.redis_url": "redis://127.0.0.1:1/0"})
    limiter = RedisRateLimiter(client, "down", 2)
    with caplog.at_level(logging.WARNING, logger="approvalrules.views.limits"):
        waits = [limiter.hit("k") for _ in range(3)]
        assert limiter.exhausted("k")
    assert waits[:2] == [0, 0] and waits[2] >= 1  # counted in the process meanwhile
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "counting per process" in warnings[0]


def _client(app, key: str) -> webtest.TestApp:
    return webtest.TestApp(app, extra_environ={"HTTP_AUTHORIZATION": f"Bearer {key}"})


def _evaluate(client, status="*"):
    return client.post_json("/api/v1/evaluate", {"buyer": "sam", "total": 10}, status=status)


def test_a_key_s_own_rate_applies_and_names_its_limit(world):
    def make(session):
        return create_api_key(session, resolve_tenant(session, "demo"), "slow", rate_per_minute=3)

    key, plain = world.run(lambda s: tuple(x if isinstance(x, str) else x.id for x in make(s)))
    app = main({}, **{**world.settings, "approvalrules.rate_limit_per_minute": "100"})
    client = _client(app, plain)
    assert [_evaluate(client).status_int for _ in range(3)] == [200] * 3
    limited = _evaluate(client, 429)
    assert "more than 3 requests a minute with this API key" in limited.json["error"]["message"]
    assert limited.headers["Retry-After"]
    # another key of the same tenant keeps the service's default
    assert _evaluate(_client(app, world.keys["storefront"])).status_int == 200


def test_the_key_endpoint_shows_the_rate_that_applies(world):
    def make(session):
        key, plain = create_api_key(session, resolve_tenant(session, "demo"), "r", scope="merchant")
        set_api_key_rate(session, key, 42)
        return plain

    plain = world.run(make)
    app = main({}, **{**world.settings, "approvalrules.rate_limit_per_minute": "100"})
    assert _client(app, plain).get("/api/v1/key").json["rate_per_minute"] == 42
    assert _client(app, world.keys["other"]).get("/api/v1/key").json["rate_per_minute"] == 100


def test_a_tenant_total_counts_every_key_of_the_tenant(world):
    app = main(
        {},
        **{
            **world.settings,
            "approvalrules.rate_limit_per_minute": "100",
            "approvalrules.api.tenant_rate_per_minute": "4",
        },
    )
    shop, merchant = _client(app, world.keys["storefront"]), _client(app, world.keys["demo"])
    statuses = [_evaluate(shop if i % 2 else merchant).status_int for i in range(6)]
    assert statuses == [200] * 4 + [429] * 2
    limited = _evaluate(shop, 429).json["error"]["message"]
    assert "more than 4 requests a minute for all of this tenant's API keys" in limited
    assert _evaluate(_client(app, world.keys["other"])).status_int != 429  # another tenant


class _Listener:
    """A stand-in for store/bus.py's Listener: healthy when told so."""

    def __init__(self, healthy=True):
        self.healthy = healthy
        self.subscribers = []

    def subscribe(self, subscriber):
        self.subscribers.append(subscriber.invalidate)


def test_the_key_cache_serves_while_the_listener_is_healthy_and_forgets_on_notice(world):
    listener = _Listener()
    cache = KeyCache(listener)
    plain = world.keys["demo"]
    with world.session() as session:
        first = cache.verify(session, plain)
        demo = first.tenant_id
    assert cache.get(token_digest(plain)) == first  # no session needed any more
    assert plain not in repr(cache._entries)  # the token is never kept
    listener.subscribers[0]("tenant", demo + 1000)  # another tenant: kept
    assert cache.get(token_digest(plain)) == first
    listener.subscribers[0]("tenant", demo)
    assert cache.get(token_digest(plain)) is None
    with world.session() as session:
        cache.verify(session, plain)
    listener.healthy = False  # the listener is down: never served from memory
    assert cache.get(token_digest(plain)) is None
    listener.healthy = True
    listener.subscribers[0]("*", None)  # reconnected: everything forgotten
    assert len(cache) == 0


def test_a_read_that_overlaps_an_invalidation_is_not_kept(world, monkeypatch):
    from approvalrules.store import keycache

    listener = _Listener()
    cache = KeyCache(listener)
    real = keycache.verify_key

    def slow_read(session, plain):
        found = real(session, plain)
        cache.invalidate("tenant", found.tenant_id)  # a revocation commits meanwhile
        return found

    monkeypatch.setattr(keycache, "verify_key", slow_read)
    with world.session() as session:
        assert cache.verify(session, world.keys["demo"]) is not None
    assert len(cache) == 0


def test_unlimited_rate_limiter_is_unchanged():
    assert RateLimiter(2).hit("k", limit=5) == 0


def test_with_redis_down_the_api_answers_and_limits_per_process(world, caplog):
    app = main(
        {},
        **{
            **world.settings,
            "approvalrules.rate_limit_per_minute": "3",
            "approvalrules.redis_url": "redis://127.0.0.1:1/0",  # nothing listens there
        },
    )
    client = _client(app, world.keys["storefront"])
    with caplog.at_level(logging.WARNING, logger="approvalrules.views.limits"):
        statuses = [_evaluate(client).status_int for _ in range(4)]
    assert statuses == [200, 200, 200, 429]  # never a 500; counted in the process meanwhile
    assert any("counting per process" in r.getMessage() for r in caplog.records)
