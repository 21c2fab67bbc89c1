"""电子监察 (e-supervision): the summary figures and the forecast (监测预测, 第四条).

Everything here is a read over rows other modules write: project matters (received,
accepted, concluded instants), clocks (due instants, pauses, lights), alerts (yellow
and red records) and conclusion notices. Nothing is stored here, so a figure can always
be recomputed and checked by hand; the one figure kept for it is each concluded matter's
handling time, stored when the matter ends (``engine.handling``, computed the same way).

Every read is a bounded number of statements whatever the volume (a province: hundreds of
thousands of matters): the scope and the period are conditions and subqueries in SQL,
never lists of ids sent back (one bound parameter each: PostgreSQL refuses more than
65,535), and rows are read as the columns a figure needs, counted in SQL where a count
is all that is needed.

Definitions (the ones a department is judged by, so they are spelled out):

* received / accepted / concluded: the matter's ``received_at`` / ``accepted_at`` /
  ``concluded_at`` falls in the period (a refusal concludes a matter too).
* concluded on time: concluded no later than the due instant of the clock that was
  counting the matter when it ended (``promised``, or ``filing`` for a filing; the
  acceptance or pre-review clock for a matter refused before acceptance). A matter the
  platform ended because the project unit let a 容缺 commitment lapse (``terminated``)
  is the unit's failure, not a conclusion the department is judged by: not counted.
* the project unit's clocks (a rectification order's deadline, ``clocks.UNIT_KINDS``)
  are not counted against the department that gave the order.
* handling time: working time from acceptance to conclusion on the official
  calendar, outside the promised clock's pauses (补正, 中介服务, 特别程序 are not the
  department's time), in working days of 24 hours (1个工作日 = 24小时倒计时), as
  ``engine.handling`` stores it (computed at read while a calendar load has it
  cleared). The 90th
  percentile is the nearest-rank one: the smallest value at least 90% of the samples
  do not exceed.
* correction-request rate: of the matters accepted in the period, the share whose
  acceptance clock was paused for a correction (一次性告知补正).
* automatic reply: a department's reply clock that went red and was stopped by the
  platform's timer, which fires a microsecond after the due instant; a late reply is
  one an officer entered after the due instant, before the timer ran.
* overdue now: clocks still counting (or paused) whose due instant has passed.

Who sees what: a supervisor or coordinator sees the projects of its region and the
regions below; an officer or department admin sees its own department's rows of
those projects; the operator sees all. A filter outside that scope is refused (403
naming the field), never silently narrowed, so a figure is never mistaken for a
wider one.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import String, and_, case, cast, func, or_, select
from sqlalchemy.orm import Session, aliased

from engine import calendar, handling
from engine.projects import OPEN_MATTER_STATUSES
from engine.access import Actor, region_subtree, require_role
from engine.clocks import UNIT_KINDS
from engine.clock import SHANGHAI
from engine.errors import Forbidden, Invalid
from engine.handling import PROMISED_KINDS, clock_pauses, working_days
from engine.models import Alert, Clock, Department, Matter, Notice, Project, ProjectMatter, Region
from engine.workcal import WorkCalendar

#: Who may read e-supervision figures at all.
READER_ROLES = ("supervisor", "coordinator", "operator", "dept_admin", "officer", "window_officer")
#: Roles that see every department of their region (the others see their own department).
REGION_ROLES = ("supervisor", "coordinator")
#: The reply timer fires this long after the due instant at most (one microsecond in
#: practice); an officer's reply is never that quick after a deadline.
AUTO_REPLY_TOLERANCE = timedelta(seconds=1)
OPEN_PROJECT_STATUSES = ("declared", "dispatched")
MAX_PERIOD_DAYS = 3700
_DAY = timedelta(days=1)


# --- scope and period -------------------------------------------------------------

@dataclass(frozen=True)
class Scope:
    """The rows a request may read: project regions (None: all) and a department (None: all)."""

    regions: frozenset[str] | None
    department: str | None

    def project_condition(self):
        return Project.id.is_not(None) if self.regions is None else Project.region_code.in_(self.regions)

    def department_condition(self, column):
        return column.is_not(None) if self.department is None else column == self.department


def scope_for(session: Session, actor: Actor, *, region: str | None = None, department: str | None = None) -> Scope:
    """The actor's scope narrowed by the requested filters; a filter beyond it is 403."""
    require_role(actor, *READER_ROLES)
    if region is not None and session.get(Region, region) is None:
        raise Invalid.field("region", f"未知的行政区划 (unknown region) {region}")
    if department is not None and session.get(Department, department) is None:
        raise Invalid.field("department", f"未知的部门 (unknown department) {department}")
    if actor.has("operator"):
        return Scope(frozenset(region_subtree(session, region)) if region else None, department)
    allowed = frozenset(region_subtree(session, actor.region_code)) if actor.region_code else frozenset()
    if region is not None and region not in allowed:
        raise Forbidden("无权查看该行政区划 (region outside your scope)", {"region": ["超出本级及下级行政区划 (outside your region and those below it)"]})
    regions = frozenset(region_subtree(session, region)) if region else allowed
    if actor.has(*REGION_ROLES):
        return Scope(regions, department)
    if department is not None and department != actor.department_code:
        raise Forbidden("只能查看本部门 (only your own department)", {"department": ["只能查看本部门 (only your own department)"]})
    return Scope(regions, actor.department_code)


@dataclass(frozen=True)
class Period:
    """Asia/Shanghai days ``start`` to ``end`` inclusive, as the UTC instants [lo, hi)."""

    start: date
    end: date

    @property
    def lo(self) -> datetime:
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=SHANGHAI).astimezone(timezone.utc)

    @property
    def hi(self) -> datetime:
        after = self.end + _DAY
        return datetime(after.year, after.month, after.day, tzinfo=SHANGHAI).astimezone(timezone.utc)

    def contains(self, instant: datetime | None) -> bool:
        return instant is not None and self.lo <= instant < self.hi

    def between(self, column):
        return and_(column >= self.lo, column < self.hi)

    def previous(self) -> "Period":
        """The period just before this one (period-on-period, 环比): as many calendar months
        before for whole months (a month, a quarter, a year), else as many days before."""
        end = self.start - _DAY
        if self.start.day == 1 and (self.end + _DAY).day == 1:  # whole months: as many months before
            months = (self.end.year - self.start.year) * 12 + self.end.month - self.start.month + 1
            first = self.start.year * 12 + self.start.month - 1 - months
            return Period(date(first // 12, first % 12 + 1, 1), end)
        return Period(end - (self.end - self.start), end)


def period_of(now: datetime, start: date | None, end: date | None) -> Period:
    """The requested days; by default the current month up to today (Asia/Shanghai)."""
    today = now.astimezone(SHANGHAI).date()
    end = end or today
    start = start or end.replace(day=1)
    if start > end:
        raise Invalid.field("from", "开始日期晚于结束日期 (from is after to)")
    if (end - start).days > MAX_PERIOD_DAYS:
        raise Invalid.field("from", f"统计期间不得超过{MAX_PERIOD_DAYS}天 (period too long)")
    return Period(start, end)


def month_period(month: str) -> Period:
    """``YYYY-MM`` as a period."""
    try:
        first = date.fromisoformat(f"{month}-01")
    except ValueError:
        raise Invalid.field("period", "须为 YYYY-MM (expected YYYY-MM)") from None
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return Period(first, following - _DAY)


def local_date(instant: datetime | None) -> date | None:
    return instant.astimezone(SHANGHAI).date() if instant else None


# --- figures ----------------------------------------------------------------------

def mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def p90(values: list[float]) -> float | None:
    """Nearest rank: the ceil(0.9·n)-th smallest value."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[math.ceil(0.9 * len(ordered)) - 1], 2)


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def reply_outcome(clock) -> str | None:
    """``automatic`` or ``late`` for a red reply clock that has stopped; None otherwise
    (``clock``: a Clock or any row with its kind, light, stopped_at and due_at)."""
    if clock.kind != "reply" or clock.light != "red" or clock.stopped_at is None or clock.due_at is None:
        return None
    return "automatic" if clock.stopped_at - clock.due_at <= AUTO_REPLY_TOLERANCE else "late"


#: The clocks that count a matter, in the order they start: the latest one counting when
#: the matter ended is the limit its conclusion is judged against.
MATTER_KINDS = ("pre_review", "acceptance", *PROMISED_KINDS)


def _latest_clock(kinds: tuple[str, ...], column=None):
    """A column (by default the id) of the latest clock of ``kinds`` of the outer query's
    project matter: a correlated subquery on the clocks' (project, matter, kind, id) index."""
    own = aliased(Clock)
    return (select(own.id if column is None else getattr(own, column))
            .where(own.project_id == ProjectMatter.project_id, own.matter_code == ProjectMatter.matter_code,
                   own.kind.in_(kinds))
            .order_by(own.id.desc()).limit(1).correlate(ProjectMatter).scalar_subquery())


# --- the summary ------------------------------------------------------------------

def _figures() -> dict:
    return {"received": 0, "accepted": 0, "concluded": 0, "concluded_on_time": 0, "yellow_records": 0,
            "red_records": 0, "overdue_now": 0, "corrections": 0, "_days": []}


def _finish(row: dict) -> dict:
    days = row.pop("_days")
    corrections = row.pop("corrections")
    row["mean_handling_days"] = mean(days)
    row["p90_handling_days"] = p90(days)
    row["correction_request_rate"] = rate(corrections, row["accepted"])
    row["on_time_rate"] = rate(row["concluded_on_time"], row["concluded"])
    return row


#: Concluded matters whose handling time the sweep has not stored yet (after a calendar
#: load cleared them) that the summary computes itself, the latest first; the others are
#: left out of its handling figures until the sweep stores them, and counted
#: (``handling_pending``), so a read stays bounded while the sweep catches up.
PENDING_IN_SUMMARY = 2000


def summary(session: Session, actor: Actor, *, now: datetime, start: date | None = None, end: date | None = None,
            region: str | None = None, department: str | None = None, page: int = 1,
            page_size: int | None = None) -> dict:
    """The period's figures per department and per matter (those with anything in the period)
    and per project concluded in it: a page of them (``page_size``; all for an export),
    with their number (``projects_total``: a province's year concludes tens of thousands).

    A bounded number of statements whatever the volume, each with the scope and the period
    in SQL (no list of ids): the period's matters counted per department and matter (each
    concluded one against the due instant of the clock counting it), the concluded ones'
    handling time as stored (``engine.handling``), the corrections, alerts, overdue
    clocks and replies. Only the name look-ups list codes: one per department or matter
    with figures (the catalogue bounds them, not the rows).
    """
    scope = scope_for(session, actor, region=region, department=department)
    period = period_of(now, start, end)
    cal = calendar.current(session)
    by_dept: dict[str, dict] = defaultdict(_figures)
    by_matter: dict[str, dict] = defaultdict(_figures)

    def both(dept: str | None, matter: str | None):
        rows = [by_dept[dept]] if dept else []
        return rows + ([by_matter[matter]] if matter else [])

    pm = ProjectMatter
    in_scope = (scope.project_condition(), scope.department_condition(pm.department_code))
    concluded = and_(period.between(pm.concluded_at), pm.status != "terminated")

    def number(condition):
        return func.sum(case((condition, 1), else_=0))

    # counted in SQL; the limit is looked up only for the matters concluded in the period
    on_time = case((concluded, case((pm.concluded_at <= _latest_clock(MATTER_KINDS, "due_at"), 1), else_=0)), else_=0)
    for dept, matter, received, accepted, ended, in_time in session.execute(
            select(pm.department_code, pm.matter_code, number(period.between(pm.received_at)),
                   number(period.between(pm.accepted_at)), number(concluded), func.sum(on_time))
            .join(Project, Project.id == pm.project_id)
            .where(*in_scope, or_(period.between(pm.received_at), period.between(pm.accepted_at),
                                  period.between(pm.concluded_at)))  # a terminated matter lists its department
            .group_by(pm.department_code, pm.matter_code)):
        for row in both(dept, matter):
            row["received"] += received
            row["accepted"] += accepted
            row["concluded"] += ended
            row["concluded_on_time"] += in_time

    for dept, matter in _corrected(session, scope, period):
        for row in both(dept, matter):
            row["corrections"] += 1

    # the stored figures alone (a province's year is 100,000 numbers), then those not stored yet
    ended = (*in_scope, concluded, pm.accepted_at.is_not(None))
    for dept, matter, figure in session.execute(select(pm.department_code, pm.matter_code, pm.handling_days).join(
            Project, Project.id == pm.project_id).where(*ended, pm.handling_days.is_not(None))):
        for row in both(dept, matter):
            row["_days"].append(figure)
    owed, left_out = handling.owed_at_read(session, cal, select(*handling.READ_COLUMNS).join(
        Project, Project.id == pm.project_id).where(*ended), PENDING_IN_SUMMARY)
    for m, figure in owed:
        for row in both(m.department_code, m.matter_code):
            row["_days"].append(figure)

    for dept, matter, light, count in session.execute(
            select(Alert.department_code, Alert.matter_code, Alert.light, func.count())
            .join(Project, Project.project_code == Alert.project_code)
            .where(scope.project_condition(), scope.department_condition(Alert.department_code),
                   period.between(Alert.at), Alert.clock_kind.not_in(UNIT_KINDS))
            .group_by(Alert.department_code, Alert.matter_code, Alert.light)):
        for row in both(dept, matter):
            row[f"{light}_records"] += count

    for dept, matter, count in session.execute(
            select(Clock.department_code, Clock.matter_code, func.count())
            .join(Project, Project.id == Clock.project_id)
            .where(scope.project_condition(), scope.department_condition(Clock.department_code),
                   Clock.state != "stopped", Clock.due_at <= now, Clock.kind.not_in(UNIT_KINDS))
            .group_by(Clock.department_code, Clock.matter_code)):
        for row in both(dept, matter):
            row["overdue_now"] += count

    replies: dict[str, dict[str, int]] = defaultdict(lambda: {"automatic_replies": 0, "late_replies": 0})
    for clock in session.execute(
            select(Clock.department_code, Clock.kind, Clock.light, Clock.stopped_at, Clock.due_at)
            .join(Project, Project.id == Clock.project_id)
            .where(scope.project_condition(), scope.department_condition(Clock.department_code),
                   Clock.kind == "reply", Clock.light == "red", period.between(Clock.due_at))):
        outcome = reply_outcome(clock)
        if outcome:
            replies[clock.department_code][f"{outcome}_replies"] += 1
            by_dept.setdefault(clock.department_code, _figures())  # listed even with nothing else in the period

    names = dict(session.execute(select(Department.code, Department.name).where(Department.code.in_(list(by_dept)))).all())
    catalogue = {code: (name, owner) for code, name, owner in session.execute(
        select(Matter.matter_code, Matter.name, Matter.department_code).where(Matter.matter_code.in_(list(by_matter))))}
    departments = [
        {"department": code, "name": names.get(code, code), **_finish(by_dept[code]),
         **replies[code]}
        for code in sorted(by_dept)
    ]
    matter_rows = [
        {"matter_code": code, "name": catalogue[code][0] if code in catalogue else code,
         "department": catalogue[code][1] if code in catalogue else None, **_finish(by_matter[code])}
        for code in sorted(by_matter)
    ]
    projects, total = concluded_projects(session, scope, period, cal, page=page, page_size=page_size)
    return {"period": {"from": period.start, "to": period.end}, "departments": departments, "matters": matter_rows,
            "projects": projects, "projects_total": total, "handling_pending": left_out}


def _corrected(session: Session, scope: Scope, period: Period) -> list[tuple[str, str]]:
    """The (department, matter) of each project matter accepted in the period (in scope)
    whose acceptance clock was paused for a correction request. Only those matters'
    acceptance clocks whose pauses mention a correction are read (a text match in SQL,
    then each pause checked here)."""
    pm = ProjectMatter
    found: dict[int, tuple[str, str]] = {}
    for pm_id, dept, matter, pauses in session.execute(
            select(pm.id, pm.department_code, pm.matter_code, Clock.pauses)
            .join(pm, and_(pm.project_id == Clock.project_id, pm.matter_code == Clock.matter_code))
            .join(Project, Project.id == pm.project_id)
            .where(Clock.kind == "acceptance", period.between(pm.accepted_at), scope.project_condition(),
                   scope.department_condition(pm.department_code),
                   cast(Clock.pauses, String).like("%correction%"))):
        if any(p.get("reason") == "correction" for p in pauses or []):
            found[pm_id] = (dept, matter)  # a matter counts once, however many of its clocks
    return list(found.values())


def concluded_projects(session: Session, scope: Scope, period: Period, cal: WorkCalendar, *, page: int = 1,
                       page_size: int | None = None) -> tuple[list[dict], int]:
    """Projects whose conclusion notice was issued in the period, in that order, with the
    working days from declaration to that notice: a page of them (all when ``page_size``
    is None), and how many there are. The department's scope is a subquery."""
    query = select(Project.project_code, Project.name, Project.regime, Project.region_code, Project.declared_at,
                   Notice.issued_at, Notice.number).join(Notice, Notice.project_id == Project.id).where(
        scope.project_condition(), Notice.kind == "conclusion", period.between(Notice.issued_at))
    if scope.department is not None:
        query = query.where(Project.id.in_(select(ProjectMatter.project_id).where(
            ProjectMatter.department_code == scope.department)))
    ordered = query.order_by(Notice.issued_at, Project.id)
    if page_size is not None:
        ordered = ordered.offset((page - 1) * page_size).limit(page_size)
    rows = [
        {"project_code": row.project_code, "name": row.name, "regime": row.regime, "region_code": row.region_code,
         "declared_at": row.declared_at, "concluded_at": row.issued_at, "notice_number": row.number,
         "working_days": round(working_days(cal, row.declared_at, row.issued_at), 2)}
        for row in session.execute(ordered)
    ]
    total = len(rows) if page_size is None else session.scalar(select(func.count()).select_from(query.subquery()))
    return rows, total


# --- the forecast (监测预测) --------------------------------------------------------

#: Concluded matters whose handling time the sweep has not stored yet (after a calendar
#: load) that the forecast computes itself, the most recent first; beyond these the
#: history waits for the sweep.
PENDING_IN_HISTORY = 200


def department_history(session: Session, cal: WorkCalendar, *, now: datetime, departments) -> dict[str, dict]:
    """The mean handling days of each of ``departments`` (a subquery of department codes)
    over the matters it has concluded by ``now``, with the number of them (``samples``).

    An estimate that reports its sample count: it is taken in SQL over the stored figures
    (``engine.handling``); of the matters whose figure the sweep has not stored yet (a
    calendar load cleared it), only the latest ``PENDING_IN_HISTORY`` are computed here
    and the others are left out until the sweep stores them.
    """
    pm = ProjectMatter
    ended = (pm.department_code.in_(departments), pm.concluded_at <= now)
    totals = {dept: [total, count] for dept, total, count in session.execute(
        select(pm.department_code, func.sum(pm.handling_days), func.count(pm.handling_days))
        .where(*ended, pm.handling_days.is_not(None)).group_by(pm.department_code))}
    pending, _ = handling.owed_at_read(session, cal, select(*handling.READ_COLUMNS).where(*ended), PENDING_IN_HISTORY)
    for row, figure in pending:
        total = totals.setdefault(row.department_code, [0.0, 0])
        total[0] += figure
        total[1] += 1
    return {dept: {"mean_days": round(total / count, 2), "samples": count} for dept, (total, count) in totals.items()}


def forecast(session: Session, actor: Actor, *, now: datetime, region: str | None = None,
             department: str | None = None, page: int = 1, page_size: int = 20) -> tuple[list[dict], int]:
    """Each open project's expected conclusion: the latest expected conclusion of its open matters.

    A matter is expected to take its department's historical mean handling days (or,
    with no history, the promised limit) counted from the start of its promised clock;
    what has already elapsed on that clock (outside its pauses) is deducted and the rest
    is counted on from now, so a paused clock is assumed to resume now. A matter not yet
    accepted is counted from now. The basis of every estimate is returned with it.

    The page's open matters, their clocks and their departments' history are read with
    the page as a subquery: a fixed number of statements whatever the volume.
    """
    scope = scope_for(session, actor, region=region, department=department)
    conditions = [scope.project_condition(), Project.status.in_(OPEN_PROJECT_STATUSES)]
    if scope.department is not None:
        handled = aliased(ProjectMatter)  # never correlated with the matters the page is joined to
        conditions.append(Project.id.in_(select(handled.project_id).where(handled.department_code == scope.department)))
    total = session.scalar(select(func.count()).select_from(Project).where(*conditions))
    paged = (select(Project.id, Project.project_code, Project.name, Project.status, Project.declared_at)
             .where(*conditions).order_by(Project.declared_at, Project.id).offset((page - 1) * page_size).limit(page_size))
    projects = session.execute(paged).all()
    cal = calendar.current(session)
    on_page = paged.subquery()
    pm, clock = ProjectMatter, aliased(Clock)

    def open_on_page(matters):
        return (matters.status.in_(OPEN_MATTER_STATUSES), scope.department_condition(matters.department_code))

    open_pms = session.execute(
        select(pm.project_id, pm.matter_code, pm.department_code, pm.status,
               Matter.promised_working_days.label("catalogue_days"),
               clock.id.label("clock_id"), clock.kind, clock.state, clock.started_at, clock.due_at, clock.limit_days,
               clock.pauses)
        .join(on_page, on_page.c.id == pm.project_id)
        .join(Matter, Matter.matter_code == pm.matter_code)
        .outerjoin(clock, clock.id == _latest_clock(PROMISED_KINDS))
        .where(*open_on_page(pm)).order_by(pm.id)).all()
    other = aliased(ProjectMatter)  # the history query's own matters are not these
    departments = select(other.department_code).join(on_page, on_page.c.id == other.project_id).where(
        *open_on_page(other)).distinct()
    history = department_history(session, cal, now=now, departments=departments) if open_pms else {}
    per_project: dict[int, list[dict]] = defaultdict(list)
    for row in open_pms:
        per_project[row.project_id].append(_matter_basis(cal, row, history.get(row.department_code), now))
    rows = []
    for project in projects:
        basis = per_project.get(project.id, [])
        expected = max((b["expected_at"] for b in basis), default=None)
        rows.append({"project_code": project.project_code, "name": project.name, "status": project.status,
                     "declared_at": project.declared_at, "expected_conclusion_at": expected,
                     "expected_conclusion_date": local_date(expected), "basis": basis})
    return rows, total


def _matter_basis(cal: WorkCalendar, row, history: dict | None, now: datetime) -> dict:
    """``row``: an open matter with the columns of its latest promised clock (NULL if none)."""
    has_clock = row.clock_id is not None
    if history and history["mean_days"] is not None:
        estimate, method = history["mean_days"], "department_history"
    elif has_clock:
        estimate, method = float(row.limit_days), "promised_limit"
    else:
        estimate, method = float(row.catalogue_days), "promised_limit"
    elapsed = 0.0
    if has_clock and row.state != "stopped":
        elapsed = working_days(cal, row.started_at, now, clock_pauses(row))
    remaining = max(0.0, estimate - elapsed)
    expected = cal.add_working_days(now, remaining).instant
    return {
        "matter_code": row.matter_code, "department": row.department_code, "status": row.status, "method": method,
        "clock": None if not has_clock else {"id": row.clock_id, "kind": row.kind, "state": row.state,
                                             "started_at": row.started_at, "due_at": row.due_at},
        "history_mean_days": history["mean_days"] if history else None,
        "history_samples": history["samples"] if history else 0,
        "estimate_days": round(estimate, 2), "elapsed_days": round(elapsed, 2), "remaining_days": round(remaining, 2),
        "expected_at": expected,
    }
