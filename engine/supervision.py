"""电子监察 (e-supervision): the summary figures and the forecast (监测预测, 第四条).

Everything here is a read over rows other modules write: project matters (received,
accepted, concluded instants), clocks (due instants, pauses, lights), alerts (yellow
and red records) and conclusion notices. Nothing is stored, so a figure can always be
recomputed and checked by hand.

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
  department's time), in working days of 24 hours (1个工作日 = 24小时倒计时). The 90th
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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from engine import calendar
from engine.projects import OPEN_MATTER_STATUSES
from engine.access import Actor, region_subtree, require_role
from engine.clocks import UNIT_KINDS
from engine.clock import SHANGHAI
from engine.errors import Forbidden, Invalid
from engine.models import Alert, Clock, Department, Matter, Notice, Project, ProjectMatter, Region
from engine.workcal import WorkCalendar

#: Who may read e-supervision figures at all.
READER_ROLES = ("supervisor", "coordinator", "operator", "dept_admin", "officer", "window_officer")
#: Roles that see every department of their region (the others see their own department).
REGION_ROLES = ("supervisor", "coordinator")
PROMISED_KINDS = ("promised", "filing")
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


# --- working-time helpers -----------------------------------------------------------

def clock_pauses(clock: Clock | None) -> list[tuple[datetime, datetime | None]]:
    return [
        (datetime.fromisoformat(p["start"]), datetime.fromisoformat(p["end"]) if p.get("end") else None)
        for p in (clock.pauses if clock is not None else None) or []
    ]


def working_days(cal: WorkCalendar, start: datetime, end: datetime, pauses=()) -> float:
    """Working time between two instants in working days of 24 hours."""
    if end <= start:
        return 0.0
    return cal.working_time_between(start, end, pauses).amount / timedelta(hours=24)


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


def reply_outcome(clock: Clock) -> str | None:
    """``automatic`` or ``late`` for a red reply clock that has stopped; None otherwise."""
    if clock.kind != "reply" or clock.light != "red" or clock.stopped_at is None or clock.due_at is None:
        return None
    return "automatic" if clock.stopped_at - clock.due_at <= AUTO_REPLY_TOLERANCE else "late"


#: The clocks that count a matter, in the order they start: the latest one counting when
#: the matter ended is the limit its conclusion is judged against.
MATTER_KINDS = ("pre_review", "acceptance", *PROMISED_KINDS)


def matter_clocks(session: Session, project_ids: Iterable[int],
                  kinds: tuple[str, ...] = PROMISED_KINDS) -> dict[tuple[int, str], list[Clock]]:
    """Each (project, matter)'s clocks of ``kinds``, oldest first, in one read."""
    ids = sorted(set(project_ids))
    found: dict[tuple[int, str], list[Clock]] = defaultdict(list)
    if ids:
        for clock in session.scalars(select(Clock).where(Clock.project_id.in_(ids), Clock.kind.in_(kinds))
                                     .order_by(Clock.id)):
            found[(clock.project_id, clock.matter_code)].append(clock)
    return found


def promised_pauses(clocks_: list[Clock]) -> list:
    """The pauses of every promised (or filing) clock of a matter: a clock restarted after
    a correction (a filing's) leaves the correction in the first one's."""
    return sorted((p for c in clocks_ if c.kind in PROMISED_KINDS for p in clock_pauses(c)), key=lambda p: p[0])


def handling_days(cal: WorkCalendar, pm: ProjectMatter, pauses: list) -> float | None:
    if pm.accepted_at is None or pm.concluded_at is None:
        return None
    return working_days(cal, pm.accepted_at, pm.concluded_at, pauses)


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


def summary(session: Session, actor: Actor, *, now: datetime, start: date | None = None, end: date | None = None,
            region: str | None = None, department: str | None = None) -> dict:
    """The period's figures per department and per matter (those with anything in the period)
    and per project concluded in it."""
    scope = scope_for(session, actor, region=region, department=department)
    period = period_of(now, start, end)
    cal = calendar.current(session)
    by_dept: dict[str, dict] = defaultdict(_figures)
    by_matter: dict[str, dict] = defaultdict(_figures)

    def both(dept: str | None, matter: str | None):
        rows = [by_dept[dept]] if dept else []
        return rows + ([by_matter[matter]] if matter else [])

    pms = session.scalars(select(ProjectMatter).join(Project, Project.id == ProjectMatter.project_id).where(
        scope.project_condition(), scope.department_condition(ProjectMatter.department_code),
        or_(period.between(ProjectMatter.received_at), period.between(ProjectMatter.accepted_at),
            period.between(ProjectMatter.concluded_at)))).all()
    counting = matter_clocks(session, (pm.project_id for pm in pms), MATTER_KINDS)
    corrected = _corrected(session, pms)
    for pm in pms:
        rows = both(pm.department_code, pm.matter_code)
        own = counting[(pm.project_id, pm.matter_code)]
        limit = own[-1] if own else None
        concluded = period.contains(pm.concluded_at) and pm.status != "terminated"
        for row in rows:
            row["received"] += period.contains(pm.received_at)
            if period.contains(pm.accepted_at):
                row["accepted"] += 1
                row["corrections"] += (pm.project_id, pm.matter_code) in corrected
            if concluded:
                row["concluded"] += 1
                row["concluded_on_time"] += bool(limit and limit.due_at and pm.concluded_at <= limit.due_at)
        if concluded and (days := handling_days(cal, pm, promised_pauses(own))) is not None:
            for row in rows:
                row["_days"].append(days)

    for alert in session.scalars(select(Alert).join(Project, Project.project_code == Alert.project_code).where(
            scope.project_condition(), scope.department_condition(Alert.department_code), period.between(Alert.at),
            Alert.clock_kind.not_in(UNIT_KINDS))):
        for row in both(alert.department_code, alert.matter_code):
            row[f"{alert.light}_records"] += 1

    for clock in session.scalars(select(Clock).join(Project, Project.id == Clock.project_id).where(
            scope.project_condition(), scope.department_condition(Clock.department_code),
            Clock.state != "stopped", Clock.due_at <= now, Clock.kind.not_in(UNIT_KINDS))):
        for row in both(clock.department_code, clock.matter_code):
            row["overdue_now"] += 1

    replies: dict[str, dict[str, int]] = defaultdict(lambda: {"automatic_replies": 0, "late_replies": 0})
    for clock in session.scalars(select(Clock).join(Project, Project.id == Clock.project_id).where(
            scope.project_condition(), scope.department_condition(Clock.department_code),
            Clock.kind == "reply", Clock.light == "red", period.between(Clock.due_at))):
        outcome = reply_outcome(clock)
        if outcome:
            replies[clock.department_code][f"{outcome}_replies"] += 1
            by_dept.setdefault(clock.department_code, _figures())  # listed even with nothing else in the period

    names = dict(session.execute(select(Department.code, Department.name).where(Department.code.in_(list(by_dept)))).all())
    matters = {m.matter_code: m for m in session.scalars(select(Matter).where(Matter.matter_code.in_(list(by_matter))))}
    departments = [
        {"department": code, "name": names.get(code, code), **_finish(by_dept[code]),
         **replies[code]}
        for code in sorted(by_dept)
    ]
    matter_rows = [
        {"matter_code": code, "name": matters[code].name if code in matters else code,
         "department": matters[code].department_code if code in matters else None, **_finish(by_matter[code])}
        for code in sorted(by_matter)
    ]
    return {"period": {"from": period.start, "to": period.end}, "departments": departments, "matters": matter_rows,
            "projects": concluded_projects(session, scope, period, cal)}


def _corrected(session: Session, pms: list[ProjectMatter]) -> set[tuple[int, str]]:
    """(project, matter) pairs whose acceptance clock was paused for a correction request."""
    ids = sorted({pm.project_id for pm in pms})
    if not ids:
        return set()
    return {
        (clock.project_id, clock.matter_code)
        for clock in session.scalars(select(Clock).where(Clock.project_id.in_(ids), Clock.kind == "acceptance"))
        if any(p.get("reason") == "correction" for p in clock.pauses or [])
    }


def concluded_projects(session: Session, scope: Scope, period: Period, cal: WorkCalendar) -> list[dict]:
    """Projects whose conclusion notice was issued in the period, with the working days
    from declaration to that notice."""
    query = select(Project, Notice).join(Notice, Notice.project_id == Project.id).where(
        scope.project_condition(), Notice.kind == "conclusion", period.between(Notice.issued_at))
    if scope.department is not None:
        query = query.where(Project.id.in_(select(ProjectMatter.project_id).where(
            ProjectMatter.department_code == scope.department)))
    rows = []
    for project, notice in session.execute(query.order_by(Notice.issued_at, Project.id)).all():
        rows.append({
            "project_code": project.project_code, "name": project.name, "regime": project.regime,
            "region_code": project.region_code, "declared_at": project.declared_at, "concluded_at": notice.issued_at,
            "notice_number": notice.number,
            "working_days": round(working_days(cal, project.declared_at, notice.issued_at), 2),
        })
    return rows


# --- the forecast (监测预测) --------------------------------------------------------

def department_history(session: Session, cal: WorkCalendar, *, now: datetime) -> dict[str, dict]:
    """Each department's mean handling days over every matter it has concluded so far."""
    pms = session.scalars(select(ProjectMatter).where(
        ProjectMatter.accepted_at.is_not(None), ProjectMatter.concluded_at.is_not(None),
        ProjectMatter.concluded_at <= now)).all()
    promised = matter_clocks(session, (pm.project_id for pm in pms))
    samples: dict[str, list[float]] = defaultdict(list)
    for pm in pms:
        samples[pm.department_code].append(handling_days(cal, pm, promised_pauses(promised[(pm.project_id, pm.matter_code)])))
    return {dept: {"mean_days": mean(values), "samples": len(values)} for dept, values in samples.items()}


def forecast(session: Session, actor: Actor, *, now: datetime, region: str | None = None,
             department: str | None = None, page: int = 1, page_size: int = 20) -> tuple[list[dict], int]:
    """Each open project's expected conclusion: the latest expected conclusion of its open matters.

    A matter is expected to take its department's historical mean handling days (or,
    with no history, the promised limit) counted from the start of its promised clock;
    what has already elapsed on that clock (outside its pauses) is deducted and the rest
    is counted on from now, so a paused clock is assumed to resume now. A matter not yet
    accepted is counted from now. The basis of every estimate is returned with it.
    """
    scope = scope_for(session, actor, region=region, department=department)
    conditions = [scope.project_condition(), Project.status.in_(OPEN_PROJECT_STATUSES)]
    if scope.department is not None:
        conditions.append(Project.id.in_(select(ProjectMatter.project_id).where(
            ProjectMatter.department_code == scope.department)))
    total = session.scalar(select(func.count()).select_from(Project).where(*conditions))
    projects = session.scalars(select(Project).where(*conditions).order_by(Project.declared_at, Project.id)
                               .offset((page - 1) * page_size).limit(page_size)).all()
    cal = calendar.current(session)
    history = department_history(session, cal, now=now)
    open_pms = session.scalars(select(ProjectMatter).where(
        ProjectMatter.project_id.in_([p.id for p in projects]), ProjectMatter.status.in_(OPEN_MATTER_STATUSES),
        scope.department_condition(ProjectMatter.department_code)).order_by(ProjectMatter.id)).all()
    promised = {key: own[-1] for key, own in matter_clocks(session, (pm.project_id for pm in open_pms)).items()}
    per_project: dict[int, list[dict]] = defaultdict(list)
    for pm in open_pms:
        per_project[pm.project_id].append(_matter_basis(cal, pm, promised.get((pm.project_id, pm.matter_code)),
                                                        history.get(pm.department_code), now))
    rows = []
    for project in projects:
        basis = per_project.get(project.id, [])
        expected = max((b["expected_at"] for b in basis), default=None)
        rows.append({"project_code": project.project_code, "name": project.name, "status": project.status,
                     "declared_at": project.declared_at, "expected_conclusion_at": expected,
                     "expected_conclusion_date": local_date(expected), "basis": basis})
    return rows, total


def _matter_basis(cal: WorkCalendar, pm: ProjectMatter, clock: Clock | None, history: dict | None, now: datetime) -> dict:
    if history and history["mean_days"] is not None:
        estimate, method = history["mean_days"], "department_history"
    elif clock is not None:
        estimate, method = float(clock.limit_days), "promised_limit"
    else:
        estimate, method = float(pm.matter.promised_working_days), "promised_limit"
    elapsed = 0.0
    if clock is not None and clock.state != "stopped":
        elapsed = working_days(cal, clock.started_at, now, clock_pauses(clock))
    remaining = max(0.0, estimate - elapsed)
    expected = cal.add_working_days(now, remaining).instant
    return {
        "matter_code": pm.matter_code, "department": pm.department_code, "status": pm.status, "method": method,
        "clock": None if clock is None else {"id": clock.id, "kind": clock.kind, "state": clock.state,
                                             "started_at": clock.started_at, "due_at": clock.due_at},
        "history_mean_days": history["mean_days"] if history else None,
        "history_samples": history["samples"] if history else 0,
        "estimate_days": round(estimate, 2), "elapsed_days": round(elapsed, 2), "remaining_days": round(remaining, 2),
        "expected_at": expected,
    }
