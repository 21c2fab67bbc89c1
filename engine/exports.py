"""Exports of the e-supervision summary and of the project list (固定资产投资统计) as CSV and XLSX.

CSV is UTF-8 with a byte-order mark, which is what makes Excel open Chinese text
correctly. Text cells that a spreadsheet would run as a formula (starting with
``= + - @``, a tab or a carriage return) are written with a leading apostrophe:
project names and department names come from users, and an export must never
execute what someone typed (CSV/formula injection). Numbers stay numbers.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from urllib.parse import quote

from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import codes
from engine.access import Actor
from engine.clock import SHANGHAI
from engine.models import Notice, Project, ProjectMatter, Region
from engine.supervision import local_date, period_of, scope_for, summary

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

#: (key, header) of each table; headers in Chinese with the English key beside.
DEPARTMENT_COLUMNS = (
    ("department", "部门代码 department"), ("name", "部门名称 name"), ("received", "收件 received"),
    ("accepted", "受理 accepted"), ("concluded", "办结 concluded"), ("concluded_on_time", "按时办结 on time"),
    ("on_time_rate", "按时办结率 on-time rate"), ("yellow_records", "黄灯 yellow"), ("red_records", "红灯 red"),
    ("overdue_now", "当前超时 overdue now"), ("mean_handling_days", "平均办理工作日 mean days"),
    ("p90_handling_days", "90%办理工作日 p90 days"), ("correction_request_rate", "补正率 correction rate"),
    ("automatic_replies", "自动回复 automatic replies"), ("late_replies", "逾期回复 late replies"),
)
MATTER_COLUMNS = (
    ("matter_code", "事项代码 matter"), ("name", "事项名称 name"), ("department", "部门代码 department"),
    *(c for c in DEPARTMENT_COLUMNS[2:-2]),
)
SUMMARY_PROJECT_COLUMNS = (
    ("project_code", "项目代码 project code"), ("name", "项目名称 name"), ("regime", "管理类型 regime"),
    ("region_code", "行政区划 region"), ("declared_at", "申报时间 declared"), ("concluded_at", "办结告知时间 concluded"),
    ("notice_number", "办结告知书编号 notice"), ("working_days", "申报至办结工作日 working days"),
)
PROJECT_COLUMNS = (
    ("project_code", "项目代码 project code"), ("name", "项目名称 name"), ("regime", "管理类型 regime"),
    ("region_code", "行政区划代码 region code"), ("region_name", "行政区划 region"), ("industry", "行业 industry"),
    ("investment", "总投资(万元) investment"), ("status", "状态 status"), ("declared_on", "申报日期 declared"),
    ("concluded_on", "办结日期 concluded"),
)


def industry(code: str) -> str:
    """The industry as code and name (05 农、林、牧、渔专业及辅助性活动): text a spreadsheet
    keeps as it is, where a bare 05 would open as the number 5."""
    name = codes.industry_name(code)
    return f"{code} {name}" if name else code


def safe(value):
    """A cell value: text guarded against formula injection, dates as ISO text, numbers kept."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.astimezone(SHANGHAI).isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (int, float)):
        return value
    text = str(value)
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def to_csv(columns: Sequence[tuple[str, str]], rows: Iterable[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([header for _, header in columns])
    for row in rows:
        writer.writerow([safe(row.get(key)) for key, _ in columns])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(sheets: Sequence[tuple[str, Sequence[tuple[str, str]], Iterable[dict]]]) -> bytes:
    book = Workbook()
    book.remove(book.active)
    for title, columns, rows in sheets:
        sheet = book.create_sheet(title)
        sheet.append([header for _, header in columns])
        for row in rows:
            sheet.append([safe(row.get(key)) for key, _ in columns])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback and the UTF-8 name (RFC 6266 / 5987)."""
    fallback = filename.encode("ascii", "replace").decode("ascii").replace("?", "_").replace('"', "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"


def summary_tables(session: Session, actor: Actor, *, now: datetime, **filters) -> tuple[dict, list]:
    """The summary and its three tables (departments, matters, concluded projects)."""
    data = summary(session, actor, now=now, **filters)
    return data, [
        ("部门 departments", DEPARTMENT_COLUMNS, data["departments"]),
        ("事项 matters", MATTER_COLUMNS, data["matters"]),
        ("项目 projects", SUMMARY_PROJECT_COLUMNS, data["projects"]),
    ]


def summary_csv_rows(data: dict) -> tuple[tuple, list[dict]]:
    """One CSV table: a ``level`` column, then department rows and matter rows."""
    columns = (("level", "层级 level"), ("code", "代码 code"), ("name", "名称 name"),
               ("department", "部门代码 department"), *DEPARTMENT_COLUMNS[2:])
    rows = [{"level": "department", "code": r["department"], **r} for r in data["departments"]]
    rows += [{"level": "matter", "code": r["matter_code"], **r} for r in data["matters"]]
    return columns, rows


def project_rows(session: Session, actor: Actor, *, now: datetime, start: date | None = None, end: date | None = None,
                 region: str | None = None, department: str | None = None) -> list[dict]:
    """Projects in scope with their codes, declared in the period (all periods when none is given).

    One statement: the region's name is joined and the conclusion instant (the latest
    conclusion notice's) is a correlated subquery, so no list of project ids ever goes
    back to the database."""
    scope = scope_for(session, actor, region=region, department=department)
    concluded = (select(func.max(Notice.issued_at))
                 .where(Notice.project_id == Project.id, Notice.kind == "conclusion").scalar_subquery())
    query = (select(Project.project_code, Project.name, Project.regime, Project.region_code, Region.name,
                    Project.industry_code, Project.investment, Project.status, Project.declared_at, concluded)
             .outerjoin(Region, Region.code == Project.region_code)
             .where(scope.project_condition()))
    if start or end:
        period = period_of(now, start, end)
        query = query.where(period.between(Project.declared_at))
    if scope.department is not None:
        query = query.where(Project.id.in_(select(ProjectMatter.project_id).where(
            ProjectMatter.department_code == scope.department)))
    return [{
        "project_code": code, "name": name, "regime": regime, "region_code": region_code,
        "region_name": region_name or "", "industry": industry(industry_code), "investment": investment,
        "status": status, "declared_on": local_date(declared_at), "concluded_on": local_date(concluded_at),
    } for code, name, regime, region_code, region_name, industry_code, investment, status, declared_at, concluded_at
        in session.execute(query.order_by(Project.declared_at, Project.id))]
