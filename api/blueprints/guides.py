"""办事指南 (service guides): public list, department admins publish versions.

The portal routes need no sign-in and are rate-limited like the rest of the portal
(Hunan 第四条: the portal offers 办事指南 to project units and the public). Publishing
is the matter's department admin's (Hunan 第八条: 编制完善、及时公开更新办事指南) or
the operator's.
"""
from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api.auth import current_actor, requires
from api.blueprints.portal import rate_limited
from api.schemas.common import PageQuery, page_envelope, page_of
from api.schemas.guides import (
    GuideContentSchema,
    GuideListQuery,
    GuideSchema,
    GuideSummarySchema,
    GuideVersionQuery,
    GuideVersionSchema,
    RegimeMatterSchema,
)
from api.transaction import platform, session
from engine import guides
from engine.errors import NotFound
from engine.models import REGIMES, Department, ServiceGuide

bp = Blueprint("guides", __name__, url_prefix="", description="办事指南 (service guides): public list, department admins publish versions")

_TOO_MANY = "too many requests from this address; see Retry-After"


def _meta(guide: ServiceGuide) -> dict[str, Any]:
    """What the public reads of a version. Who published it is not among it: an official's
    login is not the public's to read (with it, anyone could lock the account out by
    failed sign-ins); the matter's department is the guide's."""
    return {"matter_code": guide.matter_code, "version": guide.version, "published_at": guide.published_at}


def _whole(guide: ServiceGuide) -> dict[str, Any]:
    return {**guide.content, **_meta(guide)}


def _summary(guide: ServiceGuide, department: Department) -> dict[str, Any]:
    content = guide.content
    return {
        **_meta(guide), "name": content["name"], "department": {"code": department.code, "name": department.name},
        "regimes": content["regimes"], "promised_working_days": content["promised_working_days"],
        "statutory_working_days": content["statutory_working_days"], "fees": content["fees"],
    }


@bp.route("/portal/guides")
@bp.doc(security=[])
@rate_limited
@bp.arguments(GuideListQuery, location="query")
@bp.response(200, page_envelope(GuideSummarySchema))
@bp.alt_response(429, description=_TOO_MANY)
def list_guides(query):
    """The newest guide of every matter, by department then matter code."""
    page, size = query.pop("page"), query.pop("page_size")
    rows, total = guides.list_current(session(), guides.GuideFilter(**query), page=page, page_size=size)
    return page_of([_summary(g, d) for g, d in rows], total, page, size)


@bp.route("/portal/guides/<string:matter_code>")
@bp.doc(security=[])
@rate_limited
@bp.arguments(GuideVersionQuery, location="query")
@bp.response(200, GuideSchema)
@bp.alt_response(404, description="unknown matter, no guide published, or no such version")
@bp.alt_response(429, description=_TOO_MANY)
def get_guide(query, matter_code):
    """A matter's guide: the newest version, or ``?version=N`` (a project keeps the version it was told)."""
    return _whole(guides.public_guide(session(), matter_code, query.get("version")))


@bp.route("/portal/guides/<string:matter_code>/versions")
@bp.doc(security=[])
@rate_limited
@bp.arguments(PageQuery, location="query")
@bp.response(200, page_envelope(GuideVersionSchema))
@bp.alt_response(404, description="unknown matter")
@bp.alt_response(429, description=_TOO_MANY)
def guide_versions(query, matter_code):
    """Every published version of a matter's guide, newest first."""
    rows, total = guides.versions(session(), matter_code, page=query["page"], page_size=query["page_size"])
    return page_of([_meta(g) for g in rows], total, query["page"], query["page_size"])


@bp.route("/portal/regimes/<string:regime>/matters")
@bp.doc(security=[])
@rate_limited
@bp.arguments(PageQuery, location="query")
@bp.response(200, page_envelope(RegimeMatterSchema))
@bp.alt_response(404, description="unknown regime")
@bp.alt_response(429, description=_TOO_MANY)
def regime_matters(query, regime):
    """The matters a project of this regime (examination 审批 | approval 核准 | filing 备案)
    usually needs: those whose newest guide applies to it."""
    if regime not in REGIMES:
        raise NotFound(f"没有此管理方式 (no such regime): {regime}; 可选 (one of) {', '.join(REGIMES)}")
    page, size = query["page"], query["page_size"]
    rows, total = guides.list_current(session(), guides.GuideFilter(regime=regime), page=page, page_size=size)
    items = [{"matter_code": g.matter_code, "name": g.content["name"], "department": {"code": d.code, "name": d.name},
              "promised_working_days": g.content["promised_working_days"], "guide_version": g.version} for g, d in rows]
    return page_of(items, total, page, size)


@bp.route("/guides/<string:matter_code>", methods=["POST"])
@requires("dept_admin", "operator")
@bp.arguments(GuideContentSchema)
@bp.response(201, GuideSchema)
@bp.alt_response(200, schema=GuideSchema, description="identical to the newest version: that version, nothing stored")
@bp.alt_response(403, description="another department's matter")
@bp.alt_response(404, description="unknown matter")
def publish_guide(body, matter_code):
    """Publish a new version of a matter's guide (its department's admin, or the operator);
    422 names each bad field by its path (e.g. ``materials.2.code``)."""
    published = guides.publish_version(session(), actor=current_actor(), matter_code=matter_code, content=body,
                                       now=platform().clock.now())
    return {**_whole(published.guide), "published_by": published.guide.published_by}, 201 if published.created else 200
