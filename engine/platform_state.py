"""Settings kept as ``platform_state`` rows: the calendar's revision and the
yellow fractions. A step that starts a clock needs both, so the first read in a
transaction reads them together and later reads in it are free; a write is seen by
the rest of its own transaction."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db import transaction_memo
from engine.models import PlatformState

CALENDAR_REVISION = "calendar_revision"
YELLOW_FRACTIONS = "yellow_fractions"
SHARED_KEYS = (CALENDAR_REVISION, YELLOW_FRACTIONS)
_READ = "settings"


def _settings(session: Session) -> dict[str, str]:
    memo = transaction_memo(session)
    if _READ not in memo:
        memo[_READ] = dict(session.execute(select(PlatformState.key, PlatformState.value)
                                           .where(PlatformState.key.in_(SHARED_KEYS))).all())
    return memo[_READ]


def value(session: Session, key: str) -> str | None:
    return _settings(session).get(key)


def keep(session: Session, key: str) -> None:
    """Hold the setting as it stands until this transaction ends (a share lock; SQLite's
    one writer holds everything anyway): a transaction changing it waits, so what this
    one computes from it and stores is not overtaken by the change. Read it afterwards."""
    session.execute(select(PlatformState.key).where(PlatformState.key == key).with_for_update(read=True))


def write(session: Session, key: str, text: str) -> None:
    """Set a setting in this transaction (seen by its later reads)."""
    state = session.get(PlatformState, key)
    if state is None:
        session.add(PlatformState(key=key, value=text))
    else:
        state.value = text
    _settings(session)[key] = text
