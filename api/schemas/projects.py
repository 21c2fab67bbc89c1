"""Schemas of the declaration and the project resource (field names per ../shared/API.md)."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import validate
from sqlalchemy.orm import object_session

from api.schemas.common import REGION_CODE, ExactDecimal, JsonBoolean, PageQuery, StrictSchema, Text
from engine import guides
from engine.models import PROJECT_STATUSES, REGIMES
from engine.projects import CHANGE_KINDS

_CODE2 = validate.Regexp(r"^[0-9]{2}$", error="须为2位国民经济行业代码 (2-digit industry code)")
_YEAR = validate.Range(min=1990, max=2100)
_INVESTMENT = validate.Range(min=0, min_inclusive=False, max=10**12, error="总投资须大于0且不超过10^12万元")


class DeclarationSchema(StrictSchema):
    name = Text(200, required=True, metadata={"description": "项目名称"})
    regime = ma.fields.String(required=True, validate=validate.OneOf(REGIMES), metadata={"description": "审批 examination | 核准 approval | 备案 filing"})
    region_code = ma.fields.String(required=True, validate=REGION_CODE, metadata={"description": "建设地点行政区划代码"})
    industry_code = ma.fields.String(required=True, validate=_CODE2, metadata={"description": "国民经济行业代码 (GB/T 4754 大类)"})
    location = Text(200, required=True, metadata={"description": "建设地点"})
    investment = ExactDecimal(required=True, places=4, as_string=True, validate=_INVESTMENT, allow_nan=False, metadata={"description": "总投资 (万元)"})
    construction_content = Text(4000, required=True, metadata={"description": "建设规模及内容"})
    start_year = ma.fields.Integer(required=True, strict=True, validate=_YEAR, metadata={"description": "拟开工年份"})
    end_year = ma.fields.Integer(required=True, strict=True, validate=_YEAR, metadata={"description": "拟建成年份"})
    classified = JsonBoolean(required=True, metadata={"description": "是否涉密 (涉密项目不得通过在线平台办理)"})
    new_land_use = JsonBoolean(load_default=False, metadata={"description": "是否新增建设用地"})
    environment_sensitive = JsonBoolean(load_default=False, metadata={"description": "是否涉及环境敏感区"})
    water_soil_impact = JsonBoolean(load_default=False, metadata={"description": "是否涉及水土保持"})
    building_works = JsonBoolean(load_default=False, metadata={"description": "是否有房屋建筑工程"})
    legacy_code = ma.fields.String(validate=validate.Length(min=1, max=64), allow_none=True, metadata={"description": "原编码 (optional)"})


class DeclarationHeaders(ma.Schema):
    """The request's own headers are many; only the idempotency key is read."""

    class Meta:
        unknown = ma.EXCLUDE

    idempotency_key = ma.fields.String(
        data_key="Idempotency-Key", validate=[validate.Length(min=1, max=64), validate.Regexp(
            r"^[\x21-\x7e]+$", error="须为1至64个可见ASCII字符 (1-64 visible ASCII characters)")],
        metadata={"description": "幂等键: the same key again (a retry after a lost answer) returns the project "
                                 "declared with it (header Idempotent-Replayed: true) instead of declaring twice"})


class AdjustmentSchema(StrictSchema):
    name = Text(200)
    location = Text(200)
    investment = ExactDecimal(places=4, as_string=True, validate=_INVESTMENT, allow_nan=False)
    construction_content = Text(4000)
    start_year = ma.fields.Integer(strict=True, validate=_YEAR)
    end_year = ma.fields.Integer(strict=True, validate=_YEAR)
    # a major change only (重新赋码): what decides the matters to approve anew
    regime = ma.fields.String(validate=validate.OneOf(REGIMES), metadata={"description": "major_change only"})
    industry_code = ma.fields.String(validate=validate.Length(equal=2), metadata={"description": "major_change only"})
    new_land_use = JsonBoolean(metadata={"description": "major_change only"})
    environment_sensitive = JsonBoolean(metadata={"description": "major_change only"})
    water_soil_impact = JsonBoolean(metadata={"description": "major_change only"})
    building_works = JsonBoolean(metadata={"description": "major_change only"})


class ChangeRequestSchema(StrictSchema):
    kind = ma.fields.String(required=True, validate=validate.OneOf(CHANGE_KINDS), metadata={"description": "adjustment 调整 | extension 延期 | major_change 重大变更(重新赋码) | suspension 暂停 | resumption 恢复"})
    reason = Text(2000, required=True)
    changes = ma.fields.Nested(AdjustmentSchema, load_default=dict)


class ProjectUnitSchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    credit_code = ma.fields.String()


class ProjectMatterSchema(ma.Schema):
    matter_code = ma.fields.String()
    name = ma.fields.Function(lambda pm: pm.matter.name, metadata={"type": "string"})
    department = ma.fields.String(attribute="department_code")
    promised_working_days = ma.fields.Function(lambda pm: guides.promised_working_days(object_session(pm), pm), metadata={
        "type": "integer", "description": "承诺时限 as the project was told it (its guide version's)"})
    status = ma.fields.String()
    light = ma.fields.String()
    result = ma.fields.Dict()
    guide_version = ma.fields.Integer(allow_none=True, metadata={"description": "the service guide version the project unit was told"})
    guide = ma.fields.Function(
        lambda pm: f"/api/v1/portal/guides/{pm.matter_code}" + (f"?version={pm.guide_version}" if pm.guide_version else ""),
        metadata={"type": "string", "description": "the service guide (办事指南) as told"})
    received_at = ma.fields.AwareDateTime(allow_none=True)
    accepted_at = ma.fields.AwareDateTime(allow_none=True)
    concluded_at = ma.fields.AwareDateTime(allow_none=True)


class ClockSchema(ma.Schema):
    id = ma.fields.Integer()
    kind = ma.fields.String()
    matter_code = ma.fields.String(allow_none=True)
    department = ma.fields.String(attribute="department_code", allow_none=True)
    started_at = ma.fields.AwareDateTime()
    limit_days = ma.fields.Decimal(as_string=True)
    yellow_at = ma.fields.AwareDateTime(allow_none=True)
    due_at = ma.fields.AwareDateTime(allow_none=True)
    state = ma.fields.String()
    light = ma.fields.String()
    pauses = ma.fields.List(ma.fields.Dict())
    calendar_provisional = ma.fields.Boolean()


class HoldSchema(ma.Schema):
    matter_code = ma.fields.String(allow_none=True, metadata={"description": "null: the whole project (a suspension)"})
    reason = ma.fields.String(metadata={"description": "tolerated_gap | intermediary | suspension | prerequisite:<matter>"})
    started_at = ma.fields.AwareDateTime()
    ended_at = ma.fields.AwareDateTime(allow_none=True, metadata={"description": "null: still open"})


class NoticeSchema(ma.Schema):
    id = ma.fields.Integer()
    kind = ma.fields.String()
    number = ma.fields.String()
    matter_code = ma.fields.String(allow_none=True)
    issued_at = ma.fields.AwareDateTime()
    content = ma.fields.Dict()
    url = ma.fields.Function(lambda n: f"/api/v1/notices/{n.id}/pdf",
                             metadata={"type": "string", "description": "download the notice's PDF (attachment)"})
    title = ma.fields.Function(lambda n: (n.content or {}).get("title"), metadata={"type": "string"})


class ProjectSchema(ma.Schema):
    project_code = ma.fields.String()
    legacy_code = ma.fields.String(allow_none=True)
    name = ma.fields.String()
    regime = ma.fields.String()
    status = ma.fields.String()
    suspended = ma.fields.Boolean()
    region_code = ma.fields.String()
    industry_code = ma.fields.String()
    location = ma.fields.String()
    investment = ma.fields.Decimal(as_string=True)
    construction_content = ma.fields.String()
    start_year = ma.fields.Integer()
    end_year = ma.fields.Integer()
    new_land_use = ma.fields.Boolean()
    environment_sensitive = ma.fields.Boolean()
    water_soil_impact = ma.fields.Boolean()
    building_works = ma.fields.Boolean()
    project_unit = ma.fields.Nested(ProjectUnitSchema)
    declared_at = ma.fields.AwareDateTime()
    supersedes = ma.fields.Function(
        lambda p: p.supersedes.project_code if p.supersedes else None, allow_none=True,
        metadata={"description": "the old code this one replaced (重新赋码)", "type": "string"},
    )
    superseded_by = ma.fields.Function(
        lambda p: p.superseded_by.project_code if p.superseded_by else None, allow_none=True,
        metadata={"description": "the new code that replaced this one", "type": "string"},
    )
    matters = ma.fields.List(ma.fields.Nested(ProjectMatterSchema), metadata={"description": "the matters notice and each matter's progress"})
    clocks = ma.fields.List(ma.fields.Nested(ClockSchema))
    holds = ma.fields.List(ma.fields.Nested(HoldSchema), metadata={"description": "time not counted on the clocks (容缺, 中介服务, 暂停, 等待前置)"})
    notices = ma.fields.List(ma.fields.Nested(NoticeSchema))


class ProjectListQuery(PageQuery):
    status = ma.fields.String(validate=validate.OneOf(PROJECT_STATUSES))


class AuditEventSchema(ma.Schema):
    seq = ma.fields.Integer()
    at = ma.fields.AwareDateTime()
    actor = ma.fields.String()
    action = ma.fields.String()
    project_code = ma.fields.String(allow_none=True)
    target = ma.fields.String()
    summary = ma.fields.Dict()
