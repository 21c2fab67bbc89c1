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
from datetime import date, datetime, timedelta

from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from engine.access import Actor
from engine.clock import SHANGHAI
from engine.clocks import UNIT_KINDS
from engine.models import BackfilledAct, Clock, Department, ImplementationReport, Notice, Project, ProjectMatter
from engine.supervision import Period, Scope, local_date, period_of, rate, scope_for

DEFAULT_MONTHS = 6
#: (page number, page size) of a warning's project list; None: all of it
Page = tuple[int, int] | None
#: How many progress reports in a row with the same percentage make a stall.
SAME_PERCENT_RUN = 3
_DAY = timedelta(days=1)


def add_months(day: date, months: int) -> date:
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, monthcal.monthrange(year, month)[1]))


def cutoff(today: date, months: int) -> datetime:
    """The instant before which a day must fall for ``add_months(day, months) <= today``:
    the start (Asia/Shanghai) of the day after the last such day, so SQL compares
    instants. ``add_months`` never decreases as the day grows, so the days that qualify
    run up to a last one: ``today - months`` clamped, or a later day of that month when
    clamping lands several days on today (31 Aug + 6 months = 28 Feb = 29 Aug + 6)."""
    last = add_months(today, -months)
    while add_months(last + _DAY, months) <= today:
        last += _DAY
    after = last + _DAY
    return datetime(after.year, after.month, after.day, tzinfo=SHANGHAI)


def _project_scope(scope: Scope):
    """Concluded projects in scope (with a matter of the scope's department when it has one)."""
    conditions = [Project.status == "concluded", scope.project_condition()]
    if scope.department is not None:
        conditions.append(Project.id.in_(select(ProjectMatter.project_id).where(
            ProjectMatter.department_code == scope.department)))
    return conditions


def _has_report(kind: str):
    """The project has a report of ``kind`` (an alias: the caller may itself read reports)."""
    report = aliased(ImplementationReport)
    return exists().where(report.project_id == Project.id, report.kind == kind)


def _page(session: Session, query, page: Page) -> tuple[list, int]:
    """A page of the warning's rows (all for ``page`` None) and how many there are: a
    province's warnings run to tens of thousands of projects."""
    if page is None:
        rows = session.execute(query).all()
        return rows, len(rows)
    number, size = page
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    return session.execute(query.offset((number - 1) * size).limit(size)).all(), total


def no_start(session: Session, scope: Scope, *, today: date, months: int, page: Page = None) -> tuple[list[dict], int]:
    """One anti-join: the project's latest conclusion notice issued before the cutoff, no start report."""
    issued = func.max(Notice.issued_at)
    rows, total = _page(session, (
        select(Project.project_code, Project.name, issued)
        .join(Notice, and_(Notice.project_id == Project.id, Notice.kind == "conclusion"))
        .where(*_project_scope(scope), ~_has_report("start"))
        .group_by(Project.id, Project.project_code, Project.name)
        .having(issued < cutoff(today, months))
        .order_by(Project.id)), page)
    result = []
    for code, name, issued_at in rows:
        concluded = local_date(issued_at)
        result.append({"project_code": code, "name": name, "concluded_on": concluded,
                       "months_since_conclusion": _months_between(concluded, today)})
    return result, total


def stalled(session: Session, scope: Scope, *, today: date, months: int, page: Page = None) -> tuple[list[dict], int]:
    """Started, not completed projects whose latest report is before the cutoff or whose last
    three progress reports give one percentage. Only each project's latest report and latest
    three progress reports are read (window functions), and SQL keeps only the stalled ones."""
    newest = (ImplementationReport.reported_at.desc(), ImplementationReport.id.desc())
    ranked = (
        select(ImplementationReport.project_id, Project.project_code, Project.name, ImplementationReport.kind,
               ImplementationReport.reported_at, ImplementationReport.percent_complete,
               func.row_number().over(partition_by=ImplementationReport.project_id, order_by=newest).label("latest"),
               func.row_number().over(partition_by=(ImplementationReport.project_id, ImplementationReport.kind),
                                      order_by=newest).label("of_kind"))
        .join(Project, Project.id == ImplementationReport.project_id)
        .where(*_project_scope(scope), _has_report("start"), ~_has_report("completion"))
    ).subquery()
    is_latest = ranked.c.latest == 1
    is_progress = and_(ranked.c.kind == "progress", ranked.c.of_kind <= SAME_PERCENT_RUN)
    progress_percent = case((is_progress, ranked.c.percent_complete))
    last_at = func.max(case((is_latest, ranked.c.reported_at)))
    last_kind = func.max(case((is_latest, ranked.c.kind)))
    last_percent = func.max(case((and_(ranked.c.kind == "progress", ranked.c.of_kind == 1), ranked.c.percent_complete)))
    progress_count = func.sum(case((is_progress, 1), else_=0))
    percent_count, low, high = func.count(progress_percent), func.min(progress_percent), func.max(progress_percent)
    old_report = last_at < cutoff(today, months)
    same_percent = and_(progress_count == SAME_PERCENT_RUN, percent_count == SAME_PERCENT_RUN, low == high)
    rows, total = _page(session, (
        select(ranked.c.project_code, ranked.c.name, last_at, last_kind, last_percent, case((old_report, 1), else_=0),
               case((same_percent, 1), else_=0))
        .where(or_(is_latest, is_progress))
        .group_by(ranked.c.project_id, ranked.c.project_code, ranked.c.name)
        .having(or_(old_report, same_percent))
        .order_by(ranked.c.project_id)), page)
    result = []
    for code, name, reported_at, kind, percent, old, same in rows:
        reasons = [reason for reason, flagged in (("no_recent_report", old), ("percent_unchanged", same)) if flagged]
        result.append({"project_code": code, "name": name, "reasons": reasons, "last_report_at": reported_at,
                       "last_report_kind": kind, "percent_complete": float(percent) if percent is not None else None})
    return result, total


def _overdue_rates(session: Session, scope: Scope, period: Period, now: datetime) -> dict[str, tuple[int, int]]:
    """Per department: clocks due in the period that went red (or are past due and not
    stopped), and all clocks due in the period; grouped in SQL."""
    overdue = or_(Clock.light == "red", and_(Clock.state != "stopped", Clock.due_at <= now))
    rows = session.execute(
        select(Clock.department_code, func.sum(case((overdue, 1), else_=0)), func.count())
        .join(Project, Project.id == Clock.project_id)
        .where(scope.project_condition(), scope.department_condition(Clock.department_code), period.between(Clock.due_at),
               Clock.kind.not_in(UNIT_KINDS))
        .group_by(Clock.department_code)).all()
    return {dept: (int(late), due) for dept, late, due in rows}


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
    names: dict[str, str] = {}
    for (act_id, project_code, matter_code, act, effective_at, entered_at, reason, actor, dept,
         name) in session.execute(
            select(BackfilledAct.id, BackfilledAct.project_code, BackfilledAct.matter_code, BackfilledAct.act,
                   BackfilledAct.effective_at, BackfilledAct.entered_at, BackfilledAct.reason, BackfilledAct.actor,
                   BackfilledAct.department_code, Department.name)
            .join(Project, Project.project_code == BackfilledAct.project_code)
            .outerjoin(Department, Department.code == BackfilledAct.department_code)
            .where(scope.project_condition(), scope.department_condition(BackfilledAct.department_code),
                   period.between(BackfilledAct.entered_at))
            .order_by(BackfilledAct.entered_at, BackfilledAct.id)):
        acts[dept].append({"id": act_id, "project_code": project_code, "matter_code": matter_code, "act": act,
                           "effective_at": effective_at, "entered_at": entered_at, "reason": reason, "actor": actor})
        names[dept] = name or dept
    return [{"department": dept, "name": names[dept], "count": len(items), "acts": items}
            for dept, items in sorted(acts.items())]


def _months_between(earlier: date, later: date) -> int:
    months = (later.year - earlier.year) * 12 + later.month - earlier.month
    return months - (add_months(earlier, months) > later)


def risks(session: Session, actor: Actor, *, now: datetime, start: date | None = None, end: date | None = None,
          months: int = DEFAULT_MONTHS, region: str | None = None, department: str | None = None, page: int = 1,
          page_size: int | None = None) -> dict:
    """The four warnings; the project lists (no start, stalled) a page each (``page_size``;
    all when None) with their totals."""
    scope = scope_for(session, actor, region=region, department=department)
    period = period_of(now, start, end)
    today = local_date(now)
    paged = None if page_size is None else (page, page_size)
    no_start_rows, no_start_total = no_start(session, scope, today=today, months=months, page=paged)
    stalled_rows, stalled_total = stalled(session, scope, today=today, months=months, page=paged)
    return {
        "period": {"from": period.start, "to": period.end}, "months": months,
        "no_start": no_start_rows, "no_start_total": no_start_total,
        "stalled": stalled_rows, "stalled_total": stalled_total,
        "overdue_rate_rising": overdue_rate_rising(session, scope, period, now),
        "backfilled": backfilled(session, scope, period),
    }
