"""Working-time arithmetic for statutory time limits (办理时限).

The approval regulations set limits in working days (工作日), and the platform's
clock rules spell out what one working day is: "1个工作日之内（24小时倒计时）",
"3个工作日之内（72小时倒计时）". So N working days is N x 24 hours of time that
falls on working days, not "N business days ending at close of office": a clock
started at 16:00 on a Friday before an ordinary weekend is due at 16:00 on Monday,
and a clock started on a holiday or weekend counts from 00:00 of the next working
day. Statutory suspensions (补正, 特别程序 and the like) stop the clock; they are
passed in as paused intervals.

Which days are working days is decided by the State Council's annual holiday
schedule (国务院办公厅关于节假日安排的通知): weekends are off, public holidays are
off, and 调休 make-up days on a weekend are worked. That schedule is published
one year at a time, so the calendar is data (``WorkCalendar``) built from explicit
per-day facts for the years that are loaded. A year without a loaded schedule does
not stop the platform: its days follow the weekday rule (Monday to Friday
worked), less the statutory holidays whose dates are known in advance (元旦, 清明,
劳动节, 国庆节), and every result that depends on such a day is marked ``provisional``, so
it can be recomputed once the operator loads that year (``parse_year_file`` and
``WorkCalendar.with_year``).

Conventions:

* Calendar days are Asia/Shanghai days. Input instants must be timezone-aware
  datetimes in any zone (a naive datetime is ambiguous and raises ValueError);
  every instant returned is in UTC.
* Nothing here reads the wall clock: every instant is passed in.
* Arithmetic is exact to the microsecond (``datetime``/``timedelta``).
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache

from engine.clock import SHANGHAI

_ONE_DAY = timedelta(days=1)
_ZERO = timedelta(0)

#: The years a date given to the platform may fall in (an official schedule, a client's
#: date or instant): project codes carry years 2015–2099, and beyond these bounds date
#: arithmetic (a day after, a time-zone shift) leaves what Python and the databases hold.
FIRST_YEAR, LAST_YEAR = 2000, 2099

#: A paused interval (start, end); end None means still paused.
Pause = tuple[datetime, datetime | None]


@dataclass(frozen=True)
class DayFact:
    """One day of an official schedule: whether it is worked, and why (``note``).

    Typical notes are the holiday name ("国庆节") or "调休上班" for a make-up day.
    """

    day: date
    workday: bool
    note: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.day, datetime) or not isinstance(self.day, date):
            raise TypeError(f"DayFact.day must be a date, got {self.day!r}")


@dataclass(frozen=True)
class WorkResult:
    """The instant at which a working-time amount is used up.

    ``instant`` is in UTC. It is None only when an open-ended pause (a suspension
    that is still running) stops the clock before the amount is used up: the due
    instant is then unknown until the suspension ends.
    ``provisional`` is True when the result depends on a day of a year whose
    schedule is not loaded (that day was assumed to follow the weekday rule).
    """

    instant: datetime | None
    provisional: bool


@dataclass(frozen=True)
class WorkDuration:
    """Working time counted between two instants; ``provisional`` as in WorkResult."""

    amount: timedelta
    provisional: bool


@lru_cache(maxsize=4096)
def _day_start_utc(day: date) -> datetime:
    """00:00 Asia/Shanghai of ``day`` as a UTC instant."""
    return datetime(day.year, day.month, day.day, tzinfo=SHANGHAI).astimezone(timezone.utc)


def _weekday_rule(day: date) -> bool:
    return day.weekday() < 5


#: 全国年节及纪念日放假办法 (2024年修订) 第二条: the holidays whose days are fixed in the
#: solar calendar, off in every year: 元旦 1月1日, 劳动节 5月1日、2日, 国庆节 10月1日至3日.
FIXED_HOLIDAYS = frozenset({(1, 1), (5, 1), (5, 2), (10, 1), (10, 2), (10, 3)})


@lru_cache(maxsize=256)
def _qingming(year: int) -> date:
    """清明节 (清明当日), the day of the solar term, computable for any year."""
    import chinese_calendar

    ((day, _),) = chinese_calendar.get_solar_terms(date(year, 4, 1), date(year, 4, 10))
    return day


def _unloaded_year_rule(day: date) -> bool:
    """A day of a year whose schedule is not loaded: the weekday rule, less the statutory
    holidays known in advance (the fixed ones and 清明). The lunar holidays (春节, 端午,
    中秋) and the 调休 around all of them come only with the year's schedule, so results
    on such a year stay provisional."""
    return _weekday_rule(day) and (day.month, day.day) not in FIXED_HOLIDAYS and day != _qingming(day.year)


def _utc(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} is a naive datetime: an instant needs a UTC offset")
    return value.astimezone(timezone.utc)


def _normalize_pauses(paused: Sequence[Pause], start: datetime) -> list[Pause]:
    """Pauses in UTC, clipped to begin no earlier than ``start``, sorted and merged.

    The result is disjoint and ordered; an open-ended pause (end None) can only be
    the last one, since it absorbs every pause that begins after it.
    """
    clipped: list[Pause] = []
    for index, pause in enumerate(paused):
        try:
            raw_start, raw_end = pause
        except (TypeError, ValueError):
            raise ValueError(f"paused[{index}] must be a (start, end) pair, got {pause!r}") from None
        p_start = _utc(raw_start, f"paused[{index}] start")
        p_end = None if raw_end is None else _utc(raw_end, f"paused[{index}] end")
        if p_end is not None:
            if p_end < p_start:
                raise ValueError(f"paused[{index}] ends before it starts")
            if p_end <= start:
                continue
        clipped.append((max(p_start, start), p_end))
    clipped.sort(key=lambda p: p[0])
    merged: list[Pause] = []
    for p_start, p_end in clipped:
        if p_start == p_end:
            continue
        if merged:
            last_start, last_end = merged[-1]
            if last_end is None:
                break
            if p_start <= last_end:
                merged[-1] = (last_start, None if p_end is None else max(last_end, p_end))
                continue
        merged.append((p_start, p_end))
    return merged


class WorkCalendar:
    """Which Asia/Shanghai days are working days, as data.

    ``facts`` are explicit statements about single days; ``loaded_years`` are the
    years whose official schedule is fully known. Within a loaded year, a day
    without a fact follows the weekday rule; so a loaded year needs facts only for
    the days that differ from it (holidays on weekdays, 调休 workdays on weekends).
    A year that is not loaded follows the weekday rule less the statutory holidays
    known in advance, and results that depend on it are marked provisional. Instances
    are immutable.
    """

    #: names the stored schedule the calendar was built from (``engine.calendar``); a clock
    #: keeps it, so a clock computed on a schedule since replaced can be found
    __slots__ = ("_facts", "_loaded", "revision", "_worked_before")

    def __init__(self, facts: Iterable[DayFact] = (), loaded_years: Iterable[int] = (), revision: str | None = None):
        loaded = frozenset(loaded_years)
        by_day: dict[date, DayFact] = {}
        for fact in facts:
            if fact.day.year not in loaded:
                raise ValueError(
                    f"fact for {fact.day.isoformat()} but {fact.day.year} is not a loaded year"
                )
            known = by_day.get(fact.day)
            if known is not None and known.workday != fact.workday:
                raise ValueError(f"conflicting facts for {fact.day.isoformat()}")
            by_day[fact.day] = fact
        self._facts = by_day
        self._loaded = loaded
        self.revision = revision
        #: year → the number of working days before each of its days (a cache of is_workday)
        self._worked_before: dict[int, list[int]] = {}

    @classmethod
    def from_chinese_calendar(cls, years: Iterable[int]) -> WorkCalendar:
        """A calendar from the ``chinese_calendar`` package's copy of the official schedules.

        Only days that differ from the weekday rule become facts, noted with the
        holiday's Chinese name (调休 workdays get "<name>调休上班"). Years the package
        has no data for (it raises NotImplementedError) are skipped, i.e. not loaded.
        """
        import chinese_calendar

        facts: list[DayFact] = []
        loaded: list[int] = []
        for year in sorted(set(years)):
            try:
                chinese_calendar.is_workday(date(year, 1, 1))
            except NotImplementedError:
                continue
            loaded.append(year)
            day = date(year, 1, 1)
            while day.year == year:
                workday = chinese_calendar.is_workday(day)
                if workday != _weekday_rule(day):
                    _, name = chinese_calendar.get_holiday_detail(day)
                    label = chinese_calendar.Holiday(name).chinese if name else ""
                    facts.append(DayFact(day, workday, f"{label}调休上班" if workday else label))
                day += _ONE_DAY
        return cls(facts, loaded)

    def with_year(self, year: int, facts: Iterable[DayFact]) -> WorkCalendar:
        """A new calendar with ``year`` loaded from ``facts``, replacing any earlier facts for it.

        The facts fully define the year: days not listed follow the weekday rule.
        """
        new_facts = list(facts)
        for fact in new_facts:
            if fact.day.year != year:
                raise ValueError(f"fact for {fact.day.isoformat()} is outside {year}")
        kept = (fact for fact in self._facts.values() if fact.day.year != year)
        return WorkCalendar([*kept, *new_facts], self._loaded | {year})

    @property
    def loaded_years(self) -> frozenset[int]:
        return self._loaded

    def is_loaded(self, year: int) -> bool:
        return year in self._loaded

    def is_workday(self, d: date) -> bool:
        """Whether ``d`` is worked; a day of an unloaded year by the weekday rule less the
        statutory holidays known in advance (``_unloaded_year_rule``)."""
        fact = self._facts.get(d)
        if fact is not None:
            return fact.workday
        return _weekday_rule(d) if d.year in self._loaded else _unloaded_year_rule(d)

    def fact(self, d: date) -> DayFact | None:
        """The explicit fact for ``d`` (e.g. to show why a day is off), if there is one."""
        return self._facts.get(d)

    def add_working_time(
        self, start: datetime, amount: timedelta, paused: Sequence[Pause] = ()
    ) -> WorkResult:
        """The earliest instant T >= start such that the working time in [start, T) is ``amount``.

        Working time is time on working days outside the paused intervals. Pauses
        may overlap, extend before ``start`` and be open-ended (end None: still
        paused). Because T is the earliest such instant, a positive amount always
        ends on counted time (a 24h clock ending with Friday is due at Saturday
        00:00, not Monday 00:00), and a zero amount returns ``start`` itself.
        """
        start_utc = _utc(start, "start")
        if not isinstance(amount, timedelta):
            raise TypeError(f"amount must be a timedelta, got {amount!r}")
        if amount < _ZERO:
            raise ValueError("amount must not be negative")
        pauses = _normalize_pauses(paused, start_utc)
        if amount == _ZERO:
            return WorkResult(start_utc, False)
        remaining = amount
        provisional = False
        for seg_start, seg_end, counts, guessed in self._segments(start_utc, None, pauses):
            provisional = provisional or guessed
            if counts:
                length = seg_end - seg_start
                if remaining <= length:
                    return WorkResult(seg_start + remaining, provisional)
                remaining -= length
        return WorkResult(None, provisional)

    def add_working_days(
        self, start: datetime, days: float, paused: Sequence[Pause] = ()
    ) -> WorkResult:
        """``add_working_time`` with ``days`` x 24 hours (1个工作日 = 24小时倒计时)."""
        if isinstance(days, bool) or not isinstance(days, (int, float)):
            raise TypeError(f"days must be a number, got {days!r}")
        if not days >= 0 or days == float("inf"):
            raise ValueError(f"days must be a finite non-negative number, got {days!r}")
        return self.add_working_time(start, timedelta(days=days), paused)

    def working_time_between(
        self, start: datetime, end: datetime, paused: Sequence[Pause] = ()
    ) -> WorkDuration:
        """The working time in [start, end), outside the paused intervals.

        ``end`` must not be before ``start``. For every start S and amount A whose
        result T is not None: working_time_between(S, T) == A. The converse,
        add_working_time(S, working_time_between(S, E)) == E, holds only when E is
        S or the time just before E is counted; otherwise it returns the end of the
        last counted stretch before E (or S if nothing was counted).
        """
        start_utc = _utc(start, "start")
        end_utc = _utc(end, "end")
        if end_utc < start_utc:
            raise ValueError("end is before start")
        pauses = _normalize_pauses(paused, start_utc)
        if not pauses:
            return self._unpaused_time_between(start_utc, end_utc)
        total = _ZERO
        provisional = False
        for seg_start, seg_end, counts, guessed in self._segments(start_utc, end_utc, pauses):
            provisional = provisional or guessed
            if counts:
                total += seg_end - seg_start
        return WorkDuration(total, provisional)

    def _unpaused_time_between(self, start: datetime, end: datetime) -> WorkDuration:
        """``working_time_between`` with no pause, without walking the days between: the
        first and last days' parts plus the whole working days in between, counted from
        each year's running totals. E-supervision measures thousands of spans of weeks
        (a project's declaration to its conclusion notice) in one read."""
        if end == start:
            return WorkDuration(_ZERO, False)
        first = start.astimezone(SHANGHAI).date()
        last = end.astimezone(SHANGHAI).date()
        if end == _day_start_utc(last):  # ends at a midnight: that day is not spanned
            last -= _ONE_DAY
        provisional = any(year not in self._loaded for year in range(first.year, last.year + 1))
        if last == first:
            return WorkDuration(end - start if self.is_workday(first) else _ZERO, provisional)
        head = _day_start_utc(first + _ONE_DAY) - start if self.is_workday(first) else _ZERO
        tail = end - _day_start_utc(last) if self.is_workday(last) else _ZERO
        return WorkDuration(head + tail + self._workdays_between(first + _ONE_DAY, last) * _ONE_DAY, provisional)

    def _workdays_between(self, lo: date, hi: date) -> int:
        """Working days in [lo, hi)."""
        total = 0
        for year in range(lo.year, hi.year + 1):
            counts = self._year_before(year)
            total += (counts[hi.timetuple().tm_yday - 1] if year == hi.year else counts[-1]) - \
                (counts[lo.timetuple().tm_yday - 1] if year == lo.year else 0)
        return total

    def _year_before(self, year: int) -> list[int]:
        """For each day of ``year`` (and the day after its last), the working days before it in the year."""
        counts = self._worked_before.get(year)
        if counts is None:
            counts, day = [0], date(year, 1, 1)
            while day.year == year:
                counts.append(counts[-1] + self.is_workday(day))
                day += _ONE_DAY
            self._worked_before[year] = counts
        return counts

    def _segments(
        self, start: datetime, end: datetime | None, pauses: list[Pause]
    ) -> Iterator[tuple[datetime, datetime, bool, bool]]:
        """Unpaused stretches of time from ``start`` (to ``end`` if given), in order.

        Each is (from, to, counts, guessed), lying within one Shanghai day: counts
        says the day is a working day, guessed that its year is not loaded. Stops at
        an open-ended pause. Days wholly inside a pause are jumped over, so the cost
        is proportional to the unpaused days spanned plus the number of pauses.
        """
        index = 0
        cursor = start
        day = start.astimezone(SHANGHAI).date()
        while end is None or cursor < end:
            day_end = _day_start_utc(day + _ONE_DAY)
            limit = day_end if end is None or end > day_end else end
            guessed = day.year not in self._loaded
            counts = self.is_workday(day)
            while cursor < limit:
                while index < len(pauses) and pauses[index][1] is not None and pauses[index][1] <= cursor:
                    index += 1
                if index < len(pauses) and pauses[index][0] <= cursor:
                    pause_end = pauses[index][1]
                    if pause_end is None:
                        return
                    cursor = pause_end
                    continue
                next_pause = pauses[index][0] if index < len(pauses) else limit
                seg_end = min(limit, next_pause)
                yield cursor, seg_end, counts, guessed
                cursor = seg_end
            day = cursor.astimezone(SHANGHAI).date()


_DATE = r"\d{4}-\d{2}-\d{2}"
_YEAR_LINE = re.compile(r"year\s+(\d{4})", re.ASCII)
_DAY_LINE = re.compile(rf"({_DATE})(?:\.\.({_DATE}))?\s+(\S+)(?:\s+(.*))?", re.ASCII)
_KINDS = {"holiday": False, "workday": True}


def parse_year_file(text: str) -> tuple[int, list[DayFact]]:
    """Read one year's official schedule in the operator-editable format.

    The State Council publishes each year's schedule late in the preceding year;
    the operator types it into a file like::

        # 2027 国务院办公厅节假日安排
        year 2027
        2027-01-01 holiday 元旦
        2027-02-06..2027-02-12 holiday 春节
        2027-02-14 workday 调休上班

    ``#`` starts a comment (to the end of the line); blank lines are ignored. The
    ``year`` line comes once, before any day line. A day line is a date or an
    inclusive range ``A..B``, a kind (``holiday`` or ``workday``) and an optional
    note. Days not listed follow the weekday rule. Errors raise ValueError naming
    the line number: days outside the year, unknown kinds, malformed dates,
    reversed ranges, a day listed twice.
    """
    year: int | None = None
    facts: list[DayFact] = []
    seen: set[date] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        year_match = _YEAR_LINE.fullmatch(line)
        if year_match:
            if year is not None:
                raise ValueError(f"line {number}: second 'year' line")
            if facts:
                raise ValueError(f"line {number}: 'year' must come before the day lines")
            year = int(year_match.group(1))
            if not FIRST_YEAR <= year <= LAST_YEAR:
                raise ValueError(f"line {number}: year {year} is outside {FIRST_YEAR}–{LAST_YEAR}")
            continue
        day_match = _DAY_LINE.fullmatch(line)
        if not day_match:
            raise ValueError(f"line {number}: expected 'YYYY-MM-DD[..YYYY-MM-DD] KIND [note]': {raw!r}")
        if year is None:
            raise ValueError(f"line {number}: day line before the 'year' line")
        first_text, last_text, kind, note = day_match.groups()
        if kind not in _KINDS:
            raise ValueError(f"line {number}: unknown kind {kind!r} (expected holiday or workday)")
        if note and any(unicodedata.category(ch)[0] == "C" and ch != "\t" for ch in note):
            raise ValueError(f"line {number}: the note holds control or invisible characters")
        try:
            first = date.fromisoformat(first_text)
            last = date.fromisoformat(last_text) if last_text else first
        except ValueError as exc:
            raise ValueError(f"line {number}: invalid date: {exc}") from None
        if last < first:
            raise ValueError(f"line {number}: range ends before it starts")
        if first.year != year or last.year != year:
            raise ValueError(f"line {number}: day outside year {year}")
        day = first
        while day <= last:
            if day in seen:
                raise ValueError(f"line {number}: {day.isoformat()} is already listed")
            seen.add(day)
            facts.append(DayFact(day, _KINDS[kind], note or ""))
            day += _ONE_DAY
    if year is None:
        raise ValueError("no 'year' line")
    return year, facts
