"""The Pyramid WSGI application factory (``paste.app_factory`` entry point ``main``)."""

import gc
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from pyramid.config import Configurator
from pyramid.interfaces import IRequestExtensions, IRequestFactory
from pyramid.settings import asbool


def package_version():
    try:
        return version("approvalrules")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "0+unknown"


def default_rules_dir():
    """The ``rules/`` folder of the checkout, or "" when running from an installed wheel."""
    candidate = Path(__file__).resolve().parent.parent / "rules"
    return str(candidate) if candidate.is_dir() else ""


def main(global_config, **settings):
    """Return the WSGI application."""
    settings.setdefault("approvalrules.rules_dir", default_rules_dir())
    settings["approvalrules.version"] = package_version()
    with Configurator(settings=settings) as config:
        # a body the server holds in memory is read in place, not copied (views/inputs.py)
        config.set_request_factory("approvalrules.views.inputs.Request")
        config.include("pyramid_chameleon")
        config.include("approvalrules.store.db")  # pyramid_tm, pyramid_retry, request.dbsession
        config.include("approvalrules.views.observability")  # request ids, /metrics
        config.include("approvalrules.store.cache_budget")  # approvalrules.cache.max_bytes
        config.include("approvalrules.store.decision_log")  # approvalrules.decision_log
        config.include("approvalrules.views.json_output")  # the json renderer (orjson)
        config.include("approvalrules.views.routes")
        config.include("approvalrules.views.api")
        config.include("approvalrules.views.admin")
        # By dotted name: views/ is mapped into the package at install time, so a bare
        # config.scan() (which walks approvalrules/ on disk) would not find it.
        config.scan("approvalrules.views")
    fold_request_extensions(config.registry)
    app = config.make_wsgi_app()
    if asbool(settings.get("approvalrules.tune_gc", False)):
        tune_gc()
    return app


def fold_request_extensions(registry) -> None:
    """Give the request factory's class the request methods and properties the app added
    (``add_request_method``: ``dbsession``, ``tm``, ``api_key``...) once, at start-up.

    Left to Pyramid, every request gets a class of its own made with them: about 10 us of
    each request, and a new type (a reference cycle) for the collector each time.  Must run
    after the configuration is committed and before the router is made, which reads the
    extensions once; from then on Pyramid finds none to apply, and every request,
    ``pyramid.scripting.prepare``'s included, is made by the class that holds them.
    """
    extensions = registry.queryUtility(IRequestExtensions)
    if extensions is None:
        return
    base = registry.getUtility(IRequestFactory)
    held = {**extensions.methods, **extensions.descriptors}
    request_class = type(base.__name__, (base,), {"__module__": base.__module__, **held})
    registry.registerUtility(request_class, IRequestFactory)
    registry.unregisterUtility(provided=IRequestExtensions)


def tune_gc() -> None:
    """Fewer, shorter garbage collections in a serving process (``approvalrules.tune_gc = true``).

    The collector's full passes walk every object, the compiled policies and
    directory snapshots included, and were the evaluate endpoint's p99
    (bench/http_bench.py: 25.6 -> 5.2 ms at one connection).  What the app
    built at start-up is moved out of the collector's sight (``gc.freeze``) and
    young collections run every 10,000 allocations instead of 700.  Off by
    default: a test process that builds many apps would keep each one.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 50)
