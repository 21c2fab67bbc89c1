"""项目监管 records (第十四条(五)): inspections, rectification orders and penalties.

A department monitoring a project in its region records what it found (检查), orders
a fix (整改) or imposes a penalty (处罚), each under the project code and region so
the records follow the project. A rectification order's deadline is a clock of kind
``rectification`` — the sweep turns it yellow and red and records the alerts like any
other clock — running until the department closes the order. Records marked public
feed the disclosure lists; the project unit sees the public ones and every
rectification order on its own project (it is the one who must act on them).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import and_, func, not_, select
from sqlalchemy.orm import Session

from engine import audit, calendar, clocks, supervision
from engine.access import Actor
from engine.errors import Conflict, Forbidden, Invalid, NotFound
from engine.models import Clock, Project, ProjectUnit, SupervisionRecord

KINDS = ("inspection", "rectification", "penalty")
PENALTY_FIELDS = ("decision_number", "amount", "legal_basis")
MAX_RECTIFICATION_DAYS = 250


@dataclass(frozen=True)
class Deadline:
    """A rectification order's clock, as the record shows it."""

    started_at: datetime
    working_days: Decimal
    yellow_at: datetime | None
    due_at: datetime | None
    light: str
    state: str


@dataclass(frozen=True)
class RecordView:
    """A record with its deadline (when it is a rectification order)."""

    record: SupervisionRecord
    deadline: Deadline | None


def _require_officer(actor: Actor) -> None:
    if not actor.has("officer") or not actor.department_code:
        raise Forbidden("只有监管部门的经办人可以记录监管情况 (a department's officer only)")


def _check_details(kind: str, details: dict[str, Any], working_days: int | None) -> dict[str, Any]:
    """Penalty particulars are required for a penalty and belong to nothing else; the
    deadline in working days belongs to a rectification order only."""
    if kind == "rectification":
        if working_days is None:
            raise Invalid.field("rectification_working_days", "整改须设定期限（工作日） (a rectification needs its deadline)")
        if not 1 <= working_days <= MAX_RECTIFICATION_DAYS:
            raise Invalid.field("rectification_working_days", f"整改期限须为1到{MAX_RECTIFICATION_DAYS}个工作日 (1..{MAX_RECTIFICATION_DAYS})")
    elif working_days is not None:
        raise Invalid.field("rectification_working_days", "只有整改设定期限 (a deadline belongs to a rectification only)")
    given = [f for f in PENALTY_FIELDS if details.get(f) not in (None, "")]
    if kind != "penalty":
        if given:
            raise Invalid.field(f"details.{given[0]}", "处罚信息只用于处罚记录 (penalty particulars belong to a penalty)")
        return dict(details)
    problems = {f"details.{f}": ["处罚须填写此项 (required for a penalty)"] for f in PENALTY_FIELDS if f not in given}
    if problems:
        raise Invalid("处罚信息不完整 (penalty particulars missing)", problems)
    try:
        amount = Decimal(str(details["amount"]))
    except InvalidOperation:
        raise Invalid.field("details.amount", "罚款金额须为数字 (the amount must be a number)") from None
    if not amount.is_finite() or amount < 0:
        raise Invalid.field("details.amount", "罚款金额不得为负 (the amount must be >= 0)")
    return {**details, "amount": str(amount)}


#: What the project unit does not see: a withheld record, unless it is a rectification
#: order, which the unit must act on.
_WITHHELD_FROM_UNIT = and_(SupervisionRecord.public.is_(False), SupervisionRecord.kind != "rectification")


def record(session: Session, *, actor: Actor, project: Project, kind: str, title: str, content: str, public: bool | None,
           details: dict[str, Any], rectification_working_days: int | None, now: datetime) -> RecordView:
    """检查, 整改, 处罚 on a project the officer's department may see (its region and below).

    项目审批信息、监管信息、处罚结果等要及时通过在线平台向社会公开 (Hunan, Shenzhen, Inner
    Mongolia 第十八条; Jilin 第十七条): a record is public unless the officer withholds
    it (``public=false``, e.g. an inspection touching a business secret); a penalty is
    always public."""
    _require_officer(actor)
    if kind not in KINDS:
        raise Invalid.field("kind", f"须为 {', '.join(KINDS)} 之一 (unknown kind)")
    if kind == "penalty":
        if public is False:
            raise Invalid.field("public", "处罚结果须向社会公开 (a penalty is always disclosed)")
        public = True
    public = public is not False
    details = _check_details(kind, details, rectification_working_days)
    row = SupervisionRecord(
        project_id=project.id, project_code=project.project_code, region_code=project.region_code,
        department_code=actor.department_code, kind=kind, title=title, content=content, details=details,
        public=public, state="open" if kind == "rectification" else "closed", recorded_at=now,
        recorded_by=actor.username,
    )
    clock = None
    if kind == "rectification":
        clock = clocks.start(session, calendar.current(session), now=now, kind="rectification", project_id=project.id,
                             project_code=project.project_code, working_days=rectification_working_days,
                             department_code=actor.department_code)  # the unit's deadline: its own holds do not stop it
        session.flush()
        row.clock_id = clock.id
    session.add(row)
    session.flush()
    summary = {"kind": kind, "title": title, "public": public, "details": details}
    if clock is not None:
        summary["due_at"] = clock.due_at
    audit.record(session, at=now, actor=actor.username, action=f"supervision.{kind}", project_code=project.project_code,
                 target=f"supervision_record:{row.id}", summary=summary)
    return _view(row, clock)


def close(session: Session, *, actor: Actor, project: Project, record_id: int, content: str, now: datetime) -> RecordView:
    """整改完成: the ordering department closes the order; its clock stops (a light it
    reached stays recorded)."""
    _require_officer(actor)
    row = session.scalar(select(SupervisionRecord).where(SupervisionRecord.id == record_id,
                                                         SupervisionRecord.project_id == project.id).with_for_update())
    if row is None:
        raise NotFound("监管记录不存在 (no such supervision record)")
    if actor.department_code != row.department_code:
        raise Forbidden("只有下达整改的部门可以关闭整改 (the ordering department only)")
    if row.kind != "rectification":
        raise Conflict("只有整改可以关闭 (only a rectification order is closed)")
    if row.state != "open":
        raise Conflict("整改已关闭 (the rectification is already closed)")
    clock = session.scalar(select(Clock).where(Clock.id == row.clock_id).with_for_update()) if row.clock_id else None
    if clock is not None:
        clocks.stop(session, clock, now=now)
    row.state, row.closed_at = "closed", now
    row.details = {**row.details, "closure": {"content": content, "at": now.isoformat(), "by": actor.username}}
    audit.record(session, at=now, actor=actor.username, action="supervision.rectification_closed",
                 project_code=project.project_code, target=f"supervision_record:{row.id}",
                 summary={"content": content, "light": clock.light if clock else None})
    return _view(row, clock)


def list_records(session: Session, actor: Actor, project: Project, *, kind: str | None, page: int,
                 page_size: int) -> tuple[list[RecordView], int]:
    """Officials see every record of a project they may see; the project unit sees the
    public ones and the rectification orders it must act on."""
    where = [SupervisionRecord.project_id == project.id]
    if not actor.is_official:
        where.append(not_(_WITHHELD_FROM_UNIT))
    if kind:
        where.append(SupervisionRecord.kind == kind)
    total = session.scalar(select(func.count()).select_from(SupervisionRecord).where(*where))
    rows = session.scalars(select(SupervisionRecord).where(*where).order_by(SupervisionRecord.recorded_at, SupervisionRecord.id)
                           .offset((page - 1) * page_size).limit(page_size)).all()
    clock_ids = [r.clock_id for r in rows if r.clock_id is not None]
    by_id = {c.id: c for c in session.scalars(select(Clock).where(Clock.id.in_(clock_ids)))} if clock_ids else {}
    return [_view(r, by_id.get(r.clock_id)) for r in rows], total


@dataclass(frozen=True)
class Rectification(RecordView):
    """A rectification order as e-supervision lists it: with the project and the unit that must act."""

    project_name: str
    unit_name: str


#: Which orders the list shows: the open ones (default), the closed ones, or all.
RECTIFICATION_STATES = ("open", "closed", "all")


def rectifications(session: Session, actor: Actor, *, now: datetime, region: str | None = None,
                   department: str | None = None, state: str = "open", overdue: bool = False, page: int,
                   page_size: int) -> tuple[list[Rectification], int]:
    """整改 across projects, for e-supervision: the rectification orders in the reader's scope
    (supervisors and coordinators their region and those below it, a department its own
    orders, the operator all), soonest deadline first. ``overdue``: the open ones whose
    deadline has passed (the instant itself is still in time), the project units' overdue
    rectifications, whether or not the sweep has lit them red yet."""
    scope = supervision.scope_for(session, actor, region=region, department=department)
    where = [SupervisionRecord.kind == "rectification", scope.department_condition(SupervisionRecord.department_code)]
    if scope.regions is not None:
        where.append(SupervisionRecord.region_code.in_(scope.regions))
    if state != "all":
        where.append(SupervisionRecord.state == state)
    if overdue:
        where += [SupervisionRecord.state == "open", Clock.due_at < now]
    joined = (select(SupervisionRecord, Clock, Project.name, ProjectUnit.name)
              .join(Clock, Clock.id == SupervisionRecord.clock_id)
              .join(Project, Project.id == SupervisionRecord.project_id)
              .join(ProjectUnit, ProjectUnit.id == Project.project_unit_id)
              .where(*where))
    total = session.scalar(select(func.count()).select_from(joined.subquery()))
    rows = session.execute(joined.order_by(Clock.due_at, SupervisionRecord.id)
                           .offset((page - 1) * page_size).limit(page_size)).all()
    return [Rectification(**vars(_view(record, clock)), project_name=project_name, unit_name=unit_name)
            for record, clock, project_name, unit_name in rows], total


def withheld_targets(session: Session, actor: Actor, project: Project) -> list[str]:
    """The audit targets of the project's records this actor may not see (a project unit:
    the non-public ones, as ``list_records`` leaves them out), so that the project's
    history does not show them either."""
    if actor.is_official:
        return []
    ids = session.scalars(select(SupervisionRecord.id).where(SupervisionRecord.project_id == project.id, _WITHHELD_FROM_UNIT))
    return [f"supervision_record:{i}" for i in ids]


def _view(row: SupervisionRecord, clock: Clock | None) -> RecordView:
    deadline = None if clock is None else Deadline(
        started_at=clock.started_at, working_days=clock.limit_days, yellow_at=clock.yellow_at, due_at=clock.due_at,
        light=clock.light, state=clock.state)
    return RecordView(row, deadline)
