"""Reads at a province's volume: every list and statistics read of the API, and the
sweep, on a PostgreSQL database filled like a province after three years.

    .venv/bin/python -m bench.scale [--projects 100000] [--runs 20]

At ``--projects 100000`` (the default) the database holds 100,000 projects over 21
cities and 165 districts, 500,000 project matters, 600,000 instances, about a million
tasks (100,000 open), five million audit events, a million materials, 400,000 clocks,
alerts, notices, holds, commitments, supervision records, implementation reports and
deliveries (bench/scale/*.sql, every size proportional to ``--projects``). Each read is
made through the Flask test client by the reader it is for (the province's, a city's
and the district's supervisor, an officer, the operator, an applicant, the public
portal) at the fill's instant, 2026-11-20 10:00 Shanghai; the sweep is run with nothing
due and with a few hundred clocks due.

One line per read: median and 95th percentile of ``--runs`` runs (after one warm-up;
a read slower than the time budget stops after three), the SQL statements it made, its
HTTP status. FAIL marks a status other than the one expected, SLOW a median over
50 ms. Exits 1 when any read failed, 2 when the fill did (printing the SQL).
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import event, select, text

from bench.common import median, percentile, postgres, prepare

FILL_DIR = Path(__file__).with_name("scale")
#: The fill's instant: projects were declared in the three years before it.
NOW = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)
SECRET = "bench-scale-secret-0123456789abcdef0123456789"
SLOW_MS = 50.0
#: A read slower than this in total stops after MIN_RUNS timed runs.
BUDGET_SECONDS = 10.0
MIN_RUNS = 3
#: Clocks made due for the second sweep (a busy minute's lights, not a function of size).
DUE_CLOCKS = 300
#: Helper tables the fill builds and drops.
HELPERS = ("h_district", "h_proj", "h_pm", "h_pconc")
READERS = ("prov_supervisor", "city_supervisor", "supervisor", "env", "window", "operator", "applicant")


class FillError(RuntimeError):
    """The fill could not run on this schema: the message names the file and the SQL."""


# ---------------------------------------------------------------- the fill

def fill_files() -> list[Path]:
    return sorted(FILL_DIR.glob("*.sql"))


def statements(sql: str) -> list[str]:
    """A fill file's statements: each ends with ``;`` at the end of a line (the files keep
    to that; no statement has a semicolon at a line's end inside it)."""
    out = []
    for chunk in re.split(r";[ \t]*(?:\n|$)", sql):
        body = "\n".join(line for line in chunk.splitlines() if not line.strip().startswith("--")).strip()
        if body:
            out.append(body)
    return out


def render(sql: str, projects: int) -> str:
    return sql.replace("@projects@", str(projects)).replace("@units@", str(max(1, projects * 3 // 10)))


INSERT = re.compile(r"INSERT\s+INTO\s+(\w+)\s*\(([^)]*)\)", re.IGNORECASE)


def check_schema(cursor, files: list[Path]) -> None:
    """Every column the fill names exists, and every column of a table it fills that has
    no default is named: a column added by a migration must be given a value (or an
    explicit NULL) in bench/scale/, not left out unnoticed."""
    named: dict[str, set[str]] = {}
    for path in files:
        for table, columns in INSERT.findall(path.read_text(encoding="utf-8")):
            if not table.startswith("h_"):
                named.setdefault(table, set()).update(c.strip() for c in columns.split(","))
    problems = []
    for table, columns in sorted(named.items()):
        cursor.execute("SELECT column_name, column_default FROM information_schema.columns "
                       "WHERE table_schema = current_schema() AND table_name = %s", (table,))
        actual = dict(cursor.fetchall())
        if not actual:
            problems.append(f"table {table} does not exist")
            continue
        if unknown := sorted(columns - actual.keys()):
            problems.append(f"{table}: the fill names columns the table lacks: {', '.join(unknown)}")
        if unset := sorted(c for c, default in actual.items() if c not in columns and default is None):
            problems.append(f"{table}: columns without a default the fill does not set: {', '.join(unset)}")
    if problems:
        raise FillError("bench/scale/*.sql does not match the schema at the migrations' head:\n  " + "\n  ".join(problems))


def fill(engine, projects: int) -> list[tuple[str, float]]:
    """Run the fill files on one connection (foreign keys and triggers off, as a bulk
    load); then drop the helper tables and VACUUM ANALYZE. Returns each file's seconds."""
    files = fill_files()
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        conn.autocommit = True
        cursor = conn.cursor()
        check_schema(cursor, files)
        cursor.execute("SET session_replication_role = replica")
        timings = []
        for path in files:
            t0 = time.perf_counter()
            for n, sql in enumerate(statements(render(path.read_text(encoding="utf-8"), projects)), 1):
                try:
                    cursor.execute(sql)  # no parameters: psycopg passes the text as it is ('%' is modulo)
                except Exception as exc:
                    raise FillError(f"bench/scale/{path.name}, statement {n} failed: {exc}\n{sql}") from exc
            timings.append((path.name, time.perf_counter() - t0))
        t0 = time.perf_counter()
        cursor.execute("DROP TABLE " + ", ".join(HELPERS))
        cursor.execute("RESET session_replication_role")
        cursor.execute("VACUUM ANALYZE")
        timings.append(("VACUUM ANALYZE", time.perf_counter() - t0))
        return timings
    finally:
        raw.invalidate()  # closed, not pooled: its session settings are the fill's


def row_counts(engine, projects: int) -> dict[str, int]:
    """The filled tables' sizes; a fill whose joins lost rows (a matter whose procedure is
    not deployed, say) fails here rather than measuring a smaller province."""
    tables = ("projects", "project_matters", "process_instances", "tasks", "audit_events", "materials", "clocks", "alerts",
              "notices", "holds", "material_commitments", "supervision_records", "implementation_reports", "deliveries")
    with engine.connect() as conn:
        counts = {t: conn.scalar(text(f"SELECT count(*) FROM {t}")) for t in tables}
        counts["open tasks"] = conn.scalar(text("SELECT count(*) FROM tasks WHERE status = 'ready'"))
    expected = {"projects": projects, "project_matters": 5 * projects, "process_instances": 6 * projects,
                "materials": 10 * projects}
    if wrong := {t: (counts[t], n) for t, n in expected.items() if counts[t] != n}:
        raise FillError("the fill left tables short (table: rows, expected): "
                        + ", ".join(f"{t}: {got:,}, {n:,}" for t, (got, n) in wrong.items()))
    return counts


# ---------------------------------------------------------------- measuring

@dataclass
class Measured:
    name: str
    median_ms: float
    p95_ms: float
    runs: int
    statements: int
    status: str
    ok: bool
    error: str = ""

    @property
    def flags(self) -> str:
        return " ".join(f for f, on in (("FAIL", not self.ok), ("SLOW", self.median_ms > SLOW_MS)) if on)


class StatementCounter:
    """Counts the statements the application's engine sends while ``on``."""

    def __init__(self, engine) -> None:
        self.on = False
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *args) -> None:
        if self.on:
            self.count += 1


def measure(name: str, fn: Callable, counter: StatementCounter, runs: int,
            status_of: Callable[[object], tuple[str, bool]], before: Callable[[], None] = lambda: None) -> Measured:
    """One warm-up, then ``runs`` timed runs (fewer when slow, at least MIN_RUNS), each
    after ``before`` (neither timed nor counted); the statements are the first run's. A
    read that raises (the test client passes a view's exception on) is a FAIL line with
    the exception, and the other reads go on."""
    times, statements_, result = [], None, None
    try:
        before()
        fn()
        for _ in range(runs):
            before()
            counter.count, counter.on = 0, True
            t0 = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - t0)
            counter.on = False
            statements_ = counter.count if statements_ is None else statements_
            if sum(times) > BUDGET_SECONDS and len(times) >= MIN_RUNS:
                break
    except Exception as exc:  # noqa: BLE001 - reported on its line; the benchmark goes on
        counter.on = False
        first = (str(exc).splitlines() or [""])[0][:300]
        return Measured(name, math.nan, math.nan, len(times), counter.count, type(exc).__name__, False, first)
    status, ok = status_of(result)
    return Measured(name, median(times) * 1000, percentile(times, 95) * 1000, len(times), statements_, status, ok)


def print_line(m: Measured) -> None:
    print(f"{m.name:62s} {m.median_ms:9.1f} {m.p95_ms:9.1f} {m.runs:4d} {m.statements:6d}  {m.status:>6s}  {m.flags}", flush=True)
    if m.error:
        print(f"    {m.error}", flush=True)


def print_header() -> None:
    print(f"{'read':62s} {'median ms':>9s} {'p95 ms':>9s} {'runs':>4s} {'stmts':>6s}  {'status':>6s}  flags")


# ---------------------------------------------------------------- the reads

@dataclass(frozen=True)
class Samples:
    """Projects the per-project reads look at."""

    renhe: str  # a concluded project of 仁和区 (the demo departments')
    renhe_open: str  # a dispatched one
    mine: str  # one of the demo applicant's
    other: str  # a concluded project of another district
    legacy: str  # a legacy code


def samples(engine) -> Samples:
    with engine.connect() as c:
        one = lambda sql: c.scalar(text(sql))  # noqa: E731
        return Samples(
            renhe=one("SELECT project_code FROM projects WHERE region_code = '510411' AND status = 'concluded' ORDER BY id LIMIT 1"),
            renhe_open=one("SELECT project_code FROM projects WHERE region_code = '510411' AND status = 'dispatched' ORDER BY id LIMIT 1"),
            mine=one("SELECT project_code FROM projects WHERE project_unit_id = 1 ORDER BY id LIMIT 1"),
            other=one("SELECT project_code FROM projects WHERE region_code <> '510411' AND status = 'concluded' ORDER BY id DESC LIMIT 1"),
            legacy=one("SELECT legacy_code FROM projects WHERE legacy_code IS NOT NULL ORDER BY id LIMIT 1"),
        )


def reads(s: Samples, projects: int) -> list[tuple[str, str | None, str, int]]:
    """(name, reader or None for the public, path under /api/v1, expected status). The deep
    pages are as deep in proportion at every size (page 2,500 of the projects and 1,000
    of the approvals at 100,000 projects)."""
    year = "from=2026-01-01&to=2026-11-20"
    deep, deep_approvals = max(2, projects // 40), max(2, projects // 100)
    r = [
        ("projects list p1", "prov_supervisor", "/projects"),
        ("projects list p1 status=dispatched", "prov_supervisor", "/projects?status=dispatched"),
        ("projects list p1 page_size=200", "prov_supervisor", "/projects?page_size=200"),
        (f"projects list p{deep}", "prov_supervisor", f"/projects?page={deep}"),
        ("projects list p1", "env", "/projects"),
        ("projects list p1", "operator", "/projects"),
        ("projects list p1", "applicant", "/projects"),
        ("project by code", "env", f"/projects/{s.renhe}"),
        ("project by legacy code", "operator", f"/projects/{s.legacy}"),
        ("project history p1", "env", f"/projects/{s.renhe}/history"),
        ("project history p1", "applicant", f"/projects/{s.mine}/history"),
        ("project materials", "env", f"/projects/{s.renhe}/materials"),
        ("project commitments", "env", f"/projects/{s.renhe}/materials/commitments"),
        ("project implementation", "env", f"/projects/{s.renhe}/implementation"),
        ("project supervision-records", "env", f"/projects/{s.renhe}/supervision-records"),
        ("project intermediaries", "env", f"/projects/{s.renhe}/intermediaries"),
        ("project EIA intermediaries", "env", f"/projects/{s.renhe}/matters/eia_approval/intermediaries"),
        ("code verify", "env", f"/codes/{s.renhe}/verify"),
        ("alerts p1", "prov_supervisor", "/alerts"),
        ("alerts light=red p1", "prov_supervisor", "/alerts?light=red"),
        ("alerts p1", "city_supervisor", "/alerts"),
        ("alerts p1", "supervisor", "/alerts"),
        ("alerts p1", "env", "/alerts"),
        ("alerts p1", "operator", "/alerts"),
        ("alerts project_code=", "prov_supervisor", f"/alerts?project_code={s.other}"),
        ("tasks p1", "env", "/tasks"),
        ("tasks light=red", "env", "/tasks?light=red"),
        ("tasks project_code=", "env", f"/tasks?project_code={s.renhe_open}"),
        ("tasks mine=true", "env", "/tasks?mine=true"),
        ("tasks matter_code=eia_approval", "env", "/tasks?matter_code=eia_approval"),
        ("tasks p1", "applicant", "/tasks"),
        ("tasks p1", "window", "/tasks"),
        ("instances status=error", "operator", "/instances?status=error"),
        ("instances all", "operator", "/instances"),
        ("instances status=running", "operator", "/instances?status=running"),
        ("users", "operator", "/users"),
        ("procedures", "operator", "/procedures"),
        ("calendar years", "operator", "/admin/calendar/years"),
        ("yellow fractions", "operator", "/admin/yellow-fractions"),
        ("reference regions", "env", "/reference/regions"),
        ("reference departments", "env", "/reference/departments"),
        ("reference industries", "env", "/reference/industries"),
        ("health", None, "/health"),
        ("supervision summary month", "prov_supervisor", "/supervision/summary"),
        ("supervision summary year", "prov_supervisor", f"/supervision/summary?{year}"),
        ("supervision summary month", "city_supervisor", "/supervision/summary"),
        ("supervision summary month", "supervisor", "/supervision/summary"),
        ("supervision summary year", "env", f"/supervision/summary?{year}"),
        ("supervision summary.csv month", "prov_supervisor", "/supervision/summary.csv"),
        ("supervision summary.xlsx month", "supervisor", "/supervision/summary.xlsx"),
        ("supervision scores 2026-10", "prov_supervisor", "/supervision/scores?period=2026-10"),
        ("supervision scores 2026-10", "supervisor", "/supervision/scores?period=2026-10"),
        ("supervision risks", "prov_supervisor", "/supervision/risks"),
        ("supervision risks", "supervisor", "/supervision/risks"),
        ("supervision risks", "env", "/supervision/risks"),
        ("supervision forecast p1", "prov_supervisor", "/supervision/forecast"),
        ("supervision forecast p1", "env", "/supervision/forecast"),
        ("supervision rectifications", "prov_supervisor", "/supervision/rectifications"),
        ("supervision rectifications overdue", "prov_supervisor", "/supervision/rectifications?overdue=true"),
        ("supervision rectifications", "env", "/supervision/rectifications"),
        ("supervision projects.csv month", "prov_supervisor", "/supervision/projects.csv?from=2026-11-01&to=2026-11-20"),
        ("supervision projects.csv all", "supervisor", "/supervision/projects.csv"),
        ("supervision projects.csv all", "prov_supervisor", "/supervision/projects.csv"),
        ("supervision projects.xlsx month", "prov_supervisor", "/supervision/projects.xlsx?from=2026-11-01&to=2026-11-20"),
        ("portal project by code", None, f"/portal/projects/{s.other}"),
        ("portal guides", None, "/portal/guides"),
        ("portal guide versions", None, "/portal/guides/eia_approval/versions"),
        ("portal regime matters", None, "/portal/regimes/approval/matters"),
        ("portal approvals p1", None, "/portal/disclosure/approvals"),
        ("portal approvals p1 region=510400", None, "/portal/disclosure/approvals?region=510400"),
        ("portal approvals p1 region=510411", None, "/portal/disclosure/approvals?region=510411"),
        ("portal approvals p1 department=env", None, "/portal/disclosure/approvals?department=env"),
        ("portal approvals p1 matter=eia from=2026-01-01", None,
         "/portal/disclosure/approvals?matter_code=eia_approval&from=2026-01-01"),
        (f"portal approvals p{deep_approvals}", None, f"/portal/disclosure/approvals?page={deep_approvals}"),
        ("portal approvals.atom", None, "/portal/disclosure/approvals.atom"),
        ("portal supervision p1", None, "/portal/disclosure/supervision"),
        ("portal supervision p1 region=510411", None, "/portal/disclosure/supervision?region=510411"),
        ("portal supervision.atom", None, "/portal/disclosure/supervision.atom"),
        ("portal penalties p1", None, "/portal/disclosure/penalties"),
        ("portal penalties.atom", None, "/portal/disclosure/penalties.atom"),
    ]
    out = [(name, who, path, 200) for name, who, path in r]
    out.append(("portal project unknown code", None, "/portal/projects/2026-510411-44-03-999999", 404))
    return out


def tokens(platform, names) -> dict[str, dict[str, str]]:
    from engine.accounts import issue_token
    from engine.models import User

    with platform.session_factory() as s:
        return {u.username: {"Authorization": f"Bearer {issue_token(u, now=NOW, secret=SECRET).access_token}"}
                for u in s.scalars(select(User).where(User.username.in_(names)))}


def http_status(expected: int):
    def status_of(response) -> tuple[str, bool]:
        return str(response.status_code), response.status_code == expected
    return status_of


# ---------------------------------------------------------------- the sweep

def measure_sweeps(platform, engine, counter: StatementCounter, runs: int) -> list[Measured]:
    """The sweep with nothing due (anything it fires fails the line: the fill is meant to
    leave nothing due), then with DUE_CLOCKS running clocks past their yellow instant,
    made due again (their alerts deleted) before every run. The database is thrown away
    after, so they are not put back."""
    from engine.sweep import sweep

    def nothing_due(report) -> tuple[str, bool]:
        return ("none" if not report.fired else ",".join(f"{k}={v}" for k, v in report.fired.items())), not report.fired

    nothing = measure("sweep, nothing due", lambda: sweep(platform), counter, runs, nothing_due)
    passed = NOW - timedelta(hours=1)
    with engine.connect() as c:
        ids = list(c.scalars(text("SELECT id FROM clocks WHERE state = 'running' AND light = 'green' "
                                  "AND next_check_at IS NOT NULL ORDER BY id LIMIT :n"), {"n": DUE_CLOCKS}))

    def make_due() -> None:
        with engine.begin() as c:
            c.execute(text("DELETE FROM alerts WHERE clock_id = ANY(:ids) AND at = :t"), {"ids": ids, "t": passed})
            c.execute(text("UPDATE clocks SET light = 'green', yellow_at = :t, next_check_at = :t WHERE id = ANY(:ids)"),
                      {"ids": ids, "t": passed})

    def lit(report) -> tuple[str, bool]:
        return f"alerts={report.fired.get('alerts', 0)}", report.fired == {"alerts": len(ids)}

    return [nothing, measure(f"sweep, {len(ids)} clocks due", lambda: sweep(platform), counter, runs, lit, before=make_due)]


# ---------------------------------------------------------------- main

def run(url: str, projects: int, runs: int) -> int:
    from api import create_app
    from engine.clock import ManualClock

    t0 = time.perf_counter()
    engine, _ = prepare(url)
    try:
        timings = fill(engine, projects)
        counts = row_counts(engine, projects)
        with engine.connect() as c:
            settings = {k: c.execute(text(f"SHOW {k}")).scalar() for k in ("shared_buffers", "work_mem")}
    finally:
        engine.dispose()
    fill_seconds = time.perf_counter() - t0
    print(f"fill: {projects:,} projects in {fill_seconds:.0f} s ("
          + ", ".join(f"{name} {sec:.1f} s" for name, sec in timings) + ")")
    print("rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    print(f"PostgreSQL: shared_buffers {settings['shared_buffers']}, work_mem {settings['work_mem']}; "
          f"instant {NOW.isoformat()}; {runs} runs a read after one warm-up")

    app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": SECRET, "TZXM_CLOCK_OBJECT": ManualClock(NOW),
                      "TZXM_PLATFORM_REGION": "510411", "TZXM_SWEEP_SECONDS": 1000,
                      "TZXM_PORTAL_RATE": "1000000/second"})  # the portal's rate limit is not what is measured
    app_engine, platform = app.extensions["tzxm_engine"], app.extensions["tzxm"]
    client = app.test_client()
    counter = StatementCounter(app_engine)
    headers = tokens(platform, READERS)
    if missing := set(READERS) - headers.keys():
        raise FillError(f"readers missing after the fill: {sorted(missing)}")
    results = []
    print_header()
    try:
        for name, who, path, expected in reads(samples(app_engine), projects):
            get = lambda path=path, who=who: client.get("/api/v1" + path, headers=headers[who] if who else {})  # noqa: E731
            m = measure(f"{name} [{who or 'public'}]", get, counter, runs, http_status(expected))
            print_line(m)
            results.append(m)
        for m in measure_sweeps(platform, app_engine, counter, runs):
            print_line(m)
            results.append(m)
    finally:
        app_engine.dispose()
    failed = [m.name for m in results if not m.ok]
    slow = [m.name for m in results if m.median_ms > SLOW_MS]
    print(f"{len(results)} reads: {len(failed)} FAIL, {len(slow)} SLOW (median over {SLOW_MS:.0f} ms); "
          f"total {time.perf_counter() - t0:.0f} s")
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--projects", type=int, default=100_000, help="projects to fill (at least 1000; default 100000)")
    parser.add_argument("--runs", type=lambda t: max(1, int(t)), default=20, help="timed runs a read (default 20)")
    args = parser.parse_args()
    if args.projects < 1000:
        parser.error("--projects must be at least 1000 (the fill's proportions need that many)")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("TZXM_FILES_DIR", str(Path(tmp) / "files"))
        with postgres() as url:
            try:
                code = run(url, args.projects, args.runs)
            except FillError as exc:
                print(f"FILL FAILED: {exc}", file=sys.stderr)
                code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
