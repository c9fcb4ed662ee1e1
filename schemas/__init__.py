"""JSON Schemas of the rule-set language, installed as package data.

This folder lives at the top level of the checkout and installs as
``approvalrules.schemas`` (see ``package-dir`` in pyproject.toml).
"""

import os
from importlib.resources import files
from pathlib import Path


def schema_path(name: str) -> Path:
    """Path of the schema file *name* (e.g. ``"ruleset.schema.json"``) in this package."""
    return Path(os.fspath(files(__name__) / name))
