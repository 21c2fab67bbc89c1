"""Serials never repeat and never skip, also under concurrent declarations."""
from __future__ import annotations

import multiprocessing
import threading

import pytest
from sqlalchemy import select

from engine.access import Actor
from engine.db import make_engine, make_session_factory, unit_of_work
from engine.errors import Invalid
from engine.models import Project, User
from engine.projects import PlatformScope, declare
from tests.conftest import START
from tests.integration.helpers import declaration

PER_WORKER = 15


def _actor(factory) -> Actor:
    with factory() as s:
        return Actor.of(s.query(User).filter_by(username="applicant").one())


def _declare_many(url: str, n: int, fail_every: int = 0) -> None:
    factory = make_session_factory(make_engine(url))
    actor = _actor(factory)
    fields = declaration()
    fields["investment"] = "100"
    for i in range(n):
        try:
            with unit_of_work(factory) as s:
                declare(s, actor=actor, scope=PlatformScope("510411"), now=START, fields=fields)
                if fail_every and i % fail_every == 0:
                    raise Invalid("rolled back on purpose")
        except Invalid:
            pass


def _serials(url: str) -> list[int]:
    factory = make_session_factory(make_engine(url))
    with factory() as s:
        return sorted(int(c[-6:]) for c in s.scalars(select(Project.project_code)))


def test_threads_declaring_at_once_get_contiguous_serials(database_url):
    threads = [threading.Thread(target=_declare_many, args=(database_url, PER_WORKER, 4)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    serials = _serials(database_url)
    assert serials == list(range(1, len(serials) + 1))
    assert len(serials) == 6 * (PER_WORKER - len(range(0, PER_WORKER, 4)))


def test_processes_declaring_at_once_get_contiguous_serials(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("several server processes share one database on PostgreSQL; SQLite runs one")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_declare_many, args=(database_url, PER_WORKER)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert _serials(database_url) == list(range(1, 4 * PER_WORKER + 1))
