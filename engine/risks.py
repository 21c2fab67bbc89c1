"""风险预警 (第四条: 利用大数据分析加强监测预测、风险预警): four warnings for supervisors.

* ``no_start``: a project concluded (its conclusion notice issued) at least N months
  ago with no start report (开工信息) from its project unit.
* ``stalled``: a started, not completed project whose latest implementation report
  is N months old or more, or whose last three progress reports give the same
  percentage complete.
* ``overdue_rate_rising``: a department whose overdue rate (of its clocks due in the
  period, the share that went red) is higher than in the period just before (环比:
  as many calendar months before for whole months, else as many days; ``Period.previous``).
* ``backfilled``: departments with acts entered in the period with an earlier
  effective date (补录: handled offline, entered later), with those acts.

N is a query parameter (default 6 months). Months are calendar months on
Asia/Shanghai dates, clamped to the month's last day (31 Aug + 6 months = 28/29 Feb).
"""
from __future__ import annotations

import calendar as monthcal
from collections import defaultdict
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.access import Actor
from engine.clocks import UNIT_KINDS
from engine.models import BackfilledAct, Clock, Department, ImplementationReport, Notice, Project, ProjectMatter
from engine.supervision import Period, Scope, local_date, period_of, rate, scope_for

DEFAULT_MONTHS = 6
#: How many progress reports in a row with the same percentage make a stall.
SAME_PERCENT_RUN = 3


def add_months(day: date, months: int) -> date:
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, monthcal.monthrange(year, month)[1]))


def _projects(session: Session, scope: Scope, *conditions):
    query = select(Project).where(scope.project_condition(), *conditions)
    if scope.department is not None:
        query = query.where(Project.id.in_(select(ProjectMatter.project_id).where(
            ProjectMatter.department_code == scope.department)))
    return session.scalars(query.order_by(Project.id)).all()


def _reports(session: Session, project_ids: list[int]) -> dict[int, list[ImplementationReport]]:
    found: dict[int, list[ImplementationReport]] = defaultdict(list)
    if project_ids:
        for report in session.scalars(select(ImplementationReport).where(ImplementationReport.project_id.in_(project_ids))
                                      .order_by(ImplementationReport.reported_at, ImplementationReport.id)):
            found[report.project_id].append(report)
    return found


def no_start(session: Session, scope: Scope, *, today: date, months: int) -> list[dict]:
    projects = _projects(session, scope, Project.status == "concluded")
    notices = {n.project_id: n for n in session.scalars(select(Notice).where(
        Notice.project_id.in_([p.id for p in projects]), Notice.kind == "conclusion").order_by(Notice.issued_at))}
    reports = _reports(session, [p.id for p in projects])
    rows = []
    for project in projects:
        notice = notices.get(project.id)
        if notice is None or any(r.kind == "start" for r in reports[project.id]):
            continue
        concluded = local_date(notice.issued_at)
        if add_months(concluded, months) <= today:
            rows.append({"project_code": project.project_code, "name": project.name, "concluded_on": concluded,
                         "months_since_conclusion": _months_between(concluded, today)})
    return rows


def stalled(session: Session, scope: Scope, *, today: date, months: int) -> list[dict]:
    projects = _projects(session, scope, Project.status == "concluded")
    reports = _reports(session, [p.id for p in projects])
    rows = []
    for project in projects:
        own = reports[project.id]
        if not any(r.kind == "start" for r in own) or any(r.kind == "completion" for r in own):
            continue
        latest = own[-1]
        progress = [r for r in own if r.kind == "progress"][-SAME_PERCENT_RUN:]
        percents = {r.percent_complete for r in progress}
        reasons = []
        if add_months(local_date(latest.reported_at), months) <= today:
            reasons.append("no_recent_report")
        if len(progress) == SAME_PERCENT_RUN and len(percents) == 1 and None not in percents:
            reasons.append("percent_unchanged")
        if reasons:
            rows.append({"project_code": project.project_code, "name": project.name, "reasons": reasons,
                         "last_report_at": latest.reported_at, "last_report_kind": latest.kind,
                         "percent_complete": float(progress[-1].percent_complete) if progress and progress[-1].percent_complete is not None else None})
    return rows


def _overdue_rates(session: Session, scope: Scope, period: Period, now: datetime) -> dict[str, tuple[int, int]]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for clock in session.scalars(select(Clock).join(Project, Project.id == Clock.project_id).where(
            scope.project_condition(), scope.department_condition(Clock.department_code), period.between(Clock.due_at),
            Clock.kind.not_in(UNIT_KINDS))):
        overdue = clock.light == "red" or (clock.state != "stopped" and clock.due_at <= now)
        counts[clock.department_code][0] += overdue
        counts[clock.department_code][1] += 1
    return {dept: (a, b) for dept, (a, b) in counts.items()}


def overdue_rate_rising(session: Session, scope: Scope, period: Period, now: datetime) -> list[dict]:
    current, before = _overdue_rates(session, scope, period, now), _overdue_rates(session, scope, period.previous(), now)
    rows = []
    for dept in sorted(current):
        if dept not in before:
            continue
        (late, due), (late_before, due_before) = current[dept], before[dept]
        if late / due > late_before / due_before:
            rows.append({"department": dept, "overdue": late, "due": due, "overdue_rate": rate(late, due),
                         "previous_period": {"from": period.previous().start, "to": period.previous().end},
                         "previous_overdue": late_before, "previous_due": due_before,
                         "previous_overdue_rate": rate(late_before, due_before)})
    return rows


def backfilled(session: Session, scope: Scope, period: Period) -> list[dict]:
    acts: dict[str, list[dict]] = defaultdict(list)
    for act in session.scalars(select(BackfilledAct).join(Project, Project.project_code == BackfilledAct.project_code).where(
            scope.project_condition(), scope.department_condition(BackfilledAct.department_code),
            period.between(BackfilledAct.entered_at)).order_by(BackfilledAct.entered_at, BackfilledAct.id)):
        acts[act.department_code].append({"id": act.id, "project_code": act.project_code, "matter_code": act.matter_code,
                                          "act": act.act, "effective_at": act.effective_at, "entered_at": act.entered_at,
                                          "reason": act.reason, "actor": act.actor})
    names = dict(session.execute(select(Department.code, Department.name).where(Department.code.in_(list(acts)))).all())
    return [{"department": dept, "name": names.get(dept, dept), "count": len(items), "acts": items}
            for dept, items in sorted(acts.items())]


def _months_between(earlier: date, later: date) -> int:
    months = (later.year - earlier.year) * 12 + later.month - earlier.month
    return months - (add_months(earlier, months) > later)


def risks(session: Session, actor: Actor, *, now: datetime, start: date | None = None, end: date | None = None,
          months: int = DEFAULT_MONTHS, region: str | None = None, department: str | None = None) -> dict:
    scope = scope_for(session, actor, region=region, department=department)
    period = period_of(now, start, end)
    today = local_date(now)
    return {
        "period": {"from": period.start, "to": period.end}, "months": months,
        "no_start": no_start(session, scope, today=today, months=months),
        "stalled": stalled(session, scope, today=today, months=months),
        "overdue_rate_rising": overdue_rate_rising(session, scope, period, now),
        "backfilled": backfilled(session, scope, period),
    }
