"""Health check and the rule-folder pages (temporary, until the store lands)."""

from pyramid.view import view_config

from approvalrules.rulesfolder import list_rule_files


def _rules_dir(request):
    return request.registry.settings.get("approvalrules.rules_dir") or ""


@view_config(route_name="health", renderer="json")
def health(request):
    return {"status": "ok", "version": request.registry.settings["approvalrules.version"]}


@view_config(route_name="home", renderer="approvalrules.templates:home.pt")
def home(request):
    folder = _rules_dir(request)
    return {"folder": folder, "rules": list_rule_files(folder)}
