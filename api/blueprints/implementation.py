"""实施情况与监管 (implementation reports, inspections, rectification, penalties)."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import current_actor, requires
from api.schemas.common import PageQuery, page_envelope, page_of
from api.schemas.lifecycle import (
    ImplementationReportInSchema,
    ImplementationReportSchema,
    RectificationCloseSchema,
    SupervisionRecordInSchema,
    SupervisionRecordListQuery,
    SupervisionRecordSchema,
)
from api.transaction import platform, session
from engine import implementation, projects, supervision_records

bp = Blueprint("implementation", __name__, url_prefix="/projects", description="实施情况与监管 (implementation reports, inspections, rectification, penalties)")


@bp.route("/<string:code>/implementation")
class ImplementationReports(MethodView):
    @requires()
    @bp.arguments(PageQuery, location="query")
    @bp.response(200, page_envelope(ImplementationReportSchema))
    def get(self, query, code):
        """The project's implementation reports in the order made (its unit and officials of the region)."""
        s = session()
        project = projects.visible_project(s, current_actor(), code)
        rows, total = implementation.list_reports(s, project, **query)
        return page_of(rows, total, query["page"], query["page_size"])

    @requires("applicant")
    @bp.arguments(ImplementationReportInSchema)
    @bp.response(201, ImplementationReportSchema)
    def post(self, body, code):
        """开工, 进度, 竣工: the project's own unit, once all its matters have concluded."""
        s, p, actor = session(), platform(), current_actor()
        project = projects.visible_project(s, actor, code)
        return implementation.report(s, actor=actor, project=project, now=p.clock.now(), **body)


@bp.route("/<string:code>/supervision-records")
class SupervisionRecords(MethodView):
    @requires()
    @bp.arguments(SupervisionRecordListQuery, location="query")
    @bp.response(200, page_envelope(SupervisionRecordSchema))
    def get(self, query, code):
        """Officials see every record; the project unit the public ones and its rectification orders."""
        s, actor = session(), current_actor()
        project = projects.visible_project(s, actor, code)
        rows, total = supervision_records.list_records(s, actor, project, kind=query.get("kind"),
                                                       page=query["page"], page_size=query["page_size"])
        return page_of(rows, total, query["page"], query["page_size"])

    @requires("officer")
    @bp.arguments(SupervisionRecordInSchema)
    @bp.response(201, SupervisionRecordSchema)
    def post(self, body, code):
        """检查, 整改 (with a deadline clock that turns yellow and red), 处罚 (with its particulars)."""
        s, p, actor = session(), platform(), current_actor()
        project = projects.visible_project(s, actor, code)
        return supervision_records.record(
            s, actor=actor, project=project, kind=body["kind"], title=body["title"], content=body["content"],
            public=body["public"], details=body["details"],
            rectification_working_days=body.get("rectification_working_days"), now=p.clock.now())


@bp.route("/<string:code>/supervision-records/<int:record_id>/close", methods=["POST"])
@requires("officer")
@bp.arguments(RectificationCloseSchema)
@bp.response(200, SupervisionRecordSchema)
def close_rectification(body, code, record_id):
    """整改完成: the ordering department closes the order and its clock stops."""
    s, p, actor = session(), platform(), current_actor()
    project = projects.visible_project(s, actor, code)
    return supervision_records.close(s, actor=actor, project=project, record_id=record_id, content=body["content"],
                                     now=p.clock.now())
