"""The API reference page, ``/api/v1/docs``: Swagger UI over the served OpenAPI document.

Swagger UI's built assets come from the ``swagger-ui-bundle-v2`` package and are served by
this app (``/swagger-ui/...``, views/routes.py), so the page works offline, with no CDN.
The page runs no inline script: ``static/api-docs.js`` starts Swagger UI with the document's
URL, read from a ``data-`` attribute (views/admin/headers.py gives the page its
Content-Security-Policy).
"""

from __future__ import annotations

import swagger_ui_bundle
from pyramid.view import view_config


@view_config(
    route_name="api_docs", request_method="GET", renderer="approvalrules.templates:api_docs.pt"
)
def api_docs(request):
    """The reference page; it needs no API key (the document it shows needs none either)."""
    return {
        "openapi_url": request.route_url("api_openapi"),
        "swagger_ui": str(swagger_ui_bundle.swagger_ui_path),
    }
