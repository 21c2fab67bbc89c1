"""门户 (portal): public progress lookup and disclosure (信息公开), no sign-in.

Every route here is rate-limited per client address (``rate_limited``), counted in the
database in a transaction of its own before the request's work, so refused and 404
answers count too. The limit is ``TZXM_PORTAL_RATE`` (``N`` or ``N/second|minute|hour``,
default 60 per minute). The client address is the connection's peer; with
``TZXM_TRUSTED_PROXY_HOPS`` = n (reverse proxies we run in front), the n-th address
from the right of X-Forwarded-For — the one our outermost proxy saw — is used instead.
"""
from __future__ import annotations

import functools
import ipaddress
import os
import re
from datetime import datetime
from typing import Any, Callable

from flask import Response, current_app, request, url_for
from flask_smorest import Blueprint

from api.schemas.common import page_envelope, page_of
from api.schemas.portal import (
    ATOM_MEDIA_TYPE,
    FEED_SIZE,
    ApprovalFilterSchema,
    ApprovalQuerySchema,
    PortalApprovalSchema,
    PortalProjectSchema,
    RecordFilterSchema,
    RecordQuerySchema,
    PortalRecordSchema,
    atom_feed,
)
from api.transaction import committed_part, platform, session
from engine import portal, ratelimit
from engine.settings import ConfigurationError, platform_name

bp = Blueprint("portal", __name__, url_prefix="/portal", description="门户 (portal): public progress lookup and disclosure")

#: The year in every tag: URI of this platform (RFC 4151: a date the authority held its name).
TAG_YEAR = "2026"
_HOSTNAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_SETTINGS_KEY = "tzxm_portal_settings"
#: one envelope class for both record lists (one name in the OpenAPI document)
RecordPage = page_envelope(PortalRecordSchema)


@bp.record_once
def _configure(state) -> None:
    """Read the settings once at start-up: a malformed value stops the server instead of
    leaving the portal unlimited (or trusting the wrong header). The app's configuration
    wins; the environment is the fallback."""
    app = state.app

    def setting(name: str):
        return app.config.get(name, os.environ.get(name))

    hops = str(setting("TZXM_TRUSTED_PROXY_HOPS") or "0").strip()
    if not hops.isdigit():
        raise ConfigurationError(f"TZXM_TRUSTED_PROXY_HOPS 须为非负整数 (got {hops!r})")
    app.extensions[_SETTINGS_KEY] = (ratelimit.parse_rate(setting("TZXM_PORTAL_RATE")), int(hops))


def client_address() -> str:
    """The requesting client's address. X-Forwarded-For is client-controlled, so it is read
    only when proxies of ours are configured, and then only the entry our outermost proxy
    appended."""
    hops = current_app.extensions[_SETTINGS_KEY][1]
    if hops > 0:
        forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
        if len(forwarded) >= hops:
            try:
                return str(ipaddress.ip_address(forwarded[-hops]))
            except ValueError:
                pass
    return request.remote_addr or "unknown"


def rate_limited(view: Callable) -> Callable:
    """Count the request against the client's limit (its own committed transaction), 429
    with Retry-After when over. Put it under ``@bp.route`` and above ``@bp.arguments`` so a
    request with bad parameters counts as well."""

    @functools.wraps(view)
    def inner(*args, **kwargs):
        p = platform()
        ratelimit.enforce(p.session_factory, client=client_address(), now=p.clock.now(),
                          rate=current_app.extensions[_SETTINGS_KEY][0])
        committed_part()  # counted once, even if the database aborts what follows
        return view(*args, **kwargs)

    inner.rate_limited = True
    return inner


_TOO_MANY = "too many requests from this address; see Retry-After"


@bp.route("/projects/<string:code>")
@bp.doc(security=[])
@rate_limited
@bp.response(200, PortalProjectSchema)
@bp.alt_response(404, description="no such project (the same answer, in the same work, for any unknown code)")
@bp.alt_response(429, description=_TOO_MANY)
def project(code):
    """A project's public progress and results, by project code or legacy code (原编码)."""
    return portal.project_view(session(), code, secret=platform().secret_key)


def _filter(query: dict) -> portal.DisclosureFilter:
    return portal.DisclosureFilter(**{k: v for k, v in query.items() if k not in ("page", "page_size")})


def _approvals(query: dict, offset: int, limit: int, count: bool = True):
    return portal.approvals(session(), _filter(query), offset=offset, limit=limit, count=count)


def _records(kinds: tuple[str, ...]):
    def run(query: dict, offset: int, limit: int, count: bool = True):
        return portal.supervision_records(session(), _filter(query), kinds=kinds, secret=platform().secret_key,
                                          offset=offset, limit=limit, count=count)
    return run


def _page(lister, query: dict) -> dict:
    page, size = query["page"], query["page_size"]
    rows, total = lister(query, (page - 1) * size, size)
    return page_of(rows, total, page, size)


@bp.route("/disclosure/approvals")
@bp.doc(security=[])
@rate_limited
@bp.arguments(ApprovalQuerySchema, location="query")
@bp.response(200, page_envelope(PortalApprovalSchema))
@bp.alt_response(429, description=_TOO_MANY)
def approvals(query):
    """审批结果公开: concluded matters with decision and document, newest first."""
    return _page(_approvals, query)


@bp.route("/disclosure/supervision")
@bp.doc(security=[])
@rate_limited
@bp.arguments(RecordQuerySchema, location="query")
@bp.response(200, RecordPage)
@bp.alt_response(429, description=_TOO_MANY)
def supervision(query):
    """监管信息公开: public inspection and rectification records, newest first."""
    return _page(_records(portal.SUPERVISION_KINDS), query)


@bp.route("/disclosure/penalties")
@bp.doc(security=[])
@rate_limited
@bp.arguments(RecordQuerySchema, location="query")
@bp.response(200, RecordPage)
@bp.alt_response(429, description=_TOO_MANY)
def penalties(query):
    """处罚结果公开: public penalties, newest first."""
    return _page(_records(portal.PENALTY_KINDS), query)


# --------------------------------------------------------------------------- Atom feeds

def _tag_authority() -> str:
    """The tag: URI authority: configured, else the host the portal is served under."""
    configured = current_app.config.get("TZXM_PORTAL_TAG_AUTHORITY")
    if configured:
        return configured
    host = request.host.rsplit(":", 1)[0] if request.host.count(":") == 1 else request.host
    return host if _HOSTNAME.match(host) else "localhost"


def _project_link(code: str) -> str:
    return url_for("portal.project", code=code, _external=True)


def _lines(pairs: list[tuple[str, Any]]) -> str:
    return "\n".join(f"{label}：{value}" for label, value in pairs if value not in (None, ""))


def _approval_entry(item: dict, authority: str) -> dict:
    return {
        "id": f"tag:{authority},{TAG_YEAR}:approval/{item['project_code']}/{item['matter_code']}",
        "title": f"{item['project_name']}：{item['matter_name']}",
        "updated": item["concluded_at"], "published": item["concluded_at"],
        "link": _project_link(item["project_code"]), "category": item["department"]["code"],
        "summary": _lines([("项目代码", item["project_code"]), ("事项", item["matter_name"]),
                           ("部门", item["department"]["name"]), ("决定", item["decision"]),
                           ("文号", item["document_number"]), ("文件标题", item["document_title"]),
                           ("文件日期", item["document_date"])]),
    }


def _record_entry(item: dict, authority: str) -> dict:
    particulars = item["particulars"]
    return {
        "id": f"tag:{authority},{TAG_YEAR}:supervision-record/{item['reference']}",
        "title": item["title"],
        "updated": max(filter(None, (item["recorded_at"], item["closed_at"]))), "published": item["recorded_at"],
        "link": _project_link(item["project_code"]), "category": item["kind"],
        "summary": _lines([("项目", f"{item['project_name']}（{item['project_code']}）"),
                           ("部门", item["department"]["name"]), ("内容", item["content"]),
                           ("决定书文号", particulars.get("decision_number")), ("金额", particulars.get("amount")),
                           ("依据", particulars.get("legal_basis"))]),
    }


def _feed(name: str, title: str, lister, entry: Callable[[dict, str], dict], query: dict, json_endpoint: str) -> Response:
    rows, _ = lister(query, 0, FEED_SIZE, count=False)  # a feed has no total: not counted
    authority = _tag_authority()
    entries = [entry(row, authority) for row in rows]
    updated: datetime = max((e["updated"] for e in entries), default=platform().clock.now())
    body = atom_feed(
        feed_id=f"tag:{authority},{TAG_YEAR}:disclosure/{name}", title=title, self_url=request.url,
        alternate_url=url_for(json_endpoint, _external=True, **request.args), author=platform_name(),
        updated=updated, entries=entries,
    )
    return Response(body, content_type=f"{ATOM_MEDIA_TYPE}; charset=utf-8")


_ATOM_DOC = {"responses": {"200": {"description": "Atom 1.0 feed of the newest 50",
                                    "content": {ATOM_MEDIA_TYPE: {"schema": {"type": "string"}}}}}}


@bp.route("/disclosure/approvals.atom")
@bp.doc(security=[])
@rate_limited
@bp.arguments(ApprovalFilterSchema, location="query")
@bp.doc(**_ATOM_DOC)
@bp.alt_response(429, description=_TOO_MANY)
def approvals_feed(query):
    """审批结果公开 as an Atom feed (same filters, newest 50)."""
    return _feed("approvals", "信息公开：审批结果", _approvals, _approval_entry, query, "portal.approvals")


@bp.route("/disclosure/supervision.atom")
@bp.doc(security=[])
@rate_limited
@bp.arguments(RecordFilterSchema, location="query")
@bp.doc(**_ATOM_DOC)
@bp.alt_response(429, description=_TOO_MANY)
def supervision_feed(query):
    """监管信息公开 as an Atom feed (same filters, newest 50)."""
    return _feed("supervision", "信息公开：监管信息", _records(portal.SUPERVISION_KINDS), _record_entry, query,
                 "portal.supervision")


@bp.route("/disclosure/penalties.atom")
@bp.doc(security=[])
@rate_limited
@bp.arguments(RecordFilterSchema, location="query")
@bp.doc(**_ATOM_DOC)
@bp.alt_response(429, description=_TOO_MANY)
def penalties_feed(query):
    """处罚结果公开 as an Atom feed (same filters, newest 50)."""
    return _feed("penalties", "信息公开：处罚结果", _records(portal.PENALTY_KINDS), _record_entry, query,
                 "portal.penalties")
