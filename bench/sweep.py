"""The sweep's cost grows with what is due, not with what is open: one sweep over
10,000, 100,000 and 1,000,000 open clocks with 1,000 of them due, on PostgreSQL.

    .venv/bin/python -m bench.sweep [--sizes 10000,100000,1000000] [--due 1000] [--runs 5]
"""
from __future__ import annotations

import argparse
from datetime import timedelta

from sqlalchemy import text

from bench.common import START, median, postgres, prepare, timed
from engine import runtime
from engine.access import Actor
from engine.clock import ManualClock
from engine.db import unit_of_work
from engine.models import User
from engine.platform import Platform
from engine.projects import PlatformScope
from engine.sweep import sweep

NOW = START + timedelta(days=30)


def _fill(engine, project_id: int, project_code: str, open_clocks: int, due: int) -> None:
    """open_clocks running clocks; the first ``due`` have their yellow threshold passed."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alerts"))
        conn.execute(text("DELETE FROM clocks"))
        conn.execute(text("""
            INSERT INTO clocks (kind, project_id, project_code, matter_code, department_code, instance_id, scope_id,
                                started_at, limit_days, yellow_fraction, pauses, yellow_at, due_at, state, light,
                                next_check_at, calendar_provisional, version)
            SELECT 'promised', :pid, :code, 'eia_approval', 'env', NULL, NULL,
                   :start, 30, 0.8, '[]',
                   CASE WHEN g <= :due THEN :now - interval '1 hour' ELSE :now + interval '20 days' END,
                   :now + interval '25 days', 'running', 'green',
                   CASE WHEN g <= :due THEN :now - interval '1 hour' ELSE :now + interval '20 days' END,
                   false, 1
            FROM generate_series(1, :n) AS g
        """), {"pid": project_id, "code": project_code, "start": START, "now": NOW, "due": due, "n": open_clocks})
        conn.execute(text("ANALYZE clocks"))


def _reset_due(engine, due: int) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alerts"))
        conn.execute(text("""UPDATE clocks SET light = 'green', next_check_at = yellow_at
                             WHERE id IN (SELECT id FROM clocks ORDER BY id LIMIT :due)"""), {"due": due})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
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
    print(f"one sweep on PostgreSQL with {args.due:,} clocks due (median of {args.runs})")
    base = results[sizes[0]]
    for size in sizes:
        print(f"  {size:>9,} open clocks: {results[size] * 1000:8.1f} ms   ratio to {sizes[0]:,}: {results[size] / base:5.2f}x")


if __name__ == "__main__":
    main()
