"""Settings kept as ``platform_state`` rows: the calendar's revision and the
yellow fractions. A step that starts a clock needs both, so the first read in a
transaction reads them together and later reads in it are free; a write is seen by
the rest of its own transaction."""
from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db import dialect_insert, transaction_memo
from engine.models import PlatformState

CALENDAR_REVISION = "calendar_revision"
YELLOW_FRACTIONS = "yellow_fractions"
#: The platform's own identity, made once and kept with its data (a restored backup keeps it).
PLATFORM_ID = "platform_id"
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


def make_platform_id(session: Session) -> None:
    """The platform's identity, made once (``tzxm db upgrade``; two at once: one is kept)."""
    session.execute(dialect_insert(session)(PlatformState).values(key=PLATFORM_ID, value=uuid.uuid4().hex)
                    .on_conflict_do_nothing(index_elements=["key"]))


def platform_id(session: Session) -> str | None:
    """The platform's identity: what its file store is bound to (``engine.files``)."""
    return session.scalar(select(PlatformState.value).where(PlatformState.key == PLATFORM_ID))
