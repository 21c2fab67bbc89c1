"""Fixtures that build a real app on a real database: SQLite and PostgreSQL.

Each test gets a fresh database copied from a migrated, demo-seeded template (a file
copy on SQLite, CREATE DATABASE … TEMPLATE on PostgreSQL), so tests are isolated and
the schema always comes from the alembic migrations.
"""
from __future__ import annotations

import itertools
import os
import shutil
from datetime import datetime, timezone

import pytest
from sqlalchemy import create_engine, text

from engine.access import Actor
from engine.accounts import issue_token
from engine.clock import ManualClock
from engine.db import make_engine, make_session_factory, unit_of_work
from engine.health import upgrade
from engine.models import User
from engine.procedures import deploy_directory
from engine.seed import seed_demo
from tests.pgserver import PostgresServer

SECRET = "test-secret-key-0123456789abcdef0123456789abcdef"
#: A Monday in Asia/Shanghai (2026-03-02 09:00 +08:00) unless a test sets its own.
START = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)
BACKENDS = ["sqlite", "postgresql"]
OPERATOR = Actor.system("test-setup")
_counter = itertools.count()


def _prepare(url: str) -> None:
    upgrade(url)
    engine = make_engine(url)
    with unit_of_work(make_session_factory(engine)) as session:
        seed_demo(session, now=START, password="demo-password")
    with unit_of_work(make_session_factory(engine)) as session:
        deploy_directory(session, actor=OPERATOR, now=START, region="510411")
    engine.dispose()


@pytest.fixture(scope="session")
def pg_server():
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("sqlite") / "template.sqlite3"
    _prepare(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template(pg_server):
    admin = create_engine(pg_server.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("CREATE DATABASE tzxm_template"))
    _prepare(pg_server.url("tzxm_template"))
    yield "tzxm_template"
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path):
    """A fresh, migrated, seeded database on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "tzxm.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    server = request.getfixturevalue("pg_server")
    template = request.getfixturevalue("pg_template")
    name = f"t_{os.getpid()}_{next(_counter)}"
    admin = create_engine(server.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name} TEMPLATE {template}"))
    yield server.url(name)
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture(autouse=True)
def file_store(tmp_path, monkeypatch):
    """Each test keeps its files (materials, notice PDFs) in its own folder."""
    root = tmp_path / "files"
    monkeypatch.setenv("TZXM_FILES_DIR", str(root))
    return root


@pytest.fixture
def clock():
    return ManualClock(START)


@pytest.fixture
def app(database_url, clock):
    from api import create_app

    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "SECRET_KEY": SECRET,
            "TZXM_CLOCK_OBJECT": clock,
            "TZXM_PLATFORM_REGION": "510411",
            "TZXM_SWEEP_SECONDS": 1,
        }
    )
    yield app
    app.extensions["tzxm_engine"].dispose()


@pytest.fixture
def platform(app):
    return app.extensions["tzxm"]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def token(platform):
    """token("drc") → a bearer header for that demo account, valid at the clock's now
    (signed directly: argon2 sign-in is exercised by the auth tests, not by every test)."""

    def make(username: str) -> dict[str, str]:
        with unit_of_work(platform.session_factory) as session:
            user = session.query(User).filter_by(username=username).one()
            issued = issue_token(user, now=platform.clock.now(), secret=platform.secret_key)
        return {"Authorization": f"Bearer {issued.access_token}"}

    return make
