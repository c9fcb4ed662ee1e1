"""Delegation through the API.

Out of office, who acted for whom, loops, no self-approval.
"""

from __future__ import annotations

from datetime import date, timedelta

from .test_acceptance_a import approve, submit


def _delegate(api, delegator, delegate, start, end, status=200):
    return api.put_json(
        "/api/v1/directory/delegations",
        {
            "delegator": delegator,
            "delegate": delegate,
            "valid_from": start.isoformat(),
            "valid_until": end.isoformat(),
        },
        status=status,
    )


def test_out_of_office_delegate_approves_and_the_action_says_for_whom(api, order_id):
    today = date.today()
    _delegate(api, "tom", "sid", today - timedelta(days=1), today + timedelta(days=1))
    try:
        request = submit(api, order_id("dlg"), "sam", 3000).json["approval"]
        detail = api.get(f"/api/v1/approvals/{request['id']}").json
        sid = next(a for a in detail["steps"][0]["approvers"] if a["account"] == "sid")
        assert sid["delegate_of"] == ["tom"]
        assert sid["why"] == [f"delegate of tom until {(today + timedelta(days=1)).isoformat()}"]
        assert approve(api, request["id"], "sid").json["status"] == "approved"
        history = api.get(f"/api/v1/approvals/{request['id']}").json["history"]
        assert [(h["action"], h["by"], h["for"]) for h in history] == [("approve", "sid", "tom")]
        # a loop is refused, naming it
        loop = _delegate(api, "sid", "tom", today, today, status=409).json["error"]
        assert loop["code"] == "delegation_loop"
        assert "tom -> sid -> tom" in loop["message"] or "sid -> tom -> sid" in loop["message"]
    finally:
        _delegate(
            api, "tom", "sid", date(2000, 1, 1), date(2000, 1, 1)
        )  # over: later tests see no delegate


def test_a_delegation_never_makes_the_buyer_its_own_approver(api, order_id):
    today = date.today()
    _delegate(api, "tom", "sam", today, today + timedelta(days=2))
    try:
        request = submit(api, order_id("dlg-self"), "sam", 2500).json["approval"]
        assert "sam" not in request["steps"][0]["approvers"]
        approve(api, request["id"], "sam", status=403)
    finally:
        _delegate(api, "tom", "sam", date(2000, 1, 1), date(2000, 1, 1))


def test_expired_delegation_gives_no_power(api, order_id):
    _delegate(api, "tia", "sid", date(2020, 1, 1), date(2020, 12, 31))
    request = submit(api, order_id("dlg-old"), "sam", 2500).json["approval"]
    assert "sid" not in request["steps"][0]["approvers"]
    bad = api.put_json(
        "/api/v1/directory/delegations",
        {"delegator": "tia", "delegate": "sid", "valid_from": "soon", "valid_until": "2020-01-01"},
        status=422,
    ).json["error"]
    assert bad["code"] == "invalid_date"


def test_a_revoked_delegation_gives_no_power_to_what_is_submitted_next(api, order_id):
    today = date.today()
    _delegate(api, "tom", "sid", today - timedelta(days=1), today + timedelta(days=1))
    before = submit(api, order_id("dlg-rev"), "sam", 3000).json["approval"]
    assert "sid" in before["steps"][0]["approvers"]
    assert api.delete("/api/v1/directory/delegations?delegator=tom&delegate=sid").json == {
        "status": "ok"
    }
    after = submit(api, order_id("dlg-rev"), "sam", 3000).json["approval"]
    assert "sid" not in after["steps"][0]["approvers"]
    # the request submitted while the delegation held keeps its approvers
    assert approve(api, before["id"], "sid").json["status"] == "approved"
    gone = api.delete("/api/v1/directory/delegations?delegator=tom&delegate=sid", status=409).json[
        "error"
    ]
    assert gone["code"] == "unknown_delegation"
    missing = api.delete("/api/v1/directory/delegations?delegator=tom", status=422).json["error"]
    assert missing["code"] == "missing_parameter" and "delegate=" in missing["message"]
