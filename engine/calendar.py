"""The official calendar as data: seeded from chinese-calendar, years loaded by operators.

chinese-calendar knows 2004–2026; the State Council publishes each next year's
schedule around November–December, so an operator loads it (CLI or API) from a
simple file. The working-time arithmetic itself lives in ``engine.workcal``; this
module only persists the facts and hands out a ``WorkCalendar`` built from them.

Each process caches the calendar it built together with the revision it was built
from; loading a year bumps the revision in the database, so every server process
rebuilds on its next use (no state held in a process beyond a cache).
"""
from __future__ import annotations

import threading
import uuid
from datetime import date, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from engine import audit, handling, platform_state
from engine.errors import Invalid
from engine.models import CalendarDay, CalendarYear
from engine.workcal import DayFact, WorkCalendar, parse_year_file

REVISION_KEY = platform_state.CALENDAR_REVISION
_cache_lock = threading.Lock()
_cache: tuple[str, WorkCalendar] | None = None


def _bump_revision(session: Session, now: datetime) -> None:
    """A revision no other load can take: a process caches the calendar under it, and a
    load rolled back (or never committed) must not lend its calendar to the next load at
    the same instant."""
    platform_state.write(session, REVISION_KEY, f"{now:%Y%m%dT%H%M%S}#{uuid.uuid4().hex[:12]}")


def _store_year(session: Session, year: int, facts: list[DayFact], source: str, now: datetime) -> None:
    session.execute(delete(CalendarDay).where(CalendarDay.day >= date(year, 1, 1), CalendarDay.day <= date(year, 12, 31)))
    row = session.get(CalendarYear, year)
    if row is None:
        session.add(CalendarYear(year=year, source=source, loaded_at=now))
    else:
        row.source, row.loaded_at = source, now
    for fact in facts:
        # Only days that differ from the weekday rule are stored.
        if fact.workday != (fact.day.weekday() < 5):
            session.add(CalendarDay(day=fact.day, workday=fact.workday, note=fact.note[:64]))


def seed_from_library(session: Session, now: datetime) -> list[int]:
    """Store every year chinese-calendar knows that the table lacks (idempotent)."""
    present = set(session.scalars(select(CalendarYear.year)))
    library = WorkCalendar.from_chinese_calendar(range(2004, 2100))
    added = []
    for year in sorted(library.loaded_years - present):
        handling.forget(session, year)
        facts = [f for d in _days(year) if (f := library.fact(d)) is not None]
        _store_year(session, year, facts, "chinese-calendar", now)
        added.append(year)
    if added:
        session.flush()
        _bump_revision(session, now)
    return added


def load_year_text(session: Session, text: str, *, now: datetime, actor: str, source: str = "operator") -> int:
    """Load (or correct) one year's schedule from the operator's file."""
    try:
        year, facts = parse_year_file(text)
    except ValueError as exc:
        raise Invalid.field("file", str(exc)) from None
    if not facts:  # a published schedule lists its holidays: an empty one is a file cut short
        raise Invalid.field("file", f"{year}年的安排没有列出任何日期 (the schedule for {year} lists no day: "
                                    f"every year has its holidays, e.g. '{year}-01-01 holiday 元旦')")
    _store_year(session, year, facts, source, now)
    session.flush()
    _bump_revision(session, now)
    handling.forget(session, year)
    audit.record(session, at=now, actor=actor, action="calendar.load_year", target=f"calendar:{year}",
                 summary={"year": year, "days": len(facts), "source": source})
    return year


def years(session: Session) -> list[CalendarYear]:
    """The loaded years and where each schedule came from."""
    return list(session.scalars(select(CalendarYear).order_by(CalendarYear.year)))


def current(session: Session) -> WorkCalendar:
    """The calendar as the database says now (rebuilt only when its revision changed)."""
    global _cache
    revision = platform_state.value(session, REVISION_KEY) or ""
    with _cache_lock:
        if _cache is not None and _cache[0] == revision:
            return _cache[1]
    years = list(session.scalars(select(CalendarYear.year)))
    facts = [DayFact(r.day, r.workday, r.note) for r in session.scalars(select(CalendarDay))]
    calendar = WorkCalendar(facts, loaded_years=years, revision=revision)
    with _cache_lock:
        _cache = (revision, calendar)
    return calendar


def _days(year: int):
    d = date(year, 1, 1)
    while d.year == year:
        yield d
        d = date.fromordinal(d.toordinal() + 1)
