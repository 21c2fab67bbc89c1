"""The sweep's cost grows with what is due, not with what is open, on PostgreSQL:

1. clock rows: one sweep over 10,000, 100,000 and 1,000,000 open clocks with 1,000 of
   them due (each turns yellow on its row: a clock no diagram watches);
2. light timers: 10,000, 100,000 and 1,000,000 open instances of which 1,000 are real
   matters (a filing at ``filing_check``, an EIA at ``pre_check``) whose diagram's
   yellow timer is due: the first sweep (the clock-row step lights all 1,000 at once;
   at most ``engine.sweep.BATCH`` timers fire per sweep, each a workflow step: restore,
   fire, ``record_light``, save), and the sweeps until every timer has fired.

    .venv/bin/python -m bench.sweep [--sizes 10000,100000,1000000] [--due 1000] [--runs 5]
                                    [--due-timers 1000] [--timer-runs 3]
"""
from __future__ import annotations

import argparse
import time
from datetime import timedelta

from sqlalchemy import text

from bench.common import START, median, postgres, prepare, timed
from bench.engine import ANSWERS, DECLARATION
from engine import runtime
from engine.access import Actor
from engine.clock import ManualClock
from engine.db import unit_of_work
from engine.models import Task, User
from engine.platform import Platform
from engine.projects import PlatformScope
from engine.sweep import sweep

NOW = START + timedelta(days=30)


def _fill(engine, project_id: int, project_code: str, open_clocks: int, due: int) -> None:
    """open_clocks running clocks computed on the calendar in force; the first ``due``
    have their yellow threshold passed."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alerts"))
        conn.execute(text("DELETE FROM clocks"))
        conn.execute(text("""
            INSERT INTO clocks (kind, project_id, project_code, matter_code, department_code, instance_id, scope_id,
                                started_at, limit_days, yellow_fraction, pauses, yellow_at, due_at, state, light,
                                next_check_at, calendar_provisional, calendar_revision, version)
            SELECT 'promised', :pid, :code, 'eia_approval', 'env', NULL, NULL,
                   :start, 30, 0.8, '[]',
                   CASE WHEN g <= :due THEN :now - interval '1 hour' ELSE :now + interval '20 days' END,
                   :now + interval '25 days', 'running', 'green',
                   CASE WHEN g <= :due THEN :now - interval '1 hour' ELSE :now + interval '20 days' END,
                   false, (SELECT value FROM platform_state WHERE key = 'calendar_revision'), 1
            FROM generate_series(1, :n) AS g
        """), {"pid": project_id, "code": project_code, "start": START, "now": NOW, "due": due, "n": open_clocks})
        conn.execute(text("ANALYZE clocks"))


def _reset_due(engine, due: int) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alerts"))
        conn.execute(text("""UPDATE clocks SET light = 'green', next_check_at = yellow_at
                             WHERE id IN (SELECT id FROM clocks ORDER BY id LIMIT :due)"""), {"due": due})


#: Two matters (企业投资项目备案, 环评): the filing and pre-review clocks run 3 working days, yellow at 2.4.
TWO_MATTERS = {**DECLARATION, "new_land_use": False, "environment_sensitive": False, "building_works": False}
#: What the light-timer part saves and puts back between runs (the rows a firing writes).
_SNAPSHOTS = {
    "process_instances": "id, state, next_timer_at, version",
    "clocks": "id, light, next_check_at, version",
    "tasks": "id, light, version",
    "project_matters": "id, light",
}


def _waiting_matters(engine, platform: Platform, n: int) -> None:
    """Projects declared at START, dispatched and replied until n matters wait at their
    first task with their clock running and its light timers armed."""
    factory = platform.session_factory
    with factory() as s:
        users = [Actor.of(u) for u in s.query(User)]
    applicant = next(a for a in users if a.username == "applicant")
    officers = {a.department_code: a for a in users if a.has("officer", "window_officer")}
    while _count(engine, "SELECT count(*) FROM process_instances WHERE kind = 'matter'") < n:
        with unit_of_work(factory) as s:
            code = runtime.declare(s, actor=applicant, scope=platform.scope, now=START, fields=dict(TWO_MATTERS)).project_code
        for element in ("window_review", "department_reply"):
            with factory() as s:
                ready = [(t.id, t.version, t.department_code, dict(t.context)) for t in s.query(Task).filter_by(
                    project_code=code, element_id=element, status="ready")]
            for task_id, version, department, context in ready:
                with unit_of_work(factory) as s:
                    runtime.complete_task(s, actor=officers[department], task_id=task_id, data=ANSWERS[element](context),
                                          version=version, now=START)


def _count(engine, sql: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def _fill_instances(engine, open_instances: int) -> None:
    """Open instances whose next timer is far away (never loaded by the sweep), up to
    ``open_instances`` in all."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM process_instances WHERE state = '{}'"))
        have = conn.execute(text("SELECT count(*) FROM process_instances WHERE status = 'running'")).scalar()
        conn.execute(text("""
            INSERT INTO process_instances (project_id, procedure_version_id, kind, matter_code, status, state,
                                           serializer_version, next_timer_at, created_at, updated_at, version)
            SELECT project_id, procedure_version_id, kind, matter_code, 'running', '{}', serializer_version,
                   :far, created_at, updated_at, 1
            FROM (SELECT * FROM process_instances WHERE kind = 'matter' LIMIT 1) AS model, generate_series(1, :n)
        """), {"far": NOW + timedelta(days=365), "n": max(0, open_instances - have)})
        conn.execute(text("ANALYZE process_instances"))


def _snapshot(engine, restore: bool) -> None:
    with engine.begin() as conn:
        for table, columns in _SNAPSHOTS.items():
            if restore:
                sets = ", ".join(f"{c} = b.{c}" for c in columns.split(", ")[1:])
                conn.execute(text(f"UPDATE {table} AS t SET {sets} FROM bench_{table} AS b WHERE t.id = b.id"))
            else:
                conn.execute(text(f"DROP TABLE IF EXISTS bench_{table}"))
                conn.execute(text(f"CREATE TABLE bench_{table} AS SELECT {columns} FROM {table}"))
        if restore:
            conn.execute(text("DELETE FROM alerts"))


def bench_light_timers(url: str, sizes: list[int], due: int, runs: int) -> dict[int, tuple[float, float, int, int]]:
    """Per size of open instances (medians): the first sweep after the timers came due
    (it fires at most ``engine.sweep.BATCH`` of them; the clock-row step lights the
    rest at once), the sweeps until every timer has fired, how many timers, how many sweeps."""
    engine, factory = prepare(url)
    platform = Platform(factory, ManualClock(START), PlatformScope("510411"), "bench-secret" * 4)
    _waiting_matters(engine, platform, due)
    due = _count(engine, "SELECT count(*) FROM process_instances WHERE kind = 'matter'")
    with engine.connect() as conn:
        yellow = conn.execute(text("SELECT max(yellow_at) FROM clocks WHERE state = 'running'")).scalar()
    platform.clock.set(yellow + timedelta(minutes=1))
    _snapshot(engine, restore=False)
    results = {}
    for size in sizes:
        _fill_instances(engine, size)
        first, total, sweeps = [], [], 0
        for _ in range(runs):
            _snapshot(engine, restore=True)
            fired, sweeps = 0, 0
            t0 = time.perf_counter()
            while True:
                report = sweep(platform)
                sweeps += 1
                if sweeps == 1:
                    first.append(time.perf_counter() - t0)
                    assert _count(engine, "SELECT count(*) FROM alerts WHERE light = 'yellow'") == due  # lit at once
                if not report.fired.get("timers"):
                    break
                fired += report.fired["timers"]
            total.append(time.perf_counter() - t0)
            alerts = _count(engine, "SELECT count(*) FROM alerts WHERE light = 'yellow'")
            assert fired == due and alerts == due, (fired, alerts)
        results[size] = (median(first), median(total), due, sweeps)
    engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--due-timers", type=int, default=1000)
    parser.add_argument("--timer-runs", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {}
    with postgres() as url:
        engine, factory = prepare(url)
        clock = ManualClock(NOW)
        platform = Platform(factory, clock, PlatformScope("510411"), "bench-secret" * 4)
        with unit_of_work(factory) as s:
            applicant = Actor.of(s.query(User).filter_by(username="applicant").one())
            project = runtime.declare(s, actor=applicant, scope=platform.scope, now=START, fields={
                "name": "基准", "regime": "filing", "region_code": "510411", "industry_code": "44", "location": "仁和区",
                "investment": "100", "construction_content": "厂房", "start_year": 2026, "end_year": 2027, "classified": False})
            pid, code = project.id, project.project_code
        for size in sizes:
            _fill(engine, pid, code, size, args.due)
            sweep(platform)  # warm
            runs = []
            for _ in range(args.runs):
                _reset_due(engine, args.due)
                runs.extend(timed(lambda: sweep(platform), 1))
            with engine.connect() as conn:
                yellow = conn.execute(text("SELECT count(*) FROM alerts WHERE light = 'yellow'")).scalar()
            assert yellow == args.due, yellow
            results[size] = median(runs)
        engine.dispose()
    with postgres() as url:
        timers = bench_light_timers(url, sizes, args.due_timers, args.timer_runs)
    print(f"one sweep on PostgreSQL with {args.due:,} clocks due (median of {args.runs})")
    base = results[sizes[0]]
    for size in sizes:
        print(f"  {size:>9,} open clocks: {results[size] * 1000:8.1f} ms   ratio to {sizes[0]:,}: {results[size] / base:5.2f}x")
    print(f"PostgreSQL with {args.due_timers:,} diagram light timers due (median of {args.timer_runs})")
    base = timers[sizes[0]][0]
    for size in sizes:
        first, total, fired, sweeps = timers[size]
        print(f"  {size:>9,} open instances: first sweep {first * 1000:8.1f} ms (ratio to {sizes[0]:,}: {first / base:5.2f}x)"
              f"   all {fired:,} timers fired in {sweeps} sweeps, {total * 1000:8.1f} ms, {total / fired * 1000:5.2f} ms per timer")

if __name__ == "__main__":
    main()
