"""The clocks of e-supervision (督办计时, 效能计时): start, pause, resume, stop, lights.

All arithmetic is working time on the official calendar (``engine.workcal``). A
clock's ``yellow_at`` and ``due_at`` are recomputed from its start, limit and pauses
whenever a pause starts or ends or a calendar year is loaded, so the sweep only
compares instants. Lights: green; yellow once the configured fraction (80% by
default, per clock kind and per matter) of the limit has elapsed; red at 100%,
recorded permanently. Each change appends an alert carrying the instant the light
changed, which for a late sweep is still the instant it came due.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import bindparam, event, insert, inspect, select, update
from sqlalchemy.orm import Session

from engine import audit, platform_state
from engine import calendar as official_calendar
from engine.db import transaction_memo
from engine.errors import Invalid
from engine.models import Alert, Clock, Matter, ProjectMatter, Task
from engine.workcal import WorkCalendar

CLOCK_KINDS = ("dispatch", "reply", "filing", "pre_review", "acceptance", "promised", "rectification")
#: Clocks that time the project unit (整改期限, a rectification order's deadline), not a
#: department's handling: e-supervision does not count them against the department that
#: gave the order, and the unit's own holds (暂停) do not stop them.
UNIT_KINDS = ("rectification",)
DEFAULT_YELLOW = Decimal("0.8")
YELLOW_KEY = platform_state.YELLOW_FRACTIONS
#: The longest clock a diagram may start (ten years of working days): the arithmetic
#: walks day by day, so an absurd limit would hold a request or the sweep.
MAX_WORKING_DAYS = 2500
#: transaction memo key: clocks lit by a step, shown on their matters at commit
_LIT_BY_STEPS = "lit_by_steps"


def yellow_fraction(session: Session, kind: str, matter_code: str | None) -> Decimal:
    """The configured fraction: per matter and kind, else per kind, else 80%."""
    table = yellow_fractions(session)
    for key in (f"{kind}:{matter_code}" if matter_code else None, kind):
        if key and key in table:
            return Decimal(str(table[key]))
    return DEFAULT_YELLOW


def yellow_fractions(session: Session) -> dict[str, float]:
    """The configured table (read with the other settings, once per transaction)."""
    return json.loads(platform_state.value(session, YELLOW_KEY) or "{}")


def set_yellow_fractions(session: Session, table: dict[str, float], *, now: datetime, actor: str) -> dict[str, float]:
    """Keys are a clock kind (`promised`) or a kind and a matter (`promised:eia_approval`);
    values are the fraction of the limit after which the light turns yellow. New clocks
    take it; running clocks keep the fraction they started with."""
    for key, value in table.items():
        kind, _, matter = key.partition(":")
        if kind not in CLOCK_KINDS:
            raise Invalid.field(f"fractions.{key}", f"unknown clock kind {kind!r}")
        if matter and session.get(Matter, matter) is None:
            raise Invalid.field(f"fractions.{key}", f"事项目录中没有此事项 (no such matter in the catalogue): {matter}")
        if not 0 < float(value) < 1:
            raise Invalid.field(f"fractions.{key}", "the fraction must be between 0 and 1")
    platform_state.write(session, YELLOW_KEY, json.dumps(table, sort_keys=True))
    audit.record(session, at=now, actor=actor, action="clocks.yellow_fractions", target="platform", summary=table)
    return table


def _pauses(clock: Clock) -> list[tuple[datetime, datetime | None]]:
    return [
        (datetime.fromisoformat(p["start"]), datetime.fromisoformat(p["end"]) if p.get("end") else None)
        for p in clock.pauses or []
    ]


def paused_working_days(clock: Clock, calendar: WorkCalendar, reason: str, *, now: datetime) -> float:
    """The working days the clock has stood still for ``reason`` so far (an open pause up
    to ``now``): what a budget on that kind of pause (特别程序最多60个工作日) has used."""
    used = timedelta()
    for pause in clock.pauses or []:
        if pause.get("reason") == reason:
            start = datetime.fromisoformat(pause["start"])
            end = datetime.fromisoformat(pause["end"]) if pause.get("end") else now
            if end > start:
                used += calendar.working_time_between(start, end).amount
    return round(used / timedelta(days=1), 6)  # a timer ends a pause a microsecond after it came due


def recompute(clock: Clock, calendar: WorkCalendar) -> None:
    """Derive yellow and due instants and the sweep's next look from start, limit and pauses."""
    pauses = _pauses(clock)
    limit = float(clock.limit_days)
    due = calendar.add_working_days(clock.started_at, limit, pauses)
    yellow = calendar.add_working_days(clock.started_at, limit * float(clock.yellow_fraction), pauses)
    clock.due_at, clock.yellow_at = due.instant, yellow.instant
    clock.calendar_provisional = due.provisional or yellow.provisional
    clock.calendar_revision = calendar.revision
    if clock.state == "stopped":
        clock.next_check_at = None
    elif clock.light == "green":
        clock.next_check_at = clock.yellow_at
    elif clock.light == "yellow":
        clock.next_check_at = clock.due_at
    else:
        clock.next_check_at = None


def start(
    session: Session,
    calendar: WorkCalendar,
    *,
    now: datetime,
    kind: str,
    project_id: int,
    project_code: str,
    working_days: float,
    matter_code: str | None = None,
    department_code: str | None = None,
    instance_id: int | None = None,
    scope_id: str | None = None,
    started_at: datetime | None = None,
    pauses: list[dict[str, str | None]] | None = None,
) -> Clock:
    """A running clock, or a paused one when one of ``pauses`` (time not counted from
    the start: ``engine.holds``) is still open. Thresholds already passed are recorded."""
    if kind not in CLOCK_KINDS:
        raise Invalid.field("kind", f"unknown clock kind {kind!r}")
    if not 0 < float(working_days) <= MAX_WORKING_DAYS:
        raise Invalid.field("working_days", f"working days must be > 0 and at most {MAX_WORKING_DAYS}")
    clock = Clock(
        kind=kind, project_id=project_id, project_code=project_code, matter_code=matter_code,
        department_code=department_code, instance_id=instance_id, scope_id=scope_id, started_at=started_at or now,
        limit_days=Decimal(str(working_days)), yellow_fraction=yellow_fraction(session, kind, matter_code),
        pauses=list(pauses or []), state="paused" if any(p["end"] is None for p in pauses or []) else "running",
        light="green",
    )
    recompute(clock, calendar)
    session.add(clock)
    fire_due_lights(session, clock, now)
    return clock


def pause(clock: Clock, calendar: WorkCalendar, *, now: datetime, reason: str, until: datetime | None = None) -> None:
    """Stop the count from now (补正, 特别程序, 等待前置, 暂停 …); ``until`` bounds the pause.

    A clock a hold already holds (an intermediary, a suspension) is taken over by the
    new reason from now: the hold's pause ends here, so the hold ending later does not
    let the clock count while the new pause lasts; when it ends, a hold still open
    holds the clock again (``holds.hold_if_open``)."""
    if clock.state == "stopped":
        return
    if clock.state == "paused":
        pauses = list(clock.pauses or [])
        if not pauses or pauses[-1].get("end") is not None or pauses[-1].get("reason") == reason:
            return
        pauses[-1] = {**pauses[-1], "end": now.isoformat()}
        clock.pauses = [*pauses, {"start": now.isoformat(), "end": until.isoformat() if until else None, "reason": reason}]
        recompute(clock, calendar)
        return
    clock.pauses = [*(clock.pauses or []), {"start": now.isoformat(), "end": until.isoformat() if until else None, "reason": reason}]
    clock.state = "paused" if until is None else "running"
    recompute(clock, calendar)


def _holding(pauses: list[dict], now: datetime) -> int | None:
    """The latest pause still holding at ``now`` (open, or bounded beyond it), if any."""
    for i in range(len(pauses) - 1, -1, -1):
        end = pauses[i].get("end")
        if end is None or datetime.fromisoformat(end) > now:
            return i
    return None


def resume(clock: Clock, calendar: WorkCalendar, *, now: datetime) -> None:
    """End the open pause (or a bounded pause early) at ``now``."""
    pauses = list(clock.pauses or [])
    i = _holding(pauses, now)
    if i is None:
        return
    pauses[i] = {**pauses[i], "end": max(now, datetime.fromisoformat(pauses[i]["start"])).isoformat()}
    clock.pauses = pauses
    if clock.state == "paused":
        clock.state = "running"
    recompute(clock, calendar)


def stop(session: Session, clock: Clock, *, now: datetime) -> None:
    """Stop the clock. A threshold passed before the stop is recorded first, even if no
    sweep saw it yet; a red light recorded stays recorded. A clock stopped while it stands
    still (a decision given while an intermediary still works) has its pause end at the
    stop, so its due instant is the one its count reached: whether the work ended on time
    can be told."""
    if clock.state != "stopped" and _holding(clock.pauses or [], now) is not None:
        resume(clock, official_calendar.current(session), now=now)
    fire_due_lights(session, clock, now)
    clock.state, clock.stopped_at, clock.next_check_at = "stopped", now, None


def thresholds_passed(light: str, yellow_at: datetime | None, due_at: datetime | None,
                      now: datetime) -> tuple[list[tuple[str, datetime]], str, datetime | None]:
    """The lights a clock showing ``light`` turns to by ``now``, in time order, each with
    the instant its threshold passed; then its light and its next check."""
    passed = []
    if light == "green" and yellow_at is not None and yellow_at <= now:
        passed.append(("yellow", yellow_at))
        light = "yellow"
    if light in ("green", "yellow") and due_at is not None and due_at <= now:
        passed.append(("red", due_at))
        light = "red"
    return passed, light, {"green": yellow_at, "yellow": due_at}.get(light)


def fire_due_lights(session: Session, clock: Clock, now: datetime) -> list[Alert]:
    """Turn the light yellow and/or red for every threshold that has passed, in time order."""
    if clock.state == "stopped":
        return []
    passed, _, clock.next_check_at = thresholds_passed(clock.light, clock.yellow_at, clock.due_at, now)
    return [_light(session, clock, light, at) for light, at in passed]


def fire_due_lights_of_rows(session: Session, rows, now: datetime) -> int:
    """``fire_due_lights`` for a batch of clock rows the sweep claimed: the same
    thresholds, written with one UPDATE of many rows and one INSERT of the alerts instead
    of an update per clock (each clock's version moves on, as an ORM update's would).
    Returns how many alerts."""
    changes, alerts, lit = [], [], []
    for row in rows:
        if row.state == "stopped":
            continue
        passed, light, next_check_at = thresholds_passed(row.light, row.yellow_at, row.due_at, now)
        changes.append({"b_id": row.id, "b_light": light, "b_next": next_check_at})
        alerts.extend(_alert(row, passed_light, at) for passed_light, at in passed)
        if passed:
            lit.append(_Lit(row.instance_id, row.scope_id, row.matter_code, light))
    table = Clock.__table__
    if changes:
        session.execute(update(table).where(table.c.id == bindparam("b_id")).values(
            light=bindparam("b_light"), next_check_at=bindparam("b_next"), version=table.c.version + 1), changes)
    if alerts:
        session.execute(insert(Alert.__table__), alerts)
    show_lights(session, lit)
    return len(alerts)


@dataclass(frozen=True)
class _Lit:
    """What ``show_lights`` needs of a clock whose light changed."""

    instance_id: int | None
    scope_id: str | None
    matter_code: str | None
    light: str


def _light(session: Session, clock: Clock, light: str, at: datetime) -> Alert:
    if clock.id is None:
        session.flush()  # the alert names its clock (only clocks started in the past get here)
    clock.light = light
    alert = Alert(**_alert(clock, light, at))
    session.add(alert)
    return alert


def _alert(clock, light: str, at: datetime) -> dict:
    """An alert's columns, from a clock object or a clock row."""
    return {"clock_id": clock.id, "light": light, "clock_kind": clock.kind, "project_code": clock.project_code,
            "matter_code": clock.matter_code, "department_code": clock.department_code, "due_at": clock.due_at,
            "at": at, "calendar_provisional": clock.calendar_provisional}


def show_lights(session: Session, lit: list) -> None:
    """The lights of a batch of clocks reach the task lists and the matters' progress: a
    few set-based statements for the whole batch (a query, not a workflow). A task takes
    a light only if it is worse than the one it shows (two clocks of one scope)."""
    lit = [c for c in lit if c.instance_id is not None]
    if not lit:
        return
    by_scope: dict[tuple[int, str | None], str] = {}
    for clock in lit:
        key = (clock.instance_id, clock.scope_id)
        if key not in by_scope or _worse(clock.light, by_scope[key]):
            by_scope[key] = clock.light
    changes: dict[str, list[str]] = {}
    for task_id, instance_id, scope_id, light in session.execute(select(Task.id, Task.instance_id, Task.scope_id, Task.light).where(
            Task.instance_id.in_({c.instance_id for c in lit}), Task.status == "ready")):
        new = by_scope.get((instance_id, scope_id))
        if new is not None and _worse(new, light):  # a later threshold never makes a task look better
            changes.setdefault(new, []).append(task_id)
    for light, task_ids in changes.items():
        # The task's version stays: it guards what the officer answers (the task, its form,
        # who holds it), which a light does not change; an answer given in time must not be
        # refused because the sweep lit the task meanwhile. Task objects this session holds
        # take the light as loaded (never written again by their flush).
        session.execute(update(Task).where(Task.id.in_(task_ids)).values(light=light)
                        .execution_options(synchronize_session="evaluate"))
    show_on_matters(session, lit)


def show_on_matters(session: Session, lit: list) -> None:
    """Each matter shows the worst light any of its clocks reached (one conditional
    UPDATE per light: a matter already as bad or worse is left as it is)."""
    worst: dict[int, str] = {}
    for clock in lit:
        if clock.matter_code and clock.instance_id is not None and _worse(clock.light, worst.get(clock.instance_id, "green")):
            worst[clock.instance_id] = clock.light
    for light in set(worst.values()):
        better = [other for other in _ORDER if _ORDER[other] < _ORDER[light]]
        session.execute(update(ProjectMatter).where(
            ProjectMatter.instance_id.in_([i for i, l in worst.items() if l == light]), ProjectMatter.light.in_(better))
            .values(light=light).execution_options(synchronize_session="evaluate"))


def show_on_matter_at_commit(session: Session, clock: Clock) -> None:
    """A light a step recorded reaches its matter with the transaction's other writes,
    just before commit: a step reads and writes nothing else of its own accord, so a run
    of timer steps in one transaction flushes once, in batches, instead of at each light."""
    transaction_memo(session).setdefault(_LIT_BY_STEPS, []).append(clock)


@event.listens_for(Session, "before_commit", insert=True)  # before the audit chain takes its head: matter rows first
def _show_lit_by_steps(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint's release: the lights wait for the commit itself
    lit = transaction_memo(session).pop(_LIT_BY_STEPS, None)
    if lit:  # a clock started in a step that was rolled back is gone; a rolled-back light reads as it was
        show_on_matters(session, [c for c in lit if inspect(c).persistent or inspect(c).pending])


_ORDER = {"green": 0, "yellow": 1, "red": 2}


def _worse(a: str, b: str) -> bool:
    return _ORDER.get(a, 0) > _ORDER.get(b, 0)
