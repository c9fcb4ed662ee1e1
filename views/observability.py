"""Request ids, request timing and ``/metrics`` (docs/deployment.md, "Observability").

The request-id tween is the outermost one, over the input and limits tweens: every
answer, whoever gives it (a view, a 404, a tween's 413 or 429, an error), carries
``X-Request-Id``, and every JSON error body names it as ``error.request_id`` (written by
``views/errors.py``'s ``error_body``, from the log context this tween sets).  The id is
the client's (or the proxy's) ``X-Request-Id`` when it is a plain token of at most 128
characters, else a new one; the log lines of the request carry it too
(``approvalrules/observability.py``).

``/metrics`` answers in Prometheus's text format; ``approvalrules.metrics.token`` asks for
``Authorization: Bearer <token>``.  It and ``/health`` run without a database transaction.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
import uuid

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from pyramid.response import Response
from pyramid.settings import asbool
from pyramid.tweens import INGRESS

from approvalrules import observability
from approvalrules.errors import Unauthorized
from approvalrules.store.decision_log import REGISTRY_KEY as DECISION_LOG_KEY
from approvalrules.store.gauges import DEFAULT_TIMEOUT, DatabaseGauges

from .errors import error_response

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
#: an id we accept from outside: it lands in log lines and headers as it is
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: no transaction: liveness and the scrape must not wait for a pool or open a transaction
WITHOUT_TRANSACTION = frozenset(("/health", "/metrics"))
#: (method, path) of requests that only read: no transaction manager, and
#: ``request.dbsession`` is a read-only session (``store.db.read_only_session``)
READ_ONLY_REQUESTS = frozenset((("POST", "/api/v1/evaluate"),))

TWEEN = "approvalrules.views.observability.request_id_tween_factory"


def request_id_for(given: str | None) -> str:
    """``given`` when it is an acceptable request id, else a new one (32 hex digits)."""
    if given and VALID_REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def _unhandled(request, request_id: str) -> Response:
    """A 500 for an exception no error view answered (it is logged with the request id):
    JSON under /api/, a line of text elsewhere."""
    path = request.environ.get("PATH_INFO", "")  # as sent: it may not even decode
    log.exception("unhandled error answering %s %s", request.method, path[:200])
    if not path.startswith("/api/"):  # a person at the admin reads it
        return Response(
            f"The server failed to answer. Request id: {request_id}\n",
            status=500,
            content_type="text/plain",
            charset="utf-8",
        )
    return error_response(
        500,
        "internal_error",
        "the server failed to answer; quote the request id when reporting it",
    )


def route_label(request, status: int) -> str:
    """The route name a request's duration is recorded under, never its path (each label
    value is a time series): ``notfound`` when no route matched, ``unrouted`` when a tween
    refused the request before routing (400, 405, 413, 429)."""
    route = request.matched_route
    if route is not None:
        return route.name
    return "notfound" if status == 404 else "unrouted"


def request_id_tween_factory(handler, registry):
    """The outermost tween: the request id, its log context, and the request's duration."""
    timer = observability.RequestTimer()
    clock = time.perf_counter

    def request_id_tween(request):
        started = clock()
        request_id = request_id_for(request.environ.get("HTTP_X_REQUEST_ID"))
        request.request_id = request_id
        token = observability.begin_request(request_id, request)
        try:
            try:
                response = handler(request)
            except Exception:
                response = _unhandled(request, request_id)
            status = response.status_int
            response.headers[REQUEST_ID_HEADER] = request_id
            timer.observe(route_label(request, status), request.method, status, clock() - started)
            return response
        finally:
            observability.end_request(token)

    return request_id_tween


def transaction_needed(request) -> bool:
    """pyramid_tm's ``tm.activate_hook``: no transaction for ``/health``, ``/metrics`` and the
    evaluate endpoint, which only reads (the storefront's hot path: joining a session to a
    transaction manager and committing it was a tenth of its time)."""
    environ = request.environ
    path = environ.get("PATH_INFO")
    return (
        path not in WITHOUT_TRANSACTION
        and (environ.get("REQUEST_METHOD"), path) not in READ_ONLY_REQUESTS
    )


def metrics_token(request) -> None:
    """401 unless the request sends ``approvalrules.metrics.token`` as its bearer token."""
    token = request.registry.settings.get("approvalrules.metrics.token") or ""
    if not token:
        return
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Unauthorized(
            "missing_metrics_token",
            "send the metrics token (approvalrules.metrics.token) as 'Authorization: Bearer "
            "<token>'",
        )
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized("invalid_metrics_token", "the metrics token is wrong")


def metrics(request):
    """Every metric family in Prometheus's text format."""
    metrics_token(request)
    # Prometheus's text format, or OpenMetrics when the scraper asks for it
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = Response(body=encode(request.registry["metrics_registry"]))
    response.headers["Content-Type"] = content_type
    return response


def _serve_on_port(settings, registry) -> None:
    """``approvalrules.metrics.port``: prometheus_client's own HTTP server on that port too (no
    token: bind it where only Prometheus reaches); the first process of a host binds it."""
    port = settings.get("approvalrules.metrics.port")
    if not port:
        return
    address = settings.get("approvalrules.metrics.address") or "127.0.0.1"
    try:
        start_http_server(int(port), addr=address, registry=registry)
    except OSError as failure:  # another process of this host serves it already
        log.info("metrics: port %s not bound here (%s)", port, failure)


class ProcessStateCollector:
    """What this process's own machinery reports at scrape time: whether its key cache is
    trusted (the invalidation listener is healthy) and what its decision-log writer did.

    Read from the Pyramid registry when scraped, since those parts are set up after this
    module's ``includeme``.  Per process, like the database gauges."""

    def __init__(self, registry):
        self.registry = registry

    def collect(self):
        key_cache = self.registry.get("key_cache")
        if key_cache is not None:
            trusted = GaugeMetricFamily(
                "approvalrules_key_cache_trusted",
                "1 while this process serves API keys from its cache (its invalidation "
                "listener is healthy), 0 while every request reads its key",
            )
            trusted.add_metric([], 1 if key_cache.active else 0)
            yield trusted
        writer = self.registry.get(DECISION_LOG_KEY)
        if writer is not None and hasattr(writer, "written"):
            records = CounterMetricFamily(
                "approvalrules_decision_log_records",
                "decision-log records of this process's table writer, by what became of them",
                labels=["result"],
            )
            records.add_metric(["written"], writer.written)
            records.add_metric(["dropped"], writer.dropped)
            records.add_metric(["failed"], writer.failed)
            yield records


def includeme(config):
    settings = config.get_settings()
    config.add_tween(TWEEN, under=INGRESS, over="approvalrules.views.inputs.input_tween_factory")
    settings.setdefault("tm.activate_hook", "approvalrules.views.observability.transaction_needed")
    observability.install_log_filter()
    observability.summarize_queue_warnings()
    if not asbool(settings.get("approvalrules.metrics.enabled", True)):
        return
    timeout = float(settings.get("approvalrules.metrics.db_timeout") or DEFAULT_TIMEOUT)
    registry = observability.exposition_registry(
        [
            DatabaseGauges(config.registry["dbengine"], timeout),
            ProcessStateCollector(config.registry),
        ]
    )
    config.registry["metrics_registry"] = registry
    config.add_route("metrics", "/metrics")
    # added here, not by @view_config: without the route (metrics disabled) a scan would fail
    config.add_view(metrics, route_name="metrics", request_method="GET")
    _serve_on_port(settings, registry)
