"""Helpers for test-suites that need a real database (shipped beside the store, Kinto-style)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from ..engine.directory import records_from_dict
from .directory_service import DirectoryService
from .models import Tenant

DATABASE_ENV = "APPROVALRULES_TEST_DATABASE_URL"


def create_postgres_database(base_url: str, prefix: str = "ar_store") -> str:
    """Create an empty database on the server of ``base_url``; return its URL."""
    base = make_url(base_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str, base_url: str | None = None) -> None:
    """Drop the database of ``url``, connected through ``base_url``.

    ``base_url`` defaults to the test URL, else the ``postgres`` database of ``url``'s server.
    """
    target = make_url(url)
    base = base_url or os.environ.get(DATABASE_ENV) or target.set(database="postgres")
    admin = create_engine(make_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    admin.dispose()


def load_fixture(
    session: Session, tenant: Tenant | int | str, data: Mapping[str, Any], actor: str = "system"
) -> DirectoryService:
    """Upsert a directory fixture (the format of ``schemas/directory.schema.json``) into a tenant.

    Returns the service it used, for tests that go on writing to the directory.  Such
    fixtures describe a directory alone and name rule sets no test publishes, so the role and
    rule-set checks are off for this service (``check_names=False``); the API, the admin and
    the importer always check.
    """
    service = DirectoryService(session, tenant, actor=actor, check_names=False)
    service.load_records(records_from_dict(data))
    return service
