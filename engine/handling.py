"""办理用时: a concluded matter's handling time, stored on its row.

E-supervision judges a department by it (mean and 90th percentile in a period) and
forecasts open projects from each department's history of it: working time on the
official calendar from acceptance to conclusion, outside the promised clock's pauses
(补正, 中介服务, 特别程序 are not the department's time), in working days of 24 hours
(1个工作日 = 24小时倒计时). Computing that at read time for every matter of a province
(hundreds of thousands) took seconds, so it is computed once, when the matter ends
(``record``), and kept with the calendar revision it was computed on.

A concluded matter's clocks no longer change; only the calendar can change the figure.
A calendar load clears the figures spanning the year it loads (``forget``), and the
sweep computes them again a batch at a time (``refresh``), together with any figure of
a matter concluded around a load on the calendar as it stood before (a step that read
the old calendar and committed after the load). A reader meeting a figure not computed
yet computes it itself (``days_of``), so a figure never leaves a matter out.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.orm import Session

from engine.clock import SHANGHAI
from engine.models import Clock, ProjectMatter
from engine.workcal import WorkCalendar

#: The clocks a matter's handling is counted on (a filing has no acceptance: its own clock).
PROMISED_KINDS = ("promised", "filing")
#: A matter concluded this recently may have been computed on the calendar before a load.
RECENT = timedelta(days=1)
#: (project, matter) pairs read per statement: bound parameters stay few however many matters.
PAIRS_PER_READ = 400


@dataclass(frozen=True)
class Concluded:
    """What the figure needs of a matter (a row of any query, not necessarily the ORM object)."""

    id: int
    project_id: int
    matter_code: str
    accepted_at: datetime | None
    concluded_at: datetime | None
    handling_days: float | None = None


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


def promised_pauses(clocks_: Iterable[Clock]) -> list:
    """The pauses of every promised (or filing) clock of a matter: a clock restarted after
    a correction (a filing's) leaves the correction in the first one's."""
    return sorted((p for c in clocks_ if c.kind in PROMISED_KINDS for p in clock_pauses(c)), key=lambda p: p[0])


def compute(cal: WorkCalendar, accepted_at: datetime | None, concluded_at: datetime | None,
            clocks_: Iterable[Clock]) -> float | None:
    """The figure, or None for a matter that was never accepted or has not ended."""
    if accepted_at is None or concluded_at is None:
        return None
    return working_days(cal, accepted_at, concluded_at, promised_pauses(clocks_))


def promised_clocks(session: Session, pairs: Iterable[tuple[int, str]]) -> dict[tuple[int, str], list[Clock]]:
    """Each (project, matter)'s promised clocks, oldest first, a few hundred pairs a read."""
    wanted = sorted(set(pairs))
    found: dict[tuple[int, str], list[Clock]] = defaultdict(list)
    for i in range(0, len(wanted), PAIRS_PER_READ):
        for clock in session.scalars(select(Clock).where(
                tuple_(Clock.project_id, Clock.matter_code).in_(wanted[i:i + PAIRS_PER_READ]),
                Clock.kind.in_(PROMISED_KINDS)).order_by(Clock.id)):
            found[(clock.project_id, clock.matter_code)].append(clock)
    return found


def record(session: Session, pm: ProjectMatter, cal: WorkCalendar) -> None:
    """Store the figure of a matter that has just ended (its clocks stopped)."""
    own = session.scalars(select(Clock).where(Clock.project_id == pm.project_id, Clock.matter_code == pm.matter_code,
                                              Clock.kind.in_(PROMISED_KINDS)).order_by(Clock.id))
    pm.handling_days = compute(cal, pm.accepted_at, pm.concluded_at, own)
    pm.handling_revision = cal.revision if pm.handling_days is not None else None


def days_of(session: Session, cal: WorkCalendar, matters: Iterable[Concluded]) -> dict[int, float | None]:
    """Each matter's figure by id: the stored one, else computed now (not stored: a read
    writes nothing; the sweep stores it)."""
    matters = list(matters)
    figures = {m.id: m.handling_days for m in matters}
    missing = [m for m in matters if m.handling_days is None and m.accepted_at is not None and m.concluded_at is not None]
    if missing:
        clocks_ = promised_clocks(session, ((m.project_id, m.matter_code) for m in missing))
        for m in missing:
            figures[m.id] = compute(cal, m.accepted_at, m.concluded_at, clocks_[(m.project_id, m.matter_code)])
    return figures


#: What ``owed_at_read`` needs of the matters a read selects, first in its query.
READ_COLUMNS = (ProjectMatter.id, ProjectMatter.project_id, ProjectMatter.matter_code, ProjectMatter.accepted_at,
                ProjectMatter.concluded_at, ProjectMatter.department_code)


def owed_at_read(session: Session, cal: WorkCalendar, query, limit: int) -> tuple[list[tuple[Any, float]], int]:
    """For a read that meets figures a calendar load cleared: of the concluded matters
    ``query`` selects (``READ_COLUMNS`` first), the latest ``limit`` whose figure is not
    stored yet, each with its figure computed now, and how many more there are (left out
    of the read: the sweep stores them). A read stays bounded while the sweep catches up."""
    pm = ProjectMatter
    owed = query.where(pm.handling_days.is_(None), pm.accepted_at.is_not(None), pm.concluded_at.is_not(None))
    rows = session.execute(owed.order_by(pm.concluded_at.desc(), pm.id.desc()).limit(limit)).all()
    left_out = 0 if len(rows) < limit else session.scalar(select(func.count()).select_from(owed.subquery())) - limit
    figures = days_of(session, cal, (Concluded(*row[:5]) for row in rows))
    return [(row, figures[row.id]) for row in rows], left_out


def forget(session: Session, year: int) -> None:
    """A calendar load changed (or may have changed) the days of ``year``: the figures of
    the matters whose handling spans any of them are cleared for the sweep."""
    lo = datetime(year, 1, 1, tzinfo=SHANGHAI).astimezone(timezone.utc)
    hi = datetime(year + 1, 1, 1, tzinfo=SHANGHAI).astimezone(timezone.utc)
    session.execute(update(ProjectMatter).where(
        ProjectMatter.handling_days.is_not(None), ProjectMatter.accepted_at < hi, ProjectMatter.concluded_at >= lo,
    ).values(handling_days=None, handling_revision=None).execution_options(synchronize_session=False))


def refresh(session: Session, cal: WorkCalendar, *, now: datetime, limit: int) -> int:
    """Compute and store up to ``limit`` figures the sweep owes: those cleared or never
    computed, and those of matters concluded lately on another calendar revision. The
    rows are claimed (PostgreSQL: FOR NO KEY UPDATE SKIP LOCKED), so several sweepers
    share a year's backlog instead of computing the same batch."""
    columns = (ProjectMatter.id, ProjectMatter.project_id, ProjectMatter.matter_code, ProjectMatter.accepted_at,
               ProjectMatter.concluded_at)

    def claim(query, n: int):
        return session.execute(query.order_by(ProjectMatter.id).limit(n)
                               .with_for_update(skip_locked=True, key_share=True, of=ProjectMatter)).all()

    owed = claim(select(*columns).where(ProjectMatter.handling_days.is_(None), ProjectMatter.accepted_at.is_not(None),
                                        ProjectMatter.concluded_at.is_not(None)), limit)
    if len(owed) < limit:
        owed += claim(select(*columns).where(ProjectMatter.concluded_at >= now - RECENT, ProjectMatter.accepted_at.is_not(None),
                                             ProjectMatter.handling_revision != cal.revision), limit - len(owed))
    if not owed:
        return 0
    figures = days_of(session, cal, (Concluded(*row) for row in owed))
    session.execute(update(ProjectMatter), [{"id": pm_id, "handling_days": days, "handling_revision": cal.revision}
                                            for pm_id, days in figures.items()])
    return len(figures)
