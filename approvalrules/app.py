"""The Pyramid WSGI application factory (``paste.app_factory`` entry point ``main``)."""

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from pyramid.config import Configurator


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
        config.include("pyramid_chameleon")
        config.include("approvalrules.store.db")  # pyramid_tm, pyramid_retry, request.dbsession
        config.include("approvalrules.views.routes")
        config.include("approvalrules.views.api")
        config.include("approvalrules.views.admin")
        # By dotted name: views/ is mapped into the package at install time, so a bare
        # config.scan() (which walks approvalrules/ on disk) would not find it.
        config.scan("approvalrules.views")
    return config.make_wsgi_app()
