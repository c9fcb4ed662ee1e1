"""Small helpers shared by the admin views: templates, lookups scoped by tenant, paging."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from pyramid.httpexceptions import HTTPNotFound
from sqlalchemy import func, select

from approvalrules.store.models import RuleSet

PER_PAGE = 25


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


def int_or_404(text: str, what: str = "item") -> int:
    if not text.isdigit() or len(text) > 18:
        raise HTTPNotFound(f"no {what} {text[:40]!r}")
    return int(text)


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
    text = params.get("page", "1")
    return max(int(text), 1) if text.isdigit() and len(text) < 9 else 1


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
