"""Small helpers shared by the admin views: templates, lookups scoped by tenant, paging."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from pyramid.httpexceptions import HTTPBadRequest, HTTPNotFound
from sqlalchemy import func, select

from approvalrules.store.models import RuleSet

PER_PAGE = 25

#: the longest query value (filter, search, page) an admin page accepts; ids, searches and
#: version numbers are far shorter, and a longer value would only cost the database work
MAX_QUERY_VALUE = 1000

#: the most digits an id or version number in an admin path or query may have (a bigint holds 18)
MAX_DIGITS = 18


def template(name: str) -> str:
    """Asset spec of an admin template."""
    return f"approvalrules.templates:admin/{name}.pt"


def flash(request, message: str, kind: str = "info") -> None:
    """A message shown once on the next page."""
    request.session.flash({"kind": kind, "text": message}, queue="admin")


def ruleset_or_404(request, name: str) -> RuleSet:
    """The logged-in tenant's rule set ``name``; 404 for unknown names and other tenants' alike."""
    ruleset = request.dbsession.scalar(
        select(RuleSet).where(RuleSet.tenant_id == request.admin_tenant.id, RuleSet.name == name)
    )
    if ruleset is None:
        raise HTTPNotFound(f"no rule set {name!r}")
    return ruleset


def ascii_number(text: str) -> int | None:
    """``text`` as a number when it is 1 to ``MAX_DIGITS`` ASCII digits, else None.

    ``str.isdigit`` also accepts ``²`` and ``٢٠`` (which ``int`` then refuses, or reads as 20);
    an id in an address is plain ASCII.
    """
    if 0 < len(text) <= MAX_DIGITS and text.isascii() and text.isdigit():
        return int(text)
    return None


def int_or_404(text: str, what: str = "item") -> int:
    """The id or version number ``text`` of a path; 404 when it cannot name one."""
    number = ascii_number(text)
    if number is None:
        raise HTTPNotFound(f"no {what} {text[:40]!r}")
    return number


def _value_problem(value: str) -> str | None:
    if len(value) > MAX_QUERY_VALUE:
        return f"is {len(value):,} characters long; at most {MAX_QUERY_VALUE:,} are accepted"
    if "\x00" in value:
        return "contains a NUL character; remove it"
    if any("\ud800" <= char <= "\udfff" for char in value):
        return "contains a lone UTF-16 surrogate, which is not text; remove it"
    return None


def check_admin_input(event) -> None:
    """Refuse an admin request whose query or path values no page could use: 400 with a page
    that names the value and says what to change (issue 15).

    Subscribed to ``ContextFound`` (the route has matched, no view has run), so every admin
    page is covered once and no NUL, surrogate or megabyte string reaches the database.
    """
    request = event.request
    route = request.matched_route
    if route is None or not route.name.startswith("admin"):
        return
    try:
        query = list(request.GET.items())
    except UnicodeDecodeError:
        raise HTTPBadRequest(
            "The address's query is not valid UTF-8 text. Use the page's own filter form."
        ) from None
    for name, value in query:
        problem = _value_problem(value)
        if problem:
            raise HTTPBadRequest(
                f"The filter {name[:40]!r} {problem}. "
                "Change it in the filter form and search again."
            )
    for name, value in (request.matchdict or {}).items():
        problem = _value_problem(value) if isinstance(value, str) else None
        if problem:
            raise HTTPBadRequest(f"The address part {name!r} {problem}.")


@dataclass
class Page:
    """One page of a query's rows, with links to its neighbours."""

    items: list
    number: int
    per_page: int
    total: int
    params: dict

    @property
    def pages(self) -> int:
        return max((self.total + self.per_page - 1) // self.per_page, 1)

    def link(self, number: int) -> str:
        return "?" + urlencode({**{k: v for k, v in self.params.items() if v}, "page": number})

    @property
    def previous(self) -> str | None:
        return self.link(self.number - 1) if self.number > 1 else None

    @property
    def next(self) -> str | None:
        return self.link(self.number + 1) if self.number < self.pages else None


def page_number(params) -> int:
    number = ascii_number(params.get("page", "1"))
    # past a billion pages there is nothing to show; the last page says so
    return min(max(number or 1, 1), 10**9)


def paginate(session, query, params, per_page: int = PER_PAGE, scalars: bool = True) -> Page:
    """Run ``query`` for the page named by ``params['page']``."""
    number = page_number(params)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    paged = query.offset((number - 1) * per_page).limit(per_page)
    rows = list(session.scalars(paged) if scalars else session.execute(paged))
    kept = {k: v for k, v in params.items() if k != "page"}
    return Page(rows, number, per_page, total, kept)


def like(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, with the wildcards in it escaped."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
