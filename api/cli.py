"""The `tzxm` console script: serve, db upgrade, seed-demo, seed-organisation, import-organisation, sweep, sweeper,
create-user, audit verify, files prune."""
from __future__ import annotations

import getpass
import json
import os
import signal
import sys
import threading
from datetime import timedelta
from pathlib import Path

import click
from alembic.util.exc import CommandError
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from api import create_app, request_id
from api.config import from_environment, platform_region
from api.scheduler import run_sweeper, start_sweeper
from engine import accounts, audit, calendar, files, organisation_file, seed
from engine.access import Actor
from engine.clock import SystemClock
from engine.db import make_engine, make_session_factory, retrying, unit_of_work
from engine.errors import DomainError
from engine.health import upgrade
from engine.platform import Platform
from engine.procedures import deploy_directory
from engine.projects import PlatformScope
from engine.settings import ConfigurationError, default_database_url
from engine.sweep import calendar_loaded, sweep


def _factory():
    return make_session_factory(make_engine(default_database_url()))


class _Commands(click.Group):
    """What the operator got wrong in the environment, or a database that cannot serve, is
    said on one line, not as a traceback (nothing of the URL: a password may be in it)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ConfigurationError as exc:
            raise click.ClickException(f"configuration: {exc}") from None
        except OperationalError as exc:
            first = str(exc.orig or exc).strip().splitlines()[0]
            raise click.ClickException(f"database error: {first}") from None
        except IntegrityError as exc:  # checked before writing, yet written meanwhile by another process
            first = str(exc.orig or exc).strip().splitlines()[0]
            raise click.ClickException(f"database refused the change, nothing was changed ({first}): another process "
                                       "made a conflicting change at the same moment; run the command again") from None


@click.group(cls=_Commands)
def main() -> None:
    """投资项目在线审批监管平台 (investment project online approval and supervision platform)."""


@main.group()
def db() -> None:
    """Database schema (alembic migrations are the only way it changes)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Upgrade the database to the newest migration (or ``--revision``) and, at the newest,
    store the official calendar's years."""
    try:
        at, years = upgrade(default_database_url(), revision)
    except CommandError as exc:
        raise click.ClickException(f"revision {revision!r}: {exc}") from None
    click.echo(f"database at {at}" + (f"; calendar years {years[0]}–{years[-1]} stored" if years else ""))


@main.command("seed-demo")
def seed_demo() -> None:
    """Seed the demo accounts and organisation of API.md (idempotent)."""
    password = os.environ.get("TZXM_DEMO_PASSWORD", "demo-password")
    now = SystemClock().now()
    created = retrying(_factory(), lambda session: seed.seed_demo(session, now=now, password=password), what="seeding the demo")
    click.echo(f"demo seeded: {len(created)} accounts created" + (f" ({', '.join(created)})" if created else ""))


@main.command("seed-organisation")
def seed_organisation() -> None:
    """Seed the regions, departments, catalogue of matters and guides, without any account
    (a production start; idempotent)."""
    now = SystemClock().now()
    retrying(_factory(), lambda session: seed.seed_organisation(session, now=now), what="seeding the organisation")
    click.echo("organisation seeded: regions, departments, catalogue of matters, service guides")


@main.command("import-organisation")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="check the file and say what it would do; write nothing")
def import_organisation(path: str, dry_run: bool) -> None:
    """Import another region's organisation from a JSON file: regions, departments and the
    catalogue of matters (engine/organisation_file.py; new entries created, names updated,
    all or nothing)."""
    operator, now = Actor.system("cli"), SystemClock().now()
    try:
        document = organisation_file.parse(Path(path).read_bytes())
        report = retrying(_factory(), lambda session: organisation_file.import_organisation(
            session, document, actor=operator, now=now, dry_run=dry_run), what=f"importing {path}")
    except DomainError as exc:
        _refuse(exc)
    verb = "would be" if dry_run else "were"
    for section, created in report.created.items():
        updated = report.updated[section]
        click.echo(f"{section}: {len(created)} {verb} created{_listed(created)}, {len(updated)} {verb} updated"
                   f"{_listed(updated)}, {report.unchanged[section]} unchanged")


@main.command("export-organisation")
def export_organisation() -> None:
    """Print the organisation the database holds as an organisation file (JSON, UTF-8): what
    import-organisation takes, e.g. as the start of another region's file."""
    with _factory()() as session:
        document = organisation_file.export(session)
    click.echo(json.dumps(document, ensure_ascii=False, indent=1))


def _listed(codes: list[str]) -> str:
    return f" ({', '.join(codes)})" if codes else ""


@main.command("create-user")
@click.option("--username", required=True)
@click.option("--display-name", required=True)
@click.option("--role", "roles", multiple=True, required=True, help="repeat for several roles")
@click.option("--department", default=None, help="department code (officials)")
@click.option("--project-unit", type=int, default=None, help="project unit id (applicants)")
def create_user(username, display_name, roles, department, project_unit) -> None:
    """Create an account; the password is read from TZXM_PASSWORD or asked for."""
    password = os.environ.get("TZXM_PASSWORD") or getpass.getpass("password: ")
    now = SystemClock().now()
    try:
        retrying(_factory(), lambda session: accounts.create_user(
            session, now=now, actor="cli", username=username, password=password,
            display_name=display_name, roles=list(roles), department_code=department, project_unit_id=project_unit,
        ), what=f"creating the user {username}")
    except DomainError as exc:
        _refuse(exc)
    click.echo(f"created {username}")


@main.command("create-unit")
@click.option("--name", required=True)
@click.option("--credit-code", required=True, help="统一社会信用代码")
@click.option("--contact-name", default="")
@click.option("--contact-phone", default="")
def create_unit(name, credit_code, contact_name, contact_phone) -> None:
    """Register a project unit (its credit code is checked)."""
    now = SystemClock().now()
    try:
        unit_id = retrying(_factory(), lambda session: accounts.create_project_unit(
            session, now=now, actor="cli", name=name, credit_code=credit_code,
            contact_name=contact_name, contact_phone=contact_phone,
        ).id, what=f"registering the unit {credit_code}")
    except DomainError as exc:
        _refuse(exc)
    click.echo(f"created project unit {unit_id}")


def _refuse(exc: DomainError) -> None:
    """The refusal, then each problem on a line of its own, named by its field."""
    click.echo(f"refused: {exc.message}", err=True)
    for field, msgs in exc.errors.items():
        click.echo(f"  {field}: {'; '.join(msgs)}", err=True)
    sys.exit(2)


@main.command("deploy")
@click.argument("directory", type=click.Path(exists=True, file_okay=False), default="bpmn")
def deploy(directory: str) -> None:
    """Deploy every .bpmn and .dmn file of a folder (identical content is a no-op)."""
    operator, now = Actor.system("cli"), SystemClock().now()

    def work(session) -> list[str]:
        results = deploy_directory(session, actor=operator, now=now, region=platform_region(), directory=Path(directory))
        return [f"{r.procedure.process_id} v{r.procedure.version} {'deployed' if r.created else 'unchanged'}" for r in results]

    try:
        lines = retrying(_factory(), work, what=f"deploying {directory}")
    except DomainError as exc:
        _refuse(exc)
    click.echo("\n".join(lines))


@main.group("calendar")
def calendar_group() -> None:
    """The official calendar (working days, 调休)."""


@calendar_group.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def calendar_load(path: str) -> None:
    """Load or correct a year's schedule from a simple text file; open clocks are recomputed."""
    try:
        now, text = SystemClock().now(), Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise click.ClickException(f"{path} is not UTF-8 text (save the schedule as UTF-8)") from None

    def load(session):  # it locks every instance with an open clock: a deadlock is done again
        year = calendar.load_year_text(session, text, now=now, actor="cli", source=path)
        return year, calendar_loaded(session, now)

    try:
        year, rearmed = retrying(_factory(), load, what=f"loading the calendar from {path}")
    except DomainError as exc:
        _refuse(exc)
    click.echo(f"calendar {year} loaded; {rearmed} instances re-armed")


@main.group("files")
def files_group() -> None:
    """The file store (materials, notice PDFs) under TZXM_FILES_DIR."""


@files_group.command("prune")
@click.option("--older-than-hours", type=click.IntRange(min=1), default=24, show_default=True,
              help="only files untouched this long (a request in flight touches its file)")
@click.option("--force", is_flag=True, help="prune even when the database names none of the store's files or the store is bound to "
                   "another platform's database; the store is bound to this one from then on")
def files_prune(older_than_hours: int, force: bool) -> None:
    """Delete the files no row names: left by requests that rolled back, or by a crash mid-write."""
    older_than = SystemClock().now() - timedelta(hours=older_than_hours)
    try:
        with unit_of_work(_factory()) as session:
            pruned = files.store().prune(session, older_than=older_than, force=force)
    except DomainError as exc:
        _refuse(exc)
    click.echo(f"{len(pruned)} unreferenced files deleted" + "".join(f"\n  {name}" for name in pruned))


@main.group("audit")
def audit_group() -> None:
    """The audit trail (痕迹管理)."""


@audit_group.command("verify")
def audit_verify() -> None:
    """Walk the hash chain and report the first edited, inserted or deleted event."""
    with unit_of_work(_factory()) as session:
        result = audit.verify(session)
    if result.ok:
        click.echo(f"audit trail intact: {result.checked} events")
        return
    click.echo(f"audit trail broken at event {result.first_bad_seq}: {result.problem}", err=True)
    sys.exit(1)


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=lambda: os.environ.get("PORT", "8000"),
              show_default="$PORT or 8000")
def serve(host: str, port: int) -> None:
    """Serve the API (with the clock sweep scheduled) on Werkzeug's threaded server."""
    request_id.configure_logging()
    app = create_app()
    start_sweeper(app)
    click.echo(f"API docs: http://{host}:{port}/api/v1/docs   OpenAPI: http://{host}:{port}/api/v1/openapi.json")
    try:  # only for the banner: a database not up yet is served anyway (health says 503 until it is)
        with unit_of_work(app.extensions["tzxm"].session_factory) as session:
            demo = seed.demo_accounts(session)
    except SQLAlchemyError:
        demo = []
    if demo:
        click.echo("demo accounts (password demo-password unless TZXM_DEMO_PASSWORD is set): " + ", ".join(demo))
    app.run(host=host, port=port, threaded=True, use_reloader=False)


@main.command("sweeper")
def sweeper() -> None:
    """Sweep every TZXM_SWEEP_SECONDS in the foreground until stopped (SIGTERM or Ctrl-C,
    after the sweep under way): the clock's own process beside a production WSGI server
    serving api.wsgi, which does not sweep. Several may run: they share the work."""
    request_id.configure_logging()
    app = create_app()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    click.echo(f"sweeping every {app.config['TZXM_SWEEP_SECONDS']:g} s (stop with SIGTERM or Ctrl-C)")
    sweeps = run_sweeper(app, stop)
    click.echo(f"sweeper stopped after {sweeps} sweeps")


@main.command("sweep")
def sweep_once() -> None:
    """Run one sweep now."""
    config = from_environment()
    platform = Platform(_factory(), SystemClock(), PlatformScope(config["TZXM_PLATFORM_REGION"]), config["SECRET_KEY"])
    report = sweep(platform)
    click.echo(f"sweep at {report.at}: {report.fired or 'nothing due'}")
