"""What an operator sees of a running process: request ids in every log line, JSON logs,
and the Prometheus metrics the app, the jobs and the caches record.

Pure logging and metric helpers: no Pyramid, no database (the gauges read from the
database at scrape time live in ``approvalrules/store/gauges.py``; the request tween and
``/metrics`` in ``views/observability.py``).  docs/deployment.md, "Observability", says what
to watch.

**Log context.**  The request tween calls :func:`begin_request`; until :func:`end_request`,
every log record of that request (in its thread) carries ``request_id``, ``tenant`` (once
the API key or the admin's login named it: :func:`note_tenant`) and ``route``.  Outside a
request they are ``-``.  :class:`RequestContextFilter` adds them on a handler;
:class:`ContextFormatter` and :class:`JsonFormatter` add them themselves, so a format
naming ``%(request_id)s`` never fails, whoever logs.

**Metrics.**  Module-level families on prometheus_client's default registry; with
``PROMETHEUS_MULTIPROC_DIR`` set they are written to files there and
:func:`exposition_registry` sums every process's (several workers on one host, the cron
jobs too).  Label values come from short fixed sets (route names, not paths): each label
combination is a time series kept forever.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

#: what a record carries outside a request, or before a tenant is known
UNKNOWN = "-"


# ---------------------------------------------------------------- the log context


class RequestContext:
    """What the log lines of one request say about it."""

    __slots__ = ("request_id", "tenant", "request")

    def __init__(self, request_id: str, request=None):
        self.request_id = request_id
        self.tenant = UNKNOWN
        #: the Pyramid request: its matched route is read when a line is logged, not per request
        self.request = request

    @property
    def route(self) -> str:
        route = getattr(self.request, "matched_route", None)
        return route.name if route is not None else UNKNOWN


_CONTEXT: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "approvalrules_request", default=None
)


def begin_request(request_id: str, request=None) -> contextvars.Token:
    """Log lines from now on (in this thread or task) carry ``request_id``; returns the token
    for :func:`end_request`."""
    return _CONTEXT.set(RequestContext(request_id, request))


def end_request(token: contextvars.Token) -> None:
    """Back to the context before :func:`begin_request` (``-`` outside a request)."""
    _CONTEXT.reset(token)


def note_tenant(slug: str) -> None:
    """The current request's tenant is known: its log lines say so from now on."""
    context = _CONTEXT.get()
    if context is not None:
        context.tenant = slug


def current_request_id() -> str:
    """The current request's id, or ``-`` outside a request."""
    context = _CONTEXT.get()
    return context.request_id if context is not None else UNKNOWN


def add_context(record: logging.LogRecord) -> logging.LogRecord:
    """Give ``record`` ``request_id``, ``tenant`` and ``route`` unless it has them already."""
    if not hasattr(record, "request_id"):
        context = _CONTEXT.get()
        if context is None:
            record.request_id = record.tenant = record.route = UNKNOWN
        else:
            record.request_id = context.request_id
            record.tenant = context.tenant
            record.route = context.route
    return record


class RequestContextFilter(logging.Filter):
    """Adds ``request_id``, ``tenant`` and ``route`` to every record a handler emits."""

    def filter(self, record: logging.LogRecord) -> bool:
        add_context(record)
        return True


def install_log_filter() -> None:
    """Put :class:`RequestContextFilter` on every handler configured so far (the .ini's);
    once per handler, however many apps a process builds."""
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, RequestContextFilter) for f in handler.filters):
                handler.addFilter(RequestContextFilter())


#: seconds between two of waitress's "Task queue depth" warnings (:class:`QueueDepthSummary`)
QUEUE_WARNING_INTERVAL = 10.0


class QueueDepthSummary(logging.Filter):
    """One of waitress's "Task queue depth is N" warnings every ``interval`` seconds, saying
    how many it stands for and the deepest queue among them.

    waitress warns on ``waitress.queue`` for every request that has to wait for a thread: a
    line per request while the server is saturated, written by its I/O thread while it
    holds the lock the worker threads take their next request under.  That is when the
    server can least afford it, and the lines say nothing the summary does not.
    """

    def __init__(self, interval: float = QUEUE_WARNING_INTERVAL):
        super().__init__()
        self.interval = interval
        self._lock = threading.Lock()
        self._next_line = 0.0
        self._held = 0
        self._deepest = 0

    def filter(self, record: logging.LogRecord) -> bool:
        depth = record.args[0] if isinstance(record.args, tuple) and record.args else 0
        now = time.monotonic()
        with self._lock:
            if isinstance(depth, int):
                self._deepest = max(self._deepest, depth)
            if now < self._next_line:
                self._held += 1
                return False
            held, deepest = self._held, self._deepest
            self._held = self._deepest = 0
            self._next_line = now + self.interval
        if held:
            record.msg = (
                f"{record.getMessage()} ({held} more such warnings in the last "
                f"{self.interval:g} s, the deepest {deepest})"
            )
            record.args = ()
        return True


def summarize_queue_warnings(interval: float = QUEUE_WARNING_INTERVAL) -> None:
    """Put :class:`QueueDepthSummary` on waitress's queue logger, once per process."""
    queue_log = logging.getLogger("waitress.queue")
    if not any(isinstance(f, QueueDepthSummary) for f in queue_log.filters):
        queue_log.addFilter(QueueDepthSummary(interval))


class ContextFormatter(logging.Formatter):
    """The text formatter: a format may name ``%(request_id)s``, ``%(tenant)s`` and
    ``%(route)s`` (``-`` outside a request), for any logger, before the app is built too."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(add_context(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id,
    tenant, route, and ``exc_info`` (the traceback as text) when there is one.

    In the .ini: ``[formatter_json]`` with ``class = approvalrules.observability.JsonFormatter``.
    """

    def format(self, record: logging.LogRecord) -> str:
        add_context(record)
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": record.request_id,
            "tenant": record.tenant,
            "route": record.route,
        }
        if record.exc_info:
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


# ---------------------------------------------------------------- metric families

#: seconds; the evaluate endpoint answers in 0.3-5 ms (its median under 1 ms), a slow admin
#: page in a second or two
REQUEST_BUCKETS = (
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
)
#: seconds; a job runs from well under a second to minutes
JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

REQUEST_DURATION = Histogram(
    "approvalrules_request_duration_seconds",
    "Time to answer a request, by route name (notfound: no route matched; unrouted: "
    "refused before routing), method and status class",
    ("route", "method", "status"),
    buckets=REQUEST_BUCKETS,
)
DECISIONS = Counter(
    "approvalrules_decisions_total",
    "Decisions made, by kind (evaluate: a dry run; submit: a new order) and outcome",
    ("kind", "outcome"),
)
JOB_RUNS = Counter(
    "approvalrules_job_runs_total",
    "Runs of a job (expire, remind, dispatch), by result (ok, error)",
    ("job", "result"),
)
JOB_DURATION = Histogram(
    "approvalrules_job_duration_seconds",
    "Time a job run took, its commit included",
    ("job",),
    buckets=JOB_BUCKETS,
)
CACHE_HITS = Counter(
    "approvalrules_cache_hits_total",
    "Lookups a per-process cache answered (active: active rule-set versions; "
    "directory: directory snapshots)",
    ("cache",),
)
CACHE_MISSES = Counter(
    "approvalrules_cache_misses_total",
    "Lookups a per-process cache had to build",
    ("cache",),
)
DELIVERY_FAILURES = Counter(
    "approvalrules_outbox_delivery_failures_total",
    "Outbox deliveries that failed (each attempt), by channel (email, webhook)",
    ("channel",),
)

#: the methods a label may name; anything else is "other" (a client chooses the method)
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
STATUS_CLASSES = {n: f"{n}xx" for n in range(1, 6)}
DECISION_KINDS = ("evaluate", "submit")
OUTCOMES = ("approved", "pending", "blocked", "held")

_decision_children = {
    (kind, outcome): DECISIONS.labels(kind, outcome)
    for kind in DECISION_KINDS
    for outcome in (*OUTCOMES, "other")
}


def count_decision(kind: str, outcome: str, *, new: bool = True) -> None:
    """One more decision of ``kind`` (evaluate, submit) with ``outcome``; ``new=False`` (an
    idempotent submit answered again) counts nothing."""
    if new:
        key = (kind, outcome if outcome in OUTCOMES else "other")
        _decision_children[key].inc()


class RequestTimer:
    """Records request durations; one histogram child per (route, method, status class),
    made on first use and kept (``labels()`` costs a lock and a few dict look-ups)."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int], object] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status // 100)
        child = self._children.get(key)
        if child is None:
            child = REQUEST_DURATION.labels(
                route,
                method if method in METHODS else "other",
                STATUS_CLASSES.get(status // 100, "other"),
            )
            # a client sends any method: only the known ones get their own entry here
            if method in METHODS:
                self._children[key] = child
        child.observe(seconds)


class job_run:  # noqa: N801  (used as a statement: ``with job_run("expire"):``)
    """``with job_run("expire"): ...``: counts the run (result ``ok``, or ``error`` when the
    block raises) and its duration.  ``job_run(None)`` records nothing."""

    def __init__(self, job: str | None):
        self.job = job

    def __enter__(self):
        self._started = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.job is None:
            return
        JOB_DURATION.labels(self.job).observe(time.perf_counter() - self._started)
        JOB_RUNS.labels(self.job, "ok" if exc_type is None else "error").inc()


def cache_counters(cache: str):
    """``(hits, misses)``: the counters of the cache named ``cache``, to ``inc()``."""
    return CACHE_HITS.labels(cache), CACHE_MISSES.labels(cache)


def count_delivery_failure(channel: str) -> None:
    """One failed delivery attempt of an outbox event over ``channel`` (email, webhook)."""
    DELIVERY_FAILURES.labels(channel).inc()


# ---------------------------------------------------------------- exposition

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The folder the processes of this host share their metrics in, if any."""
    return os.environ.get(MULTIPROCESS_ENV) or None


class _Forward:
    """A collector that yields another registry's metrics (the default one, shared by every
    app of the process) inside an app's own registry."""

    def __init__(self, registry):
        self.registry = registry

    def collect(self):
        return self.registry.collect()


def exposition_registry(extra: Iterable = ()) -> CollectorRegistry:
    """What ``/metrics`` shows: this process's metrics, or with ``PROMETHEUS_MULTIPROC_DIR``
    the sum over every process writing there, then the ``extra`` collectors (the gauges read
    from the database at scrape time)."""
    registry = CollectorRegistry(auto_describe=False)
    folder = multiprocess_dir()
    if folder:
        MultiProcessCollector(registry, path=folder)
    else:
        registry.register(_Forward(REGISTRY))
    for collector in extra:
        registry.register(collector)
    return registry
