"""Every error to its HTTP status, in one table.

Every error body is ``{"error": {code, message, details}}``.
"""

from __future__ import annotations

import logging

from pyramid.httpexceptions import HTTPException, HTTPNotFound
from pyramid.view import exception_view_config, notfound_view_config
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm.exc import StaleDataError

from approvalrules import errors
from approvalrules.store.db import database_unavailable

log = logging.getLogger(__name__)

#: most specific class first; the first match wins
STATUS = (
    (errors.DocumentTooLarge, 413),
    (errors.DocumentError, 422),
    (errors.TestsFailed, 422),
    (errors.OrderError, 422),
    (errors.Unauthorized, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
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
    body = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


def _json(request, status: int, body: dict, headers=None):
    response = request.response
    response.status_int = status
    response.content_type = "application/json"
    response.json_body = body
    if headers:
        response.headers.update(headers)
    return response


@exception_view_config(errors.ApprovalRulesError)
def approvalrules_error(exc, request):
    status = status_for(exc)
    headers = {"WWW-Authenticate": 'Bearer realm="approvalrules"'} if status == 401 else None
    if isinstance(exc, errors.DatabaseUnavailable):
        headers = {"Retry-After": str(exc.retry_after)}
    return _json(request, status, {"error": exc.as_dict()}, headers)


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


@exception_view_config(OperationalError)
@exception_view_config(PoolTimeoutError)
def database_failed(exc, request):
    # a deadline of approvalrules.db.* (or the pool's) fired, or the server is gone
    error = database_unavailable(exc)
    log.error("database unavailable (%s): %s", error.details["reason"], getattr(exc, "orig", exc))
    return approvalrules_error(error, request)


@notfound_view_config()
def not_found(request):
    if request.path.startswith("/api/"):
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
