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
        deploy_directory(session, actor=Actor.system("bench"), now=START, region="510411")
    return engine, factory


@contextmanager
def postgres_databases():
    """A throw-away PostgreSQL server (the same one the tests start); yields a function
    that creates an empty database on it and returns its URL."""
    from sqlalchemy import create_engine, text

    from tests.pgserver import PostgresServer

    server = PostgresServer().start()
    admin = create_engine(server.url(), isolation_level="AUTOCOMMIT")

    def create(name: str) -> str:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        return server.url(name)

    try:
        yield create
    finally:
        admin.dispose()
        server.stop()


@contextmanager
def postgres():
    """A throw-away PostgreSQL server with one empty database; yields its URL."""
    with postgres_databases() as create:
        yield create("bench")


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
