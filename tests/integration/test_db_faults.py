"""A busy, stuck or silent database: every request answers within bounds, 503 with
Retry-After (not 500, not a hang), and changes nothing.

Found by a multi-process load review on PostgreSQL: a pool run dry answered 500 on every
endpoint, a lock held by a stuck transaction held requests without bound, and a frozen
database server made even the health check hang. The limits come from the environment
(``engine.db.DatabaseLimits``); these tests set them small. On SQLite and PostgreSQL
where the fault exists on both.
"""
from __future__ import annotations

import io
import socket
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError
from werkzeug.test import EnvironBuilder

from engine.db import DatabaseLimits, is_session_ended, make_engine
from engine.models import ProcessInstance, Task, User
from engine.sweep import sweep
from tests.conftest import SECRET
from tests.integration.helpers import TINY_PDF, declaration, snapshot
from tests.integration.test_workflow_api import LAND_PROJECT, to_matters

#: Small limits so a test waits a second, not a quarter of a minute.
TIGHT = {"TZXM_DB_LOCK_TIMEOUT": "1", "TZXM_DB_SQLITE_LOCK_TIMEOUT": "1", "TZXM_DB_POOL_TIMEOUT": "0.5"}


@pytest.fixture
def db_limits():
    """The environment the app's engine is made with (a test parametrizes it to differ)."""
    return TIGHT


@pytest.fixture
def app(database_url, clock, monkeypatch, db_limits):
    """The test app (as tests/conftest.py makes it) on an engine made with ``db_limits``."""
    from api import create_app

    for name, value in db_limits.items():
        monkeypatch.setenv(name, value)
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "SECRET_KEY": SECRET, "TZXM_CLOCK_OBJECT": clock,
                      "TZXM_PLATFORM_REGION": "510411", "TZXM_SWEEP_SECONDS": 1})
    yield app
    app.extensions["tzxm_engine"].dispose()


@pytest.fixture
def other(database_url):
    """A connection of another process (its own engine, no limits), for holding locks."""
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    conn = engine.connect()
    yield conn
    conn.close()
    engine.dispose()


def _hold_the_writers_lock(other, database_url: str) -> None:
    """What every writing request needs last: the audit chain's head row (PostgreSQL);
    SQLite's one write lock (taken at BEGIN by every transaction of the platform)."""
    if database_url.startswith("postgresql"):
        other.exec_driver_sql("BEGIN")
        other.execute(text("SELECT * FROM audit_head FOR UPDATE")).all()
    else:
        other.exec_driver_sql("BEGIN IMMEDIATE")


def _assert_busy(r) -> None:
    assert r.status_code == 503, (r.status_code, r.get_json())
    assert r.headers["Retry-After"] == "1"
    body = r.get_json()
    assert (body["code"], body["status"]) == (503, "Service Unavailable")
    assert body["message"] == "系统繁忙，请稍后重试 (the platform is busy, retry)"


def test_a_lock_held_longer_than_the_lock_timeout_answers_503_and_changes_nothing(client, token, platform, other,
                                                                                  database_url):
    header = token("applicant")
    before = snapshot(platform)
    _hold_the_writers_lock(other, database_url)
    started = time.monotonic()
    r = client.post("/api/v1/projects", json=declaration(), headers=header)
    waited = time.monotonic() - started
    _assert_busy(r)
    assert waited < 5  # the lock timeout (1 s here, 15 s by default), not the holder's whole transaction
    other.exec_driver_sql("ROLLBACK")
    assert snapshot(platform) == before
    r = client.post("/api/v1/projects", json=declaration(), headers=header)  # the same request, once it is free
    assert r.status_code == 201, r.get_json()


@pytest.mark.parametrize("db_limits", [{"TZXM_DB_LOCK_TIMEOUT": "30", "TZXM_DB_STATEMENT_TIMEOUT": "1"}])
def test_a_statement_running_longer_than_the_statement_timeout_answers_503(client, token, platform, other, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("statement_timeout is PostgreSQL's; SQLite's busy timeout is the lock test above")
    header = token("applicant")
    before = snapshot(platform)
    _hold_the_writers_lock(other, database_url)  # the request's last statement waits: cancelled at 1 s (57014)
    started = time.monotonic()
    r = client.post("/api/v1/projects", json=declaration(), headers=header)
    assert time.monotonic() - started < 5
    _assert_busy(r)
    other.exec_driver_sql("ROLLBACK")
    assert snapshot(platform) == before


@pytest.mark.parametrize("db_limits", [{"TZXM_DB_POOL_SIZE": "1", "TZXM_DB_MAX_OVERFLOW": "0",
                                        "TZXM_DB_POOL_TIMEOUT": "0.5"}])
def test_an_exhausted_pool_answers_503_not_500(app, client, token, platform):
    header = token("drc")
    engine = app.extensions["tzxm_engine"]
    with engine.connect():  # the pool's only connection, in use (as by a slow request)
        started = time.monotonic()
        _assert_busy(client.get("/api/v1/portal/disclosure/approvals"))  # the public portal
        _assert_busy(client.post("/api/v1/auth/token", json={"username": "drc", "password": "demo-password"}))
        _assert_busy(client.get("/api/v1/projects", headers=header))
        assert time.monotonic() - started < 5  # each waited the pool timeout (0.5 s here), no longer
    assert client.get("/api/v1/portal/disclosure/approvals").status_code == 200
    assert client.post("/api/v1/auth/token", json={"username": "drc", "password": "demo-password"}).status_code == 200


def test_the_sweep_meeting_a_lock_timeout_leaves_the_item_for_the_next_sweep(client, token, platform, other,
                                                                             database_url):
    """An officer's transaction holds the tasks of an instance whose timer has come due: the
    sweep gives up on that instance after the lock timeout, finishes the rest of its run
    without raising, and fires the timer on its next run."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writer at a time: the lock test above covers its busy timeout")
    code = to_matters(client, token, **LAND_PROJECT)
    with platform.session_factory() as s:
        instance_id = s.scalar(select(Task.instance_id).where(
            Task.project_code == code, Task.matter_code == "land_pre_review", Task.status == "ready"))
    next_timer_at = _next_timer_at(platform, instance_id)
    assert next_timer_at is not None
    platform.clock.set(next_timer_at + timedelta(minutes=1))
    other.exec_driver_sql("BEGIN")
    other.execute(select(Task.id).where(Task.instance_id == instance_id).with_for_update()).all()
    started = time.monotonic()
    sweep(platform)  # does not raise: the instance is given up after the lock timeout, the rest is swept
    assert time.monotonic() - started < 10
    assert _next_timer_at(platform, instance_id) == next_timer_at  # its timer is still due
    other.exec_driver_sql("ROLLBACK")
    sweep(platform)
    assert _next_timer_at(platform, instance_id) != next_timer_at  # fired by the next sweep


def _next_timer_at(platform, instance_id):
    with platform.session_factory() as s:
        return s.scalar(select(ProcessInstance.next_timer_at).where(ProcessInstance.id == instance_id))


def _health(client):
    started = time.monotonic()
    r = client.get("/api/v1/health")
    return r, time.monotonic() - started


@pytest.mark.parametrize("db_limits", [{"TZXM_DB_SQLITE_LOCK_TIMEOUT": "30"}])
def test_health_answers_within_seconds_while_the_database_makes_it_wait(client, other, database_url):
    """PostgreSQL: a migration's lock on alembic_version; the probe's own statement timeout
    ends its wait. SQLite: another writer's lock; the check stops waiting for the probe."""
    r, _ = _health(client)
    assert r.status_code == 200 and r.get_json()["database"] is True
    if database_url.startswith("postgresql"):
        other.exec_driver_sql("BEGIN")
        other.exec_driver_sql("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
    else:
        other.exec_driver_sql("BEGIN IMMEDIATE")
    r, waited = _health(client)
    assert waited < 5, waited
    assert r.status_code == 503, r.get_json()
    assert (r.get_json()["status"], r.get_json()["database"]) == ("degraded", False)
    r, waited = _health(client)  # asked again: within the bound again (it waits for the probe still out, if any)
    assert r.status_code == 503 and waited < 5
    other.exec_driver_sql("ROLLBACK")
    deadline = time.monotonic() + 10
    while (r := _health(client)[0]).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)  # the probe still out returns once the lock is gone; the next one finds the database
    assert r.status_code == 200 and r.get_json()["database"] is True


class FreezableProxy:
    """A TCP relay to the database that can stop relaying: to the client the server looks
    alive (its connection open, what it sends accepted) but answers nothing, as a frozen
    server process (SIGSTOP) or a network partition would."""

    def __init__(self, port: int) -> None:
        self.upstream = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                target.close()
                return
            self.flowing.wait()  # frozen: held here, unanswered
            try:
                target.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.flowing.set()
        for s in self.sockets:
            s.close()


def test_health_answers_within_seconds_while_the_database_server_is_frozen(database_url, clock, monkeypatch):
    if not database_url.startswith("postgresql"):
        pytest.skip("a server to freeze is PostgreSQL's; SQLite is a file in the process")
    from sqlalchemy.engine import make_url

    from api import create_app

    url = make_url(database_url)
    proxy = FreezableProxy(url.port)
    app = create_app({"TESTING": True, "DATABASE_URL": url.set(port=proxy.port).render_as_string(hide_password=False),
                      "SECRET_KEY": SECRET, "TZXM_CLOCK_OBJECT": clock, "TZXM_PLATFORM_REGION": "510411",
                      "TZXM_SWEEP_SECONDS": 1})
    client = app.test_client()
    try:
        r, _ = _health(client)
        assert r.status_code == 200, r.get_json()
        proxy.flowing.clear()  # the server stops answering; its pooled connection stays open
        r, waited = _health(client)
        assert r.status_code == 503 and r.get_json()["database"] is False
        assert waited < 5, waited
        probes = [t.name for t in threading.enumerate()].count("tzxm-health-probe")
        r, waited = _health(client)  # the first probe is still out: this check waits for it, starts no other
        assert r.status_code == 503 and waited < 5, waited
        assert [t.name for t in threading.enumerate()].count("tzxm-health-probe") == probes
        proxy.flowing.set()  # the server answers again
        deadline = time.monotonic() + 10
        while (r := _health(client)[0]).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert r.status_code == 200 and r.get_json()["database"] is True
    finally:
        proxy.close()
        app.extensions["tzxm_engine"].dispose()


def test_postgresql_connections_carry_the_default_limits(pg_server, monkeypatch):
    for name in ("LOCK_TIMEOUT", "STATEMENT_TIMEOUT", "CONNECT_TIMEOUT", "IDLE_IN_TRANSACTION_TIMEOUT"):
        monkeypatch.delenv(f"TZXM_DB_{name}", raising=False)
    engine = make_engine(pg_server.url())
    try:
        with engine.connect() as conn:
            shown = {name: conn.exec_driver_sql(f"SHOW {name}").scalar_one()
                 for name in ("lock_timeout", "statement_timeout", "idle_in_transaction_session_timeout")}
            client_side = conn.connection.dbapi_connection.info.get_parameters()
        assert shown == {"lock_timeout": "15s", "statement_timeout": "1min", "idle_in_transaction_session_timeout": "1min"}
        assert {k: client_side.get(k) for k in ("connect_timeout", "keepalives", "keepalives_idle", "tcp_user_timeout")} == {
            "connect_timeout": "5", "keepalives": "1", "keepalives_idle": "30", "tcp_user_timeout": "60000"}
        assert engine.pool.timeout() == DatabaseLimits().pool_timeout
    finally:
        engine.dispose()


def test_a_limit_in_the_environment_must_be_a_number(monkeypatch):
    monkeypatch.setenv("TZXM_DB_LOCK_TIMEOUT", "15s")
    with pytest.raises(RuntimeError, match="TZXM_DB_LOCK_TIMEOUT must be a number"):
        DatabaseLimits.from_environment()


def test_monitors_asking_at_once_all_hear_the_healthy_database(app):
    """Two load-balancer nodes, liveness and readiness: eight checks at the same moment on a
    healthy database all answer 200 (a check finding a probe out waits for its answer)."""
    results: list = [None] * 8
    barrier = threading.Barrier(len(results))

    def ask(i):
        barrier.wait(timeout=10)
        r = app.test_client().get("/api/v1/health")
        results[i] = (r.status_code, r.get_json()["database"])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == [(200, True)] * len(results)


def test_a_transaction_left_waiting_is_ended_by_the_server_and_its_locks_freed(pg_server):
    """A server process that hangs (or is stopped) mid-transaction holds its locks, and every
    writer queues behind them: PostgreSQL ends the session after the idle limit instead."""
    engine = make_engine(pg_server.url(), limits=DatabaseLimits(idle_in_transaction_timeout=0.5))
    try:
        with engine.connect() as stuck:
            stuck.execute(text("CREATE TABLE IF NOT EXISTS idle_probe (id int PRIMARY KEY)"))
            stuck.execute(text("INSERT INTO idle_probe VALUES (1) ON CONFLICT DO NOTHING"))
            stuck.commit()
            stuck.execute(text("SELECT id FROM idle_probe WHERE id = 1 FOR UPDATE")).all()
            time.sleep(1.5)  # the server's own limit at work: no clock of ours to inject
            probe = create_engine(pg_server.url(), isolation_level="AUTOCOMMIT")
            with probe.connect() as writer:  # the row is free again: NOWAIT would fail at once if it were held
                assert writer.execute(text("SELECT id FROM idle_probe WHERE id = 1 FOR UPDATE NOWAIT")).scalar_one() == 1
            probe.dispose()
            with pytest.raises(DBAPIError) as ended:  # the stuck side learns its transaction is gone
                stuck.execute(text("SELECT 1")).all()
            assert is_session_ended(ended.value)
    finally:
        engine.dispose()


@pytest.mark.parametrize("db_limits", [{"TZXM_DB_IDLE_IN_TRANSACTION_TIMEOUT": "0.5"}])
def test_a_request_whose_session_the_server_ended_answers_503_and_keeps_nothing(app, token, platform, database_url):
    """A request stalled mid-transaction past the idle limit (a hung dependency, a paused
    process): the server ends its session; the request answers 503 like a lost connection,
    not 500, and nothing it did is kept."""
    if not database_url.startswith("postgresql"):
        pytest.skip("idle_in_transaction_session_timeout is PostgreSQL's")
    from api.transaction import session

    def stalled():
        session().execute(text("UPDATE users SET display_name = '改过' WHERE username = 'drc'"))
        time.sleep(1.5)  # stalled past the server's idle limit (its own time, not ours to inject)
        session().execute(text("SELECT 1"))
        return {"done": True}

    app.add_url_rule("/test/stalled", view_func=stalled, methods=["POST"])
    r = app.test_client().post("/test/stalled")
    assert r.status_code == 503, r.get_json()
    assert r.headers["Retry-After"] == "1"
    assert r.get_json()["message"] == "数据库暂不可用，请稍后重试 (database unavailable)"
    with platform.session_factory() as s:
        assert s.scalar(select(User.display_name).where(User.username == "drc")) != "改过"
    assert app.test_client().get("/api/v1/projects", headers=token("drc")).status_code == 200  # the pool has healed


class _SlowBody(io.BytesIO):
    """A client sending its upload slowly, a packet at a time: it stalls half-way for
    longer than the idle limit."""

    def __init__(self, data: bytes, stall: float) -> None:
        super().__init__(data)
        self.half, self.stall = len(data) // 2, stall

    def _packet(self, size: int) -> int:
        if self.stall and self.tell() >= self.half:
            time.sleep(self.stall)
            self.stall = 0
        return min(size if size >= 0 else 4096, 4096)

    def read(self, size: int = -1) -> bytes:
        return super().read(self._packet(size))

    def readinto(self, buffer) -> int:
        view = memoryview(buffer)
        return super().readinto(view[:self._packet(len(view))])


@pytest.mark.parametrize("db_limits", [{"TZXM_DB_IDLE_IN_TRANSACTION_TIMEOUT": "0.5"}])
def test_a_slow_upload_is_read_before_its_transaction_begins(client, token, database_url):
    """The request's body is read before it signs in (the first statement): a client that
    takes longer than the idle limit to send its file still has it stored."""
    if not database_url.startswith("postgresql"):
        pytest.skip("idle_in_transaction_session_timeout is PostgreSQL's")
    code = client.post("/api/v1/projects", json=declaration(**LAND_PROJECT), headers=token("applicant")).get_json()["project_code"]
    fields = {"matter_code": "land_pre_review", "material": "application_form",
              "file": (io.BytesIO(TINY_PDF + b"%" + b"0" * 20000 + b"\n"), "申请表.pdf")}
    body, content_type = _multipart(fields)
    r = client.post(f"/api/v1/projects/{code}/materials", headers=token("applicant"), content_type=content_type,
                    input_stream=_SlowBody(body, stall=1.5), content_length=len(body))
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["filename"] == "申请表.pdf"


def _multipart(fields: dict) -> tuple[bytes, str]:
    """The bytes a browser sends for a multipart form (werkzeug's own encoder)."""
    environ = EnvironBuilder(method="POST", data=fields).get_environ()
    return environ["wsgi.input"].read(), environ["CONTENT_TYPE"]
