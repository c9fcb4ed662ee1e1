"""Entity tags for optimistic concurrency: ``ETag`` on reads, ``If-Match`` on writes.

A tag is a hash of what a read shows (a directory record as the API renders it, a rule set's
active version and draft), so it changes exactly when what a client saw changes.  A write that
names the tag it read is refused with :class:`~approvalrules.errors.PreconditionFailed` (412)
when the resource has changed since; a write without ``If-Match`` goes ahead as before.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..errors import PreconditionFailed


def etag_for(data: Any) -> str:
    """The strong entity tag (quoted, as the header carries it) of ``data``'s JSON form."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return '"' + hashlib.sha256(text.encode()).hexdigest()[:24] + '"'


def _tags(if_match: str) -> list[str]:
    """The entity tags of an ``If-Match`` header, quoted; a weak ``W/`` tag never matches."""
    tags = []
    for part in if_match.split(","):
        part = part.strip()
        if part and not part.startswith("W/"):
            tags.append(part if part.startswith('"') or part == "*" else f'"{part}"')
    return tags


def check_if_match(if_match: str | None, current: str | None, what: str) -> None:
    """Refuse the write unless ``If-Match`` names ``current`` (the tag of ``what`` now; None:
    it does not exist).  ``*`` matches any existing resource; no header matches everything."""
    if if_match is None or not if_match.strip():
        return
    tags = _tags(if_match)
    if current is not None and ("*" in tags or current in tags):
        return
    now = f"its ETag is now {current}" if current is not None else "it does not exist"
    raise PreconditionFailed(
        "precondition_failed",
        f"{what} has changed since you read it ({now}; If-Match was {if_match.strip()[:100]}); "
        "read it again and retry with the new ETag",
        details={"etag": current},
    )
