"""Database lifecycle: engines, sessions and the unit of work.

One transaction per request or per swept item (DESIGN.md): engine helpers receive a
session and never commit; whoever opened the unit of work commits or rolls back.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, fields
from typing import Callable, Iterator, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import StaticPool

from engine.settings import number_from_environment

log = logging.getLogger(__name__)
T = TypeVar("T")


class Base(DeclarativeBase):
    """Declarative base for every table of the platform."""


#: Seconds a pooled PostgreSQL connection may sit unused and still be handed out
#: without a ping first.
PING_IDLE_AFTER = 10.0


@dataclass(frozen=True)
class DatabaseLimits:
    """How long the platform waits on its database before it answers 503 instead.

    Without bounds a request waits as long as whatever it waits behind: a row lock held
    by a stuck transaction, a statement gone wrong, a pool emptied by slow requests. Each
    bound is far above what any legitimate operation of the platform takes (a request's
    statements take milliseconds; the longest write, a calendar load recomputing every
    open clock, is many short statements), so reaching one means something is wrong and
    the caller is better told "busy, retry" than held. Seconds; each has an environment
    override (``TZXM_DB_<NAME>``) for an operator who knows better.
    """

    #: server side (PostgreSQL ``lock_timeout``): the longest wait for one lock (a row
    #: another transaction holds). SQLite's busy timeout plays the part; its one write
    #: lock is held by every writer in turn, so a waiter queues behind all of them and
    #: is given longer.
    lock_timeout: float = 15.0
    sqlite_lock_timeout: float = 30.0
    #: server side (``statement_timeout``): the longest one statement may run.
    statement_timeout: float = 60.0
    #: server side (``idle_in_transaction_session_timeout``): the longest a transaction may
    #: sit waiting for its client's next statement. Its locks are held meanwhile, so a
    #: server process that hangs or is stopped mid-transaction would hold every writer
    #: behind it for as long; the server ends such a session (and its transaction) instead.
    #: A request's body is read before its transaction begins (``api.hygiene``), so a slow
    #: upload does not count against it.
    idle_in_transaction_timeout: float = 60.0
    #: client side (libpq ``connect_timeout``): opening a connection.
    connect_timeout: float = 5.0
    #: client side: the wait for a pooled connection when all are in use.
    pool_timeout: float = 10.0
    pool_size: int = 10
    max_overflow: int = 20

    @classmethod
    def from_environment(cls) -> "DatabaseLimits":
        return cls(**{f.name: number_from_environment(f"TZXM_DB_{f.name.upper()}", f.default, integer=f.type == "int")
                      for f in fields(cls)})


#: TCP keepalives on PostgreSQL connections (libpq): a server gone from the network (a
#: partition, a host powered off) is noticed within about a minute by a connection
#: waiting for an answer, and within ``tcp_user_timeout`` (ms) by one whose statement
#: was never acknowledged; the request then fails (503) instead of waiting for ever. A
#: server process that is alive but frozen still answers TCP: nothing client-side but
#: a bounded wait (``engine.health.probe``) notices that.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
               "tcp_user_timeout": 60000}


def _milliseconds(seconds: float) -> int:
    return int(seconds * 1000)


def make_engine(url: str, *, ping_idle_after: float = PING_IDLE_AFTER, limits: DatabaseLimits | None = None) -> Engine:
    """Create an engine with the settings each backend needs.

    SQLite gets foreign keys on, a busy timeout so concurrent writers wait instead
    of failing, and WAL so readers do not block the one writer. PostgreSQL's pooled
    connections are pinged before use when they have been idle ``ping_idle_after``
    seconds (``_ping_when_idle``). Both wait on the database within ``limits``
    (``DatabaseLimits``, from the environment unless given).
    """
    limits = limits or DatabaseLimits.from_environment()
    pool = {"pool_size": limits.pool_size, "max_overflow": limits.max_overflow, "pool_timeout": limits.pool_timeout}
    if url.startswith("sqlite"):
        busy = limits.sqlite_lock_timeout
        kwargs: dict = {"connect_args": {"check_same_thread": False, "timeout": busy}}
        if url in ("sqlite://", "sqlite:///:memory:"):
            kwargs["poolclass"] = StaticPool
        else:
            kwargs.update(pool)
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            # WAL with NORMAL stays consistent after a crash; SQLite is the demo and
            # development database (production runs PostgreSQL).
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={_milliseconds(busy)}")
            cur.close()
            # Let SQLAlchemy emit BEGIN itself so that BEGIN IMMEDIATE works.
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # Writers take the lock at BEGIN: no deadlock between two read-then-write
            # transactions, which SQLite otherwise resolves by failing one of them.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    options = " ".join(f"-c {name}={_milliseconds(seconds)}" for name, seconds in (
        ("lock_timeout", limits.lock_timeout), ("statement_timeout", limits.statement_timeout),
        ("idle_in_transaction_session_timeout", limits.idle_in_transaction_timeout)))
    connect_args = {"options": options, "connect_timeout": math.ceil(limits.connect_timeout), **_KEEPALIVES}
    engine = create_engine(url, connect_args=connect_args, **pool)
    _ping_when_idle(engine, ping_idle_after)
    return engine


def _ping_when_idle(engine: Engine, idle_after: float) -> None:
    """Ping a pooled connection before handing it out only when it has been idle a while.

    A connection the server has dropped (a restart, a failover, a firewall's idle
    timeout) is found by the ping and replaced before a request uses it; the pool's
    ``pool_pre_ping`` would ping at every checkout, one more round trip in every
    transaction, though a connection checked in a moment ago is as alive as its last
    statement showed. A connection lost within ``idle_after`` fails its request, which
    the client may send again; the pool then discards it.
    """

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_conn, record) -> None:
        record.info["idle_from"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn, record, _proxy) -> None:
        idle_from = record.info.pop("idle_from", None)
        if idle_from is None or time.monotonic() - idle_from < idle_after:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"pooled connection lost while idle: {exc}") from exc  # the pool connects anew


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


_PER_TRANSACTION = "tzxm_per_transaction"


def transaction_memo(session: Session) -> dict:
    """A place on the session for what serves only the current transaction (rows read
    under its locks, events staged for its commit, settings read once): emptied when
    the transaction ends, committed or rolled back."""
    return session.info.setdefault(_PER_TRANSACTION, {})


@event.listens_for(Session, "after_transaction_end")
def _end_transaction_memo(session: Session, transaction) -> None:
    if transaction.parent is None:
        session.info.pop(_PER_TRANSACTION, None)


@event.listens_for(Session, "loaded_as_persistent")
def _hold_loaded(session: Session, instance) -> None:
    """Keep the rows of a model marked ``held_for_transaction`` until the transaction
    ends. The session's identity map holds rows weakly: an instance read by its lock and
    dropped, or a matter or department a step looks up, was read again by the next
    ``session.get`` of the same transaction. Only small rows a step reads again by key
    are marked: holding every row would undo a batched read's bound on memory."""
    if getattr(instance, "held_for_transaction", False):
        transaction_memo(session).setdefault("held", []).append(instance)


#: PostgreSQL's "do it again" codes: deadlock detected, serialization failure.
RETRY_SQLSTATES = frozenset({"40P01", "40001"})


#: Attempts at one piece of work (a request, a swept item, a command) before the
#: database's abort is given up to the caller.
MAX_ATTEMPTS = 3


def is_retryable(exc: DBAPIError) -> bool:
    """The database aborted the transaction to let another through: doing the same work
    again in a new transaction is safe and will see the other's result."""
    return getattr(exc.orig, "sqlstate", None) in RETRY_SQLSTATES


#: The database gave up waiting for us (``DatabaseLimits``): lock_not_available (a lock
#: held longer than ``lock_timeout``), query_canceled (``statement_timeout``, or an
#: operator cancelling). Not done again at once: the wait was already long, and what
#: held the lock may hold it still; the caller is told to retry later (503, the sweep
#: on its next run).
BUSY_SQLSTATES = frozenset({"55P03", "57014"})


def is_busy(exc: DBAPIError) -> bool:
    """The work was turned away because the database is busy, not because it is wrong:
    the same request may succeed later (HTTP 503 with Retry-After). Also SQLite's busy
    and locked errors (its busy timeout reached)."""
    if is_retryable(exc) or getattr(exc.orig, "sqlstate", None) in BUSY_SQLSTATES:
        return True
    return str(getattr(exc.orig, "sqlite_errorname", "")).startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))


#: The server ended the session under the transaction (``idle_in_transaction_timeout``
#: reached: the process stalled mid-transaction). Nothing of the transaction was kept; the
#: connection is gone, and the pool replaces it.
SESSION_ENDED_SQLSTATES = frozenset({"25P03"})


def is_session_ended(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in SESSION_ENDED_SQLSTATES


def retrying(factory: sessionmaker[Session], work: Callable[[Session], T], *, what: str) -> T:
    """``work`` in a unit of work of its own, done again whole in a new one (up to
    ``MAX_ATTEMPTS`` times) when the database aborts it for a deadlock or a
    serialization conflict: for the sweep and the commands, what ``api.transaction``
    does for requests. ``work`` tells its results by returning them, so an attempt
    rolled back leaves nothing counted."""
    attempt = 1
    while True:
        try:
            with unit_of_work(factory) as session:
                return work(session)
        except DBAPIError as exc:
            if attempt >= MAX_ATTEMPTS or not is_retryable(exc):
                raise
            log.warning("%s aborted by the database (%s), attempt %d: doing it again", what, exc.orig.sqlstate, attempt)
            attempt += 1


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def dialect_insert(session: Session):
    """The INSERT construct with ON CONFLICT for this session's database (both have it)."""
    return postgresql.insert if is_postgresql(session) else sqlite.insert


@contextlib.contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Commit everything done in the block, or nothing if it raises."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
