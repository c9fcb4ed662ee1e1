"""The storefront's JSON API under /api/v1.  Thin: parse, call the workflow, render.

The tenant comes from the API key (``Authorization: Bearer <key>``); every
query below is scoped by it, so one tenant's ids are invisible to another
(unknown and foreign ids alike answer 404).  Every API view names the grant it
needs (``api_grant``: ``storefront``, ``merchant`` or ``read``); a key whose scope
lacks it gets 403 ``insufficient_scope`` (:func:`require_grant`, docs/security.md).
"""

from __future__ import annotations

import functools
from datetime import date

from pyramid.tweens import EXCVIEW, INGRESS
from pyramid.view import view_config, view_defaults

from approvalrules import observability
from approvalrules.engine import validator
from approvalrules.engine.decision import Order as EngineOrder
from approvalrules.engine.durations import isoformat, parse_instant
from approvalrules.engine.money import format_amount, parse_amount
from approvalrules.errors import (
    ApprovalRulesError,
    InsufficientScope,
    NotFound,
    OrderError,
    Unauthorized,
)
from approvalrules.store import decision_log
from approvalrules.store.db import database_unavailable
from approvalrules.store.directory_records import DirectoryRecords
from approvalrules.store.directory_service import DirectoryService
from approvalrules.store.etags import check_if_match, etag_for
from approvalrules.store.keycache import VerifiedKey, attach_tenant, key_cache_for
from approvalrules.store.models import ApprovalRequest, Order, RuleSetVersion
from approvalrules.store.services import (
    GRANT_SCOPES,
    SCOPE_DESCRIPTIONS,
    scope_allows,
)
from approvalrules.workflow import actions, deciding, queries

from . import inputs
from .json_output import json_response
from .limits import VERIFIED_KEY, VERIFY_FAILED
from .order_body import plain_order

MAX_PAGE_SIZE = 200
#: rows a page may start after (32-bit, as the ids)
MAX_OFFSET = 2**31


def api_key(request) -> VerifiedKey:
    """The request's live API key; 401 when it is missing, wrong or revoked.

    Verified once per request: by the limits tween (views/limits.py) when it counts the
    request, else here; from the process's key cache when it may be trusted
    (store/keycache.py), else with one query.
    """
    key = request.environ.get(VERIFIED_KEY)
    if key is not None:  # the limits tween read this very header and found the key live
        observability.note_tenant(key.tenant.slug)
        return key
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "missing_api_key", "send the tenant's API key as 'Authorization: Bearer <key>'"
        )
    if VERIFY_FAILED in request.environ:
        raise database_unavailable(request.environ[VERIFY_FAILED])
    if VERIFIED_KEY in request.environ:
        key = request.environ[VERIFIED_KEY]
    else:
        key = request.registry["key_cache"].verify(request.dbsession, token.strip())
    if key is None:
        raise Unauthorized("invalid_api_key", "the API key is unknown or revoked")
    observability.note_tenant(key.tenant.slug)
    return key


def api_tenant(request):
    """The tenant of the request's API key, bound to ``request.dbsession`` (no query: its
    fields came with the key); 401 when the key is missing, wrong or revoked."""
    return attach_tenant(request.dbsession, request.api_key.tenant)


def require_grant(request, grant: str) -> None:
    """403 ``insufficient_scope`` unless the request's key may use an endpoint needing ``grant``.

    A missing or bad key is a 401 first: a caller learns about scopes only with a good key.
    """
    key = request.api_key
    if scope_allows(key.scope, grant):
        return
    allowed = GRANT_SCOPES[grant]
    raise InsufficientScope(
        message=(
            f"this API key ({key.prefix}) has the {key.scope} scope, which allows: "
            f"{SCOPE_DESCRIPTIONS[key.scope]}. {request.method} {request.path} needs a key of "
            f"scope {' or '.join(allowed)}; an owner creates one in the admin under API keys"
        ),
        details={"scope": key.scope, "allowed_scopes": list(allowed)},
    )


def api_grant_deriver(view, info):
    """``@view_config(api_grant=...)``: the view runs only for keys whose scope holds the grant
    (``any``: every live key)."""
    grant = info.options.get("api_grant")
    if grant is None:
        return view
    if grant not in GRANT_SCOPES and grant != "any":
        raise ValueError(f"api_grant must be any or one of {sorted(GRANT_SCOPES)}, not {grant!r}")

    def scoped(context, request):
        if grant == "any":
            request.api_key  # noqa: B018  (401 without a live key)
        else:
            require_grant(request, grant)
        return view(context, request)

    return scoped


api_grant_deriver.options = ("api_grant",)


def includeme(config):
    config.registry["key_cache"] = key_cache_for(config.get_settings(), config.registry["dbengine"])
    config.add_request_method(api_key, "api_key", reify=True)
    config.add_request_method(api_tenant, "tenant", reify=True)
    config.add_view_deriver(api_grant_deriver)
    # under pyramid_tm: the key is verified in the request's own session (one query when the
    # key cache cannot answer, none when it can, so a cached key over its rate costs the
    # database nothing)
    config.add_tween(
        "approvalrules.views.limits.limits_tween_factory",
        under="pyramid_tm.tm_tween_factory",
        over=EXCVIEW,
    )
    # topmost: no other tween decodes a path before it is checked, and a refused
    # parameter never opens a transaction
    config.add_tween("approvalrules.views.inputs.input_tween_factory", under=INGRESS)


def json_body(request, check=None) -> dict:
    """The request's JSON object, or a 400 that says what is wrong with it.

    ``check`` sees the body with exact numbers (:class:`~.inputs.JsonNumber`) before the
    workflow gets it with fractional numbers as text, as it always has.
    """
    body, fractional = _json_object(request.body)
    if check is not None:
        check(body)
    return inputs.numbers_as_text(body) if fractional else body


def _json_object(raw: bytes) -> tuple[dict, bool]:
    body, fractional = inputs.parse_json_noting_fractions(raw)
    if not isinstance(body, dict):
        raise ApprovalRulesError("invalid_json", "the request body must be a JSON object")
    return body, fractional


def order_of_body(raw: bytes) -> EngineOrder:
    """The order a request body sends, as the engine takes it; 400 or 422 as :func:`json_body`
    with ``inputs.check_order`` and ``Order.from_dict`` answer, word for word.

    A plainly valid cart is read, checked and built in one pass by msgspec
    (``views/order_body.py``), which takes no ``float``.  Any other body goes the long way,
    which explains what is wrong with it."""
    order = plain_order(raw)
    if order is not None:
        return order
    body, fractional = _json_object(raw)
    inputs.check_order(body)
    return EngineOrder.from_dict(inputs.numbers_as_text(body) if fractional else body)


def order_view(session, order: Order) -> dict:
    """An order, its decision and its approval request as the API shows them."""
    request = queries.request_for_order(session, order)
    version = (
        session.get(RuleSetVersion, order.ruleset_version_id) if order.ruleset_version_id else None
    )
    data = {
        "id": order.external_id,
        "status": order.status,
        "total": format_amount(order.total),
        "currency": order.currency,
        "type": order.type,
        "released_at": isoformat(order.released_at) if order.released_at else None,
        "ruleset_version": version.number if version else None,
        "decision": order.decision,
    }
    if order.previous_decisions:
        data["previous_decisions"] = order.previous_decisions
    if request is not None:
        data["approval"] = approval_view(session, request, brief=True)
    return data


def inbox_item(session, request: ApprovalRequest) -> dict:
    """An approval request as the inbox lists it: the request, and whose order of how much."""
    order = request.order
    return {
        **approval_view(session, request, brief=True),
        "buyer": order.buyer.external_id if order.buyer else None,
        "company": order.company.external_id if order.company else None,
        "total": format_amount(order.total),
        "currency": order.currency,
    }


def step_state(request: ApprovalRequest, index: int) -> str:
    """Where step ``index`` of a request stands: done, current or waiting; the step a request
    ended in says how it ended (rejected, expired, withdrawn), and the steps after it were
    never reached.  The OpenAPI document lists these words (``openapi_parts.STEP_STATES``)."""
    if request.status == "approved" or index < request.current_step:
        return "done"
    if index == request.current_step:
        return "current" if request.status == "pending" else request.status
    return "waiting" if request.status == "pending" else "not_reached"


def approval_view(session, request: ApprovalRequest, brief: bool = False) -> dict:
    steps = []
    for index, step in enumerate(request.steps):
        acts = [
            a
            for a in request.actions
            if a.step == step["name"] and a.generation == request.generation
        ]
        steps.append(
            {
                "name": step["name"],
                "required": step["required"],
                "approvers": [a["account"] for a in step["approvers"]]
                if brief
                else step["approvers"],
                "approved_by": [a.approver.external_id for a in acts if a.action == "approve"],
                "rejected_by": [a.approver.external_id for a in acts if a.action == "reject"],
                "state": step_state(request, index),
                # escalation, approval on timeout, merchant review
                **{
                    k: step[k]
                    for k in (
                        "merchant",
                        "escalated_at",
                        "timed_out",
                        "approved_by_system",
                        "decided_by",
                    )
                    if k in step
                },
            }
        )
    data = {
        "id": request.id,
        "order": request.order.external_id,
        "status": request.status,
        "version": request.version_id,
        "current_step": request.current_step,
        "steps": steps,
        "expires_at": isoformat(request.expires_at) if request.expires_at else None,
        "created_at": isoformat(request.created_at),
        "decided_at": isoformat(request.decided_at) if request.decided_at else None,
    }
    if not brief:
        data["history"] = [
            {
                "action": a.action,
                "step": a.step,
                "by": a.approver.external_id,
                "for": a.on_behalf_of.external_id if a.on_behalf_of else None,
                "comment": a.comment,
                "at": isoformat(a.created_at),
                "generation": a.generation,
            }
            for a in request.actions
        ]
        data["order_detail"] = {
            "total": format_amount(request.order.total),
            "currency": request.order.currency,
            "buyer": request.order.decision.get("buyer"),
        }
    return data


@view_config(
    route_name="api_evaluate", request_method="POST", api_grant="storefront", renderer="json"
)
def evaluate(request):
    """The decision for a cart, with its trace; writes nothing.

    A function, not a method of :class:`StorefrontApi`: Pyramid keeps a class view's
    instance on the request, which made every evaluate a reference cycle (the request, its
    view, its session) that only the garbage collector's passes freed.
    """
    # the key's tenant fields, not a Tenant row: evaluate only reads them, and putting a
    # row into the session cost a fifth of the endpoint's time
    tenant = request.api_key.tenant
    decision, version = deciding.evaluate(
        request.dbsession, tenant, order_of_body(request.body), dry_run=True
    )
    observability.count_decision("evaluate", decision.outcome)
    decision_log.record_evaluate(request, tenant, decision, version)
    data = decision.as_dict(trace=_trace_wanted(request))
    data["ruleset"]["version"] = version.number
    return json_response(data)


def _trace_wanted(request) -> bool:
    """False for ``?trace=0`` (the last ``trace`` given counts, as in ``request.params``).

    Read from the query string itself: webob keeps its parsed query in the environ, and it
    refers back to the environ, a reference cycle per request for the collector."""
    wanted = True
    for name, value in inputs.query_pairs(request.environ.get("QUERY_STRING", "")):
        if name == "trace":
            wanted = value != "0"
    return wanted


@view_defaults(renderer="json")
class StorefrontApi:
    def __init__(self, request):
        self.request = request
        self.session = request.dbsession

    @functools.cached_property
    def tenant(self):
        """The key's tenant as a row of the request's session (made on first use)."""
        return self.request.tenant

    @view_config(route_name="api_orders", request_method="POST", api_grant="storefront")
    def submit(self):
        order, created = actions.submit(
            self.session,
            self.tenant,
            json_body(self.request, inputs.check_order),
            idempotency_key=self.request.headers.get("Idempotency-Key"),
        )
        decision_log.record_submit(self.request, self.tenant, order, created)
        self.request.response.status_int = 201 if created else 200
        observability.count_decision("submit", order.decision.get("outcome"), new=created)
        return order_view(self.session, order)

    @view_config(route_name="api_orders", request_method="GET", api_grant="storefront")
    def visible_orders(self):
        """The orders an account may see (ACCEPTANCE A10).

        ``?viewer=ID[&company=ID][&page][&per_page]``.
        """
        params = self.request.params
        viewer = params.get("viewer")
        if not viewer:
            raise OrderError(
                "missing_viewer", "name the account whose view to list as ?viewer=", path="viewer"
            )
        page, per_page = _page(params)
        found = queries.visible_orders_page(
            self.session, self.tenant, viewer, params.get("company"), page=page, per_page=per_page
        )
        return {
            "items": [
                {
                    "id": o.external_id,
                    "status": o.status,
                    "total": format_amount(o.total),
                    "currency": o.currency,
                    "buyer": o.decision.get("buyer", {}).get("account"),
                }
                for o in found.items
            ],
            "page": found.page,
            "per_page": found.per_page,
            "total": found.total,
        }

    @view_config(route_name="api_order", request_method="GET", api_grant="storefront")
    def get(self):
        return order_view(
            self.session, queries.get_order(self.session, self.tenant, self.request.matchdict["id"])
        )

    @view_config(route_name="api_order_action", request_method="POST", api_grant="storefront")
    def order_action(self):
        action = self.request.matchdict["action"]
        handlers = {
            "withdraw": actions.withdraw,
            "released": actions.release,
            "convert": actions.convert,
        }
        if action not in handlers:
            raise NotFound(
                "unknown_action", f"no order action {action!r}; use withdraw, released or convert"
            )
        order = handlers[action](self.session, self.tenant, self.request.matchdict["id"])
        return order_view(self.session, order)

    @view_config(route_name="api_approvals", request_method="GET", api_grant="storefront")
    def approvals(self):
        params = self.request.params
        created_from, created_to = (_instant_param(params, name) for name in ("from", "to"))
        page, per_page = _page(params)
        found, counts = queries.inbox_page(
            self.session,
            self.tenant.id,
            approver=params.get("approver"),
            status=params.get("status"),
            created_from=created_from,
            created_to=created_to,
            order_contains=params.get("q"),
            page=page,
            per_page=per_page,
        )
        return {
            "items": [inbox_item(self.session, r) for r in found.items],
            "page": found.page,
            "per_page": found.per_page,
            "total": found.total,
            "counts": counts,
        }

    @view_config(route_name="api_approval", request_method="GET", api_grant="storefront")
    def approval(self):
        request = queries.get_request(
            self.session, self.tenant, _int_id(self.request.matchdict["id"])
        )
        self.request.response.etag = str(request.version_id)
        return approval_view(self.session, request)

    @view_config(route_name="api_approval_action", request_method="POST", api_grant="storefront")
    def approval_action(self):
        action = self.request.matchdict["action"]
        handlers = {
            "approve": actions.approve,
            "reject": actions.reject,
            "reverse": actions.reverse,
        }
        if action not in handlers:
            raise NotFound(
                "unknown_action", f"no approval action {action!r}; use approve, reject or reverse"
            )
        body = json_body(self.request)
        approver, comment = actor_and_comment(body)
        request = handlers[action](
            self.session,
            self.tenant,
            _int_id(self.request.matchdict["id"]),
            approver,
            comment=comment,
            if_match=self.request.headers.get("If-Match") or body.get("version"),
        )
        self.session.flush()
        self.request.response.etag = str(request.version_id)
        return approval_view(self.session, request)

    @view_config(route_name="api_approval_edit", request_method="POST", api_grant="storefront")
    def approval_edit(self):
        """An eligible approver lowers quantities or removes lines before approving; the order is
        re-evaluated."""
        body = json_body(self.request)
        approver, comment = actor_and_comment(body)
        request = actions.edit(
            self.session,
            self.tenant,
            _int_id(self.request.matchdict["id"]),
            approver,
            body.get("lines"),
            comment=comment,
            if_match=self.request.headers.get("If-Match") or body.get("version"),
        )
        self.session.flush()
        self.request.response.etag = str(request.version_id)
        return approval_view(self.session, request)

    @view_config(route_name="api_approvals_bulk", request_method="POST", api_grant="storefront")
    def bulk(self):
        """Approve or reject several requests in one call; each is checked on its own, in its own
        savepoint."""
        body = json_body(self.request)
        approver, comment = actor_and_comment(body)
        results = actions.bulk(
            self.session, self.tenant, body.get("action"), body.get("requests"), approver, comment
        )
        return {"results": results}

    # directory sync: upsert by external id

    @view_config(route_name="api_directory_company", request_method="PUT", api_grant="merchant")
    def put_company(self):
        body = directory_body(self.request, "company_body")
        company = self.request.matchdict["company"]
        read = functools.partial(self._records().company, company)
        self._if_match(f"company {company!r}", read)
        self._directory().upsert_company(company, **body)
        self._etag(read)
        return {"status": "ok", "company": company}

    @view_config(route_name="api_directory_account", request_method="PUT", api_grant="merchant")
    def put_account(self):
        body = directory_body(self.request, "account_body")
        account = self.request.matchdict["account"]
        read = functools.partial(self._records().account, account)
        self._if_match(f"account {account!r}", read)
        self._directory().upsert_account(account, **body)
        self._etag(read)
        return {"status": "ok", "account": account}

    @view_config(route_name="api_directory_group", request_method="PUT", api_grant="merchant")
    def put_group(self):
        body = directory_body(self.request, "group_body")
        company, group = self.request.matchdict["company"], self.request.matchdict["group"]
        read = functools.partial(self._records().group, company, group)
        self._if_match(f"group {group!r} of {company!r}", read)
        self._directory().upsert_group(company, group, **body)
        self._etag(read)
        return {
            "status": "ok",
            "company": self.request.matchdict["company"],
            "group": self.request.matchdict["group"],
        }

    @view_config(route_name="api_directory_group", request_method="DELETE", api_grant="merchant")
    def delete_group(self):
        policy = self.request.params.get("policy")
        company, group = self.request.matchdict["company"], self.request.matchdict["group"]
        self._if_match(
            f"group {group!r} of {company!r}",
            functools.partial(self._records().group, company, group),
        )
        self._directory().delete_group(
            self.request.matchdict["company"], self.request.matchdict["group"], policy
        )
        return {"status": "deleted"}

    @view_config(route_name="api_directory_membership", request_method="PUT", api_grant="merchant")
    def put_membership(self):
        body = directory_body(self.request, "membership_body")
        # settings are checked by the service, against the rule-set schema, for every writer
        account, company = self.request.matchdict["account"], self.request.matchdict["company"]
        read = functools.partial(self._records().membership, account, company)
        self._if_match(f"membership of {account!r} in {company!r}", read)
        self._directory().upsert_membership(account, company, **body)
        self._etag(read)
        return {"status": "ok"}

    @view_config(route_name="api_directory_assignments", request_method="PUT", api_grant="merchant")
    def put_assignment(self):
        body = directory_body(self.request, "assignment_body")
        for key in ("threshold", "limit"):
            if body.get(key) is not None:
                body[key] = parse_amount(body[key], key)
        key = (body.pop("approver"), body.pop("account"), body.pop("company"))
        read = functools.partial(self._records().assignment, *key, body.get("step"))
        self._if_match(f"assignment {key[0]!r} -> {key[1]!r} in {key[2]!r}", read)
        self._directory().upsert_assignment(*key, **body)
        self._etag(read)
        return {"status": "ok"}

    @view_config(route_name="api_directory_delegations", request_method="PUT", api_grant="merchant")
    def put_delegation(self):
        body = directory_body(self.request, "delegation_body")
        for key in ("valid_from", "valid_until"):
            try:
                body[key] = date.fromisoformat(body[key])
            except ValueError:
                raise OrderError(
                    "invalid_date", f"{key} must be a date like 2026-12-24", path=key
                ) from None
        who, whom = body.pop("delegator"), body.pop("delegate")
        read = functools.partial(
            self._records().delegation, who, whom, body.get("company"), body.get("step")
        )
        self._if_match(f"delegation {who!r} -> {whom!r}", read)
        self._directory().upsert_delegation(
            who, whom, body.pop("valid_from"), body.pop("valid_until"), **body
        )
        self._etag(read)
        return {"status": "ok"}

    @view_config(
        route_name="api_directory_delegations", request_method="DELETE", api_grant="merchant"
    )
    def delete_delegation(self):
        params = self.request.params
        missing = [key for key in ("delegator", "delegate") if not params.get(key)]
        if missing:
            raise OrderError(
                "missing_parameter",
                f"name the delegation to revoke: ?{'&'.join(k + '=...' for k in missing)}",
                path=missing[0],
            )
        self._if_match(
            f"delegation {params['delegator']!r} -> {params['delegate']!r}",
            functools.partial(
                self._records().delegation,
                params["delegator"],
                params["delegate"],
                params.get("company") or None,
                params.get("step") or None,
            ),
        )
        self._directory().delete_delegation(
            params["delegator"],
            params["delegate"],
            company=params.get("company") or None,
            step=params.get("step") or None,
        )
        return {"status": "ok"}

    def _directory(self) -> DirectoryService:
        return DirectoryService(self.session, self.tenant, actor="storefront")

    def _records(self) -> DirectoryRecords:
        return DirectoryRecords(self.session, self.tenant)

    def _if_match(self, what: str, read) -> None:
        """With ``If-Match``: lock the record (``read(lock=True)``) and refuse the write (412)
        unless the header names its current ETag."""
        if_match = self.request.headers.get("If-Match")
        if if_match:
            current = read(lock=True)
            check_if_match(if_match, None if current is None else etag_for(current), what)

    def _etag(self, read) -> None:
        """The written record's new ETag on the answer."""
        self.session.flush()
        record = read()
        if record is not None:
            self.request.response.headers["ETag"] = etag_for(record)


def directory_body(request, definition: str) -> dict:
    """The JSON body of a directory upsert, checked against ``definition`` in the directory
    schema (``schemas/directory.schema.json#/$defs/...``); the first problem is a 422 naming
    the field, in the order of the body's fields, then the missing ones."""
    body = json_body(request)
    errors = list(_body_validator(definition).iter_errors(body))
    if errors:
        raise _body_error(body, min(errors, key=lambda error: _body_error_rank(body, error)))
    return body


@functools.cache
def _body_validator(definition: str):
    return validator("directory").evolve(
        schema={"$ref": f"directory.schema.json#/$defs/{definition}"}
    )


def _unknown_keys(body: dict, error) -> list[str]:
    return [key for key in body if key not in error.schema.get("properties", {})]


def _body_error_rank(body: dict, error) -> int:
    fields = list(body)
    if error.validator == "additionalProperties":
        return fields.index(_unknown_keys(body, error)[0])
    if error.path and error.path[0] in body:
        return fields.index(error.path[0])
    return len(fields)  # a missing field: after every problem of a given one


def _body_error(body: dict, error) -> OrderError:
    if error.validator == "additionalProperties":
        key = _unknown_keys(body, error)[0]
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return OrderError("unknown_key", f"unknown field {key!r}; allowed: {allowed}", path=key)
    if error.validator == "required":
        key = next(key for key in error.validator_value if key not in body)
        return OrderError("missing_key", f"{key} is required", path=key)
    key = ".".join(map(str, error.path))
    if error.validator == "type":
        types = error.validator_value
        names = " or ".join([types] if isinstance(types, str) else types)
        return OrderError("wrong_type", f"{key} must be {names}", path=key)
    return OrderError("invalid_value", f"{key}: {error.message}"[:300], path=key or None)


def actor_and_comment(body: dict) -> tuple[str, str | None]:
    """The acting approver and the optional comment of an approval action's body, checked."""
    approver, comment = body.get("approver"), body.get("comment")
    if not isinstance(approver, str) or not approver:
        raise OrderError(
            "missing_approver", "name the acting account as 'approver'", path="approver"
        )
    if comment is not None and (not isinstance(comment, str) or len(comment) > 5000):
        raise OrderError(
            "invalid_comment", "comment must be text of at most 5,000 characters", path="comment"
        )
    return approver, comment


def _int_id(text: str) -> int:
    """An approval request id; views/inputs.py has refused anything else already."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) > inputs.MAX_ID:
        raise NotFound("unknown_approval", f"no approval request {text[:40]!r}")
    return int(text)


def _page(params) -> tuple[int, int]:
    try:
        page = max(int(params.get("page", 1)), 1)
        per_page = min(max(int(params.get("per_page", 50)), 1), MAX_PAGE_SIZE)
    except ValueError:
        raise OrderError("invalid_page", "page and per_page must be whole numbers") from None
    if (page - 1) * per_page >= MAX_OFFSET:
        # no listing is that long, and SQLite cannot even skip that many rows (integer overflow)
        raise OrderError("invalid_page", f"page {page} is past the end of any listing", path="page")
    return page, per_page


def _instant_param(params, name: str):
    """The query parameter ``name`` as an instant, None when absent; 400 when it is no date-time."""
    if not params.get(name):
        return None
    try:
        return parse_instant(params[name], name)
    except ApprovalRulesError:
        raise OrderError(
            "invalid_date", f"{name} must be an ISO 8601 date-time", path=name
        ) from None
