"""The sweep: fire what has come due, in time order, exactly once.

Every server process runs it every few seconds (APScheduler). It reads only due rows
through indexed columns (``deliveries.delivered_at``, ``process_instances.next_timer_at``,
``clocks.next_check_at``), so its cost grows with what is due, not with what is open.
Due items are claimed and handled in short transactions (a master's deliveries, twenty
instances' timers, a batch of clock lights): on PostgreSQL with
``SELECT … FOR UPDATE SKIP LOCKED``, so several processes sweeping one database never
fire an item twice; SQLite runs one sweeper. A crash between firing and commit rolls
the item back, and the next sweep fires it once. A server that was down fires
everything that came due, each at the instant it came due.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Table, func, literal_column, select
from sqlalchemy.orm import Session

from engine import calendar, clocks, handling, materials, platform_state, runtime, waits
from engine.db import is_postgresql, retrying
from engine.errors import Conflict
from engine.health import record_sweep
from engine.models import Clock, Delivery, ProcessInstance, Project
from engine.platform import Platform

log = logging.getLogger(__name__)
BATCH = 200
#: handling times stored a sweep: each is a little arithmetic and its clocks (read 400
#: matters a statement), and a calendar load can clear a province's year of them
HANDLING_BATCH = 1000
#: due instances whose timers fire in one transaction
TIMER_CHUNK = 20


@dataclass
class SweepReport:
    at: str
    fired: dict[str, int] = field(default_factory=dict)

    def count(self, what: str, n: int = 1) -> None:
        if n:
            self.fired[what] = self.fired.get(what, 0) + n


def _claim(session: Session, entity, *conditions, order_by=None):
    """Lock the claimed rows; rows another sweeper holds are skipped, not waited for.
    A mapped class gives its objects; a table gives plain rows."""
    query = select(entity).where(*conditions)
    if order_by is not None:
        query = query.order_by(order_by)
    if is_postgresql(session):  # NO KEY UPDATE: rows referring to the claimed one can still be inserted
        query = query.with_for_update(skip_locked=True, key_share=True, of=entity)
    result = session.execute(query)
    return result.all() if isinstance(entity, Table) else result.scalars().all()


def _due_ids(platform: Platform, query) -> list[int]:
    with platform.session_factory() as session:
        return list(session.scalars(query.limit(BATCH)))


def sweep(platform: Platform) -> SweepReport:
    now = platform.clock.now()
    report = SweepReport(at=now.isoformat())
    _recompute_stale_clocks(platform, now, report)
    _fire_timers(platform, now, report)  # before deliveries: each limit is met at its own instant
    _deliver(platform, now, report)
    _end_prerequisite_waits(platform, now, report)
    _end_lapsed_commitments(platform, now, report)
    _deliver(platform, now, report)
    _change_lights(platform, now, report)
    _refresh_handling(platform, now, report)
    retrying(platform.session_factory, lambda session: record_sweep(session, now), what="recording the sweep")
    return report


def _deliver(platform: Platform, now: datetime, report: SweepReport) -> None:
    """Tell master processes about concluded matters: per master, every pending delivery
    in one transaction (one restore and one save of the master's state)."""
    with platform.session_factory() as session:
        targets = list(session.scalars(
            select(Delivery.target_instance_id).where(Delivery.delivered_at.is_(None), Delivery.target_instance_id.not_in(
                select(ProcessInstance.id).where(ProcessInstance.status == "error")))  # they wait for a retry
            .group_by(Delivery.target_instance_id).order_by(func.min(Delivery.id)).limit(BATCH)))
    for target_id in targets:
        def deliver(session: Session, target_id=target_id) -> int:
            if not _claim(session, ProcessInstance, ProcessInstance.id == target_id):
                return 0  # another sweeper is working this master: it delivers
            runtime.lock_for_steps(session, target_id)
            pending = _claim(session, Delivery, Delivery.target_instance_id == target_id,
                             Delivery.delivered_at.is_(None), order_by=Delivery.id)
            return runtime.deliver(session, session.get(ProcessInstance, target_id), pending, now=now) if pending else 0

        try:
            report.count("deliveries", retrying(platform.session_factory, deliver, what=f"delivering to instance {target_id}"))
        except Exception:  # noqa: BLE001 - one failing master must not stop the sweep
            log.exception("deliveries to instance %s failed; retried on the next sweep", target_id)


def _fire_timers(platform: Platform, now: datetime, report: SweepReport) -> None:
    """Due instances a few at a time, each few in one transaction (one claim, one lock of
    their clocks, one commit) with no savepoint per step. A chunk in which anything
    fails is rolled back and done again one instance at a time, each step in its
    savepoint (a failing diagram marks its instance errored), so one instance that
    keeps failing never holds back the others."""
    ids = _due_ids(platform, select(ProcessInstance.id).where(
        ProcessInstance.next_timer_at <= now, ProcessInstance.status == "running").order_by(ProcessInstance.next_timer_at))
    for start in range(0, len(ids), TIMER_CHUNK):
        chunk = ids[start:start + TIMER_CHUNK]
        try:
            _fire_chunk(platform, chunk, now, report)
        except Exception:  # noqa: BLE001 - retried one by one below
            for instance_id in chunk:
                try:
                    _fire_chunk(platform, [instance_id], now, report)
                except Exception:  # noqa: BLE001 - one failing instance must not stop the sweep
                    log.exception("firing timers of instance %s failed; retried on the next sweep", instance_id)


def _fire_chunk(platform: Platform, ids: list[int], now: datetime, report: SweepReport) -> None:
    def fire(session: Session) -> int:
        claimed = _claim(session, ProcessInstance, ProcessInstance.id.in_(ids), ProcessInstance.next_timer_at <= now,
                         order_by=ProcessInstance.id)
        if claimed:
            runtime.lock_for_steps(session, *(row.id for row in claimed))
        return sum(runtime.fire_timers(session, row, until=now, isolated=len(ids) == 1)
                   for row in sorted(claimed, key=lambda r: (r.next_timer_at, r.id)))

    report.count("timers", retrying(platform.session_factory, fire, what=f"firing the timers of instances {ids}"))


def _end_lapsed_commitments(platform: Platform, now: datetime, report: SweepReport) -> None:
    """容缺: each commitment past its deadline in a transaction of its own (``materials.lapse``
    ends its matter, or its gap), so one that fails is retried on the next sweep and
    holds back neither the others nor the rest of this sweep."""
    with platform.session_factory() as session:
        due = materials.due_commitments(session, now=now, limit=BATCH)
    for commitment_id in due:
        try:
            lapsed = retrying(platform.session_factory, lambda session, c=commitment_id: materials.lapse(session, c, now=now),
                              what=f"lapsing commitment {commitment_id}")
            if lapsed is not None:
                report.count("commitments_lapsed")
        except Exception:  # noqa: BLE001 - retried on the next sweep
            log.exception("lapsing commitment %s failed; retried on the next sweep", commitment_id)


def _end_prerequisite_waits(platform: Platform, now: datetime, report: SweepReport) -> None:
    """等待前置 ends when the prerequisite matter has concluded, counted from its conclusion."""
    with platform.session_factory() as session:
        due = waits.waits_to_end(session)
    for project_id, matter_code, concluded_at in due:
        def end(session: Session, project_id=project_id, matter_code=matter_code, concluded_at=concluded_at) -> int:
            try:
                waits.end_wait(session, actor="platform", project=session.get(Project, project_id), matter_code=matter_code,
                               now=now, ended_at=concluded_at)
            except Conflict:
                return 0  # found ended under the matter's lock: another sweeper or the officer was first
            return 1

        try:
            report.count("waits_ended", retrying(platform.session_factory, end,
                                                 what=f"ending the prerequisite wait of {matter_code}"))
        except Exception:  # noqa: BLE001 - retried on the next sweep
            log.exception("ending the prerequisite wait of %s failed", matter_code)


def _change_lights(platform: Platform, now: datetime, report: SweepReport) -> None:
    """Yellow and red for clocks whose next threshold has passed, at the instant it passed."""
    while True:
        ids = _due_ids(platform, select(Clock.id).where(Clock.next_check_at <= now).order_by(Clock.next_check_at))
        if not ids:
            return
        def light(session: Session, ids=ids) -> int:
            table = Clock.__table__  # rows, not objects: written set-wise (clocks.fire_due_lights_of_rows)
            rows = _claim(session, table, table.c.id.in_(ids), table.c.next_check_at <= now, order_by=table.c.next_check_at)
            return clocks.fire_due_lights_of_rows(session, rows, now)

        try:
            report.count("alerts", retrying(platform.session_factory, light, what="changing lights"))
        except Exception:  # noqa: BLE001 - rolled back whole; the next sweep does it
            log.exception("changing lights failed; retried on the next sweep")
            return
        if len(ids) < BATCH:
            return


def _refresh_handling(platform: Platform, now: datetime, report: SweepReport) -> None:
    """Store the handling time of matters a calendar load cleared (or concluded on the
    calendar it replaced), a batch a sweep: e-supervision reads them stored. Writing the
    same figure twice is harmless, so several sweepers need no claim. The calendar is
    kept as read until commit: a load committing meanwhile would clear the figures before
    these, computed on the calendar it replaces, are stored; it waits, then clears them."""
    def refresh(session: Session) -> int:
        platform_state.keep(session, calendar.REVISION_KEY)
        return handling.refresh(session, calendar.current(session), now=now, limit=HANDLING_BATCH)

    try:
        report.count("handling_refreshed", retrying(platform.session_factory, refresh, what="storing handling times"))
    except Exception:  # noqa: BLE001 - retried on the next sweep
        log.exception("storing handling times failed; retried on the next sweep")


def calendar_loaded(session: Session, now: datetime) -> int:
    """Recompute every open clock after a year was loaded, and re-arm the timers that use
    them (in the loading transaction: the year and its consequences land together).

    The instances with open clocks are locked first, in one statement in id order (the
    lock order every writer keeps), then their clocks. A clock this cannot see, because
    a step in flight (a declaration, a matter being launched) computes it on the calendar
    this load replaces and commits later, keeps the revision it was computed on: the
    next sweep computes it again (``_recompute_stale_clocks``)."""
    cal = calendar.current(session)
    open_clocks = Clock.state != "stopped"
    locked = list(session.scalars(runtime.instance_lock(select(ProcessInstance.id).where(
        ProcessInstance.id.in_(select(Clock.instance_id).where(open_clocks))).order_by(ProcessInstance.id))))
    with session.no_autoflush:
        rows = list(session.scalars(select(Clock).where(open_clocks, Clock.instance_id.in_(locked) | Clock.instance_id.is_(None))
                                    .order_by(Clock.instance_id, Clock.id).with_for_update()))
    return _recompute(session, cal, rows, now)


def _recompute(session: Session, cal, rows: list[Clock], now: datetime) -> int:
    """Compute the clocks again on the calendar and re-arm the timers of their running
    instances (already locked, as the clocks): a diagram's timer at ``clock_due`` moves
    with its clock. Returns how many instances the clocks belong to."""
    with session.no_autoflush:
        for clock in rows:
            clocks.recompute(clock, cal)
    instance_ids = {clock.instance_id for clock in rows if clock.instance_id}
    for row in session.scalars(select(ProcessInstance).where(
            ProcessInstance.id.in_(instance_ids), ProcessInstance.status == "running")):
        runtime.rearm(session, row, now=now)
    return len(instance_ids)


def _stale(revision: str):
    """Open clocks computed on another revision of the calendar than ``revision``: two
    range scans of ``ix_clocks_open_revision``, so finding none costs next to nothing."""
    return ((Clock.state != literal_column("'stopped'"))  # a literal, as in the index's predicate: a generic plan uses it
            & ((Clock.calendar_revision < revision) | (Clock.calendar_revision > revision)))


def _recompute_stale_clocks(platform: Platform, now: datetime, report: SweepReport) -> None:
    """A step in flight while a year was loaded computed its clocks on the calendar the
    load replaced, and committed them after the load recomputed every clock it could
    see (a declaration's first clock, say). Such clocks are computed again here, each
    instance's in a transaction of its own, under the instance's lock."""
    with platform.session_factory() as session:
        revision = calendar.current(session).revision
        owners = list(session.scalars(select(Clock.instance_id).where(_stale(revision))
                                      .group_by(Clock.instance_id).limit(BATCH)))
    for instance_id in owners:
        def recompute(session: Session, instance_id=instance_id) -> int:
            cal = calendar.current(session)
            if instance_id is None:  # the platform's own clocks (rectification): each row by itself
                rows = _claim(session, Clock, _stale(cal.revision), Clock.instance_id.is_(None), order_by=Clock.id)
            elif _claim(session, ProcessInstance, ProcessInstance.id == instance_id):
                runtime.lock_for_steps(session, instance_id)  # all its clocks and tasks: the re-arm writes tasks
                rows = list(session.scalars(select(Clock).where(_stale(cal.revision), Clock.instance_id == instance_id)))
            else:
                return 0  # another sweeper (or a step) has it: the next sweep looks again
            _recompute(session, cal, rows, now)
            return len(rows)

        try:
            report.count("clocks_recomputed", retrying(platform.session_factory, recompute,
                                                       what=f"recomputing the clocks of instance {instance_id}"))
        except Exception:  # noqa: BLE001 - retried on the next sweep
            log.exception("recomputing the clocks of instance %s on the current calendar failed", instance_id)
