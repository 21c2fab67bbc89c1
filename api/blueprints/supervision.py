"""电子监察 (e-supervision): summary, scoring, risk warnings, forecast, rectifications, exports.

Supervisors and coordinators see their region and those below it; officers and
department admins their own department; the operator everything (engine.supervision).
"""
from __future__ import annotations

from flask import Response
from flask_smorest import Blueprint

from api.auth import current_actor, requires
from api.openapi import file_response
from api.schemas.common import page_envelope, page_of
from api.schemas.supervision import (
    ForecastQuery,
    ForecastSchema,
    PeriodQuery,
    RectificationQuery,
    RectificationSchema,
    RisksQuery,
    RisksSchema,
    ScoresQuery,
    ScoresSchema,
    SummaryQuery,
    SummarySchema,
)
from api.transaction import platform, session
from engine import exports, risks, scoring, supervision, supervision_records

bp = Blueprint("supervision", __name__, url_prefix="/supervision", description="电子监察 (e-supervision): summary, scoring, risk warnings, forecast, exports")

READERS = supervision.READER_ROLES
CSV = "text/csv; charset=utf-8"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _now():
    return platform().clock.now()


def _download(body: bytes, media_type: str, filename: str) -> Response:
    return Response(body, mimetype=media_type.split(";")[0], content_type=media_type,
                    headers={"Content-Disposition": exports.content_disposition(filename)})


def _stem(data, name: str) -> str:
    return f"{name}_{data['period']['from'].isoformat()}_{data['period']['to'].isoformat()}"


@bp.route("/summary")
@requires(*READERS)
@bp.arguments(SummaryQuery, location="query")
@bp.response(200, SummarySchema)
def summary(query):
    """Per department and per matter: received, accepted, concluded (on time), yellow and red
    records, overdue now, mean and 90th-percentile handling days, correction-request rate,
    automatic replies; per concluded project: working days from declaration to conclusion."""
    return supervision.summary(session(), current_actor(), now=_now(), **query)


@bp.route("/summary.csv")
@requires(*READERS)
@bp.arguments(PeriodQuery, location="query")
@bp.response(200, description="UTF-8 CSV with BOM: department rows then matter rows", content_type="text/csv")
@bp.doc(responses={"200": file_response("text/csv", "UTF-8 CSV with BOM: department rows then matter rows")})
def summary_csv(query):
    data = supervision.summary(session(), current_actor(), now=_now(), **query)
    columns, rows = exports.summary_csv_rows(data)
    return _download(exports.to_csv(columns, rows), CSV, f"{_stem(data, '电子监察汇总')}.csv")


@bp.route("/summary.xlsx")
@requires(*READERS)
@bp.arguments(PeriodQuery, location="query")
@bp.response(200, description="workbook: departments, matters, concluded projects", content_type=XLSX)
@bp.doc(responses={"200": file_response(XLSX, "workbook: departments, matters, concluded projects")})
def summary_xlsx(query):
    data, tables = exports.summary_tables(session(), current_actor(), now=_now(), **query)
    return _download(exports.to_xlsx(tables), XLSX, f"{_stem(data, '电子监察汇总')}.xlsx")


@bp.route("/scores")
@requires(*READERS)
@bp.arguments(ScoresQuery, location="query")
@bp.response(200, ScoresSchema)
def scores(query):
    """绩效考核: each department's score for a month (``period``) or from/to, by the configured
    rule (engine/data/scoring_rule.json or ``TZXM_SCORING_RULE``), with the records behind
    every point lost."""
    month = query.pop("period", None)
    return scoring.scores(session(), current_actor(), now=_now(), month=month, **query)


@bp.route("/risks")
@requires(*READERS)
@bp.arguments(RisksQuery, location="query")
@bp.response(200, RisksSchema)
def risk_warnings(query):
    """风险预警: no start report N months after conclusion, stalled progress reports, departments
    whose overdue rate rose period on period, departments with back-filled acts."""
    return risks.risks(session(), current_actor(), now=_now(), **query)


@bp.route("/forecast")
@requires(*READERS)
@bp.arguments(ForecastQuery, location="query")
@bp.response(200, page_envelope(ForecastSchema))
def forecast(query):
    """监测预测: each open project's expected conclusion, with the basis of every open matter."""
    page, size = query.pop("page"), query.pop("page_size")
    rows, total = supervision.forecast(session(), current_actor(), now=_now(), page=page, page_size=size, **query)
    return page_of(rows, total, page, size)


@bp.route("/rectifications")
@requires(*READERS)
@bp.arguments(RectificationQuery, location="query")
@bp.response(200, page_envelope(RectificationSchema))
def rectifications(query):
    """整改 across projects: the rectification orders in your scope with the unit that must act,
    soonest deadline first; ``overdue=true`` lists the project units' overdue rectifications."""
    page, size = query.pop("page"), query.pop("page_size")
    rows, total = supervision_records.rectifications(session(), current_actor(), now=_now(), page=page, page_size=size,
                                                      **query)
    return page_of(rows, total, page, size)


def _project_rows(query):
    return exports.project_rows(session(), current_actor(), now=_now(), **query)


@bp.route("/projects.csv")
@requires(*READERS)
@bp.arguments(PeriodQuery, location="query")
@bp.response(200, description="projects with their codes (固定资产投资统计), UTF-8 CSV with BOM; from/to filter the declaration date",
             content_type="text/csv")
@bp.doc(responses={"200": file_response("text/csv", "projects with their codes (固定资产投资统计), UTF-8 CSV with BOM; from/to filter the declaration date")})
def projects_csv(query):
    return _download(exports.to_csv(exports.PROJECT_COLUMNS, _project_rows(query)), CSV, "投资项目清单.csv")


@bp.route("/projects.xlsx")
@requires(*READERS)
@bp.arguments(PeriodQuery, location="query")
@bp.response(200, description="projects with their codes (固定资产投资统计); from/to filter the declaration date",
             content_type=XLSX)
@bp.doc(responses={"200": file_response(XLSX, "projects with their codes (固定资产投资统计); from/to filter the declaration date")})
def projects_xlsx(query):
    return _download(exports.to_xlsx([("项目 projects", exports.PROJECT_COLUMNS, _project_rows(query))]), XLSX,
                     "投资项目清单.xlsx")
