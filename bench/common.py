"""What the benchmarks share: a database prepared like the test session's, and timing."""
from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from datetime import datetime, timezone

from engine.access import Actor
from engine.db import make_engine, make_session_factory, unit_of_work
from engine.health import upgrade
from engine.procedures import deploy_directory
from engine.seed import seed_demo

START = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)


def prepare(url: str):
    """Migrate, seed the demo, deploy the shipped procedures; return a session factory."""
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with unit_of_work(factory) as session:
        seed_demo(session, now=START, password="demo-password")
    with unit_of_work(factory) as session:
        deploy_directory(session, actor=Actor.system("bench"), now=START)
    return engine, factory


@contextmanager
def postgres():
    """A throw-away PostgreSQL server (the same one the tests start)."""
    from sqlalchemy import create_engine, text

    from tests.pgserver import PostgresServer

    server = PostgresServer().start()
    try:
        admin = create_engine(server.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE bench"))
        admin.dispose()
        yield server.url("bench")
    finally:
        server.stop()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def median(values: list[float]) -> float:
    return statistics.median(values)
