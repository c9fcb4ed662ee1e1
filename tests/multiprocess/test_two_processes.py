"""Shared rate limits and cache invalidation, proven on two real processes (A and B).

Each change is made on A; B must see it within a second (polled with a deadline, with a
generous margin only in how often we ask).  B is warmed first, so it has the key, the
tenant's rule set and directory in its per-process caches when the change comes.
"""

from __future__ import annotations

import re
import time

import pytest
import requests

from .conftest import DEV_KEY

# two pserve processes on one PostgreSQL database (CI's PostgreSQL run keeps them)
pytestmark = pytest.mark.postgres

#: how long B may take to see a change made on A (seconds)
DEADLINE = 1.0
TIMEOUT = 10  # seconds per HTTP request
ORDER = {"buyer": "bob", "total": 800}


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def until(deadline: float, check) -> tuple[bool, float]:
    """Ask ``check()`` until it is true or ``deadline`` seconds passed; (held, seconds taken)."""
    start = time.monotonic()
    while True:
        if check():
            return True, time.monotonic() - start
        if time.monotonic() - start > deadline:
            return False, time.monotonic() - start
        time.sleep(0.02)


def evaluate(server, order: dict = ORDER) -> dict:
    answer = requests.post(
        f"{server.url}/api/v1/evaluate?trace=0",
        json=order,
        headers=bearer(DEV_KEY),
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def step_names(decision: dict) -> list[str]:
    return [step["name"] for step in decision.get("steps", [])]


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def admin_login(server) -> requests.Session:
    browser = requests.Session()
    page = browser.get(f"{server.url}/admin/login", timeout=TIMEOUT).text
    answer = browser.post(
        f"{server.url}/admin/login",
        data={
            "tenant": "demo",
            "login": "admin",
            "password": "admin-password",
            "csrf_token": csrf_of(page),
        },
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert answer.status_code == 303, answer.text[:500]
    return browser


def create_key(server, browser: requests.Session, name: str, rate: str = "") -> str:
    page = browser.get(f"{server.url}/admin/keys", timeout=TIMEOUT).text
    answer = browser.post(
        f"{server.url}/admin/keys",
        data={
            "csrf_token": csrf_of(page),
            "action": "create",
            "name": name,
            "scope": "storefront",
            "rate": rate,
        },
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200, answer.text[:500]
    return re.search(r'id="secret"[^>]*value="([^"]+)"', answer.text).group(1)


def test_a_key_s_rate_is_shared_by_both_processes(pair):
    if pair.redis_url is None:
        pytest.skip("Redis not reachable: set APPROVALRULES_TEST_REDIS_URL (shared rate limits)")
    browser = admin_login(pair.a)
    key = create_key(pair.a, browser, "limited shop", rate="20")
    statuses = [
        requests.get(
            f"{(pair.a if i % 2 else pair.b).url}/api/v1/key", headers=bearer(key), timeout=TIMEOUT
        ).status_code
        for i in range(25)
    ]
    assert statuses.count(200) == 20 and statuses.count(429) == 5, statuses
    refused = requests.get(f"{pair.a.url}/api/v1/key", headers=bearer(key), timeout=TIMEOUT)
    assert "more than 20 requests a minute" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_a_key_revoked_on_a_is_refused_on_b_within_a_second(pair):
    browser = admin_login(pair.a)
    key = create_key(pair.a, browser, "to revoke")
    prefix = key.split("_")[1]
    for _ in range(3):  # B verifies it, then serves it from its key cache
        assert requests.get(f"{pair.b.url}/api/v1/key", headers=bearer(key), timeout=TIMEOUT).ok
    page = browser.get(f"{pair.a.url}/admin/keys", timeout=TIMEOUT).text
    browser.post(
        f"{pair.a.url}/admin/keys",
        data={"csrf_token": csrf_of(page), "action": "revoke", "key": prefix},
        timeout=TIMEOUT,
    ).raise_for_status()
    refused, took = until(
        DEADLINE,
        lambda: (
            requests.get(
                f"{pair.b.url}/api/v1/key", headers=bearer(key), timeout=TIMEOUT
            ).status_code
            == 401
        ),
    )
    assert refused, f"B still accepted the revoked key after {took:.2f} s"


def test_a_publish_on_a_changes_b_s_decision_within_a_second(pair):
    headers = bearer(DEV_KEY)
    ruleset = requests.get(f"{pair.a.url}/api/v1/rulesets/acme", headers=headers, timeout=TIMEOUT)
    text, number = ruleset.json()["text"], ruleset.json()["active"]["number"]
    order = {"buyer": "bob", "total": 600}
    for _ in range(3):
        before = evaluate(pair.b, order)
    assert before["outcome"] == "pending"
    # over 700, not 500: the rule set's own tests (Bob's 800 is pending) still pass
    higher = text.replace("total: {gt: 500}", "total: {gt: 700}")
    assert higher != text
    try:
        published = requests.post(
            f"{pair.a.url}/api/v1/rulesets/acme/publish",
            data=higher.encode(),
            headers={**headers, "Content-Type": "application/yaml"},
            timeout=TIMEOUT,
        )
        assert published.status_code == 201, published.text
        seen, took = until(DEADLINE, lambda: evaluate(pair.b, order)["outcome"] == "approved")
        assert seen, (
            f"B still evaluated with the old version after {took:.2f} s: "
            f"A {evaluate(pair.a, order)}, B {evaluate(pair.b, order)}"
        )
    finally:
        requests.post(
            f"{pair.a.url}/api/v1/rulesets/acme/rollback?to={number}",
            headers=headers,
            timeout=TIMEOUT,
        ).raise_for_status()


def test_a_directory_change_on_a_changes_b_s_decision_within_a_second(pair):
    url = f"{pair.a.url}/api/v1/directory/accounts/bob/memberships/acme"
    headers = bearer(DEV_KEY)
    for _ in range(3):
        before = step_names(evaluate(pair.b))
    assert before == ["marketing"]
    try:
        moved = requests.put(
            url,
            json={"role": "requisitioner", "group": "ops", "move": True},
            headers=headers,
            timeout=TIMEOUT,
        )
        assert moved.status_code == 200, moved.text
        seen, took = until(DEADLINE, lambda: step_names(evaluate(pair.b)) == ["ops"])
        assert seen, f"B still evaluated with the old directory after {took:.2f} s"
    finally:
        requests.put(
            url,
            json={"role": "requisitioner", "group": "marketing", "move": True},
            headers=headers,
            timeout=TIMEOUT,
        ).raise_for_status()


def test_an_admin_logout_on_a_ends_the_same_cookie_on_b_within_a_second(pair):
    browser = admin_login(pair.a)
    cookie = browser.cookies.get("approvalrules_admin")

    def b_page():
        return requests.get(
            f"{pair.b.url}/admin/rulesets",
            cookies={"approvalrules_admin": cookie},
            allow_redirects=False,
            timeout=TIMEOUT,
        )

    assert b_page().status_code == 200  # the same session works on B
    page = browser.get(f"{pair.a.url}/admin/rulesets", timeout=TIMEOUT).text
    browser.post(
        f"{pair.a.url}/admin/logout",
        data={"csrf_token": csrf_of(page)},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    ended, took = until(DEADLINE, lambda: b_page().status_code in (302, 303))
    assert ended, f"B still accepted the logged-out session after {took:.2f} s"
    assert "/admin/login" in b_page().headers["Location"]


def test_a_rate_changed_with_the_cli_reaches_both_processes_within_a_second(pair):
    import subprocess
    import sys
    from pathlib import Path

    browser = admin_login(pair.a)
    key = create_key(pair.a, browser, "cli rate", rate="1000")
    for server in (pair.a, pair.b):  # both verify it and keep it
        for _ in range(2):
            shown = requests.get(f"{server.url}/api/v1/key", headers=bearer(key), timeout=TIMEOUT)
            assert shown.json()["rate_per_minute"] == 1000
    cli = Path(sys.executable).parent / "approvalrules"
    prefix = key.split("_")[1]
    subprocess.run(  # a third process, which imports no web code
        [str(cli), "api-key", str(pair.a.ini), "demo", "--key", prefix, "--rate", "700"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    for server in (pair.a, pair.b):
        seen, took = until(
            DEADLINE,
            lambda server=server: (
                requests.get(
                    f"{server.url}/api/v1/key", headers=bearer(key), timeout=TIMEOUT
                ).json()["rate_per_minute"]
                == 700
            ),
        )
        assert seen, f"{server.port} still applied the old rate after {took:.2f} s"
