"""Liveness (``/health``), readiness (``/ready``) and the rule-folder pages."""

from pyramid.view import view_config

from approvalrules.rulesfolder import list_rule_files
from approvalrules.store.db import check_database


def _rules_dir(request):
    return request.registry.settings.get("approvalrules.rules_dir") or ""


@view_config(route_name="health", renderer="json")
def health(request):
    """Liveness: the process answers.  Never touches the database, so it stays fast while the
    database is down (``/ready`` says whether this process can serve)."""
    return {"status": "ok", "version": request.registry.settings["approvalrules.version"]}


@view_config(route_name="ready", renderer="json", request_method="GET")
def ready(request):
    """Readiness: a fresh connection runs ``SELECT 1`` within ``approvalrules.db.ready_timeout``;
    otherwise 503 ``database_unavailable`` with ``Retry-After`` (views/errors.py)."""
    check_database(request.registry["dbprobe"])
    return {
        "status": "ready",
        "database": "ok",
        "version": request.registry.settings["approvalrules.version"],
    }


@view_config(route_name="home", renderer="approvalrules.templates:home.pt")
def home(request):
    folder = _rules_dir(request)
    return {"folder": folder, "rules": list_rule_files(folder)}
