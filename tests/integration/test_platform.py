"""The API shell: health, OpenAPI, JSON errors, migrations, the console script."""
from __future__ import annotations

from datetime import date

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import select

from api.cli import main
from engine.db import Base, make_engine
from engine.models import PlatformState, User
from engine.sweep import sweep


def test_health_reports_database_migrations_and_last_sweep(client, platform, clock):
    body = client.get("/api/v1/health").get_json()
    assert body["status"] == "ok" and body["database"] and body["migrations_at_head"]
    assert body["last_sweep_at"] is None and body["clock"] == "manual"
    sweep(platform)
    body = client.get("/api/v1/health").get_json()
    assert body["last_sweep_at"].startswith(clock.now().date().isoformat())


def test_health_says_whether_next_years_schedule_is_loaded(client, token, clock):
    """chinese-calendar knows 2026 at most: late in 2026 the operator must load 2027 as
    soon as it is published; health says so, so monitoring can tell them."""
    import io
    from datetime import datetime, timezone

    clock.set(datetime(2026, 11, 24, 1, tzinfo=timezone.utc))
    body = client.get("/api/v1/health").get_json()
    assert body["status"] == "ok" and body["calendar_next_year_loaded"] is False
    r = client.post("/api/v1/admin/calendar/years", headers=token("operator"), content_type="multipart/form-data",
                    data={"file": (io.BytesIO("year 2027\n2027-01-01 holiday 元旦\n".encode()), "2027.txt")})
    assert r.status_code == 201, r.get_json()
    assert client.get("/api/v1/health").get_json()["calendar_next_year_loaded"] is True
    clock.set(datetime(2025, 6, 1, tzinfo=timezone.utc))
    assert client.get("/api/v1/health").get_json()["calendar_next_year_loaded"] is True  # 2026 came with the library


def test_openapi_document_lists_every_endpoint_with_bearer_security(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert {"/api/v1/projects", "/api/v1/auth/token", "/api/v1/health", "/api/v1/codes/{code}/verify",
            "/api/v1/projects/{code}/history"} <= set(spec["paths"])
    assert "bearerAuth" in spec["components"]["securitySchemes"]
    assert spec["paths"]["/api/v1/health"]["get"]["security"] == []
    assert "#/components/schemas/Declaration" in str(spec["paths"]["/api/v1/projects"]["post"])
    assert spec["security"] == [{"bearerAuth": []}]
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and b"swagger" in docs.data.lower()


def test_the_docs_page_loads_everything_from_the_platform_itself(client):
    """A platform on a network without internet access (政务外网) shows its API docs: the
    page names no other host, and each file it loads is served by the platform."""
    import re
    from urllib.parse import urljoin

    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert "http://" not in page and "https://" not in page
    assets = [urljoin("/api/v1/docs", a) for a in re.findall(r'(?:src|href)="([^"]+)"', page)]
    assert {a.rsplit("/", 1)[-1] for a in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
    for asset in assets:
        r = client.get(asset)
        assert r.status_code == 200 and len(r.data) > 1000, asset
    assert client.get("/api/v1/docs/assets/../config.py").status_code == 404


def test_the_docs_page_behind_a_path_prefix_finds_its_files_and_document(client):
    """A proxy mounting the platform under /tzxm (SCRIPT_NAME): the page's files and the
    OpenAPI document are named under the prefix, not at the host's root."""
    import re
    from urllib.parse import urljoin

    page = client.get("/api/v1/docs", base_url="http://localhost/tzxm").get_data(as_text=True)
    named = [urljoin("/tzxm/api/v1/docs", a) for a in re.findall(r'(?:src|href)="([^"]+)"', page)]
    named += re.findall(r'url: "([^"]+)"', page)
    assert named and all(n.startswith("/tzxm/api/v1/") for n in named), named
    assert "/tzxm/api/v1/openapi.json" in named


def test_openapi_document_is_valid_openapi_and_types_decimals_as_strings(client):
    """Integrators generate clients from it: it must validate, and say what travels. A
    decimal travels as a string (investment "12000.5000"), its bounds in words."""
    from openapi_spec_validator import validate

    spec = client.get("/api/v1/openapi.json").get_json()
    validate(spec)
    schemas = spec["components"]["schemas"]
    for schema, field in (("Declaration", "investment"), ("Project", "investment"), ("Clock", "limit_days")):
        prop = schemas[schema]["properties"][field]
        assert (prop["type"], prop["format"]) == ("string", "decimal") and "minimum" not in prop, (schema, prop)
    assert "不小于 0" in schemas["Declaration"]["properties"]["investment"]["description"]
    for upload in ("/api/v1/admin/calendar/years", "/api/v1/procedures", "/api/v1/projects/{code}/materials"):
        assert "multipart/form-data" in spec["paths"][upload]["post"]["requestBody"]["content"], upload
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            responses = operation["responses"]
            success = [code for code in responses if code.startswith("2")]
            assert success and all("content" in responses[code] or code == "204" for code in success), (method, path)
            if operation.get("security") != []:  # signed in: API.md's refusals are documented
                expected = {"401", "403"} | ({"404"} if "{" in path else set()) | ({"409"} if method != "get" else set())
                assert expected <= set(responses), (method, path, sorted(responses))
    complete = spec["paths"]["/api/v1/tasks/{task_id}/complete"]["post"]["responses"]
    assert complete["409"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_errors_are_json_never_html(client, token, app):
    r = client.get("/api/v1/no-such-thing")
    assert r.status_code == 404 and r.is_json and r.get_json()["code"] == 404
    r = client.delete("/api/v1/projects", headers=token("applicant"))
    assert r.status_code == 405 and r.is_json


def test_an_unexpected_error_is_a_json_500_without_a_trace(database_url, clock):
    from api import create_app

    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "k" * 40, "TZXM_CLOCK_OBJECT": clock,
                      "TZXM_PLATFORM_REGION": "510411", "TZXM_SWEEP_SECONDS": 1})

    @app.route("/api/v1/boom")
    def boom():
        raise RuntimeError("secret internals")

    r = app.test_client().get("/api/v1/boom")
    assert r.status_code == 500 and r.is_json
    assert "secret internals" not in r.get_data(as_text=True) and "Traceback" not in r.get_data(as_text=True)
    app.extensions["tzxm_engine"].dispose()


def test_models_and_migrations_agree(database_url):
    engine = make_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diff == []


def test_console_script_seed_is_idempotent_and_create_user_checks_strength(database_url, monkeypatch, platform):
    monkeypatch.setenv("DATABASE_URL", database_url)
    runner = CliRunner()
    seeded = runner.invoke(main, ["seed-demo"])
    assert seeded.exit_code == 0 and "0 accounts created" in seeded.output
    weak = runner.invoke(main, ["create-user", "--username", "newofficer", "--display-name", "新经办",
                                "--role", "officer", "--department", "land"], env={"TZXM_PASSWORD": "short"})
    assert weak.exit_code == 2 and "password" in weak.output
    ok = runner.invoke(main, ["create-user", "--username", "newofficer", "--display-name", "新经办",
                              "--role", "officer", "--department", "land"], env={"TZXM_PASSWORD": "Zhengwu-2026!"})
    assert ok.exit_code == 0, ok.output
    with platform.session_factory() as s:
        user = s.scalar(select(User).where(User.username == "newofficer"))
    assert user.roles == ["officer"] and user.password_hash.startswith("$argon2")
    upgraded = runner.invoke(main, ["db", "upgrade"])
    assert upgraded.exit_code == 0


def test_sweep_command_records_the_sweep(database_url, monkeypatch, platform):
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert CliRunner().invoke(main, ["sweep"]).exit_code == 0
    with platform.session_factory() as s:
        assert s.get(PlatformState, "last_sweep_at") is not None


def test_reference_data(client, token):
    regions = client.get("/api/v1/reference/regions", headers=token("applicant")).get_json()
    assert [r["code"] for r in regions] == ["510000", "510400", "510411"]
    industries = client.get("/api/v1/reference/industries", headers=token("applicant")).get_json()
    assert len(industries) == 97 and industries[0]["code"] == "01"
    depts = {d["code"]: d["name"] for d in client.get("/api/v1/reference/departments", headers=token("drc")).get_json()}
    assert {"window", "drc", "land", "env", "housing", "water", "supervision"} <= set(depts)


def test_unknown_query_parameters_are_refused(client, token):
    r = client.get("/api/v1/tasks?projectcode=2026", headers=token("drc"))
    assert r.status_code == 422 and "projectcode" in r.get_json()["errors"]
    assert client.get("/api/v1/projects?page=1", headers=token("drc")).status_code == 200


def test_a_query_parameter_given_twice_is_refused_not_read_as_its_first_value(client, token):
    r = client.get("/api/v1/tasks?light=red&light=green", headers=token("drc"))
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["errors"] == {"light": ["只能给一个值，不能重复 (given more than once; it takes one value)"]}
    r = client.get("/api/v1/projects?page=1&page=1", headers=token("drc"))
    assert r.status_code == 422 and list(r.get_json()["errors"]) == ["page"]


def test_deploy_and_calendar_commands(database_url, monkeypatch, tmp_path, platform):
    monkeypatch.setenv("DATABASE_URL", database_url)
    runner = CliRunner()
    deployed = runner.invoke(main, ["deploy", "bpmn"])
    assert deployed.exit_code == 0 and "project_master v1 unchanged" in deployed.output
    schedule = tmp_path / "2027.txt"
    schedule.write_text("year 2027\n2027-01-01 holiday 元旦\n2027-02-07 workday 调休上班\n", encoding="utf-8")
    loaded = runner.invoke(main, ["calendar", "load", str(schedule)])
    assert loaded.exit_code == 0 and "calendar 2027 loaded" in loaded.output
    bad = tmp_path / "bad.txt"
    bad.write_text("year 2027\n2028-01-01 holiday 元旦\n", encoding="utf-8")
    refused = runner.invoke(main, ["calendar", "load", str(bad)])
    assert refused.exit_code == 2 and "file" in refused.output
    from engine import calendar

    with platform.session_factory() as s:
        cal = calendar.current(s)
    assert cal.is_loaded(2027) and not cal.is_workday(date(2027, 1, 1))


def test_the_newest_migration_goes_down_and_up_again_keeping_every_row(client, token, platform, database_url, clock):
    """Backing out a release: 0007 (an account's token version) and 0006 (a clock's calendar
    revision) go down and up again on a database with clocks and the alerts that refer to
    them, and keep every row."""
    from alembic import command

    from engine import calendar
    from engine.health import alembic_config
    from engine.models import Alert, Clock
    from tests.integration.helpers import declare

    declare(client, token)
    clock.advance(days=3)
    sweep(platform)  # the dispatch clock turns yellow, then red: alerts
    with platform.session_factory() as s:
        clocks_before = s.execute(select(Clock.id, Clock.due_at, Clock.state).order_by(Clock.id)).all()
        alerts_before = s.scalars(select(Alert.id).order_by(Alert.id)).all()
    assert alerts_before and clocks_before
    command.downgrade(alembic_config(database_url), "0005")
    command.upgrade(alembic_config(database_url), "head")
    with platform.session_factory() as s:
        assert s.execute(select(Clock.id, Clock.due_at, Clock.state).order_by(Clock.id)).all() == clocks_before
        assert s.scalars(select(Alert.id).order_by(Alert.id)).all() == alerts_before
        revision = calendar.current(s).revision
        assert {c.calendar_revision for c in s.scalars(select(Clock).where(Clock.state != "stopped"))} <= {revision}
