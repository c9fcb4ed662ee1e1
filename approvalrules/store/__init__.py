"""The store: tenants, the org directory, rule-set versions and the workflow's tables.

SQLAlchemy 2.x models (``models``), the session plumbing for Pyramid
(``db``), the SQL directory the engine reads (``directory``), the directory
rules (``services``), versioned rule sets (``versions``), the folder importer
(``importer``) and the Alembic entry points (``migrate``, ``commands``).
"""


def includeme(config) -> None:
    """``config.include("approvalrules.store")``: the database session per request (see ``db``)."""
    config.include(".db")
