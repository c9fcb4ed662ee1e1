"""Draft and publish under one lock (issue 15, defect 4), on PostgreSQL.

PUT draft v1, then publish and PUT draft v2 at once: v2 must end up as the draft or as
the published version, never lost.  Before the fix, ``publish`` read the draft before it
took the row lock and then cleared whatever draft there was: 4 runs in 10 lost v2.
"""

from __future__ import annotations

import threading

import pytest
import webtest

RULES = """\
ruleset: race-drafts
description: run {run} {which}
approval:
  steps:
    - name: everything
      approvers: {{any_of: [{{role: boss}}]}}
roles:
  boss: {{label: Boss, permissions: [place_orders, approve_orders]}}
"""

RUNS = 100


@pytest.fixture
def postgres_world(world):
    if world.engine.dialect.name != "postgresql":
        pytest.skip("the race is proven on PostgreSQL (SQLite serialises writers)")
    return world


def _client(world) -> webtest.TestApp:
    return webtest.TestApp(
        world.app, extra_environ={"HTTP_AUTHORIZATION": f"Bearer {world.keys['demo']}"}
    )


def _race(world, first, second) -> list:
    """Run ``first(app)`` and ``second(app)`` in two threads released together."""
    barrier = threading.Barrier(2)
    results: list = [None, None]

    def run(index, action):
        app = _client(world)
        barrier.wait()
        results[index] = action(app)

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def _lost_drafts(world, runs: int) -> list[int]:
    api = _client(world)
    lost = []
    for run in range(runs):
        v1, v2 = RULES.format(run=run, which="v1"), RULES.format(run=run, which="v2")
        api.put("/api/v1/rulesets/race-drafts/draft", v1.encode(), content_type="application/yaml")
        published, saved = _race(
            world,
            lambda app: app.post("/api/v1/rulesets/race-drafts/publish", status="*"),
            lambda app, v2=v2: app.put(
                "/api/v1/rulesets/race-drafts/draft",
                v2.encode(),
                content_type="application/yaml",
                status="*",
            ),
        )
        assert published.status_int == 201, published.text
        assert saved.status_int == 200, saved.text
        state = api.get("/api/v1/rulesets/race-drafts").json
        if state["draft"] != v2 and state["text"] != v2:
            lost.append(run)
    return lost


def test_a_draft_saved_while_publishing_is_never_lost(postgres_world):
    assert _lost_drafts(postgres_world, RUNS) == []


@pytest.mark.slow
def test_a_draft_saved_while_publishing_is_never_lost_long_run(postgres_world):
    assert _lost_drafts(postgres_world, 1_000) == []
