"""Shared fixtures. Add yours below; keep each fixture small and documented."""

import os
from pathlib import Path

import pytest
import webtest
from pyramid.paster import get_appsettings

from approvalrules.app import main

ROOT = Path(__file__).resolve().parent.parent
TESTING_INI = ROOT / "testing.ini"
DATABASE_ENV = "APPROVALRULES_TEST_DATABASE_URL"


def configured_database_url():
    """The PostgreSQL URL given in APPROVALRULES_TEST_DATABASE_URL, or None."""
    return os.environ.get(DATABASE_ENV) or None


#: fixtures parametrized by database: their ``postgresql`` variant is the PostgreSQL run's work
DATABASE_PARAMETRIZED = ("world", "db_url", "empty_database_url")
#: fixtures that give PostgreSQL when it is configured, SQLite otherwise
DATABASE_FOLLOWING = ("database_url", "postgres_url")


def pytest_addoption(parser):
    parser.addoption(
        "--postgresql-only",
        action="store_true",
        help="run only what PostgreSQL adds: the postgresql variants of the database fixtures, "
        f"tests on {', '.join(DATABASE_FOLLOWING)} and tests marked postgres (CI's second run; "
        "the SQLite run already covered everything else)",
    )


def pytest_collection_modifyitems(config, items):
    if not config.getoption("postgresql_only"):
        return
    kept = [item for item in items if _runs_on_postgresql(item)]
    dropped = [item for item in items if not _runs_on_postgresql(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _runs_on_postgresql(item) -> bool:
    """Whether ``item`` would touch PostgreSQL when it is configured."""
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec else {}
    variants = [params[name] for name in DATABASE_PARAMETRIZED if name in params]
    if variants:
        return "postgresql" in variants
    return item.get_closest_marker("postgres") is not None or any(
        name in item.fixturenames for name in DATABASE_FOLLOWING
    )


@pytest.fixture
def postgres_url():
    """URL of the test PostgreSQL database; skips the test when none is configured."""
    url = configured_database_url()
    if not url:
        pytest.skip(f"PostgreSQL not configured: set {DATABASE_ENV}")
    return url


@pytest.fixture
def database_url(tmp_path):
    """PostgreSQL when configured, else a fresh SQLite file for this test."""
    return configured_database_url() or f"sqlite:///{tmp_path / 'approvalrules.sqlite'}"


@pytest.fixture
def rules_dir(tmp_path):
    """An empty rules folder that the app of this test reads (`approvalrules.rules_dir`)."""
    folder = tmp_path / "rules"
    folder.mkdir()
    return folder


@pytest.fixture
def app_settings(database_url, rules_dir):
    """Settings of testing.ini, pointed at this test's database and rules folder."""
    settings = dict(get_appsettings(str(TESTING_INI), name="main"))
    settings["sqlalchemy.url"] = database_url
    settings["approvalrules.rules_dir"] = str(rules_dir)
    return settings


@pytest.fixture
def app(app_settings):
    return main({}, **app_settings)


@pytest.fixture
def testapp(app):
    return webtest.TestApp(app)


# ---------------------------------------------------------------- the webhook contract

#: (event type, problem) of every outbox event off schemas/webhook.schema.json, per test
WEBHOOK_VIOLATIONS: list[str] = []
#: how many events of each type the suite checked (printed at the end of the run)
WEBHOOK_CHECKED: dict[str, int] = {}


def check_webhook_delivery(body: dict) -> list[str]:
    """The problems of one webhook body against schemas/webhook.schema.json (none: valid)."""
    from approvalrules.engine import validator

    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(body)'}: {error.message}"
        for error in validator("webhook").iter_errors(body)
    ]


def _check_outbox_insert(connection, statement, multiparams, params, options, result) -> None:
    """After every INSERT into the outbox, anywhere in the suite (the unit of work's and Core
    inserts alike, one check per row): the webhook body that the outbox would deliver for it
    must match the published schema."""
    from types import SimpleNamespace

    from sqlalchemy import select

    from approvalrules.store.db import rows_written_together_by
    from approvalrules.store.models import Tenant
    from approvalrules.workflow.outbox import webhook_body

    table = getattr(statement, "table", None)
    # the parameters as executed, the columns' Python defaults (id, created_at) included
    executed = result.context.compiled_parameters
    together = rows_written_together_by(statement, executed[0] if executed else {})
    if together is not None:  # several tables' rows in one statement (store.db)
        rows = [row for table, row in together if table.name == "outbox_events"]
    elif getattr(statement, "is_insert", False) and getattr(table, "name", None) == (
        "outbox_events"
    ):
        rows = executed
    else:
        return
    for row in rows:
        target = SimpleNamespace(
            **{k: row.get(k) for k in ("tenant_id", "event_id", "event_type", "payload")},
            created_at=row.get("created_at"),
        )
        slug = connection.execute(select(Tenant.slug).where(Tenant.id == target.tenant_id)).scalar()
        WEBHOOK_CHECKED[target.event_type] = WEBHOOK_CHECKED.get(target.event_type, 0) + 1
        for problem in check_webhook_delivery(webhook_body(slug, target)):
            WEBHOOK_VIOLATIONS.append(f"{target.event_type}: {problem}")


def _listening_to_every_engine(event_name: str, listener):
    """A session fixture's body: ``listener`` on ``event_name`` of every engine meanwhile."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, event_name, listener)
    yield
    event.remove(Engine, event_name, listener)


def _none_found(violations: list[str], heading: str):
    """An autouse fixture's body: the test errors when it added to ``violations``."""
    violations.clear()
    yield
    found, violations[:] = list(violations), []
    assert not found, heading + "\n" + "\n".join(found[:20])


@pytest.fixture(scope="session", autouse=True)
def _webhook_contract_listener():
    yield from _listening_to_every_engine("after_execute", _check_outbox_insert)


@pytest.fixture(autouse=True)
def webhook_contract(_webhook_contract_listener):
    """Every event a test emits validates against the webhook schema, or the test errors."""
    yield from _none_found(WEBHOOK_VIOLATIONS, "events off schemas/webhook.schema.json:")


# ------------------------------------------------ rows kept by rows_written_together

#: statements that read, changed or deleted rows of a table while a block kept its new rows
KEPT_ROWS_VIOLATIONS: list[str] = []


def _check_kept_tables(connection, cursor, statement, parameters, context, executemany) -> None:
    """Before every statement, anywhere in the suite: none touches a table whose new rows a
    ``rows_written_together`` block still keeps (it would not see them)."""
    import re

    from approvalrules.store.db import tables_kept_by

    for table in tables_kept_by(connection):
        if re.search(rf"\b{table.name}\b", statement):
            KEPT_ROWS_VIOLATIONS.append(f"{' '.join(statement.split())[:200]} ({table.name})")


@pytest.fixture(scope="session", autouse=True)
def _kept_rows_listener():
    yield from _listening_to_every_engine("before_cursor_execute", _check_kept_tables)


@pytest.fixture(autouse=True)
def kept_rows_unread(_kept_rows_listener):
    """No statement of a test reads a table whose rows a block keeps, or the test errors."""
    yield from _none_found(KEPT_ROWS_VIOLATIONS, "statements on tables whose new rows were kept:")


@pytest.fixture
def kept_rows_violations():
    """The list :func:`kept_rows_unread` checks, for tests of the check itself."""
    return KEPT_ROWS_VIOLATIONS


def pytest_terminal_summary(terminalreporter):
    if WEBHOOK_CHECKED:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(WEBHOOK_CHECKED.items()))
        terminalreporter.write_line(f"webhook contract: events checked by type: {counts}")


@pytest.fixture
def webhook_checks():
    """``(check_webhook_delivery, WEBHOOK_VIOLATIONS)`` for tests of the contract itself."""
    return check_webhook_delivery, WEBHOOK_VIOLATIONS
