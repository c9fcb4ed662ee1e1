"""Publishing over the API runs the rule set's own tests, as the admin does: a failing test
answers 422 ``tests_failed``, lists the failing tests, and publishes nothing."""

from __future__ import annotations


def versions_of(api, name: str) -> list[int]:
    return [v["number"] for v in api.get(f"/api/v1/rulesets/{name}/versions").json["versions"]]


def test_a_failing_embedded_test_answers_422_and_publishes_nothing(api):
    before = api.get("/api/v1/rulesets/globex").json
    numbers = versions_of(api, "globex")
    # a higher purchasing limit: the tests expecting 12000 to need approval now fail
    raised = before["text"].replace("order_limit: {amount: 10000", "order_limit: {amount: 20000")
    error = api.post(
        "/api/v1/rulesets/globex/publish",
        raised.encode(),
        content_type="application/yaml",
        status=422,
    ).json["error"]
    assert error["code"] == "tests_failed"
    failing = error["details"]["tests"]
    assert [t["name"] for t in failing] == [
        "D1: buyer Ben orders 12000 -> past the purchasing limit: pending, the approval group",
        "D1: Bruno (in the approval group) orders 12000 -> only Gia, never himself",
        "D2: requester past the budget too -> still one request to the approval group",
        "D4: Globex Labs: buyer Leon 12000 -> pending, the purchasing limit is inherited",
    ]
    assert all(t["line"] and t["failures"] for t in failing)
    assert error["message"] == "4 of 15 tests of rule set 'globex' fail; nothing was published"
    after = api.get("/api/v1/rulesets/globex").json
    assert after["active"] == before["active"] and versions_of(api, "globex") == numbers


def test_a_draft_whose_tests_fail_is_not_published_and_stays_a_draft(api):
    before = api.get("/api/v1/rulesets/globex").json
    raised = before["text"].replace("order_limit: {amount: 10000", "order_limit: {amount: 20000")
    api.put("/api/v1/rulesets/globex/draft", raised.encode(), content_type="application/yaml")
    try:
        error = api.post("/api/v1/rulesets/globex/publish", status=422).json["error"]
        assert error["code"] == "tests_failed"
        after = api.get("/api/v1/rulesets/globex").json
        assert after["active"] == before["active"] and after["draft"] == raised
    finally:
        api.put(
            "/api/v1/rulesets/globex/draft",
            before["text"].encode(),
            content_type="application/yaml",
        )
        api.post("/api/v1/rulesets/globex/publish", status=201)  # the same text: clears the draft
    assert api.get("/api/v1/rulesets/globex").json["draft"] is None
