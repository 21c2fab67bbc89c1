"""Task lists and working tasks: complete, claim, unclaim, delegate."""
from __future__ import annotations

from flask_smorest import Blueprint

from api.auth import current_actor, requires
from api.schemas.common import page_envelope, page_of
from api.schemas.tasks import CompletedSchema, CompleteSchema, DelegateSchema, TaskListQuery, TaskSchema
from api.transaction import platform, session
from engine import runtime

bp = Blueprint("tasks", __name__, url_prefix="/tasks", description="待办任务 (task lists)")


@bp.route("")
@requires()
@bp.arguments(TaskListQuery, location="query")
@bp.response(200, page_envelope(TaskSchema))
def list_tasks(query):
    """My department's and role's ready tasks (an applicant: its unit's), soonest due first."""
    page, size = query.pop("page"), query.pop("page_size")
    rows, total = runtime.task_list(session(), current_actor(), runtime.TaskFilter(**query), page=page, page_size=size)
    return page_of(rows, total, page, size)


@bp.route("/<string:task_id>")
@requires()
@bp.response(200, TaskSchema)
def get_task(task_id):
    return runtime.visible_task(session(), current_actor(), task_id)


@bp.route("/<string:task_id>/complete", methods=["POST"])
@requires()
@bp.arguments(CompleteSchema)
@bp.response(200, CompletedSchema)
@bp.alt_response(202, schema=CompletedSchema, description="the procedure failed at run time: the instance is marked errored for operators")
def complete(body, task_id):
    """Complete a task with its form data; 422 field errors, 409 when done or stale, 403 another department's."""
    backfill = runtime.Backfill(body["effective_at"], body.get("backfill_reason", "")) if "effective_at" in body else None
    actor = current_actor()
    task, row = runtime.complete_task(session(), actor=actor, task_id=task_id, data=body["data"],
                                      version=body["version"], now=platform().clock.now(), backfill=backfill)
    error = runtime.failure_for(actor, row)
    return {"task": task, "instance_status": row.status, "error": error}, 202 if error else 200


@bp.route("/<string:task_id>/claim", methods=["POST"])
@requires()
@bp.response(200, TaskSchema)
def claim(task_id):
    return runtime.claim(session(), actor=current_actor(), task_id=task_id, now=platform().clock.now())


@bp.route("/<string:task_id>/unclaim", methods=["POST"])
@requires()
@bp.response(200, TaskSchema)
def unclaim(task_id):
    return runtime.unclaim(session(), actor=current_actor(), task_id=task_id, now=platform().clock.now())


@bp.route("/<string:task_id>/delegate", methods=["POST"])
@requires()
@bp.arguments(DelegateSchema)
@bp.response(200, TaskSchema)
def delegate(body, task_id):
    return runtime.delegate(session(), actor=current_actor(), task_id=task_id, to_username=body["to"], now=platform().clock.now())
