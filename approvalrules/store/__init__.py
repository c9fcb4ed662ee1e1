"""The store: tenants, the org directory, rule-set versions and the workflow's tables.

SQLAlchemy 2.x models (``models``), the session plumbing for Pyramid
(``db``), the directory the engine reads and the one place that chooses it
(``directory``), the directory rules and writes (``directory_service``, with
``directory_base``, ``memberships`` and ``approvers``), tenants, audit, API
keys and admin users (``services``), versioned rule sets (``versions``), the
folder importer (``importer``) and the Alembic entry points (``migrate``,
``commands``).  ``testing`` holds helpers for test suites.
"""

# the flush hook that tells every process of a tenant or key write (``bus``), and those that
# note which companies and accounts a commit changed (``slice_versions``), are registered by
# whatever first imports the store: the web app, the CLI, a job or a script alike
from . import bus, slice_versions  # noqa: F401


def includeme(config) -> None:
    """``config.include("approvalrules.store")``: the database session per request (see ``db``)."""
    config.include(".db")
