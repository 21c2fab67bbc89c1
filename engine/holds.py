"""Holds: time that is not counted on a matter's or a project's clocks.

An intermediary service (中介服务), a tolerated gap (容缺), a suspended project (暂停), a
wait for a prerequisite (等待前置): each is a ``Hold`` row from its start to its end, and
stops the count of the running clocks with its own reason. A clock already paused for
another reason (a correction request, a special procedure, another hold) is left to
that pause. When a hold ends, its clocks count on unless another hold still open
covers them, which then holds them from that instant. A clock a diagram starts while
a hold is open starts held (``pauses_for_new_clock``). After the due instants move, the
instances' timers are re-armed so that a boundary timer reading ``clock_due`` fires
at the moved instant.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import calendar, clocks, runtime
from engine.models import Clock, Hold, ProcessInstance, ProjectMatter


def _open_reason(clock: Clock) -> str | None:
    """Why the clock stands still now: its latest pause still open (not always the last one
    listed: a clock a late-dated step started may list a hold that ended after one still open)."""
    open_ = [p for p in clock.pauses or [] if p.get("end") is None]
    return str(open_[-1].get("reason")) if open_ else None


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
        elif _open_reason(clock) == runtime.PLATFORM_FAILURE:
            touched.add(clock.instance_id)  # stopped by its instance's failure; the hold takes it at the retry
    _rearm(session, {i for i in touched if i is not None}, now)
    return len(touched)


def _release(session: Session, rows: list[Clock], reason: str, now: datetime) -> int:
    touched = count_on(session, rows, (reason,), calendar.current(session), now)
    _rearm(session, {i for i in touched if i is not None}, now)
    return len(touched)


def count_on(session: Session, rows: list[Clock], reasons: tuple[str, ...], cal, now: datetime) -> set[int | None]:
    """The clocks held for one of ``reasons`` count on from now, unless another hold still
    open holds them; returns the instances whose clocks moved."""
    touched = set()
    for clock in rows:
        if clock.state == "paused" and _open_reason(clock) in reasons:
            clocks.resume(clock, cal, now=now)
            hold_if_open(session, clock, cal, now=now)
            touched.add(clock.instance_id)
    return touched


def _scope(matter_code: str | None):
    """The holds covering a clock of this matter: the project's own (a suspension) and,
    for a matter's clock, the matter's."""
    return Hold.matter_code.is_(None) if matter_code is None else (Hold.matter_code.is_(None) | (Hold.matter_code == matter_code))


def _open_holds(session: Session, project_id: int, matter_code: str | None) -> list[Hold]:
    """The open holds covering a clock of this project and matter, oldest first."""
    return list(session.scalars(select(Hold).where(Hold.project_id == project_id, Hold.ended_at.is_(None),
                                                   _scope(matter_code)).order_by(Hold.id)))


def _begin(session: Session, project_id: int, matter_code: str | None, reason: str, now: datetime) -> None:
    """Record the hold once: a reason already holding this scope is not opened twice."""
    if not any(h.reason == reason and h.matter_code == matter_code for h in _open_holds(session, project_id, matter_code)):
        session.add(Hold(project_id=project_id, matter_code=matter_code, reason=reason, started_at=now))
        session.flush()


def _end(session: Session, project_id: int, matter_code: str | None, reason: str, now: datetime) -> None:
    for hold in _open_holds(session, project_id, matter_code):
        if hold.reason == reason and hold.matter_code == matter_code:
            hold.ended_at = max(now, hold.started_at)  # a step dated before the hold began (a limit met late)
    session.flush()


def _matter_clocks(session: Session, pm: ProjectMatter, now: datetime) -> list[Clock]:
    """The matter's open clocks, under the matter's lock (``runtime.lock_matter``: once a
    transaction, in the lock order every writer keeps, the limits already passed met)."""
    runtime.lock_matter(session, pm, now=now)
    if pm.instance_id is None:
        return []
    return list(session.scalars(select(Clock).where(Clock.instance_id == pm.instance_id, Clock.state != "stopped")
                                .order_by(Clock.id).with_for_update()))


def _project_clocks(session: Session, project_id: int, now: datetime) -> list[Clock]:
    runtime.catch_up(session, runtime.lock_project_instances(session, project_id), now=now)
    return list(session.scalars(select(Clock).where(Clock.project_id == project_id, Clock.state != "stopped",
                                                    Clock.kind.not_in(clocks.UNIT_KINDS))
                                .order_by(Clock.id).with_for_update()))


def hold_matter(session: Session, pm: ProjectMatter, reason: str, *, now: datetime) -> int:
    """Stop counting the matter's clocks for ``reason`` (also those it starts later, until
    released); returns how many instances were touched now. The instance and its clocks
    are locked before the hold row is written: the lock order every writer keeps."""
    rows = _matter_clocks(session, pm, now)
    _begin(session, pm.project_id, pm.matter_code, reason, now)
    return _hold(session, rows, reason, now)


def release_matter(session: Session, pm: ProjectMatter, reason: str, *, now: datetime) -> int:
    rows = _matter_clocks(session, pm, now)
    _end(session, pm.project_id, pm.matter_code, reason, now)
    return _release(session, rows, reason, now)


def hold_project(session: Session, project_id: int, reason: str, *, now: datetime) -> int:
    """Every clock of the project (dispatch, replies, every matter's), e.g. while suspended."""
    rows = _project_clocks(session, project_id, now)
    _begin(session, project_id, None, reason, now)
    return _hold(session, rows, reason, now)


def release_project(session: Session, project_id: int, reason: str, *, now: datetime) -> int:
    rows = _project_clocks(session, project_id, now)
    _end(session, project_id, None, reason, now)
    return _release(session, rows, reason, now)


def pauses_for_new_clock(session: Session, *, project_id: int, matter_code: str | None, started_at: datetime,
                         now: datetime) -> list[dict[str, str | None]]:
    """The holds a clock starting now does not count, as its first pauses: one started
    under an open hold starts held (容缺预审环节不计 also for the acceptance clock the
    pre-check starts); one counted from an earlier instant (deemed acceptance: the
    promised limit from the pre-check) leaves out the holds between that instant and now."""
    covering = session.scalars(select(Hold).where(
        Hold.project_id == project_id, _scope(matter_code), Hold.started_at <= now,
        Hold.ended_at.is_(None) | (Hold.ended_at > started_at)).order_by(Hold.started_at, Hold.id))
    return [{"start": max(h.started_at, started_at).isoformat(), "end": h.ended_at.isoformat() if h.ended_at else None,
             "reason": h.reason} for h in covering]


#: Holds that last only until the matter is accepted (受理): 容缺预审环节不计 — a tolerated
#: gap stops the count before acceptance; from acceptance the promised limit counts,
#: the commitment still open (its lapse ends the matter).
TOLERATED_GAP = "tolerated_gap"
UNTIL_ACCEPTANCE = (TOLERATED_GAP,)


def end_at_acceptance(session: Session, project_id: int, matter_code: str, clocks_: list[Clock], calendar_, *,
                      now: datetime) -> bool:
    """受理: end the matter's holds that last only until it, and let the clocks they hold
    (``clocks_``, the accepting instance's, already locked) count on; the promised clock
    that starts next starts counting. Returns whether a clock moved (its timers need
    re-arming)."""
    for reason in UNTIL_ACCEPTANCE:
        _end(session, project_id, matter_code, reason, now)
    return bool(count_on(session, clocks_, UNTIL_ACCEPTANCE, calendar_, now))  # re-armed by the accepting step


def hold_if_open(session: Session, clock: Clock, calendar_, *, now: datetime) -> None:
    """A clock counts on after its own pause ended (a special procedure, a correction);
    a hold still open on it (an intermediary, a suspension) holds it from now, and so does
    its instance's failure until the retry."""
    still_open = _open_holds(session, clock.project_id, clock.matter_code)
    if still_open:
        clocks.pause(clock, calendar_, now=now, reason=still_open[0].reason)
    elif clock.instance_id is not None and session.get(ProcessInstance, clock.instance_id).status == "error":
        clocks.pause(clock, calendar_, now=now, reason=runtime.PLATFORM_FAILURE)  # it counts from the retry


def latest_start(session: Session, pm: ProjectMatter) -> datetime:
    """When the last of the holds open on the matter (its own and the project's) began: a
    hold ended at an earlier instant would count on through a later one's start."""
    return max(h.started_at for h in _open_holds(session, pm.project_id, pm.matter_code))


def reasons(session: Session, pm: ProjectMatter) -> set[str]:
    """The reasons the matter's own holds are open for right now."""
    return {h.reason for h in _open_holds(session, pm.project_id, pm.matter_code) if h.matter_code == pm.matter_code}


def end_all(session: Session, project_id: int, *, matter_code: str | None = None, now: datetime) -> None:
    """A matter's procedure (``matter_code``) or the whole project's ended: the holds on
    it end with it, so none stays open on work that is over."""
    query = select(Hold).where(Hold.project_id == project_id, Hold.ended_at.is_(None))
    if matter_code is not None:
        query = query.where(Hold.matter_code == matter_code)
    for hold in session.scalars(query):
        hold.ended_at = max(now, hold.started_at)  # a step dated before the hold began (a limit met late)
