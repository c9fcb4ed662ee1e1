"""Bounded work on the API's rule-set paths (issue 15, defects 1 and 3).

* a draft that fails the loader's guards is refused when saved (422, 413 over the cap),
  and a draft with other problems is kept and lists them;
* publishing a 400 KB ``steps: [1, 1, ...]`` answers 422 with at most 100 problems and a
  last "... and more" (it took 8.3 s and a 28 MB body of 199,991 problems).
"""

from __future__ import annotations

BOMB = (
    "ruleset: bomb\n"
    'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    + "".join(f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]\n" for n in range(1, 9))
)


def put_draft(api, name, text, status):
    return api.put(
        f"/api/v1/rulesets/{name}/draft",
        text.encode(),
        content_type="application/yaml",
        status=status,
    )


def test_an_alias_bomb_draft_is_refused_and_nothing_is_kept(api):
    error = put_draft(api, "bomb", BOMB, 422).json["error"]
    assert error["code"] == "too_many_nodes" and error["details"]["problems"][0]["line"]
    api.get("/api/v1/rulesets/bomb", status=404)


def test_a_draft_too_deep_is_refused(api):
    text = "ruleset: deep\ndescription: " + "[" * 40 + "]" * 40 + "\n"
    assert put_draft(api, "deep", text, 422).json["error"]["code"] == "too_deep"


def test_a_draft_with_other_problems_is_kept_and_lists_them(api):
    body = put_draft(api, "half-done", "ruleset: half-done\nroles: 3\n", 200).json
    assert body["draft"] is True
    assert [p["path"] for p in body["problems"]] == ["roles"]
    assert api.get("/api/v1/rulesets/half-done").json["draft"] == "ruleset: half-done\nroles: 3\n"


def test_publishing_a_huge_problem_list_is_capped(api):
    text = "ruleset: hostile\napproval:\n  steps: [" + ",".join(["1"] * 199_990) + "]\n"
    response = api.post(
        "/api/v1/rulesets/hostile/publish",
        text.encode(),
        content_type="application/yaml",
        status=422,
    )
    problems = response.json["error"]["details"]["problems"]
    assert len(problems) == 101 and problems[-1]["code"] == "too_many_problems"
    assert len(response.body) < 100_000
