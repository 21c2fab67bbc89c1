"""实施情况 (implementation reports, 第十四条(五)): after the project's matters have all
concluded, its unit reports the start of construction (开工), progress (进度) and
completion (竣工), each under the project code, so the monitoring departments can
follow the project through to the end.

The rules keep the reports a coherent story: one start, then progress reports with a
percentage that never goes back, then one completion. Each report is checked
against the ones before it under a lock on the project row, so two reports sent at
once cannot both be "the first start".
"""
from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import audit, projects
from engine.access import Actor
from engine.clock import SHANGHAI
from engine.errors import Conflict, Forbidden, Invalid
from engine.models import ImplementationReport, Project

KINDS = ("start", "progress", "completion")
#: A reported completed investment above this multiple of the declared investment is
#: implausible (a unit slip: 元 for 万元) and refused rather than stored.
PLAUSIBLE_INVESTMENT_FACTOR = Decimal(2)
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])", re.ASCII)
_HUNDRED = Decimal(100)


def _day(period: str) -> date:
    try:
        if len(period) != 10:
            raise ValueError(period)
        return date.fromisoformat(period)
    except ValueError:
        raise Invalid.field("period", "开工、竣工须填写日期 YYYY-MM-DD (a date for start and completion)") from None


def _month(period: str) -> str:
    if not _MONTH.fullmatch(period):
        raise Invalid.field("period", "进度报告期须为 YYYY-MM (a month for progress)")
    return period


def _check_amounts(project: Project, percent: Decimal | None, investment: Decimal | None) -> None:
    if percent is not None and not Decimal(0) <= percent <= _HUNDRED:
        raise Invalid.field("percent_complete", "完成比例须在0到100之间 (percent must be 0..100)")
    if investment is not None and investment < 0:
        raise Invalid.field("investment_completed", "完成投资不得为负 (must be >= 0)")
    if investment is not None and investment > project.investment * PLAUSIBLE_INVESTMENT_FACTOR:
        raise Invalid.field("investment_completed",
                            f"完成投资超过总投资的{PLAUSIBLE_INVESTMENT_FACTOR}倍，请核对单位（万元） "
                            f"(more than {PLAUSIBLE_INVESTMENT_FACTOR}x the declared investment: check the unit, 万元)")


def report(session: Session, *, actor: Actor, project: Project, kind: str, period: str,
           percent_complete: Decimal | None, investment_completed: Decimal | None, content: str,
           now: datetime) -> ImplementationReport:
    """Store one report of the project's own unit, after its matters concluded."""
    if not actor.has("applicant") or actor.project_unit_id != project.project_unit_id:
        raise Forbidden("只有本项目的项目单位可以报送实施情况 (the project's own unit only)")
    if project.status != "concluded":
        raise Conflict("项目审批事项尚未全部办结，不能报送实施情况 (the project's matters have not all concluded)")
    if not any((pm.result or {}).get("decision") in projects.GRANTED for pm in project.matters):
        raise Conflict("项目未获批准或备案，不能报送实施情况 (no matter of the project was approved or filed: it is not to be built)")
    if kind not in KINDS:
        raise Invalid.field("kind", f"须为 {', '.join(KINDS)} 之一 (unknown kind)")
    _month(period) if kind == "progress" else _day(period)  # the report's own fields first, then its order
    _check_amounts(project, percent_complete, investment_completed)
    session.execute(select(Project.id).where(Project.id == project.id).with_for_update())
    earlier = list(session.scalars(select(ImplementationReport).where(ImplementationReport.project_id == project.id)
                                   .order_by(ImplementationReport.id)))
    today = now.astimezone(SHANGHAI).date()
    start = next((r for r in earlier if r.kind == "start"), None)
    if kind == "start":
        if start is not None:
            raise Conflict("开工情况已报送 (the start has already been reported)")
        if _day(period) > today:
            raise Invalid.field("period", "开工日期不得晚于今天 (the start date is in the future)")
    else:
        if start is None:
            raise Conflict("请先报送开工情况 (report the start first)")
        if any(r.kind == "completion" for r in earlier):
            raise Conflict("竣工情况已报送 (the completion has already been reported)")
        percent_complete = _check_sequence(kind, period, percent_complete, investment_completed, earlier, start, today)
    row = ImplementationReport(
        project_id=project.id, project_code=project.project_code, kind=kind, period=period,
        percent_complete=percent_complete, investment_completed=investment_completed, content=content,
        reported_at=now, reported_by=actor.username,
    )
    session.add(row)
    session.flush()
    audit.record(session, at=now, actor=actor.username, action=f"implementation.{kind}", project_code=project.project_code,
                 target=f"implementation_report:{row.id}",
                 summary={"period": period, "percent_complete": percent_complete, "investment_completed": investment_completed})
    return row


def _check_sequence(kind: str, period: str, percent: Decimal | None, investment: Decimal | None,
                    earlier: list[ImplementationReport], start: ImplementationReport, today: date) -> Decimal | None:
    """A progress or completion report against the start and the progress before it;
    returns the percentage to store (completion is 100% unless said otherwise — and it
    may not say otherwise)."""
    reached = max((r.percent_complete for r in earlier if r.percent_complete is not None), default=None)
    if kind == "completion":
        day = _day(period)
        if day > today:
            raise Invalid.field("period", "竣工日期不得晚于今天 (the completion date is in the future)")
        if day < date.fromisoformat(start.period):
            raise Invalid.field("period", "竣工日期不得早于开工日期 (completion before the start)")
        latest = max((r.period for r in earlier if r.kind == "progress"), default=None)
        if latest is not None and day.isoformat()[:7] < latest:
            raise Invalid.field("period", f"竣工日期不得早于已报送进度的报告期 {latest} (completion before a month already reported)")
        if percent is not None and percent != _HUNDRED:
            raise Invalid.field("percent_complete", "竣工时完成比例为100 (completion is 100 percent)")
        return _HUNDRED
    month = _month(period)
    if month > today.isoformat()[:7]:
        raise Invalid.field("period", "报告期不得晚于本月 (the period is in the future)")
    if month < start.period[:7]:
        raise Invalid.field("period", "报告期不得早于开工月份 (the period is before the start)")
    progress = [r for r in earlier if r.kind == "progress"]
    if any(r.period == month for r in progress):
        raise Conflict("该报告期的进度已报送 (progress for this period has already been reported)")
    if progress and month < max(r.period for r in progress):
        raise Invalid.field("period", "报告期不得早于已报送的报告期 (the period is before one already reported)")
    if percent is None:
        raise Invalid.field("percent_complete", "进度报告须填写完成比例 (progress needs the percentage)")
    if investment is None:
        raise Invalid.field("investment_completed", "进度报告须填写完成投资 (progress needs the investment completed)")
    if reached is not None and percent < reached:
        raise Invalid.field("percent_complete", f"完成比例不得低于已报送的 {reached} (must not go below {reached})")
    return percent


def list_reports(session: Session, project: Project, *, page: int, page_size: int):
    """The project's reports in the order they were made (the caller checked visibility)."""
    where = ImplementationReport.project_id == project.id
    total = session.scalar(select(func.count()).select_from(ImplementationReport).where(where))
    rows = session.scalars(select(ImplementationReport).where(where).order_by(ImplementationReport.id)
                           .offset((page - 1) * page_size).limit(page_size)).all()
    return rows, total
