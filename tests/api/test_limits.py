"""Request limits of the storefront API.

Body size (413) and rate per API key (429 with Retry-After).
"""

from __future__ import annotations

import webtest

from approvalrules.app import main
from approvalrules.views.limits import RateLimiter


def test_rate_limiter_windows():
    now = [120.0]
    limiter = RateLimiter(3, clock=lambda: now[0])
    assert [limiter.hit("k") for _ in range(3)] == [0, 0, 0]
    assert limiter.hit("k") == 60
    assert limiter.hit("other") == 0
    now[0] = 175.5
    assert limiter.hit("k") == 4
    now[0] = 180.0  # a new minute
    assert limiter.hit("k") == 0


def test_oversized_body_is_refused_before_it_is_read(api):
    body = '{"buyer": "sam", "total": 1, "attributes": {"x": "' + "a" * 1_100_000 + '"}}'
    refused = api.post("/api/v1/evaluate", body, content_type="application/json", status=413).json
    assert refused["error"]["code"] == "body_too_large"


def test_rate_limit_answers_429_with_retry_after(world):
    app = main({}, **{**world.settings, "approvalrules.rate_limit_per_minute": "5"})
    client = webtest.TestApp(
        app, extra_environ={"HTTP_AUTHORIZATION": f"Bearer {world.keys['demo']}"}
    )
    statuses = [
        client.post_json("/api/v1/evaluate", {"buyer": "sam", "total": 10}, status="*").status_int
        for _ in range(7)
    ]
    assert statuses[:5] == [200] * 5
    limited = client.post_json("/api/v1/evaluate", {"buyer": "sam", "total": 10}, status=429)
    assert limited.json["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # another key has its own budget
    other = webtest.TestApp(
        app, extra_environ={"HTTP_AUTHORIZATION": f"Bearer {world.keys['other']}"}
    )
    assert other.get("/api/v1/approvals").status_int == 200
