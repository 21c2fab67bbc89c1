"""Schemas of the e-supervision endpoints (电子监察): filters in, figures out."""
from __future__ import annotations

import re
from datetime import date

import marshmallow as ma
from marshmallow import validate

from api.schemas.common import REGION_CODE, PageQuery, PlatformDate, StrictSchema, within_platform_years
from api.schemas.lifecycle import SupervisionRecordSchema
from engine.supervision_records import RECTIFICATION_STATES

_DAYS = "working days of 24 hours (1个工作日 = 24小时)"


class ScopeQuery(StrictSchema):
    region = ma.fields.String(validate=REGION_CODE,
                              metadata={"description": "a region within yours; its subtree is included"})
    department = ma.fields.String(validate=validate.Length(min=1, max=32), metadata={"description": "a department code"})


_MONTH = r"^([0-9]{4})-(0[1-9]|1[0-2])$"


def _month_years(value: str) -> None:
    found = re.match(_MONTH, value)
    if found is not None:  # else the pattern has said so
        within_platform_years(date(int(found.group(1)), 1, 1))


class PeriodQuery(ScopeQuery):
    start = PlatformDate(data_key="from", metadata={"description": "first day (Asia/Shanghai), default the 1st of this month"})
    end = PlatformDate(data_key="to", metadata={"description": "last day, inclusive; default today"})


class ScoresQuery(PeriodQuery):
    period = ma.fields.String(validate=[validate.Regexp(_MONTH, error="须为 YYYY-MM (expected YYYY-MM)"), _month_years],
                              metadata={"description": "a month, instead of from/to"})

    @ma.validates_schema
    def _one_period(self, data, **_kwargs):
        if "period" in data and ("start" in data or "end" in data):
            raise ma.ValidationError("period 与 from/to 只能选一 (give period or from/to, not both)", "period")


class RisksQuery(PeriodQuery, PageQuery):
    """``page``/``page_size`` page the no-start and stalled project lists (each with its total)."""

    months = ma.fields.Integer(load_default=6, validate=validate.Range(min=1, max=120),
                               metadata={"description": "N: months without a start report or a progress report"})


class ForecastQuery(ScopeQuery, PageQuery):
    pass


class RectificationQuery(ScopeQuery, PageQuery):
    state = ma.fields.String(load_default="open", validate=validate.OneOf(RECTIFICATION_STATES),
                             metadata={"description": "open (default), closed or all"})
    overdue = ma.fields.Boolean(load_default=False, metadata={
        "description": "true: only open orders past their deadline (the project units' overdue rectifications)"})

    @ma.validates_schema
    def _overdue_is_open(self, data, **_kwargs):
        if data.get("overdue") and data.get("state") == "closed":
            raise ma.ValidationError("逾期整改均为未关闭的整改，不能与 state=closed 同用 (overdue orders are open ones)", "overdue")


class RectificationSchema(SupervisionRecordSchema):
    project_name = ma.fields.String()
    unit_name = ma.fields.String(metadata={"description": "the project unit that must rectify"})


class PeriodSchema(ma.Schema):
    from_ = ma.fields.Date(data_key="from", attribute="from")
    to = ma.fields.Date()


class _Figures(ma.Schema):
    received = ma.fields.Integer()
    accepted = ma.fields.Integer()
    concluded = ma.fields.Integer(metadata={"description": "concluded or refused in the period"})
    concluded_on_time = ma.fields.Integer(metadata={"description": "no later than the promised clock's due instant"})
    on_time_rate = ma.fields.Float(allow_none=True)
    yellow_records = ma.fields.Integer()
    red_records = ma.fields.Integer()
    overdue_now = ma.fields.Integer(metadata={"description": "clocks past due and not stopped, at the time of the request"})
    mean_handling_days = ma.fields.Float(allow_none=True, metadata={"description": f"acceptance to conclusion, {_DAYS}"})
    p90_handling_days = ma.fields.Float(allow_none=True, metadata={"description": "nearest-rank 90th percentile"})
    correction_request_rate = ma.fields.Float(allow_none=True, metadata={"description": "of the matters accepted"})


class DepartmentFiguresSchema(_Figures):
    department = ma.fields.String()
    name = ma.fields.String()
    automatic_replies = ma.fields.Integer(metadata={"description": "reply clocks that ran out (platform replied)"})
    late_replies = ma.fields.Integer(metadata={"description": "replies entered after the reply clock was due"})


class MatterFiguresSchema(_Figures):
    matter_code = ma.fields.String()
    name = ma.fields.String()
    department = ma.fields.String(allow_none=True)


class ConcludedProjectSchema(ma.Schema):
    project_code = ma.fields.String()
    name = ma.fields.String()
    regime = ma.fields.String()
    region_code = ma.fields.String()
    declared_at = ma.fields.AwareDateTime()
    concluded_at = ma.fields.AwareDateTime(metadata={"description": "the conclusion notice's issue instant"})
    notice_number = ma.fields.String()
    working_days = ma.fields.Float(metadata={"description": f"declaration to conclusion notice, {_DAYS}"})


class SummaryQuery(PeriodQuery, PageQuery):
    """The period and scope; ``page``/``page_size`` page the concluded projects."""


class SummarySchema(ma.Schema):
    period = ma.fields.Nested(PeriodSchema)
    departments = ma.fields.List(ma.fields.Nested(DepartmentFiguresSchema))
    matters = ma.fields.List(ma.fields.Nested(MatterFiguresSchema))
    projects = ma.fields.List(ma.fields.Nested(ConcludedProjectSchema), metadata={
        "description": "the page (page, page_size) of the projects concluded in the period, in conclusion order; "
                       "every one is in summary.xlsx"})
    projects_total = ma.fields.Integer(metadata={"description": "how many projects concluded in the period"})
    handling_pending = ma.fields.Integer(metadata={
        "description": "concluded matters left out of the handling-day figures: their handling time is being "
                       "computed again after a calendar load (0 once the sweep has stored them)"})


class RecordSchema(ma.Schema):
    alert_id = ma.fields.Integer()
    clock_id = ma.fields.Integer()
    clock_kind = ma.fields.String()
    light = ma.fields.String()
    project_code = ma.fields.String()
    matter_code = ma.fields.String(allow_none=True)
    due_at = ma.fields.AwareDateTime(allow_none=True)
    at = ma.fields.AwareDateTime()
    stopped_at = ma.fields.AwareDateTime(allow_none=True)


class PointLostSchema(ma.Schema):
    kind = ma.fields.String(metadata={"description": "red_record | yellow_record | automatic_reply | late_reply"})
    points = ma.fields.Float()
    record = ma.fields.Nested(RecordSchema)


class DepartmentScoreSchema(ma.Schema):
    department = ma.fields.String()
    name = ma.fields.String()
    score = ma.fields.Float()
    points_lost_total = ma.fields.Float()
    points_lost = ma.fields.List(ma.fields.Nested(PointLostSchema))


class RuleSchema(ma.Schema):
    name = ma.fields.String()
    base = ma.fields.Float()
    minimum = ma.fields.Float()
    points = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Float())
    source = ma.fields.String(metadata={"description": "the rule file"})


class ScoresSchema(ma.Schema):
    period = ma.fields.Nested(PeriodSchema)
    rule = ma.fields.Nested(RuleSchema)
    departments = ma.fields.List(ma.fields.Nested(DepartmentScoreSchema))


class NoStartSchema(ma.Schema):
    project_code = ma.fields.String()
    name = ma.fields.String()
    concluded_on = ma.fields.Date()
    months_since_conclusion = ma.fields.Integer()


class StalledSchema(ma.Schema):
    project_code = ma.fields.String()
    name = ma.fields.String()
    reasons = ma.fields.List(ma.fields.String(), metadata={"description": "no_recent_report | percent_unchanged"})
    last_report_at = ma.fields.AwareDateTime()
    last_report_kind = ma.fields.String()
    percent_complete = ma.fields.Float(allow_none=True)


class OverdueRisingSchema(ma.Schema):
    department = ma.fields.String()
    overdue = ma.fields.Integer()
    due = ma.fields.Integer()
    overdue_rate = ma.fields.Float()
    previous_period = ma.fields.Nested(PeriodSchema)
    previous_overdue = ma.fields.Integer()
    previous_due = ma.fields.Integer()
    previous_overdue_rate = ma.fields.Float()


class BackfilledActSchema(ma.Schema):
    id = ma.fields.Integer()
    project_code = ma.fields.String()
    matter_code = ma.fields.String(allow_none=True)
    act = ma.fields.String()
    effective_at = ma.fields.AwareDateTime()
    entered_at = ma.fields.AwareDateTime()
    reason = ma.fields.String()
    actor = ma.fields.String()


class BackfilledSchema(ma.Schema):
    department = ma.fields.String()
    name = ma.fields.String()
    count = ma.fields.Integer()
    acts = ma.fields.List(ma.fields.Nested(BackfilledActSchema))


class RisksSchema(ma.Schema):
    period = ma.fields.Nested(PeriodSchema)
    months = ma.fields.Integer()
    no_start = ma.fields.List(ma.fields.Nested(NoStartSchema), metadata={"description": "a page (page, page_size)"})
    no_start_total = ma.fields.Integer()
    stalled = ma.fields.List(ma.fields.Nested(StalledSchema), metadata={"description": "a page (page, page_size)"})
    stalled_total = ma.fields.Integer()
    overdue_rate_rising = ma.fields.List(ma.fields.Nested(OverdueRisingSchema))
    backfilled = ma.fields.List(ma.fields.Nested(BackfilledSchema))


class ClockBasisSchema(ma.Schema):
    id = ma.fields.Integer()
    kind = ma.fields.String()
    state = ma.fields.String()
    started_at = ma.fields.AwareDateTime()
    due_at = ma.fields.AwareDateTime(allow_none=True)


class MatterBasisSchema(ma.Schema):
    matter_code = ma.fields.String()
    department = ma.fields.String()
    status = ma.fields.String()
    method = ma.fields.String(metadata={"description": "department_history | promised_limit"})
    clock = ma.fields.Nested(ClockBasisSchema, allow_none=True)
    history_mean_days = ma.fields.Float(allow_none=True)
    history_samples = ma.fields.Integer()
    estimate_days = ma.fields.Float()
    elapsed_days = ma.fields.Float()
    remaining_days = ma.fields.Float()
    expected_at = ma.fields.AwareDateTime()


class ForecastSchema(ma.Schema):
    project_code = ma.fields.String()
    name = ma.fields.String()
    status = ma.fields.String()
    declared_at = ma.fields.AwareDateTime()
    expected_conclusion_at = ma.fields.AwareDateTime(allow_none=True)
    expected_conclusion_date = ma.fields.Date(allow_none=True)
    basis = ma.fields.List(ma.fields.Nested(MatterBasisSchema))
