"""Alembic environment for approvalrules.

The database URL comes, first match wins, from: a connection handed over by
``approvalrules.store.migrate`` (``config.attributes["connection"]``),
``-x url=...``, the ``APPROVALRULES_DATABASE_URL`` environment variable, or
``sqlalchemy.url`` in the ini file (``alembic -c development.ini upgrade head``).
"""

from __future__ import annotations

import os

from alembic import context

from approvalrules.store import models  # noqa: F401  (fills the metadata)
from approvalrules.store.db import create_engine_for_url
from approvalrules.store.meta import metadata

config = context.config


def database_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(
        "APPROVALRULES_DATABASE_URL"
    )
    if not url:
        url = config.get_main_option("sqlalchemy.url") or config.get_section_option(
            "app:main", "sqlalchemy.url"
        )
    if not url:
        raise SystemExit(
            "no database URL: pass -x url=..., "
            "set APPROVALRULES_DATABASE_URL or sqlalchemy.url in the ini"
        )
    return url


def configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER much: later migrations rebuild tables in batches
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        configure(connection)
        return
    engine = create_engine_for_url(database_url())
    try:
        with engine.begin() as connection:
            configure(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
