"""Projects: declare (项目申报), read, list, change and suspension requests, audit trail."""
from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from marshmallow import validate
from flask_smorest import Blueprint
from api.auth import current_actor, requires
from api.schemas.common import PageQuery, StrictSchema, page_envelope, page_of
from api.schemas.projects import (
    AuditEventSchema,
    ChangeRequestSchema,
    DeclarationHeaders,
    DeclarationSchema,
    ProjectListQuery,
    ProjectSchema,
)
from api.transaction import platform, session
from engine import audit, changes, projects, runtime, supervision_records, waits

bp = Blueprint("projects", __name__, url_prefix="/projects", description="项目申报与查询 (projects)")


@bp.route("")
class Projects(MethodView):
    @requires()
    @bp.arguments(ProjectListQuery, location="query")
    @bp.response(200, page_envelope(ProjectSchema))
    def get(self, query):
        """The projects the caller may see, newest first."""
        rows, total = projects.list_projects(session(), current_actor(), **query)
        return page_of(rows, total, query["page"], query["page_size"])

    @requires("applicant")
    @bp.arguments(DeclarationHeaders, location="headers")
    @bp.arguments(DeclarationSchema)
    @bp.response(201, ProjectSchema)
    def post(self, headers, body):
        """Declare a project: it is stored with its 24-character project code."""
        p = platform()
        project, replayed = runtime.declare_once(session(), actor=current_actor(), scope=p.scope, now=p.clock.now(),
                                                 fields=body, key=headers.get("idempotency_key"))
        return project, 201, {"Idempotent-Replayed": "true"} if replayed else {}


@bp.route("/<string:code>")
@requires()
@bp.response(200, ProjectSchema)
def get_project(code):
    """A project by project code or legacy code (the owner and officials of its region)."""
    return projects.visible_project(session(), current_actor(), code)


@bp.route("/<string:code>/changes", methods=["POST"])
@requires("applicant")
@bp.arguments(ChangeRequestSchema)
@bp.response(201, ProjectSchema)
def request_change(body, code):
    """Change, extension, suspension or resumption request; a major change re-codes."""
    p = platform()
    s = session()
    actor = current_actor()
    project = projects.visible_project(s, actor, code)
    return changes.request_change(
        s, actor=actor, scope=p.scope, now=p.clock.now(), project=project,
        kind=body["kind"], reason=body["reason"], changes=body["changes"],
    )


class PrerequisiteWaitSchema(StrictSchema):
    prerequisite = ma.fields.String(required=True, validate=validate.Length(min=1, max=64), metadata={"description": "the prerequisite matter's code"})


@bp.route("/<string:code>/matters/<string:matter_code>/prerequisite-wait")
class PrerequisiteWait(MethodView):
    """等待前置: the matter's clocks pause until the prerequisite matter concludes."""

    @requires("officer")
    @bp.arguments(PrerequisiteWaitSchema)
    @bp.response(200, ProjectSchema)
    def post(self, body, code, matter_code):
        """Start waiting (the matter's department's officer)."""
        s, p, actor = session(), platform(), current_actor()
        project = projects.visible_project(s, actor, code)
        waits.start_wait(s, actor=actor, project=project, matter_code=matter_code, prerequisite=body["prerequisite"], now=p.clock.now())
        return project

    @requires("officer")
    @bp.response(200, ProjectSchema)
    def delete(self, code, matter_code):
        """End the wait early; the clocks count on and timers are re-armed."""
        s, p, actor = session(), platform(), current_actor()
        project = projects.visible_project(s, actor, code)
        waits.end_wait_by_officer(s, actor=actor, project=project, matter_code=matter_code, now=p.clock.now())
        return project


@bp.route("/<string:code>/history")
@requires()
@bp.arguments(PageQuery, location="query")
@bp.response(200, page_envelope(AuditEventSchema))
def history(query, code):
    """The project's audit trail (痕迹管理), oldest first."""
    s = session()
    project = projects.visible_project(s, current_actor(), code)
    rows, total = audit.project_trail(s, project.project_code, page=query["page"], page_size=query["page_size"],
                                      hidden_targets=supervision_records.withheld_targets(s, current_actor(), project))
    return page_of(rows, total, query["page"], query["page_size"])
