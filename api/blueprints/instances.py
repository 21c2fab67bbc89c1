"""Process instances: operators, analysts and department admins list them (e.g. the errored
ones, to see which element of which version failed); operators retry after a fix."""
from __future__ import annotations

import marshmallow as ma
from flask_smorest import Blueprint
from marshmallow import validate

from api.auth import current_actor, requires
from api.schemas.common import PageQuery, StrictSchema, page_envelope, page_of
from api.transaction import platform, session
from engine import runtime

bp = Blueprint("instances", __name__, url_prefix="/instances",
               description="流程实例 (process instances: operators, analysts, department admins)")


class InstanceSchema(ma.Schema):
    id = ma.fields.Integer()
    kind = ma.fields.String()
    matter_code = ma.fields.String(allow_none=True)
    status = ma.fields.String()
    process_id = ma.fields.Function(lambda r: r.procedure_version.process_id)
    procedure_version = ma.fields.Function(lambda r: r.procedure_version.version)
    next_timer_at = ma.fields.AwareDateTime(allow_none=True)
    error_element = ma.fields.String(allow_none=True)
    error_message = ma.fields.String(allow_none=True)
    updated_at = ma.fields.AwareDateTime()


class InstanceQuery(PageQuery):
    status = ma.fields.String(validate=validate.OneOf(("running", "completed", "error")))
    process_id = ma.fields.String(validate=validate.Length(min=1, max=100), metadata={
        "description": "only the instances of this procedure (e.g. matter_land_pre_review)"})


@bp.route("")
@requires("operator", "analyst", "dept_admin")
@bp.arguments(InstanceQuery, location="query")
@bp.response(200, page_envelope(InstanceSchema))
def list_instances(query):
    """Newest first. The operator and analysts see every instance; a department admin those of its own
    department's procedures. A failure names the element and the message (no project data)."""
    rows, total = runtime.instances(session(), current_actor(), status=query.get("status"), process_id=query.get("process_id"),
                                    page=query["page"], page_size=query["page_size"])
    return page_of(rows, total, query["page"], query["page_size"])


class RetrySchema(StrictSchema):
    version = ma.fields.String(load_default="newest", validate=validate.OneOf(("newest", "current")), metadata={
        "description": "newest (default): the newest deployed version, after a fix; current: the version the instance "
                       "runs on (a failure outside the diagram, or a newest version that cannot hold its state)"})
    pending = ma.fields.String(load_default="apply", validate=validate.OneOf(("apply", "discard")), metadata={
        "description": "apply (default): the officer's completion that failed is applied at the retry; discard: it is "
                       "dropped (kept in the trail) and the task is the officer's to do again, e.g. when its checks now "
                       "refuse it. Only for an instance that failed on an officer's completion (else 409: a project unit's "
                       "submission is applied, never dropped)"})


@bp.route("/<int:instance_id>/retry", methods=["POST"])
@requires("operator")
@bp.arguments(RetrySchema, required=False)
@bp.response(200, InstanceSchema)
def retry(body, instance_id):
    """Retry an errored instance on the newest deployed version of its procedure, or on its own; apply the
    officer's failed completion, or discard it so the officer acts again (optional body)."""
    body = body or {}
    return runtime.retry(session(), actor=current_actor(), instance_id=instance_id, now=platform().clock.now(),
                         on_newest=body.get("version", "newest") == "newest", discard=body.get("pending") == "discard")
