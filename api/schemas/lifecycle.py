"""Schemas of what happens around and after approval: intermediary services (中介服务),
implementation reports (实施情况) and supervision records (检查, 整改, 处罚).

Types and lengths are checked here; the rules (stage order, one start, percentages
that never go back, penalty particulars) live in the engine modules."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from api.schemas.common import ExactDecimal, JsonBoolean, OptionalText, PageQuery, PlatformDate, StrictSchema, Text
from engine.implementation import KINDS as REPORT_KINDS
from engine.intermediaries import STAGES
from engine.supervision_records import KINDS as RECORD_KINDS, MAX_RECTIFICATION_DAYS

# --- 中介服务 -----------------------------------------------------------------------------------


class IntermediaryCommissionSchema(StrictSchema):
    name = Text(200, required=True, metadata={"description": "中介机构名称 (the intermediary's name)"})
    qualification = Text(200, required=True, metadata={"description": "资质 (its qualification)"})
    service = Text(200, required=True, metadata={"description": "服务内容 (the service commissioned)"})
    deadline = PlatformDate(required=True, metadata={"description": "完成期限 (the day it must be done by; not in the past)"})


class IntermediaryEventSchema(StrictSchema):
    stage = ma.fields.String(required=True, validate=validate.OneOf(STAGES[1:]),
                             metadata={"description": "the next stage: accepted → handling → completed"})
    note = OptionalText(2000)
    result = Text(4000, metadata={"description": "办理结果: required for completed, refused otherwise"})
    version = ma.fields.Integer(required=True, strict=True, metadata={"description": "the intermediary's version as listed (409 when stale)"})


class IntermediaryStageSchema(ma.Schema):
    stage = ma.fields.String()
    at = ma.fields.String(metadata={"description": "ISO 8601 instant"})
    by = ma.fields.String()
    note = ma.fields.String()


class IntermediarySchema(ma.Schema):
    id = ma.fields.Integer()
    version = ma.fields.Integer()
    project_code = ma.fields.String()
    matter_code = ma.fields.String()
    department = ma.fields.String(attribute="department_code")
    name = ma.fields.String()
    qualification = ma.fields.String()
    service = ma.fields.String()
    deadline = ma.fields.Date()
    status = ma.fields.String(metadata={"description": "commissioned | accepted | handling | completed"})
    events = ma.fields.List(ma.fields.Nested(IntermediaryStageSchema))
    result = ma.fields.String()
    commissioned_at = ma.fields.AwareDateTime()
    completed_at = ma.fields.AwareDateTime(allow_none=True)


class IntermediaryListQuery(PageQuery):
    matter_code = ma.fields.String(validate=validate.Length(min=1, max=64))


# --- 实施情况 -----------------------------------------------------------------------------------


class ImplementationReportInSchema(StrictSchema):
    kind = ma.fields.String(required=True, validate=validate.OneOf(REPORT_KINDS))
    period = ma.fields.String(required=True, validate=validate.Length(min=7, max=10), metadata={
        "description": "YYYY-MM for progress (报告期); YYYY-MM-DD for start and completion (开工/竣工日期)"})
    percent_complete = ExactDecimal(places=2, allow_none=True, load_default=None, validate=validate.Range(min=0, max=100), metadata={
        "description": "形象进度 % (required for progress; never below an earlier report; 100 at completion)"})
    investment_completed = ExactDecimal(places=4, allow_none=True, load_default=None, validate=validate.Range(min=0), metadata={
        "description": "累计完成投资 (万元), required for progress; at most twice the declared investment"})
    content = OptionalText(4000, metadata={"description": "说明 (remarks)"})


class ImplementationReportSchema(ma.Schema):
    id = ma.fields.Integer()
    project_code = ma.fields.String()
    kind = ma.fields.String()
    period = ma.fields.String()
    percent_complete = ma.fields.Decimal(places=2, as_string=True, allow_none=True)
    investment_completed = ma.fields.Decimal(places=4, as_string=True, allow_none=True)
    content = ma.fields.String()
    reported_at = ma.fields.AwareDateTime()
    reported_by = ma.fields.String()


# --- 监管记录 -----------------------------------------------------------------------------------


class SupervisionDetailsSchema(StrictSchema):
    decision_number = Text(64, metadata={"description": "处罚决定书文号 (penalty)"})
    amount = ExactDecimal(places=2, validate=validate.Range(min=0), metadata={"description": "罚款金额 元 (penalty)"})
    legal_basis = Text(1000, metadata={"description": "处罚依据 (penalty)"})
    findings = Text(4000, metadata={"description": "检查发现的问题 (inspection findings)"})


class SupervisionRecordInSchema(StrictSchema):
    kind = ma.fields.String(required=True, validate=validate.OneOf(RECORD_KINDS))
    title = Text(200, required=True)
    content = Text(4000, required=True)
    public = JsonBoolean(load_default=None, metadata={
        "description": "public records feed the disclosure lists (监管信息向社会公开): public unless false; a penalty is always public"})
    details = ma.fields.Nested(SupervisionDetailsSchema, load_default=dict, metadata={
        "description": "decision_number, amount and legal_basis are required for a penalty"})
    rectification_working_days = ma.fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_RECTIFICATION_DAYS),
                                                   metadata={"description": "整改期限 (working days), rectification only"})


class RectificationCloseSchema(StrictSchema):
    content = Text(4000, required=True, metadata={"description": "整改完成情况 (what was fixed)"})


class DeadlineSchema(ma.Schema):
    started_at = ma.fields.AwareDateTime()
    working_days = ma.fields.Decimal(as_string=True)
    yellow_at = ma.fields.AwareDateTime(allow_none=True)
    due_at = ma.fields.AwareDateTime(allow_none=True)
    light = ma.fields.String(metadata={"description": "green | yellow | red"})
    state = ma.fields.String(metadata={"description": "running | stopped"})


class SupervisionRecordSchema(ma.Schema):
    id = ma.fields.Integer(attribute="record.id")
    project_code = ma.fields.String(attribute="record.project_code")
    region_code = ma.fields.String(attribute="record.region_code")
    department = ma.fields.String(attribute="record.department_code")
    kind = ma.fields.String(attribute="record.kind")
    title = ma.fields.String(attribute="record.title")
    content = ma.fields.String(attribute="record.content")
    details = ma.fields.Dict(attribute="record.details")
    public = ma.fields.Boolean(attribute="record.public")
    state = ma.fields.String(attribute="record.state", metadata={"description": "open (a rectification not yet done) | closed"})
    recorded_at = ma.fields.AwareDateTime(attribute="record.recorded_at")
    recorded_by = ma.fields.String(attribute="record.recorded_by")
    closed_at = ma.fields.AwareDateTime(attribute="record.closed_at", allow_none=True)
    deadline = ma.fields.Nested(DeadlineSchema, allow_none=True, metadata={"description": "a rectification order's clock"})


class SupervisionRecordListQuery(PageQuery):
    kind = ma.fields.String(validate=validate.OneOf(RECORD_KINDS))
