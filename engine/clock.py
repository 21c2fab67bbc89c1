"""Time is a clock object passed in everywhere: nothing in engine/ reads the wall clock
except ``SystemClock``, so a 5-working-day clock is tested in milliseconds."""
from __future__ import annotations

import abc
import threading
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

#: Calendar days are Asia/Shanghai; instants are stored in UTC.
SHANGHAI = ZoneInfo("Asia/Shanghai")


class Clock(abc.ABC):
    """The interface: ``now()`` returns an aware UTC datetime."""

    manual = False

    @abc.abstractmethod
    def now(self) -> datetime:
        """The current instant, aware, in UTC."""


class SystemClock(Clock):
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class ManualClock(Clock):
    """A clock the operator (or a test) sets; ``TZXM_CLOCK=manual`` serves on one."""

    manual = True

    def __init__(self, start: datetime):
        self._lock = threading.Lock()
        self._now = as_utc(start)

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, instant: datetime) -> None:
        with self._lock:
            self._now = as_utc(instant)

    def advance(self, **kwargs) -> datetime:
        with self._lock:
            self._now = self._now + timedelta(**kwargs)
            return self._now


def as_utc(instant: datetime) -> datetime:
    """Refuse naive datetimes: an instant without an offset is ambiguous."""
    if instant.tzinfo is None:
        raise ValueError("naive datetime: an instant needs a UTC offset")
    return instant.astimezone(timezone.utc)
