"""A pooled PostgreSQL connection the server dropped is replaced before use when it sat
idle; one used a moment ago is handed out without a ping (engine.db._ping_when_idle)."""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from engine.db import make_engine


def _backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def _terminate(pg_server, pid: int) -> None:
    admin = create_engine(pg_server.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one() is True
    admin.dispose()


@pytest.fixture
def pool(pg_server):
    """An engine on the test server whose pool pings a connection idle this many seconds."""
    engines = []

    def make(ping_idle_after: float):
        engines.append(make_engine(pg_server.url(), ping_idle_after=ping_idle_after))
        return engines[-1]

    yield make
    for engine in engines:
        engine.dispose()


def test_an_idle_connection_the_server_dropped_is_replaced_before_use(pg_server, pool):
    engine = pool(0)
    lost = _backend_pid(engine)
    _terminate(pg_server, lost)
    replacement = _backend_pid(engine)  # the ping fails, the pool connects anew: no error
    assert replacement != lost
    assert _backend_pid(engine) == replacement  # the live one is kept


def test_a_connection_used_a_moment_ago_is_handed_out_without_a_ping(pg_server, pool):
    engine = pool(3600)
    lost = _backend_pid(engine)
    _terminate(pg_server, lost)
    with pytest.raises(OperationalError):
        _backend_pid(engine)  # not pinged: the loss shows in the statement itself
    assert _backend_pid(engine) != lost  # and the pool discarded it
