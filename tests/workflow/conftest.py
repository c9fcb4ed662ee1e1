"""Fixtures of the workflow's unit tests: the workflow called directly, below HTTP.

The database fixtures are the store's (``db_url``, ``db_engine``, ``session``,
``tenant``: a migrated SQLite database per test session, PostgreSQL too when
configured, and one transaction rolled back after each test).  ``shop`` adds a
small directory and the rule set ``shop`` to the tenant: orders over 500 need
one approval by a manager, and a request expires after seven days.

Every test builds the same directory: the per-process directory snapshot is
keyed by tenant and directory version, which repeat once a test's transaction
is rolled back.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from approvalrules.store import versions
from approvalrules.store.directory_service import DirectoryService


def _store_fixtures():
    # tests/store is no package, so its conftest has no import name: load it by path
    # and take its fixtures rather than copying them
    path = Path(__file__).resolve().parents[1] / "store" / "conftest.py"
    spec = importlib.util.spec_from_file_location("tests_store_conftest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_store = _store_fixtures()
db_url = _store.db_url
db_engine = _store.db_engine
session = _store.session
tenant = _store.tenant

SHOP = """\
ruleset: shop
description: The workflow's unit tests.
roles:
  buyer:   {label: Buyer,   permissions: [place_orders]}
  manager: {label: Manager, permissions: [place_orders, approve_orders]}
approval:
  expiry: {after: P7D, then: cancel}
  steps:
    - name: manager
      when: {total: {gt: 500}}
      approvers: {any_of: [{role: manager}]}
tests:
  - name: 800 needs the manager
    order: {buyer: bea, total: 800}
    expect: {outcome: pending, steps: [{name: manager, required: 1, approvers: [max]}]}
  - name: 300 needs nobody
    order: {buyer: bea, total: 300}
    expect: {outcome: approved, steps: []}
"""


ESCALATING = """\
ruleset: escalating
description: The manager's step escalates to the directors after an hour.
roles:
  buyer:    {label: Buyer,    permissions: [place_orders]}
  manager:  {label: Manager,  permissions: [place_orders, approve_orders]}
  director: {label: Director, permissions: [place_orders, approve_orders]}
approval:
  steps:
    - name: manager
      when: {total: {gt: 500}}
      approvers: {any_of: [{role: manager}]}
      escalate_after: PT1H
      escalate_to: {role: director}
"""


GROUPED = """\
ruleset: grouped
description: Group orders over 500 need the manager; masters hear of every approved one.
roles:
  buyer:   {label: Buyer,   permissions: [place_orders]}
  manager: {label: Manager, permissions: [place_orders, approve_orders]}
  admin:   {label: Admin,   permissions: [view_group_orders]}
groups:
  team: {label: Team}
approval:
  steps:
    - name: manager
      when: {total: {gt: 500}}
      approvers: {any_of: [{role: manager}]}
notifications:
  master_confirmation: true
"""


@pytest.fixture
def shop(session, tenant):
    """The tenant with company ``shop-co`` (rule set ``shop``): buyers Bea and Olga, manager Max;
    and company ``esc-co`` (rule set ``escalating``): buyer Ed, manager Max, directors Dirk and
    Dora (whose membership turns e-mail off); and company ``grp-co`` (rule set ``grouped``):
    Gus in group ``team``, manager Max, masters Mo and Mara (e-mail off)."""
    # rule sets first: the directory refuses a company's unpublished rule set or undefined role
    versions.publish(session, tenant.id, "shop", "tests", text=SHOP)
    versions.publish(session, tenant.id, "escalating", "tests", text=ESCALATING)
    versions.publish(session, tenant.id, "grouped", "tests", text=GROUPED)
    directory = DirectoryService(session, tenant, actor="tests")
    directory.upsert_company("shop-co", name="Shop Co", ruleset="shop")
    directory.upsert_company("esc-co", name="Escalating Co", ruleset="escalating")
    directory.upsert_company("grp-co", name="Grouped Co", ruleset="grouped")
    directory.upsert_group("grp-co", "team", name="Team")
    for account, name in (
        ("bea", "Bea Buyer"),
        ("olga", "Olga Other"),
        ("max", "Max Manager"),
        ("ed", "Ed Buyer"),
        ("dirk", "Dirk Director"),
        ("dora", "Dora Director"),
        ("gus", "Gus Member"),
        ("mo", "Mo Master"),
        ("mara", "Mara Master"),
    ):
        directory.upsert_account(account, name=name, email=f"{account}@shop.test")
    for account, company, role, settings in (
        ("bea", "shop-co", "buyer", {}),
        ("olga", "shop-co", "buyer", {}),
        ("max", "shop-co", "manager", {}),
        ("ed", "esc-co", "buyer", {}),
        ("max", "esc-co", "manager", {}),
        ("dirk", "esc-co", "director", {}),
        ("dora", "esc-co", "director", {"email": False}),
    ):
        directory.upsert_membership(account, company, role=role, settings=settings)
    directory.upsert_membership("gus", "grp-co", role="buyer", group="team")
    directory.upsert_membership("max", "grp-co", role="manager")
    directory.upsert_membership("mo", "grp-co", role="admin", master=True)
    directory.upsert_membership(
        "mara", "grp-co", role="admin", master=True, settings={"email": False}
    )
    session.flush()
    return tenant
