"""Admin: upload a directory file (JSON or CSV) and see the sync's report row by row; download
the directory in the same formats.  The same sync as the API's and the CLI's
(store/directory_sync.py): a dry run keeps nothing, a bad row refuses the batch."""

from __future__ import annotations

from pyramid.view import view_config

from approvalrules.errors import ApprovalRulesError
from approvalrules.store.directory_sync import (
    FORMATS,
    SyncRefused,
    export_directory,
    sync_directory,
)

from .common import template

#: the largest file the page accepts (the API's body limit is the same order)
MAX_UPLOAD = 5 * 1024 * 1024


@view_config(
    route_name="admin_directory_sync",
    request_method="GET",
    permission="view",
    renderer=template("directory_sync"),
)
def sync_page(request):
    return {"report": None, "problem": None, "filename": None}


@view_config(
    route_name="admin_directory_sync",
    request_method="POST",
    permission="edit",
    renderer=template("directory_sync"),
)
def upload(request):
    """Run the sync on the uploaded file; the report either way (nothing kept when refused)."""
    upload = request.POST.get("file")
    filename = getattr(upload, "filename", None)
    if not filename:
        return {"report": None, "problem": "Choose a .csv or .json file first.", "filename": None}
    data = upload.file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        problem = f"The file is over {MAX_UPLOAD // (1024 * 1024)} MB; split it by company."
        return {"report": None, "problem": problem, "filename": filename}
    fmt = request.POST.get("format") or ("csv" if filename.lower().endswith(".csv") else "json")
    try:
        report = sync_directory(
            request.dbsession,
            request.admin_tenant,
            data.decode("utf-8"),
            fmt,
            dry_run=request.POST.get("dry_run") == "on",
            atomic="company" if request.POST.get("per_company") == "on" else "all",
            actor=request.admin_actor,
        ).as_dict()
    except SyncRefused as refused:
        report = refused.details if "rows" in refused.details else None
        return {"report": report, "problem": refused.message, "filename": filename}
    except UnicodeDecodeError:
        return {"report": None, "problem": "The file is not UTF-8 text.", "filename": filename}
    except ApprovalRulesError as exc:
        return {"report": None, "problem": exc.message, "filename": filename}
    return {"report": report, "problem": None, "filename": filename}


@view_config(route_name="admin_directory_download", request_method="GET", permission="view")
def download(request):
    fmt = request.params.get("format") if request.params.get("format") in FORMATS else "csv"
    response = request.response
    response.text = export_directory(request.dbsession, request.admin_tenant, fmt)
    response.content_type = "text/csv" if fmt == "csv" else "application/json"
    response.content_disposition = f'attachment; filename="directory.{fmt}"'
    return response
