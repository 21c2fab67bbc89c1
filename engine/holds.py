"""Holds: time that is not counted on a matter's or a project's clocks.

An intermediary service (中介服务), a tolerated gap (容缺), a suspended project (暂停): each
stops the count of the running clocks with its own reason, and only the end of that
same reason lets them count on. A clock already paused for another reason (a
correction request, a special procedure) is left to that pause. After the due
instants move, the instances' timers are re-armed so that a boundary timer reading
``clock_due`` fires at the moved instant.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import calendar, clocks, runtime
from engine.models import Clock, ProcessInstance, ProjectMatter


def _open_reason(clock: Clock) -> str | None:
    last = (clock.pauses or [])[-1:]
    return str(last[0].get("reason")) if last and last[0].get("end") is None else None


def _rearm(session: Session, instance_ids: set[int], now: datetime) -> None:
    for instance_id in sorted(instance_ids):
        row = session.get(ProcessInstance, instance_id)
        if row is not None and row.status == "running":
            runtime.rearm(session, row, now=now)


def _hold(session: Session, rows: list[Clock], reason: str, now: datetime) -> int:
    cal, touched = calendar.current(session), set()
    for clock in rows:
        if clock.state == "running":
            clocks.pause(clock, cal, now=now, reason=reason)
            touched.add(clock.instance_id)
    _rearm(session, {i for i in touched if i is not None}, now)
    return len(touched)


def _release(session: Session, rows: list[Clock], reason: str, now: datetime) -> int:
    cal, touched = calendar.current(session), set()
    for clock in rows:
        if clock.state == "paused" and _open_reason(clock) == reason:
            clocks.resume(clock, cal, now=now)
            touched.add(clock.instance_id)
    _rearm(session, {i for i in touched if i is not None}, now)
    return len(touched)


def _lock_instances(session: Session, where) -> None:
    """Instances before clocks: the lock order every writer keeps (see runtime._locked_task)."""
    session.execute(select(ProcessInstance.id).where(where).order_by(ProcessInstance.id).with_for_update())


def _matter_clocks(session: Session, pm: ProjectMatter) -> list[Clock]:
    if pm.instance_id is None:
        return []
    _lock_instances(session, ProcessInstance.id == pm.instance_id)
    return list(session.scalars(select(Clock).where(Clock.instance_id == pm.instance_id, Clock.state != "stopped")
                                .order_by(Clock.id).with_for_update()))


def _project_clocks(session: Session, project_id: int) -> list[Clock]:
    _lock_instances(session, ProcessInstance.project_id == project_id)
    return list(session.scalars(select(Clock).where(Clock.project_id == project_id, Clock.state != "stopped")
                                .order_by(Clock.id).with_for_update()))


def hold_matter(session: Session, pm: ProjectMatter, reason: str, *, now: datetime) -> int:
    """Stop counting the matter's running clocks for ``reason``; returns how many instances were touched."""
    return _hold(session, _matter_clocks(session, pm), reason, now)


def release_matter(session: Session, pm: ProjectMatter, reason: str, *, now: datetime) -> int:
    return _release(session, _matter_clocks(session, pm), reason, now)


def hold_project(session: Session, project_id: int, reason: str, *, now: datetime) -> int:
    """Every running clock of the project (dispatch, replies, every matter's), e.g. while suspended."""
    return _hold(session, _project_clocks(session, project_id), reason, now)


def release_project(session: Session, project_id: int, reason: str, *, now: datetime) -> int:
    return _release(session, _project_clocks(session, project_id), reason, now)


def held(session: Session, pm: ProjectMatter, reason: str) -> bool:
    """Whether any of the matter's clocks is paused for ``reason`` right now."""
    return reason in reasons(session, pm)


def reasons(session: Session, pm: ProjectMatter) -> set[str]:
    """The reasons the matter's clocks are paused for right now."""
    return {r for c in _matter_clocks(session, pm) if c.state == "paused" and (r := _open_reason(c)) is not None}
