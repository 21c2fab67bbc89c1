"""What the operator's health check reports: database, migrations, last sweep."""
from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from engine import calendar, platform_state
from engine.clock import SHANGHAI, SystemClock, as_utc
from engine.db import dialect_insert, is_postgresql, make_engine, make_session_factory, unit_of_work
from engine.models import PlatformState, Region

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
LAST_SWEEP_KEY = "last_sweep_at"


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> tuple[str | None, list[int]]:
    """Migrate the schema; at the newest migration, make the platform's identity if it has
    none (its file store is bound to it) and store the calendar years chinese-calendar
    knows and the table lacks (a fresh database can count working days from its first
    request). Returns the revision the database is at, and the years stored."""
    command.upgrade(alembic_config(url), revision)
    engine = make_engine(url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            at = MigrationContext.configure(session.connection()).get_current_revision()
            if at != head_revision():
                return at, []
            platform_state.make_platform_id(session)
            return at, calendar.seed_from_library(session, SystemClock().now())
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
    #: Whether the region the platform serves (``TZXM_PLATFORM_REGION``) is in the database:
    #: until its organisation is seeded or imported, every declaration is refused.
    platform_region_known: bool | None = None

    def sweep_behind(self, now: datetime, sweep_seconds: float) -> bool | None:
        """The sweeping processes (``tzxm serve``, ``tzxm sweeper``) sweep every
        ``sweep_seconds``; none for ten of those (at least a minute) means none is sweeping,
        while requests may still be served (``api.wsgi`` workers do not sweep).
        Unknown (None) while the database does not answer or before the first sweep."""
        if not self.database or self.last_sweep_at is None:
            return None
        return now - self.last_sweep_at > timedelta(seconds=max(60.0, 10 * sweep_seconds))


def check(session: Session, now: datetime, region: str | None = None) -> Health:
    try:
        if is_postgresql(session):  # a probe stalled behind a lock or an overloaded server gives up by itself
            session.execute(text(f"SET LOCAL statement_timeout = {int(PROBE_STATEMENT_SECONDS * 1000)}"))
        session.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        log.warning("health: the database does not answer", exc_info=True)
        return UNREACHABLE
    current = MigrationContext.configure(session.connection()).get_current_revision()
    if current is None:
        return Health(True, None, False, None)
    at_head = current == head_revision()
    try:
        state = session.get(PlatformState, LAST_SWEEP_KEY)
        next_year = now.astimezone(SHANGHAI).year + 1
        return Health(True, current, at_head, datetime.fromisoformat(state.value) if state else None,
                      any(y.year == next_year for y in calendar.years(session)),
                      session.get(Region, region) is not None if region else None)
    except Exception:  # noqa: BLE001 - the database answers: what it holds is what is wrong
        log.exception("health: the database answers at migration %s but its platform state cannot be read%s", current,
                      "" if at_head else " (behind the newest migration: run `tzxm db upgrade`)")
        return Health(True, current, at_head, None)


UNREACHABLE = Health(False, None, False, None)
#: The probe's statements are cancelled by the server after this long (PostgreSQL).
PROBE_STATEMENT_SECONDS = 2.0
#: The health check answers "database unreachable" when its probe has not returned by then.
PROBE_WAIT_SECONDS = 3.0
#: The probe still running per session factory (one per server process and database), with
#: the list its answer goes into.
_in_flight: "weakref.WeakKeyDictionary[sessionmaker, tuple[threading.Thread, list[Health]]]" = weakref.WeakKeyDictionary()
_in_flight_lock = threading.Lock()


def probe(factory: sessionmaker[Session], now: datetime, *, region: str | None = None,
          wait: float = PROBE_WAIT_SECONDS) -> Health:
    """``check`` in a session of its own, answering within ``wait`` seconds whatever the
    database does: a health check that hangs with the database tells the operator
    nothing, and a load balancer waiting on it keeps sending traffic to a stuck process.

    Two bounds. A server that is alive but slow (the probe waits behind a lock, the
    server is overloaded) cancels the probe's statements itself (``SET LOCAL
    statement_timeout``) and the probe returns "unreachable". A server that does not
    answer at all (its process frozen, a network partition) cannot cancel anything, and
    a blocked socket read cannot be interrupted from Python: the probe runs in a worker
    thread, and the check stops waiting for it after ``wait`` seconds. The trade-off:
    the abandoned thread stays blocked, holding a pooled connection, until the database
    answers or TCP gives up (keepalives, ``engine.db``). So that a monitor polling every
    few seconds during an outage does not pile up such threads, at most one probe runs
    per session factory: a check arriving while one is out waits for that one's answer
    (within its own ``wait``) instead of starting another, so monitors asking at once
    all hear the same answer.
    """
    result: list[Health] = []

    def run() -> None:
        try:
            with factory() as session:
                result.append(check(session, now, region))
                session.rollback()
        except Exception:  # noqa: BLE001 - no connection to be had (the pool exhausted, the server down)
            log.warning("health: database unreachable", exc_info=True)
            result.append(UNREACHABLE)

    with _in_flight_lock:
        running = _in_flight.get(factory)
        if running is not None and running[0].is_alive():
            worker, result = running  # the probe out already answers this check too
        else:
            worker = threading.Thread(target=run, name="tzxm-health-probe", daemon=True)
            _in_flight[factory] = (worker, result)
            worker.start()
    worker.join(wait)
    if not result:
        log.warning("health: the database has not answered within %s s", wait)
    return result[0] if result else UNREACHABLE
