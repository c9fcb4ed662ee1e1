"""The delegations page.

List, save (create or change dates), revoke; roles, CSRF, tenants, audit.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, true

from approvalrules.errors import DirectoryError
from approvalrules.store.directory import SqlDirectory
from approvalrules.store.models import Account, AuditEvent, Delegation, Tenant
from approvalrules.store.services import DirectoryService
from approvalrules.views.admin.delegations import today

from .conftest import csrf, login

URL = "/admin/directory/delegations"

#: the delegations of rules/directories/beyond.yaml, loaded into tenant demo
SEEDED = [
    ("jon", "lea", None, None, date(2026, 1, 10), date(2026, 1, 20)),
    ("lea", "ned", "beyond", None, date(2026, 1, 12), date(2026, 1, 16)),
    ("jon", "uwe", None, None, date(2026, 1, 10), date(2026, 1, 20)),
    ("maxine", "nia", None, "dual-control", date(2026, 1, 1), date(2026, 12, 24)),
]


def demo(db) -> Tenant:
    return db.scalar(select(Tenant).where(Tenant.slug == "demo"))


def delegation_rows(db) -> list[tuple]:
    """Every delegation of tenant demo, sorted.

    As (delegator, delegate, company, step, from, until).
    """
    db.expire_all()
    rows = SqlDirectory(db, demo(db).id)._delegations(true())
    return sorted(
        (
            (d.delegator_id, d.delegate_id, d.company_id, d.step, d.valid_from, d.valid_until)
            for d in rows
        ),
        key=lambda row: tuple("" if v is None else str(v) for v in row),
    )


def audit_actions(db, actor: str = "admin:olive") -> list[tuple[str, str, dict]]:
    db.expire_all()
    return [
        (e.action, e.subject_id, e.data)
        for e in db.scalars(
            select(AuditEvent)
            .where(AuditEvent.actor == actor, AuditEvent.action.like("delegation.%"))
            .order_by(AuditEvent.id)
        )
    ]


def directory_version(db) -> int:
    db.expire_all()
    return demo(db).directory_version or 0


def table_rows(page) -> list[list[str]]:
    """The cells' text of the delegations table, one list per row (without the actions cell)."""
    body = page.html.find("table", id="delegations").find("tbody")
    return [
        [td.get_text(" ", strip=True) for td in tr.find_all("td")][:7] for tr in body.find_all("tr")
    ]


def fill(app, delegator, delegate, valid_from, valid_until, company="", step="", url=URL):
    """The delegation form of ``url``, filled in (dates as ISO text or date objects)."""
    form = app.get(url).forms["delegation-form"]
    form["delegator"], form["delegate"], form["company"], form["step"] = (
        delegator,
        delegate,
        company,
        step,
    )
    # deform's date widget posts each date as a mapping holding one field named "date"
    form.set("date", str(valid_from), index=0)
    form.set("date", str(valid_until), index=1)
    return form


def save(app, *args, status=303, **kw):
    return fill(app, *args, **kw).submit("save", status=status)


def delegation_id(db, delegator: str, delegate: str) -> int:
    """The id of tenant demo's one delegation from ``delegator`` to ``delegate``."""
    db.expire_all()
    found = db.scalars(
        select(Delegation.id).where(
            Delegation.tenant_id == demo(db).id,
            Delegation.delegator.has(Account.external_id == delegator),
            Delegation.delegate.has(Account.external_id == delegate),
        )
    ).all()
    assert len(found) == 1, found
    return found[0]


# -- the list ---------------------------------------------------------------------------------


def test_the_list_shows_the_seeded_delegations_with_their_state(viewer):
    page = viewer.get(URL)
    day = today()

    def state(start, end):
        return "upcoming" if day < start else "expired" if day > end else "active"

    expected = sorted(
        [a, b, c or "all", s or "all", start.isoformat(), end.isoformat(), state(start, end)]
        for a, b, c, s, start, end in SEEDED
    )
    assert sorted(table_rows(page)) == expected
    assert "4 found" in page.text
    # linked from the directory's tabs, next to the other directory pages
    assert (
        f'href="http://localhost{URL}">Delegations</a>'
        in viewer.get("/admin/directory/assignments").text
    )


def test_the_states_follow_today_and_filter_the_list(owner):
    day = today()
    save(owner, "ann", "cid", day - timedelta(days=3), day + timedelta(days=3))
    save(owner, "bob", "dee", day + timedelta(days=1), day + timedelta(days=9))
    save(owner, "eve", "gus", day - timedelta(days=9), day - timedelta(days=1))
    save(owner, "val", "ann", day, day)  # one day, today: active
    states = {(r[0], r[1]): r[6] for r in table_rows(owner.get(URL))}
    assert states[("ann", "cid")] == "active" and states[("val", "ann")] == "active"
    assert states[("bob", "dee")] == "upcoming"
    assert states[("eve", "gus")] == "expired"
    assert {(r[0], r[1]) for r in table_rows(owner.get(URL + "?state=upcoming"))} >= {
        ("bob", "dee")
    }
    assert all(r[6] == "upcoming" for r in table_rows(owner.get(URL + "?state=upcoming")))
    assert all(r[6] == "active" for r in table_rows(owner.get(URL + "?state=active")))
    assert ("eve", "gus") in {(r[0], r[1]) for r in table_rows(owner.get(URL + "?state=expired"))}
    # the search matches delegator, delegate, company or step
    assert [(r[0], r[1]) for r in table_rows(owner.get(URL + "?q=dual-control"))] == [
        ("maxine", "nia")
    ]
    assert {(r[0], r[1]) for r in table_rows(owner.get(URL + "?q=ann"))} == {
        ("ann", "cid"),
        ("val", "ann"),
    }


def test_a_viewer_reads_the_list_without_the_form_or_revoke_buttons(viewer):
    page = viewer.get(URL)
    assert "jon" in page.text
    assert "delegation-form" not in page.forms and "Revoke" not in page.text
    assert "Only owners and editors change delegations." in page.text


# -- saving -----------------------------------------------------------------------------------


def test_create_appears_in_the_list_the_directory_and_the_audit_log(owner, db):
    before = directory_version(db)
    response = save(owner, "ann", "cid", "2031-03-01", "2031-03-15", company="acme", step="manager")
    assert response.location.endswith(URL)
    page = response.follow()
    assert (
        "Delegation ann \u2192 cid in acme for step manager saved: 2031-03-01 to 2031-03-15."
        in page.text
    )
    assert ["ann", "cid", "acme", "manager", "2031-03-01", "2031-03-15", "upcoming"] in table_rows(
        page
    )
    # the directory the engine reads has it, and its version moved on (cached snapshots retire)
    found = SqlDirectory(db, demo(db).id).delegations_of("ann")
    assert [(d.delegate_id, d.company_id, d.step, d.valid_from, d.valid_until) for d in found] == [
        ("cid", "acme", "manager", date(2031, 3, 1), date(2031, 3, 15))
    ]
    assert directory_version(db) == before + 1
    assert audit_actions(db) == [
        (
            "delegation.saved",
            "ann->cid",
            {
                "valid_from": "2031-03-01",
                "valid_until": "2031-03-15",
                "company": "acme",
                "step": "manager",
            },
        )
    ]
    audit_page = owner.get("/admin/audit?action=delegation")
    assert (
        "delegation.saved" in audit_page.text
        and "admin:olive" in audit_page.text
        and "ann-&gt;cid" in audit_page.text
    )


def test_an_editor_may_save_too(editor, db):
    save(
        editor, " ann ", "cid ", "2031-03-01", "2031-03-02"
    )  # blanks around ids are not part of them
    assert ("ann", "cid", None, None, date(2031, 3, 1), date(2031, 3, 2)) in delegation_rows(db)
    assert [a[0] for a in audit_actions(db, "admin:eddie")] == ["delegation.saved"]


def test_saving_the_same_key_changes_the_dates_of_that_one_delegation(owner, db):
    save(owner, "ann", "cid", "2031-03-01", "2031-03-15")
    page = owner.get(f"{URL}?edit={delegation_id(db, 'ann', 'cid')}")
    form = page.forms["delegation-form"]
    # the form comes filled in with the delegation
    assert (
        form["delegator"].value,
        form["delegate"].value,
        form["company"].value,
        form["step"].value,
    ) == ("ann", "cid", "", "")
    assert [f.value for f in form.fields["date"]] == ["2031-03-01", "2031-03-15"]
    assert "Change the delegation ann to cid" in page.text
    form.set("date", "2031-04-20", index=1)
    assert "saved: 2031-03-01 to 2031-04-20" in form.submit("save", status=303).follow().text
    assert [r for r in delegation_rows(db) if r[:2] == ("ann", "cid")] == [
        ("ann", "cid", None, None, date(2031, 3, 1), date(2031, 4, 20))
    ]
    # the same again changes nothing and writes nothing
    version = directory_version(db)
    assert (
        "already had these dates: nothing changed"
        in save(owner, "ann", "cid", "2031-03-01", "2031-04-20").follow().text
    )
    assert directory_version(db) == version
    assert [a[0] for a in audit_actions(db)] == ["delegation.saved", "delegation.saved"]
    # another company is another delegation
    save(owner, "ann", "cid", "2031-05-01", "2031-05-02", company="acme")
    assert len([r for r in delegation_rows(db) if r[:2] == ("ann", "cid")]) == 2


@pytest.mark.parametrize(
    "fields, field, message",
    [
        (("nobody", "cid", "2031-03-01", "2031-03-02"), "delegator", "no account 'nobody'"),
        (("ann", "nobody", "2031-03-01", "2031-03-02"), "delegate", "no account 'nobody'"),
        (("ann", "ann", "2031-03-01", "2031-03-02"), "delegate", "'ann' cannot delegate to itself"),
        (
            ("ann", "cid", "2031-03-02", "2031-03-01"),
            "valid_until",
            "valid_until 2031-03-01 is before valid_from 2031-03-02",
        ),
        # jon delegates to lea in rules/directories/beyond.yaml
        (
            ("lea", "jon", "2031-03-01", "2031-03-02"),
            "delegate",
            "delegations form a loop: jon -&gt; lea -&gt; jon",
        ),
        (("ann", "cid", "2031-03-01", "2031-03-02", "nowhere"), "company", "no company 'nowhere'"),
        (("ann", "cid", "soon", "2031-03-02"), "valid_from", "Invalid date"),
        (("", "cid", "2031-03-01", "2031-03-02"), "delegator", "Required"),
        (("ann", "cid", "2031-03-01", ""), "valid_until", "Required"),
        (
            ("ann", "cid", "2031-03-01", "2031-03-02", "", "x" * 201),
            "step",
            "Longer than maximum length 200",
        ),
    ],
)
def test_bad_input_is_shown_on_its_field_and_nothing_is_saved(owner, db, fields, field, message):
    before, version = delegation_rows(db), directory_version(db)
    page = save(owner, *fields, status=422)
    assert "Nothing was saved" in page.text or "nothing was saved" in page.text
    # the message sits on the field it is about (deform's error block of that field)
    item = page.html.find(class_=f"item-{field}")
    assert message in str(item), str(item)[:600]
    # what was typed is kept, so it can be corrected
    assert page.forms["delegation-form"]["delegate"].value == fields[1].strip()
    assert delegation_rows(db) == before
    assert directory_version(db) == version
    assert audit_actions(db) == []


def test_both_unknown_accounts_are_reported_at_once(owner):
    page = save(owner, "nobody", "no-one", "2031-03-01", "2031-03-02", status=422)
    assert "no account 'nobody'" in str(page.html.find(class_="item-delegator"))
    assert "no account 'no-one'" in str(page.html.find(class_="item-delegate"))


def test_the_errors_show_on_the_page_summary_too(owner):
    page = save(owner, "ann", "ann", "2031-03-01", "2031-03-02", status=422)
    assert (
        page.html.find(id="delegation-error").get_text(strip=True)
        == "Nothing was saved: 'ann' cannot delegate to itself"
    )


# -- revoking ---------------------------------------------------------------------------------


def test_revoke_deletes_the_delegation_and_is_audited(owner, db):
    ident = delegation_id(db, "jon", "uwe")
    version = directory_version(db)
    page = owner.get(URL)
    revoke = next(
        f for f in page.forms.values() if f.action.endswith(f"/delegations/{ident}/revoke")
    )
    response = revoke.submit(status=303)
    page = response.follow()
    assert "Delegation jon \u2192 uwe revoked." in page.text
    assert ("jon", "uwe") not in {(r[0], r[1]) for r in table_rows(page)}
    assert [d.delegate_id for d in SqlDirectory(db, demo(db).id).delegations_of("jon")] == ["lea"]
    assert directory_version(db) == version + 1
    assert audit_actions(db) == [
        (
            "delegation.deleted",
            "jon->uwe",
            {
                "valid_from": "2026-01-10",
                "valid_until": "2026-01-20",
                "company": None,
                "step": None,
            },
        )
    ]
    assert "delegation.deleted" in owner.get("/admin/audit?action=delegation").text
    # gone: revoking it again finds nothing
    owner.post(f"{URL}/{ident}/revoke", {"csrf_token": csrf(owner)}, status=404)


def test_revoke_of_a_company_and_step_delegation_removes_that_one_only(owner, db):
    save(owner, "ann", "cid", "2031-03-01", "2031-03-15")
    save(owner, "ann", "cid", "2031-03-01", "2031-03-15", company="acme", step="manager")
    scoped = next(
        d.id
        for d in db.scalars(
            select(Delegation).where(
                Delegation.tenant_id == demo(db).id, Delegation.step == "manager"
            )
        )
    )
    owner.post(f"{URL}/{scoped}/revoke", {"csrf_token": csrf(owner)}, status=303)
    assert [r for r in delegation_rows(db) if r[:2] == ("ann", "cid")] == [
        ("ann", "cid", None, None, date(2031, 3, 1), date(2031, 3, 15))
    ]


def test_the_service_refuses_to_delete_what_does_not_exist(db):
    directory = DirectoryService(db, "demo")
    with pytest.raises(DirectoryError) as caught:
        directory.delete_delegation("jon", "lea", company="beyond")
    assert caught.value.code == "unknown_delegation"
    db.rollback()


# -- roles, CSRF, tenants ---------------------------------------------------------------------


def test_a_viewer_may_not_save_or_revoke(viewer, db):
    token = csrf(viewer)
    before = delegation_rows(db)
    data = {"csrf_token": token, "delegator": "ann", "delegate": "cid", "save": "save"}
    assert "viewer" in viewer.post(URL, data, status=403).text
    viewer.post(
        f"{URL}/{delegation_id(db, 'jon', 'lea')}/revoke", {"csrf_token": token}, status=403
    )
    assert delegation_rows(db) == before


def test_saving_and_revoking_need_the_csrf_token(owner, db):
    form = fill(owner, "ann", "cid", "2031-03-01", "2031-03-02")
    form["csrf_token"] = ""
    assert "Form expired" in form.submit("save", status=400).text
    form["csrf_token"] = "not-the-token"
    form.submit("save", status=400)
    ident = delegation_id(db, "jon", "lea")
    assert "Form expired" in owner.post(f"{URL}/{ident}/revoke", {}, status=400).text
    owner.post(f"{URL}/{ident}/revoke", {"csrf_token": "not-the-token"}, status=400)
    assert len(delegation_rows(db)) == len(SEEDED)
    assert audit_actions(db) == []


def test_another_tenant_never_sees_or_touches_these_delegations(app, db):
    ident = delegation_id(db, "jon", "lea")
    other = login(app, "other")
    page = other.get(URL)
    assert table_rows(page) == [] and "0 found" in page.text
    for name in ("jon", "lea", "maxine", "beyond"):
        assert name not in page.html.find("table", id="delegations").get_text()
    other.get(f"{URL}?edit={ident}", status=404)
    other.post(f"{URL}/{ident}/revoke", {"csrf_token": csrf(other)}, status=404)
    # the demo tenant's accounts do not exist for the other tenant
    assert (
        "no account 'ann'" in save(other, "ann", "cid", "2031-03-01", "2031-03-02", status=422).text
    )
    assert len(delegation_rows(db)) == len(SEEDED)
    assert (
        db.scalar(
            select(func.count()).select_from(Delegation).where(Delegation.tenant_id != demo(db).id)
        )
        == 0
    )


@pytest.mark.parametrize("url", [f"{URL}?edit=999999", f"{URL}?edit=abc"])
def test_unknown_ids_are_not_found(owner, url):
    owner.get(url, status=404)
    owner.post(f"{URL}/999999/revoke", {"csrf_token": csrf(owner)}, status=404)
    owner.post(f"{URL}/abc/revoke", {"csrf_token": csrf(owner)}, status=404)


def test_the_form_page_carries_the_csrf_token(owner):
    page = owner.get(URL)
    token = csrf(owner)
    assert page.forms["delegation-form"]["csrf_token"].value == token
    assert all(
        f["csrf_token"].value == token
        for f in page.forms.values()
        if re.search(r"/revoke$", f.action or "")
    )
