"""Directory reads for storefronts and ERP syncs: one record by key, listings with filters and
cursor pagination, and the buyer-facing summary of one account.

Every answer carries an ``ETag`` (a listing's tag covers the page; each item has its own
``etag``, the one its ``PUT`` honours as ``If-Match``); a ``GET`` with ``If-None-Match``
naming the current tag answers 304 without a body.
"""

from __future__ import annotations

from pyramid.view import view_config, view_defaults

from approvalrules.errors import ApprovalRulesError, NotFound
from approvalrules.store.directory_records import DEFAULT_LIMIT, DirectoryListings
from approvalrules.store.directory_sync import export_directory, sync_directory
from approvalrules.store.etags import etag_for
from approvalrules.workflow.summary import buyer_summary

#: listing routes and the kind of record each lists
LISTINGS = {
    "api_directory_companies": "companies",
    "api_directory_accounts": "accounts",
    "api_directory_groups": "groups",
    "api_directory_memberships": "memberships",
    "api_directory_assignments": "assignments",
    "api_directory_delegations": "delegations",
}


@view_defaults(renderer="json", request_method="GET", api_grant="read")
class DirectoryReads:
    def __init__(self, request):
        self.request = request
        self.records = DirectoryListings(request.dbsession, request.tenant)
        self.match = request.matchdict

    def _tagged(self, data, tag: str | None = None):
        """``data`` with its ETag; 304 when the client's If-None-Match names it."""
        response = self.request.response
        response.headers["ETag"] = tag or etag_for(data)
        response.conditional_response = True
        return data

    def _one(self, record, what: str):
        if record is None:
            raise NotFound("not_found", f"no {what}")
        return self._tagged(record)

    @view_config(route_name="api_directory_companies")
    @view_config(route_name="api_directory_accounts")
    @view_config(route_name="api_directory_groups")
    @view_config(route_name="api_directory_memberships")
    @view_config(route_name="api_directory_assignments")
    @view_config(route_name="api_directory_delegations")
    def listing(self):
        """``?<filter>=...&cursor=...&limit=...``: one page, in creation order."""
        kind = LISTINGS[self.request.matched_route.name]
        params = self.request.params
        filters = {k: params[k] for k in params if k not in ("cursor", "limit")}
        limit = int(params.get("limit") or DEFAULT_LIMIT)
        page = self.records.page(kind, filters, params.get("cursor"), limit)
        return self._tagged(page.as_dict())

    @view_config(route_name="api_directory_company")
    def company(self):
        company = self.match["company"]
        return self._one(self.records.company(company), f"company {company!r}")

    @view_config(route_name="api_directory_account")
    def account(self):
        account = self.match["account"]
        return self._one(self.records.account(account), f"account {account!r}")

    @view_config(route_name="api_directory_group")
    def group(self):
        company, group = self.match["company"], self.match["group"]
        return self._one(
            self.records.group(company, group), f"group {group!r} in company {company!r}"
        )

    @view_config(route_name="api_directory_membership")
    def membership(self):
        account, company = self.match["account"], self.match["company"]
        return self._one(
            self.records.membership(account, company),
            f"membership of account {account!r} in company {company!r}",
        )

    @view_config(route_name="api_directory_summary", api_grant="any")
    def summary(self):
        """The buyer-facing summary of one account (workflow.summary)."""
        data = buyer_summary(self.request.dbsession, self.request.tenant, self.match["account"])
        return self._tagged(data)


def _format(request) -> str:
    """``?format=``, else the body's Content-Type: ``csv`` for text/csv, ``json`` otherwise."""
    fmt = request.params.get("format")
    if fmt:
        return fmt
    return "csv" if request.content_type == "text/csv" else "json"


@view_config(
    route_name="api_directory_sync", request_method="POST", renderer="json", api_grant="merchant"
)
def sync(request):
    """Bulk import (store/directory_sync.py): the report row by row; 422 ``sync_refused``
    (with the report in ``details``) when bad rows refused the batch."""
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApprovalRulesError(
            "not_utf8", f"the body is not UTF-8 text (byte {exc.start})"
        ) from None
    params = request.params
    report = sync_directory(
        request.dbsession,
        request.tenant,
        text,
        _format(request),
        dry_run=params.get("dry_run") == "true",
        atomic=params.get("atomic") or "all",
        company=params.get("company") or None,
        actor="storefront",
    )
    return report.as_dict()


@view_config(route_name="api_directory_export", request_method="GET", api_grant="read")
def export(request):
    """The directory (or ``?company=``'s) as JSON or CSV, in the shape the sync reads."""
    fmt = request.params.get("format") or "json"
    text = export_directory(
        request.dbsession, request.tenant, fmt, request.params.get("company") or None
    )
    response = request.response
    response.content_type = "text/csv" if fmt == "csv" else "application/json"
    response.charset = "utf-8"
    response.text = text
    return response
