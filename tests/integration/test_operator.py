"""The operator's journey: settings refused in one line naming them, the console script's
errors without tracebacks, a production start without the demo, what health reports,
and a request id to find an unexpected error by (the operator review, session 13)."""
from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from api import config
from api.cli import main
from engine.db import DatabaseLimits
from engine.models import Department, Matter, User
from engine.settings import ConfigurationError
from engine.sweep import sweep


@pytest.mark.parametrize("name, value, says", [
    ("TZXM_SWEEP_SECONDS", "-5", "TZXM_SWEEP_SECONDS must be above zero"),
    ("TZXM_SWEEP_SECONDS", "0", "TZXM_SWEEP_SECONDS must be above zero"),
    ("TZXM_SWEEP_SECONDS", "nan", "TZXM_SWEEP_SECONDS must be a finite number"),
    ("TZXM_SWEEP_SECONDS", "abc", "TZXM_SWEEP_SECONDS must be a number"),
    ("TZXM_CLOCK", "bogus", "TZXM_CLOCK must be one of system, manual"),
    ("TZXM_PLATFORM_REGION", "仁和区", "TZXM_PLATFORM_REGION must be a 6-digit region code"),
    ("TZXM_PLATFORM_NAME", "吉林省投资项目\n在线审批监管平台", "TZXM_PLATFORM_NAME must be one line"),
    ("TZXM_PLATFORM_NAME", "平" * 41, "TZXM_PLATFORM_NAME must be one line of at most 40"),
    ("TZXM_PLATFORM_REGION", "５１０４１１", "TZXM_PLATFORM_REGION must be a 6-digit region code"),
    ("TZXM_CLOCK_START", "2026-09-30T09:00:00", "TZXM_CLOCK_START must be an ISO 8601 instant with its UTC offset"),
    ("TZXM_CLOCK_START", "bogus", "TZXM_CLOCK_START must be an ISO 8601 instant"),
    ("SECRET_KEY", "x", "SECRET_KEY must be at least 32 bytes"),
])
def test_a_bad_setting_is_refused_naming_it(monkeypatch, name, value, says):
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=says) as refused:
        config.from_environment()
    assert "\n" not in str(refused.value)  # one line, for the console script to print


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1.5x"])
def test_database_limits_refuse_what_is_not_a_finite_number(monkeypatch, value):
    monkeypatch.setenv("TZXM_DB_LOCK_TIMEOUT", value)
    with pytest.raises(ConfigurationError, match="TZXM_DB_LOCK_TIMEOUT must be"):
        DatabaseLimits.from_environment()
    monkeypatch.setenv("TZXM_DB_LOCK_TIMEOUT", "2.5")
    assert DatabaseLimits.from_environment().lock_timeout == 2.5


def test_the_console_script_says_a_bad_setting_on_one_line(database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    monkeypatch.setenv("TZXM_SWEEP_SECONDS", "-5")
    result = CliRunner().invoke(main, ["sweep"])
    assert result.exit_code == 1, result.output
    assert result.output.strip() == "Error: configuration: TZXM_SWEEP_SECONDS must be above zero, not '-5'"


def test_a_port_out_of_range_or_not_a_number_is_refused_before_serving(monkeypatch):
    result = CliRunner().invoke(main, ["serve", "--port", "99999"])
    assert result.exit_code == 2 and "99999 is not in the range 1<=x<=65535" in result.output, result.output
    monkeypatch.setenv("PORT", "abc")
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 2 and "'abc' is not a valid integer" in result.output, result.output
    assert "Traceback" not in result.output


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("url, says", [
    ("bogus://nowhere", "DATABASE_URL cannot be used: NoSuchModuleError"),
    ("postgresql://user:secret@host:notaport/db", "DATABASE_URL cannot be used: ValueError"),
    ("mysql://user:secret@host/db", "DATABASE_URL cannot be used: ModuleNotFoundError"),
    (f"postgresql+psycopg://postgres:secret@127.0.0.1:{_closed_port()}/none", "database error: connection failed"),
])
def test_a_database_url_that_cannot_serve_is_said_on_one_line(monkeypatch, url, says):
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("TZXM_DB_CONNECT_TIMEOUT", "2")
    result = CliRunner().invoke(main, ["audit", "verify"])
    assert result.exit_code == 1 and says in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "secret" not in result.output


def test_a_database_not_migrated_is_a_database_error_not_unreachable(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'not-migrated.sqlite3'}")
    result = CliRunner().invoke(main, ["seed-demo"])
    assert result.exit_code == 1 and result.output.strip().startswith("Error: database error: no such table"), result.output


def test_an_empty_setting_is_taken_as_unset(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    for name in ("TZXM_CLOCK", "TZXM_CLOCK_START", "TZXM_SWEEP_SECONDS", "TZXM_DB_LOCK_TIMEOUT"):
        monkeypatch.setenv(name, "")  # an env file's NAME=
    settings = config.from_environment()
    assert (settings["TZXM_CLOCK"], settings["TZXM_CLOCK_START"], settings["TZXM_SWEEP_SECONDS"]) == ("system", None, 5.0)
    assert DatabaseLimits.from_environment().lock_timeout == DatabaseLimits().lock_timeout


def test_db_upgrade_says_where_the_database_is(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    first = CliRunner().invoke(main, ["db", "upgrade", "--revision", "0001"])
    assert first.exit_code == 0 and first.output.strip() == "database at 0001", first.output  # no calendar before its table
    newest = CliRunner().invoke(main, ["db", "upgrade"])
    assert newest.exit_code == 0 and "calendar years 2004–2026 stored" in newest.output, newest.output
    head = newest.output.split()[2].rstrip(";")
    older = CliRunner().invoke(main, ["db", "upgrade", "--revision", "0005"])  # upgrade never goes back
    assert older.exit_code == 0 and older.output.strip() == f"database at {head}", older.output
    unknown = CliRunner().invoke(main, ["db", "upgrade", "--revision", "9999"])
    assert unknown.exit_code == 1 and "revision '9999'" in unknown.output and "Traceback" not in unknown.output


def test_a_calendar_file_not_in_utf8_or_listing_no_day_is_refused_on_one_line(database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", database_url)
    schedule = tmp_path / "2027.txt"
    schedule.write_bytes("year 2027\n2027-01-01 holiday 元旦\n".encode("gb18030"))
    result = CliRunner().invoke(main, ["calendar", "load", str(schedule)])
    assert result.exit_code == 1 and "is not UTF-8 text" in result.output, result.output
    schedule.write_text("# 2027 国务院办公厅节假日安排\nyear 2027\n", encoding="utf-8")  # cut short
    result = CliRunner().invoke(main, ["calendar", "load", str(schedule)])
    assert result.exit_code == 2 and "lists no day" in result.output, result.output


def test_a_production_start_seeds_the_organisation_without_any_account(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'production.sqlite3'}"
    monkeypatch.setenv("DATABASE_URL", url)
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    seeded = runner.invoke(main, ["seed-organisation"])
    assert seeded.exit_code == 0, seeded.output
    assert runner.invoke(main, ["seed-organisation"]).exit_code == 0  # idempotent
    created = runner.invoke(main, ["create-user", "--username", "ops1", "--display-name", "运维", "--role", "operator",
                                   "--department", "operator"], env={"TZXM_PASSWORD": "Zhengwu-2026!"})
    assert created.exit_code == 0, created.output
    deployed = runner.invoke(main, ["deploy", "bpmn"])
    assert deployed.exit_code == 0 and "project_master v1 deployed" in deployed.output, deployed.output
    from engine.db import make_engine, make_session_factory
    engine = make_engine(url)
    with make_session_factory(engine)() as s:
        assert list(s.scalars(select(User.username))) == ["ops1"]  # no demo account, no shared password
        assert s.get(Department, "land") is not None and s.get(Matter, "land_pre_review") is not None
    engine.dispose()


def test_health_tells_a_schema_behind_from_a_database_gone_and_a_stopped_sweep(client, platform, clock):
    body = client.get("/api/v1/health").get_json()
    assert body["sweep_behind"] is None  # unknown before the first sweep (a process just started)
    sweep(platform)
    assert client.get("/api/v1/health").get_json()["sweep_behind"] is False
    clock.set(clock.now() + timedelta(minutes=2))
    assert client.get("/api/v1/health").get_json()["sweep_behind"] is True
    with platform.session_factory() as s:
        s.execute(text("UPDATE alembic_version SET version_num = '0001'"))
        s.commit()
    r = client.get("/api/v1/health")
    assert r.status_code == 503 and r.get_json()["database"] is True, r.get_json()
    assert r.get_json()["migration"] == "0001" and r.get_json()["migrations_at_head"] is False


def test_an_unexpected_error_gives_a_request_id_to_find_it_by(client, token, platform, caplog):
    with platform.session_factory() as s:  # a stored setting no release wrote: reading it fails unexpectedly
        s.execute(text("INSERT INTO platform_state (key, value) VALUES ('yellow_fractions', 'not json')"))
        s.commit()
    r = client.get("/api/v1/admin/yellow-fractions", headers={**token("operator"), "X-Request-Id": "lb-7f3a"})
    assert r.status_code == 500, r.get_json()
    assert r.get_json()["request_id"] == "lb-7f3a" and "lb-7f3a" in r.get_json()["message"]
    assert r.headers["X-Request-Id"] == "lb-7f3a"
    assert any("lb-7f3a" in record.getMessage() for record in caplog.records)
    error = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]["Error"]
    assert set(r.get_json()) <= set(error["properties"])  # the documented Error shape, request_id included
    ok = client.get("/api/v1/health", headers={"X-Request-Id": "not plain; <script>"})
    assert ok.headers["X-Request-Id"] != "not plain; <script>" and len(ok.headers["X-Request-Id"]) == 32


def test_a_served_log_line_names_its_request(app):
    import logging

    from api.request_id import RequestContext
    record = logging.LogRecord("api", logging.ERROR, __file__, 1, "unhandled error", (), None)
    RequestContext().filter(record)
    assert record.request == "-"  # outside a request (the sweep)
    with app.test_request_context("/api/v1/tasks", method="POST", headers={"X-Request-Id": "lb-42"}):
        app.preprocess_request()
        RequestContext().filter(record)
    assert record.request == "lb-42 POST /api/v1/tasks"
    with app.test_request_context("/x%0A2026-11-24 INFO api [-] forged", headers={"X-Request-Id": "lb-43"}):
        app.preprocess_request()
        RequestContext().filter(record)
    assert "\n" not in record.request and record.request.startswith("lb-43 GET /x\\x0a2026")
