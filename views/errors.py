"""Every error to its HTTP status, in one table.

Every error body is ``{"error": {code, message, details, request_id}}``.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time

from pyramid.events import subscriber
from pyramid.httpexceptions import HTTPException, HTTPNotFound
from pyramid.response import Response
from pyramid.view import exception_view_config, notfound_view_config
from pyramid_retry import IBeforeRetry, mark_error_retryable
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm.exc import StaleDataError

from approvalrules import errors, observability
from approvalrules.store.db import database_unavailable

from .json_output import json_bytes
from .routes import under_api

log = logging.getLogger(__name__)

#: most specific class first; the first match wins
STATUS = (
    (errors.DocumentTooLarge, 413),
    (errors.DocumentError, 422),
    (errors.TestsFailed, 422),
    (errors.OrderError, 422),
    (errors.DirectoryValueError, 422),
    (errors.Unauthorized, 401),
    (errors.InsufficientScope, 403),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.PreconditionFailed, 412),
    (errors.DirectoryError, 409),
    (errors.DatabaseUnavailable, 503),
    (errors.ApprovalRulesError, 400),
)


def status_for(exc: errors.ApprovalRulesError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 400


def error_body(code: str, message: str, details=None) -> dict:
    """``{"error": {code, message, details, request_id}}``: ``details`` when given, and the id
    of the request being answered (views/observability.py sets it) when there is one."""
    body = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": _with_request_id(body)}


def _with_request_id(error: dict) -> dict:
    request_id = observability.current_request_id()
    if request_id != observability.UNKNOWN:
        error["request_id"] = request_id
    return error


def error_response(status: int, code: str, message: str, details=None, headers=None) -> Response:
    """Our JSON error as a Response of its own, for the tweens, which answer before any view
    (views/inputs.py, views/limits.py) or after every one (views/observability.py)."""
    response = Response(
        body=json_bytes(error_body(code, message, details)),
        status=status,
        content_type="application/json",
        charset="utf-8",
    )
    if headers:
        response.headers.update(headers)
    return response


def _json(request, status: int, body: dict, headers=None):
    response = request.response
    response.status_int = status
    response.content_type = "application/json"
    response.body = json_bytes(body)
    if headers:
        response.headers.update(headers)
    return response


@exception_view_config(errors.ApprovalRulesError)
def approvalrules_error(exc, request):
    status = status_for(exc)
    headers = {"WWW-Authenticate": 'Bearer realm="approvalrules"'} if status == 401 else None
    if isinstance(exc, errors.InsufficientScope):
        # RFC 6750 section 3.1: the key is good, its scope is not enough
        needed = " ".join(exc.details["allowed_scopes"])
        headers = {
            "WWW-Authenticate": f'Bearer realm="approvalrules", error="insufficient_scope", '
            f'scope="{needed}"'
        }
    if isinstance(exc, errors.DatabaseUnavailable):
        headers = {"Retry-After": str(exc.retry_after)}
    return _json(request, status, {"error": _with_request_id(exc.as_dict())}, headers)


@exception_view_config(StaleDataError)
def stale(exc, request):
    return _json(
        request,
        409,
        error_body(
            "concurrent_update",
            "someone else changed this approval request at the same moment; "
            "reload it and try again",
        ),
    )


@exception_view_config(IntegrityError)
def integrity(exc, request):
    log.info("integrity error: %s", exc.orig)
    return _json(
        request,
        409,
        error_body(
            "conflict",
            "the change conflicts with one made at the same moment; reload and try again",
        ),
    )


def _sqlite_busy(exc: OperationalError) -> bool:
    """SQLite's "database is locked": another writer won; trying again is the cure."""
    return getattr(exc.orig, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY


#: PostgreSQL's serialization failure and deadlock: the transaction lost a race, another try
#: wins.  pyramid_tm marks them retryable under a transaction manager; a read-only request
#: runs without one (tm.activate_hook), so the error view marks them itself.
_TRANSIENT_SQLSTATES = ("40001", "40P01")


def _transient(exc: OperationalError) -> bool:
    return _sqlite_busy(exc) or getattr(exc.orig, "sqlstate", None) in _TRANSIENT_SQLSTATES


@subscriber(IBeforeRetry)
def back_off_before_retrying_a_busy_sqlite(event) -> None:
    """Let the winning SQLite writer commit before the loser's next attempt.

    Runs after the failed attempt's transaction has ended (its read lock is gone), so the
    winner can commit meanwhile; without the pause every attempt can lose in a row.
    """
    if isinstance(event.exception, OperationalError) and _sqlite_busy(event.exception):
        attempt = event.environ.get("retry.attempt", 0) + 1
        time.sleep(random.uniform(0.05, 0.2) * attempt)


@exception_view_config(OperationalError)
@exception_view_config(PoolTimeoutError)
def database_failed(exc, request):
    if isinstance(exc, OperationalError) and _transient(exc):
        # A reader that wants to write loses to a writer on SQLite (e.g. identical submits in
        # flight), or PostgreSQL picked this transaction to lose a race; pyramid_retry runs
        # the request again while attempts remain.
        mark_error_retryable(exc)
    # a deadline of approvalrules.db.* (or the pool's) fired, or the server is gone
    error = database_unavailable(exc)
    log.error("database unavailable (%s): %s", error.details["reason"], getattr(exc, "orig", exc))
    return approvalrules_error(error, request)


@notfound_view_config()
def not_found(request):
    if under_api(request):
        return _json(
            request,
            404,
            error_body("not_found", f"no such resource: {request.method} {request.path}"),
        )
    return HTTPNotFound()


@exception_view_config(HTTPException, path_info=r"^/api/")
def http_error(exc, request):
    return _json(
        request,
        exc.status_int,
        error_body(exc.title.lower().replace(" ", "_"), exc.detail or exc.explanation or exc.title),
        getattr(exc, "headers", None)
        and {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")},
    )
