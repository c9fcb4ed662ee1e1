"""Create or upgrade the schema with Alembic, without an alembic.ini.

``upgrade(url_or_settings)`` is what ``approvalrules migrate`` and the serve
command run; tests run it on empty SQLite and PostgreSQL databases.  The
migration scripts live in the top-level ``alembic/`` folder, installed as
the package ``approvalrules.alembic``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from .db import create_engine_for_url, get_engine


def script_location() -> str:
    """The folder holding ``env.py`` and ``versions/``, installed or in a checkout."""
    try:
        spec = importlib.util.find_spec("approvalrules.alembic")
    except ModuleNotFoundError:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return str(list(spec.submodule_search_locations)[0])
    return str(Path(__file__).resolve().parents[2] / "alembic")


def _engine(target: str | Mapping[str, Any] | Engine) -> tuple[Engine, bool]:
    if isinstance(target, Engine):
        return target, False
    if isinstance(target, str):
        return create_engine_for_url(target), True
    return get_engine(target), True


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", script_location())
    if connection is not None:
        # env.py uses this connection instead of building an engine
        config.attributes["connection"] = connection
    return config


def _run(target, fn, revision: str) -> None:
    engine, owned = _engine(target)
    try:
        with engine.begin() as connection:
            fn(alembic_config(connection), revision)
    finally:
        if owned:
            engine.dispose()


def upgrade(target: str | Mapping[str, Any] | Engine, revision: str = "head") -> None:
    """Upgrade the database named by a URL, a settings mapping (``sqlalchemy.url``) or an engine."""
    _run(target, command.upgrade, revision)


def downgrade(target: str | Mapping[str, Any] | Engine, revision: str = "base") -> None:
    """Downgrade (to empty by default)."""
    _run(target, command.downgrade, revision)


def current(target: str | Mapping[str, Any] | Engine) -> str | None:
    """The database's revision, or None when it has never been migrated."""
    engine, owned = _engine(target)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        if owned:
            engine.dispose()


def head() -> str:
    """The newest revision of the migration scripts: what ``upgrade`` brings a database to."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
