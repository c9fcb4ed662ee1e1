"""URL routes of the web app."""


def includeme(config):
    config.add_static_view("static", "approvalrules.templates:static", cache_max_age=3600)
    config.add_route("home", "/")
    config.add_route("health", "/health")
    config.add_route("api_rulesets", "/api/v1/rulesets")
