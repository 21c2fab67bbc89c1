"""中介服务 (intermediary services): commission, stages, result; the intermediary's time is not
counted on the matter's clocks."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import current_actor, requires
from api.schemas.common import PageQuery, page_envelope, page_of
from api.schemas.lifecycle import (
    IntermediaryCommissionSchema,
    IntermediaryEventSchema,
    IntermediaryListQuery,
    IntermediarySchema,
)
from api.transaction import platform, session
from engine import intermediaries, projects

bp = Blueprint("intermediaries", __name__, url_prefix="/projects", description="中介服务 (intermediary services)")
#: One envelope class for both lists: the OpenAPI document names each schema once.
IntermediaryPage = page_envelope(IntermediarySchema)


@bp.route("/<string:code>/matters/<string:matter_code>/intermediaries")
class MatterIntermediaries(MethodView):
    @requires()
    @bp.arguments(PageQuery, location="query")
    @bp.response(200, IntermediaryPage)
    def get(self, query, code, matter_code):
        """One matter's intermediaries, oldest first (the project unit and officials of the region)."""
        s = session()
        project = projects.visible_project(s, current_actor(), code)
        rows, total = intermediaries.list_for_project(s, project, matter_code=matter_code, **query)
        return page_of(rows, total, query["page"], query["page_size"])

    @requires("officer")
    @bp.arguments(IntermediaryCommissionSchema)
    @bp.response(201, IntermediarySchema)
    def post(self, body, code, matter_code):
        """委托中介服务 (the matter's department, while it handles the matter): the matter's
        running clocks stop counting until the intermediary completes."""
        s, p, actor = session(), platform(), current_actor()
        project = projects.visible_project(s, actor, code)
        return intermediaries.commission(s, actor=actor, project=project, matter_code=matter_code, now=p.clock.now(), **body)


@bp.route("/<string:code>/matters/<string:matter_code>/intermediaries/<int:intermediary_id>/events", methods=["POST"])
@requires("officer")
@bp.arguments(IntermediaryEventSchema)
@bp.response(200, IntermediarySchema)
def record_stage(body, code, matter_code, intermediary_id):
    """受理, 办理, 办结 in that order; 办结 records the result and lets the matter's clocks
    count on once no other intermediary of the matter is open."""
    s, p, actor = session(), platform(), current_actor()
    project = projects.visible_project(s, actor, code)
    return intermediaries.record_stage(s, actor=actor, project=project, matter_code=matter_code,
                                       intermediary_id=intermediary_id, stage=body["stage"], note=body["note"],
                                       result=body.get("result"), version=body["version"], now=p.clock.now())


@bp.route("/<string:code>/intermediaries")
@requires()
@bp.arguments(IntermediaryListQuery, location="query")
@bp.response(200, IntermediaryPage)
def project_intermediaries(query, code):
    """Every intermediary of the project, or of one matter (``matter_code``), oldest first."""
    s = session()
    project = projects.visible_project(s, current_actor(), code)
    rows, total = intermediaries.list_for_project(s, project, matter_code=query.get("matter_code"),
                                                  page=query["page"], page_size=query["page_size"])
    return page_of(rows, total, query["page"], query["page_size"])
