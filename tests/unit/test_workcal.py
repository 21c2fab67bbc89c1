"""Working-time arithmetic: the regulation's worked examples, then properties checked
against a brute-force per-minute reference that shares no code with engine.workcal."""
from __future__ import annotations

import bisect
import itertools
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.workcal import (
    DayFact,
    WorkCalendar,
    WorkDuration,
    WorkResult,
    parse_year_file,
)

SH = ZoneInfo("Asia/Shanghai")
UTC = timezone.utc
CAL = WorkCalendar.from_chinese_calendar(range(2025, 2027))

YEAR_2027 = """\
# 2027 国务院办公厅节假日安排 (illustrative: the real schedule is published late in 2026)
year 2027
2027-01-01 holiday 元旦
2027-02-06..2027-02-12 holiday 春节   # seven days
2027-02-14 workday 调休上班
"""


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


def due(result: WorkResult) -> datetime:
    assert result.instant is not None
    assert result.instant.tzinfo is UTC
    return result.instant.astimezone(SH)


# --- the calendar as data ---------------------------------------------------------


def test_chinese_calendar_2026_national_day_and_its_make_up_days():
    assert [d for d in range(1, 11) if not CAL.is_workday(date(2026, 10, d))] == [1, 2, 3, 4, 5, 6, 7]
    assert CAL.is_workday(date(2026, 9, 20))  # Sunday, 调休上班
    assert CAL.is_workday(date(2026, 10, 10))  # Saturday, 调休上班
    assert not CAL.is_workday(date(2026, 9, 19))  # ordinary Saturday
    assert CAL.fact(date(2026, 10, 1)) == DayFact(date(2026, 10, 1), False, "国庆节")
    assert CAL.fact(date(2026, 10, 10)).note.endswith("调休上班")
    assert CAL.fact(date(2026, 10, 3)) is None  # a Saturday off anyway: no fact needed
    assert CAL.fact(date(2026, 10, 8)) is None  # an ordinary Thursday


def test_from_chinese_calendar_skips_years_the_library_lacks():
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(date(2027, 1, 4))
    cal = WorkCalendar.from_chinese_calendar([2026, 2027])
    assert cal.loaded_years == frozenset({2026})
    assert not cal.is_loaded(2027)
    assert cal.is_workday(date(2027, 1, 4))  # weekday rule: a Monday
    assert not cal.is_workday(date(2027, 1, 2))
    assert not cal.is_workday(date(2027, 1, 1))  # a Friday, but 元旦 is off every year


def test_calendar_rejects_inconsistent_facts():
    with pytest.raises(ValueError, match="not a loaded year"):
        WorkCalendar([DayFact(date(2027, 1, 1), False)], loaded_years=[2026])
    with pytest.raises(ValueError, match="conflicting"):
        WorkCalendar([DayFact(date(2026, 1, 1), False), DayFact(date(2026, 1, 1), True)], [2026])
    with pytest.raises(ValueError, match="outside 2027"):
        CAL.with_year(2027, [DayFact(date(2026, 12, 31), False)])
    with pytest.raises(TypeError):
        DayFact(datetime(2026, 1, 1), False)


def test_with_year_replaces_that_year_wholly():
    bare = CAL.with_year(2026, [])
    assert bare.is_loaded(2026)
    assert bare.is_workday(date(2026, 10, 1))  # no facts left: a Thursday is worked
    assert not bare.is_workday(date(2026, 10, 10))
    assert not CAL.is_workday(date(2026, 10, 1))  # the original is unchanged
    assert bare.is_workday(date(2025, 10, 1)) is CAL.is_workday(date(2025, 10, 1)) is False


# --- the regulation's examples ------------------------------------------------------


def test_friday_1600_plus_one_working_day_is_monday_1600():
    # 2026-03-13 is a Friday before an ordinary weekend.
    result = CAL.add_working_days(sh(2026, 3, 13, 16), 1)
    assert due(result) == sh(2026, 3, 16, 16)
    assert not result.provisional


def test_any_input_zone_same_instant_utc_out():
    start = sh(2026, 3, 13, 16)
    for zone in (UTC, ZoneInfo("America/New_York"), timezone(timedelta(hours=-3, minutes=-30))):
        assert CAL.add_working_days(start.astimezone(zone), 1) == CAL.add_working_days(start, 1)


def test_started_on_a_holiday_counts_from_0000_of_next_working_day():
    result = CAL.add_working_days(sh(2026, 10, 1, 9, 30), 1)
    assert due(result) == sh(2026, 10, 9)  # 24h of 2026-10-08, the first working day
    assert due(CAL.add_working_days(sh(2026, 3, 14, 11), 3)) == sh(2026, 3, 19)  # started Saturday


def test_crossing_national_day_2026_into_a_make_up_saturday():
    # Wed 09-30 10:00-24:00 (14h), 10-01..07 off, 10-08 and 10-09 (48h), Sat 10-10 调休 (10h).
    assert due(CAL.add_working_days(sh(2026, 9, 30, 10), 3)) == sh(2026, 10, 10, 10)


def test_make_up_sunday_is_counted():
    # Fri 09-18 16:00-24:00 (8h), Sat 09-19 off, Sun 09-20 调休上班 (16h).
    assert due(CAL.add_working_days(sh(2026, 9, 18, 16), 1)) == sh(2026, 9, 20, 16)


def test_amount_ending_with_a_working_day_is_due_at_its_end():
    assert due(CAL.add_working_days(sh(2026, 3, 13), 1)) == sh(2026, 3, 14)
    assert due(CAL.add_working_days(sh(2026, 3, 14, 10), 0)) == sh(2026, 3, 14, 10)


def test_fractional_days():
    assert due(CAL.add_working_days(sh(2026, 3, 13, 16), 0.5)) == sh(2026, 3, 16, 4)


def test_working_time_between_examples():
    span = CAL.working_time_between(sh(2026, 9, 30, 10), sh(2026, 10, 10, 10))
    assert span == WorkDuration(timedelta(hours=72), False)
    assert CAL.working_time_between(sh(2026, 10, 1), sh(2026, 10, 8)).amount == timedelta(0)
    with pytest.raises(ValueError, match="before start"):
        CAL.working_time_between(sh(2026, 3, 2), sh(2026, 3, 1))


# --- pauses -----------------------------------------------------------------------------


def test_pause_is_not_counted():
    paused = [(sh(2026, 3, 16, 12), sh(2026, 3, 16, 14))]
    assert due(CAL.add_working_days(sh(2026, 3, 16, 9), 1, paused)) == sh(2026, 3, 17, 11)


def test_overlapping_pauses_and_pauses_before_start():
    paused = [
        (sh(2026, 3, 16, 12), sh(2026, 3, 16, 14)),
        (sh(2026, 3, 16, 13), sh(2026, 3, 16, 15)),  # overlaps the first: 12-15 paused
        (sh(2026, 3, 1), sh(2026, 3, 16, 10)),  # mostly before start: 09-10 paused
    ]
    assert due(CAL.add_working_days(sh(2026, 3, 16, 9), 1, paused)) == sh(2026, 3, 17, 13)
    span = CAL.working_time_between(sh(2026, 3, 16, 9), sh(2026, 3, 17), paused)
    assert span.amount == timedelta(hours=11)


def test_pause_spanning_weeks_is_jumped():
    paused = [(sh(2026, 3, 16, 12), sh(2026, 4, 20, 12))]
    # Mon 03-16 09:00-12:00 (3h), then from Mon 04-20 12:00 (12h) and Tue 04-21 (9h).
    assert due(CAL.add_working_days(sh(2026, 3, 16, 9), 1, paused)) == sh(2026, 4, 21, 9)


def test_open_ended_pause_leaves_the_due_instant_unknown():
    paused = [(sh(2026, 3, 16, 12), None)]
    assert CAL.add_working_days(sh(2026, 3, 16, 9), 1, paused) == WorkResult(None, False)
    # Used up before the suspension starts: the due instant stands.
    assert due(CAL.add_working_days(sh(2026, 3, 16, 9), 0.1, paused)) == sh(2026, 3, 16, 11, 24)
    span = CAL.working_time_between(sh(2026, 3, 16, 9), sh(2026, 3, 20), paused)
    assert span.amount == timedelta(hours=3)


def test_bad_inputs():
    with pytest.raises(ValueError, match="naive"):
        CAL.add_working_days(datetime(2026, 3, 16, 9), 1)
    with pytest.raises(ValueError, match="naive"):
        CAL.working_time_between(sh(2026, 3, 16), datetime(2026, 3, 17))
    with pytest.raises(ValueError, match="naive"):
        CAL.add_working_days(sh(2026, 3, 16), 1, [(datetime(2026, 3, 16, 12), None)])
    with pytest.raises(ValueError, match="ends before it starts"):
        CAL.add_working_days(sh(2026, 3, 16), 1, [(sh(2026, 3, 17), sh(2026, 3, 16))])
    with pytest.raises(ValueError, match="pair"):
        CAL.add_working_days(sh(2026, 3, 16), 1, [(sh(2026, 3, 17),)])
    with pytest.raises(ValueError, match="negative"):
        CAL.add_working_time(sh(2026, 3, 16), timedelta(hours=-1))
    for days in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            CAL.add_working_days(sh(2026, 3, 16), days)
    with pytest.raises(TypeError):
        CAL.add_working_days(sh(2026, 3, 16), "1")


# --- years not loaded --------------------------------------------------------------------


def test_reaching_an_unloaded_year_is_provisional_with_weekends_and_fixed_holidays_off():
    # Thu 2026-12-31 10:00-24:00 (14h), Fri 2027-01-01 off (元旦 is off every year),
    # weekend, Mon 01-04 (24h), Tue 01-05 (24h), Wed 01-06 (10h).
    result = CAL.add_working_days(sh(2026, 12, 31, 10), 3)
    assert due(result) == sh(2027, 1, 6, 10)
    assert result.provisional
    assert CAL.working_time_between(sh(2026, 12, 31, 10), sh(2027, 1, 6, 10)).provisional
    assert not CAL.working_time_between(sh(2026, 12, 31, 10), sh(2027, 1, 1)).provisional


@pytest.mark.parametrize("day", [date(2030, 1, 1), date(2030, 4, 5), date(2030, 5, 1), date(2030, 5, 2), date(2030, 10, 1),
                                 date(2030, 10, 2), date(2030, 10, 3)])
def test_in_an_unloaded_year_the_statutory_holidays_fixed_in_advance_are_off(day):
    assert day.weekday() < 5 and not CAL.is_workday(day)  # 全国年节及纪念日放假办法 第二条 (清明: 2030-04-05)
    assert CAL.is_workday(day + timedelta(days=7))  # the same weekday a week later is worked


def test_unloaded_days_wholly_paused_do_not_make_a_result_provisional():
    paused = [(sh(2026, 12, 31, 12), sh(2027, 1, 10))]
    result = CAL.add_working_days(sh(2026, 12, 31, 10), 1, paused)
    assert result.provisional  # ends in 2027
    result = CAL.add_working_time(sh(2026, 12, 31, 10), timedelta(hours=2), paused)
    assert not result.provisional and due(result) == sh(2026, 12, 31, 12)


def test_an_unloaded_weekend_alone_makes_a_result_provisional():
    # 2027-01-02/03 are assumed off, but the 2027 schedule could make one a 调休 workday.
    paused = [(sh(2027, 1, 1), sh(2027, 1, 2))]
    span = CAL.working_time_between(sh(2026, 12, 31, 10), sh(2027, 1, 4), paused)
    assert span == WorkDuration(timedelta(hours=14), True)
    result = CAL.add_working_days(sh(2027, 1, 2, 10), 0.5)
    assert due(result) == sh(2027, 1, 4, 12) and result.provisional
    suspended = CAL.add_working_days(sh(2027, 1, 2, 10), 1, [(sh(2027, 1, 3), None)])
    assert suspended == WorkResult(None, True)


def test_loading_2027_changes_the_result_and_it_is_final():
    year, facts = parse_year_file(YEAR_2027)
    cal = CAL.with_year(year, facts)
    result = cal.add_working_days(sh(2026, 12, 31, 10), 3)
    assert due(result) == sh(2027, 1, 6, 10)  # 元旦 is off now
    assert not result.provisional
    assert cal.is_workday(date(2027, 2, 14)) and not cal.is_workday(date(2027, 2, 8))
    assert not CAL.is_loaded(2027)


# --- the year file -----------------------------------------------------------------------


def test_parse_year_file():
    year, facts = parse_year_file(YEAR_2027)
    assert year == 2027
    assert facts[0] == DayFact(date(2027, 1, 1), False, "元旦")
    assert [f.day.day for f in facts if f.note == "春节"] == [6, 7, 8, 9, 10, 11, 12]
    assert facts[-1] == DayFact(date(2027, 2, 14), True, "调休上班")
    assert len(facts) == 9
    assert parse_year_file("year 2028\n2028-05-01 holiday\n") == (2028, [DayFact(date(2028, 5, 1), False, "")])
    assert parse_year_file("year 2028\n") == (2028, [])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("year 2027\n2027-01-01 holiday 元旦\n2026-12-31 holiday x\n", "line 3: day outside year 2027"),
        ("year 2027\n2027-12-31..2028-01-02 holiday 元旦\n", "line 2: day outside year"),
        ("year 2027\n2027-01-01 vacation 元旦\n", "line 2: unknown kind 'vacation'"),
        ("# c\n\nyear 2027\n2027-02-30 holiday x\n", "line 4: invalid date"),
        ("year 2027\n2027-02-12..2027-02-06 holiday 春节\n", "line 2: range ends before"),
        ("year 2027\n2027-02-06..2027-02-12 holiday\n2027-02-08 workday\n", "line 3: 2027-02-08 is already"),
        ("year 2027\nyear 2027\n", "line 2: second 'year'"),
        ("2027-01-01 holiday 元旦\nyear 2027\n", "line 1: day line before"),
        ("year 2027\n2027/01/01 holiday\n", "line 2: expected"),
        ("year 2027\n2027-01-01\n", "line 2: expected"),
        ("# nothing\n", "no 'year' line"),
    ],
)
def test_parse_year_file_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_year_file(text)


# --- properties against a brute-force reference -----------------------------------------
#
# The reference marks every minute of a 60-day window as counted or not, straight from
# chinese_calendar (2025-2026) or the weekday rule (any other year, "guessed"), and
# from the pauses; a prefix sum then finds the due minute. Minute-aligned inputs make
# every exact answer minute-aligned.

MINUTE = timedelta(minutes=1)
WINDOW = 60 * 1440
BASE = sh(2025, 1, 1)  # a Shanghai midnight, so minute index // 1440 is the local day
LOADED = {2025, 2026}
ZONES = [UTC, SH, ZoneInfo("America/New_York"), timezone(timedelta(hours=-3, minutes=-30))]


def test_reference_assumes_shanghai_is_utc_plus_8_throughout():
    for month in range(1, 13):
        for year in (2024, 2025, 2026, 2027):
            assert sh(year, month, 1).utcoffset() == timedelta(hours=8)


def reference_flags(start_min: int, pauses: list[tuple[int, int | None]]) -> tuple[bytearray, bytearray]:
    """Per minute from start_min: (counted, unpaused-and-guessed), as 0/1 bytes."""
    counted = bytearray(WINDOW)
    guessed = bytearray(WINDOW)
    first_day = start_min // 1440
    for offset in range(WINDOW // 1440 + 1):
        day_index = first_day + offset
        lo = max(day_index * 1440 - start_min, 0)
        hi = min((day_index + 1) * 1440 - start_min, WINDOW)
        if lo >= hi:
            continue
        day = date(2025, 1, 1) + timedelta(days=day_index)
        if day.year in LOADED:
            workday = chinese_calendar.is_workday(day)
        else:
            # the weekday rule less the holidays the law fixes: 元旦, 清明 (the solar term), 劳动节, 国庆节
            qingming = [d for d, name in chinese_calendar.get_solar_terms(date(day.year, 4, 1), date(day.year, 4, 10))
                        if name == "清明"]
            workday = day.weekday() < 5 and (day.month, day.day) not in {(1, 1), (5, 1), (5, 2), (10, 1), (10, 2), (10, 3)} \
                and [day] != qingming
            guessed[lo:hi] = b"\x01" * (hi - lo)
        if workday:
            counted[lo:hi] = b"\x01" * (hi - lo)
    for p_start, p_end in pauses:
        lo = min(max(p_start - start_min, 0), WINDOW)
        hi = WINDOW if p_end is None else min(max(p_end - start_min, 0), WINDOW)
        if lo < hi:
            counted[lo:hi] = bytes(hi - lo)
            guessed[lo:hi] = bytes(hi - lo)
    return counted, guessed


def reference_add(start_min, amount_min, pauses) -> tuple[int | None, bool]:
    if amount_min == 0:
        return start_min, False
    counted, guessed = reference_flags(start_min, pauses)
    cumulative = list(itertools.accumulate(counted))
    index = bisect.bisect_left(cumulative, amount_min)
    if index == WINDOW:
        assert any(p_end is None for _, p_end in pauses), "window too small for the example"
        return None, 1 in guessed
    return start_min + index + 1, 1 in guessed[: index + 1]


def reference_between(start_min, end_min, pauses) -> tuple[int, bool]:
    assert end_min - start_min <= WINDOW
    counted, guessed = reference_flags(start_min, pauses)
    n = end_min - start_min
    return counted[:n].count(1), 1 in guessed[:n]


def at(minute: int, zone) -> datetime:
    return (BASE + minute * MINUTE).astimezone(zone)


def as_pauses(raw, zone) -> list[tuple[datetime, datetime | None]]:
    return [(at(s, zone), None if e is None else at(e, zone)) for s, e in raw]


END_2026 = (date(2027, 1, 1) - date(2025, 1, 1)).days * 1440
# Half the starts lie within a few weeks of the loaded years' edges, so spans often
# touch unloaded 2024 or 2027 days, including their (guessed) weekends.
starts = st.one_of(
    st.integers(0, END_2026 - 1),
    st.integers(-14 * 1440, 7 * 1440),
    st.integers(END_2026 - 25 * 1440, END_2026 + 14 * 1440),
)
amounts = st.integers(0, 10 * 1440)
pause_lists = st.lists(
    st.tuples(
        st.integers(-2 * 1440, 15 * 1440),
        st.one_of(st.integers(0, 5 * 1440), st.none()),
    ),
    max_size=3,
)


def absolute_pauses(start_min, relative):
    return [(start_min + o, None if n is None else start_min + o + n) for o, n in relative]


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(start=starts, amount=amounts, relative=pause_lists, zone=st.sampled_from(ZONES))
def test_add_working_time_matches_reference(start, amount, relative, zone):
    raw = absolute_pauses(start, relative)
    result = CAL.add_working_time(at(start, zone), amount * MINUTE, as_pauses(raw, zone))
    expected_min, expected_provisional = reference_add(start, amount, raw)
    expected = None if expected_min is None else at(expected_min, UTC)
    assert result == WorkResult(expected, expected_provisional)


@PROPERTY
@given(start=starts, length=st.integers(0, 20 * 1440), relative=pause_lists, zone=st.sampled_from(ZONES))
def test_working_time_between_matches_reference(start, length, relative, zone):
    raw = absolute_pauses(start, relative)
    result = CAL.working_time_between(at(start, zone), at(start + length, zone), as_pauses(raw, zone))
    minutes, provisional = reference_between(start, start + length, raw)
    assert result == WorkDuration(minutes * MINUTE, provisional)


@PROPERTY
@given(
    start=starts,
    second=st.integers(0, 59),
    amount=st.integers(0, 10 * 86400 * 10**6),
    relative=pause_lists,
)
def test_between_inverts_add(start, second, amount, relative):
    """between(S, add(S, A)) == A for every start (working time or not) and amount,
    with the same provisional flag, since both measure the same span."""
    s = at(start, SH) + timedelta(seconds=second)
    pauses = as_pauses(absolute_pauses(start, relative), SH)
    added = CAL.add_working_time(s, timedelta(microseconds=amount), pauses)
    if added.instant is None:
        assert any(end is None for _, end in pauses)
        return
    back = CAL.working_time_between(s, added.instant, pauses)
    assert back == WorkDuration(timedelta(microseconds=amount), added.provisional)


@PROPERTY
@given(start=starts, length=st.integers(0, 20 * 1440), relative=pause_lists)
def test_add_inverts_between_only_up_to_uncounted_time(start, length, relative):
    """add(S, between(S, E)) is the earliest instant with the same working time: E
    itself when E == S or the minute before E is counted, otherwise earlier than E
    with nothing counted in between."""
    s, e = at(start, SH), at(start + length, SH)
    pauses = as_pauses(absolute_pauses(start, relative), SH)
    amount = CAL.working_time_between(s, e, pauses).amount
    back = CAL.add_working_time(s, amount, pauses).instant
    assert back is not None and s <= back <= e
    assert CAL.working_time_between(back, e, pauses).amount == timedelta(0)
    last_minute_counted = e > s and CAL.working_time_between(e - MINUTE, e, pauses).amount > timedelta(0)
    assert (back == e) == (e == s or last_minute_counted)


@PROPERTY
@given(start=starts, days=st.floats(0, 10, allow_nan=False), relative=pause_lists)
def test_add_working_days_is_days_times_24_hours(start, days, relative):
    pauses = as_pauses(absolute_pauses(start, relative), SH)
    s = at(start, SH)
    assert CAL.add_working_days(s, days, pauses) == CAL.add_working_time(s, timedelta(days=days), pauses)


@PROPERTY
@given(start=starts, length=st.integers(0, 3 * 366 * 1440), at_midnight=st.booleans(), zone=st.sampled_from(ZONES))
def test_a_span_without_pauses_counts_whole_days_from_running_totals_as_the_day_walk_does(start, length, at_midnight, zone):
    """Spans of up to three years, across loaded and unloaded years: the unpaused path
    (running totals of working days) answers what walking the days answers (taken here
    through a pause after the span, which changes nothing but the path)."""
    s = at(start, zone)
    e = at(start + length, zone)
    if at_midnight:  # a span ending exactly at a Shanghai midnight leaves that day out
        e = datetime.combine(e.astimezone(SH).date(), datetime.min.time(), SH).astimezone(zone)
        e = max(e, s)
    walked = CAL.working_time_between(s, e, [(e + timedelta(days=1), e + timedelta(days=2))])
    assert CAL.working_time_between(s, e) == walked
