"""Per-client rate limit for the public portal: a fixed window counted in ``rate_windows``.

The count lives in the database, not in the server's memory, so every server process
of a deployment shares it. Each check is one upsert (INSERT … ON CONFLICT DO UPDATE …
RETURNING) in a short transaction of its own: it is committed before the request's
own work starts, so a request that ends in 404 (whose transaction rolls back) still
counts — otherwise unknown codes could be probed without limit.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import case, delete
from sqlalchemy.orm import Session, sessionmaker

from engine.clock import as_utc
from engine.db import dialect_insert, unit_of_work
from engine.errors import TooManyAttempts
from engine.models import RateWindow
from engine.settings import ConfigurationError

_UNITS = {"second": 1, "minute": 60, "hour": 3600}
_RATE = re.compile(r"^\s*(\d{1,9})\s*(?:/\s*(second|minute|hour))?\s*$")
#: The column's width; an address longer than this (none is) is cut, never refused.
_CLIENT_WIDTH = 64
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Rate:
    """``limit`` requests per client in each window of ``seconds``."""

    limit: int
    seconds: int


DEFAULT_RATE = Rate(60, 60)


def parse_rate(text: str | None) -> Rate:
    """``"60"`` (per minute), ``"60/minute"``, ``"5/second"``, ``"1000/hour"``; unset → 60 per minute.

    Raises ``ConfigurationError`` for anything else, so a mistyped setting stops the server
    at start-up (in one line) instead of silently disabling the limit."""
    if text is None or not str(text).strip():
        return DEFAULT_RATE
    match = _RATE.match(str(text))
    if match is None or int(match.group(1)) < 1:
        raise ConfigurationError(f"TZXM_PORTAL_RATE 须为 N 或 N/second|minute|hour，N ≥ 1 (got {text!r})")
    return Rate(int(match.group(1)), _UNITS[match.group(2) or "minute"])


def window_start(now: datetime, rate: Rate) -> datetime:
    """The start of the fixed window holding ``now`` (windows are aligned to the epoch,
    so every server process computes the same window for the same instant)."""
    elapsed = (as_utc(now) - _EPOCH) // timedelta(seconds=1)
    return _EPOCH + timedelta(seconds=elapsed - elapsed % rate.seconds)


@dataclass(frozen=True)
class Decision:
    count: int
    allowed: bool
    #: whole seconds until the window ends (what Retry-After says), at least 1
    retry_after: int


def take(session: Session, *, client: str, now: datetime, rate: Rate) -> Decision:
    """Count one request of ``client`` in the current window and say whether it is allowed.

    One statement: a row from an earlier window restarts at 1, the current window's row
    is incremented; the database serialises concurrent increments of one row."""
    start = window_start(now, rate)
    insert = dialect_insert(session)(RateWindow).values(client=client[:_CLIENT_WIDTH], window_start=start, count=1)
    stmt = insert.on_conflict_do_update(
        index_elements=[RateWindow.client],
        set_={
            "count": case((RateWindow.window_start == insert.excluded.window_start, RateWindow.count + 1), else_=1),
            "window_start": insert.excluded.window_start,
        },
    ).returning(RateWindow.count)
    count = session.execute(stmt).scalar_one()
    remaining = (start + timedelta(seconds=rate.seconds)) - as_utc(now)
    return Decision(count=count, allowed=count <= rate.limit, retry_after=max(1, math.ceil(remaining.total_seconds())))


def enforce(factory: sessionmaker[Session], *, client: str, now: datetime, rate: Rate) -> Decision:
    """Count the request in its own committed transaction, then refuse it (429) when over
    the limit. The count is committed first, so refused requests count too."""
    with unit_of_work(factory) as session:
        decision = take(session, client=client, now=now, rate=rate)
    if not decision.allowed:
        raise TooManyAttempts(
            f"请求过于频繁，请 {decision.retry_after} 秒后再试 (too many requests, retry after {decision.retry_after} s)",
            retry_after=decision.retry_after,
        )
    return decision


def purge(session: Session, *, now: datetime, rate: Rate) -> int:
    """Delete the rows of clients not seen in the current window (they would restart at 1
    anyway); keeps the table the size of the current window's clients. For the sweep."""
    result = session.execute(delete(RateWindow).where(RateWindow.window_start < window_start(now, rate)))
    return result.rowcount or 0
