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
