"""Schemas of tasks (API.md: id, version, name, title, project_code, matter_code, department, due_at, light, form)."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from api.schemas.common import PageQuery, PlatformInstant, StrictSchema, Text
from api.transaction import session
from engine.runtime import served_form


class TaskSchema(ma.Schema):
    id = ma.fields.String()
    version = ma.fields.Integer()
    name = ma.fields.String(attribute="element_id", metadata={"description": "the BPMN element id"})
    title = ma.fields.String()
    project_code = ma.fields.String()
    matter_code = ma.fields.String(allow_none=True)
    department = ma.fields.String(attribute="department_code", allow_none=True)
    role = ma.fields.String()
    lane = ma.fields.String()
    assignee_id = ma.fields.Integer(allow_none=True)
    status = ma.fields.String()
    read_only = ma.fields.Boolean()
    created_at = ma.fields.AwareDateTime()
    due_at = ma.fields.AwareDateTime(allow_none=True)
    light = ma.fields.String()
    context = ma.fields.Dict()
    form = ma.fields.Function(lambda t: served_form(session(), t)[0], metadata={
        "type": "object", "description": "the form's JSON Schema (no field: a task that takes no answer); a department "
                                         "field lists the departments that handle matters as its enum"})
    ui_form = ma.fields.Function(lambda t: served_form(session(), t)[1], metadata={"type": "object", "description": "the form's UI schema"})


class TaskListQuery(PageQuery):
    mine = ma.fields.Boolean(load_default=False)
    project_code = ma.fields.String(validate=validate.Length(max=64))
    matter_code = ma.fields.String(validate=validate.Length(max=64))
    light = ma.fields.String(validate=validate.OneOf(("green", "yellow", "red")))
    due_before = PlatformInstant()
    include_read_only = ma.fields.Boolean(load_default=True)


class CompleteSchema(StrictSchema):
    data = ma.fields.Dict(required=True, keys=ma.fields.String(validate=validate.Length(max=64)), metadata={"description": "the form's fields"})
    version = ma.fields.Integer(required=True, strict=True, metadata={"description": "the task's version as listed (409 when stale)"})
    effective_at = PlatformInstant(metadata={"description": "补录: when the act really happened (handled offline first); needs backfill_reason; flagged for e-supervision"})
    backfill_reason = Text(500, metadata={"description": "why the act is entered later (补录理由)"})

    @ma.validates_schema
    def _reason_with_instant(self, data, **kwargs):
        if "backfill_reason" in data and "effective_at" not in data:
            raise ma.ValidationError("补录理由须与补录时间一起提交 (reason without effective_at)", "effective_at")


class DelegateSchema(StrictSchema):
    to = ma.fields.String(required=True, validate=validate.Length(min=1, max=64), metadata={"description": "colleague's username"})


class CompletedSchema(ma.Schema):
    task = ma.fields.Nested(TaskSchema)
    instance_status = ma.fields.String(metadata={"description": "running | completed | error"})
    error = ma.fields.Dict(allow_none=True, metadata={
        "description": "when the procedure failed: element and message for officials; for the project unit a plain message"})
