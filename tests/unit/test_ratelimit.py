"""The portal's rate-limit settings and window arithmetic (no database; the counting
upsert runs on both databases in tests/integration/test_portal_api.py)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from engine.ratelimit import DEFAULT_RATE, Rate, parse_rate, window_start
from engine.settings import ConfigurationError

SHANGHAI = timezone(timedelta(hours=8))


@pytest.mark.parametrize("text,rate", [
    (None, Rate(60, 60)), ("", Rate(60, 60)), ("  ", Rate(60, 60)),
    ("60", Rate(60, 60)), ("5/second", Rate(5, 1)), ("120 / minute", Rate(120, 60)), ("1000/hour", Rate(1000, 3600)),
])
def test_settings_that_parse(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["0", "-5", "60/day", "lots", "60/min", "1.5", "60 per minute", "1/second/2"])
def test_settings_that_stop_the_server(text):
    with pytest.raises(ConfigurationError, match="TZXM_PORTAL_RATE"):
        parse_rate(text)


def test_the_default_is_sixty_a_minute():
    assert DEFAULT_RATE == Rate(60, 60)


def test_windows_are_aligned_whatever_the_offset_of_the_instant():
    rate = Rate(60, 60)
    utc = datetime(2026, 3, 2, 1, 0, 59, 999999, tzinfo=timezone.utc)
    assert window_start(utc, rate) == datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)
    assert window_start(utc.astimezone(SHANGHAI), rate) == window_start(utc, rate)
    assert window_start(utc + timedelta(microseconds=1), rate) == datetime(2026, 3, 2, 1, 1, tzinfo=timezone.utc)
    assert window_start(utc, Rate(1000, 3600)) == datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)


def test_a_naive_instant_is_refused():
    with pytest.raises(ValueError):
        window_start(datetime(2026, 3, 2, 1, 0), DEFAULT_RATE)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)),
       st.sampled_from([1, 60, 3600]))
def test_every_instant_falls_in_its_window(instant, seconds):
    start = window_start(instant, Rate(1, seconds))
    assert start <= instant < start + timedelta(seconds=seconds)
    assert start.microsecond == 0 and int(start.timestamp()) % seconds == 0
