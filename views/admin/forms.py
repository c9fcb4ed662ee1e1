"""Deform forms of the admin: generated from the JSON Schemas, with a CSRF token added."""

from __future__ import annotations

import functools
from importlib.resources import files

import colander
import deform
from pyramid.csrf import get_csrf_token

from .schema_forms import build_schema

#: Deform's templates, with the admin's own (step cards, collapsed sections, builders) first
RENDERER = deform.ZPTRendererFactory(
    (
        str(files("approvalrules.templates") / "deform"),
        str(files("deform") / "templates"),
    )
)


@functools.cache
def _schema(name: str) -> colander.SchemaNode:
    # walking a schema costs ~100 ms; it never changes while the process lives
    return build_schema(name)


def document_schema(name: str, request) -> colander.SchemaNode:
    """A fresh copy of the generated schema for ``schemas/<name>.schema.json``.

    The copy has a CSRF field.
    """
    return with_csrf(_schema(name).clone(), request)


def with_csrf(schema: colander.SchemaNode, request) -> colander.SchemaNode:
    """``schema`` with a hidden ``csrf_token`` field holding the session's token.

    Pyramid checks the posted token itself (``require_csrf``); the field only
    carries it, so the form's data never needs it.
    """
    schema.add(
        colander.SchemaNode(
            colander.String(),
            name="csrf_token",
            missing=colander.null,
            default=get_csrf_token(request),
            widget=deform.widget.HiddenWidget(),
            json_kind="skip",
            title="",
        )
    )
    return schema


def make_form(schema: colander.SchemaNode, request, buttons, formid: str) -> deform.Form:
    """A deform form posting to the current page."""
    return deform.Form(
        schema,
        buttons=buttons,
        formid=formid,
        action=request.path_url,
        css_class="generated",
        renderer=RENDERER,
    )


def form_resources(form: deform.Form) -> dict:
    """The JS and CSS deform's widgets need, as URLs under /deform_static/."""
    needed = form.get_widget_resources()
    return {
        kind: [
            f"/deform_static/{path.split(':', 1)[1].removeprefix('static/')}"
            for path in needed.get(kind, ())
        ]
        for kind in ("js", "css")
    }
