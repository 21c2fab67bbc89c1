"""What the operator's health check reports: database, migrations, last sweep."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.orm import Session

from engine import calendar
from engine.clock import SHANGHAI, SystemClock, as_utc
from engine.db import dialect_insert, make_engine, make_session_factory, unit_of_work
from engine.models import PlatformState

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
LAST_SWEEP_KEY = "last_sweep_at"


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> list[int]:
    """Migrate the schema, then store the calendar years chinese-calendar knows and the
    table lacks: a fresh database can count working days from its first request."""
    command.upgrade(alembic_config(url), revision)
    engine = make_engine(url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            return calendar.seed_from_library(session, SystemClock().now())
    finally:
        engine.dispose()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def record_sweep(session: Session, now: datetime) -> None:
    """Remember the latest sweep. Several processes sweep at once: one upsert that keeps
    the later instant (UTC ISO strings compare in time order)."""
    stmt = dialect_insert(session)(PlatformState).values(key=LAST_SWEEP_KEY, value=as_utc(now).isoformat())
    session.execute(stmt.on_conflict_do_update(
        index_elements=[PlatformState.key], set_={"value": stmt.excluded.value},
        where=PlatformState.value < stmt.excluded.value,
    ))


@dataclass(frozen=True)
class Health:
    database: bool
    migration: str | None
    migrations_at_head: bool
    last_sweep_at: datetime | None
    #: Whether next year's official schedule is loaded. Until it is, a clock reaching into
    #: next year counts its lunar holidays (春节…) and 调休 as the weekday rule says, and
    #: what fires on that (an automatic reply, a red record) is not undone by a later
    #: load: the operator loads it as soon as the State Council publishes it.
    calendar_next_year_loaded: bool | None = None


def check(session: Session, now: datetime) -> Health:
    try:
        session.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return Health(False, None, False, None)
    current = MigrationContext.configure(session.connection()).get_current_revision()
    if current is None:
        return Health(True, None, False, None)
    state = session.get(PlatformState, LAST_SWEEP_KEY)
    next_year = now.astimezone(SHANGHAI).year + 1
    return Health(
        True,
        current,
        current == head_revision(),
        datetime.fromisoformat(state.value) if state else None,
        any(y.year == next_year for y in calendar.years(session)),
    )
