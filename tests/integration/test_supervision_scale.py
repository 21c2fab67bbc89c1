"""E-supervision's summary and forecast at a province's volume (scale review): what they
send the database must not grow with the data, and the handling time they read as
stored (``engine.handling``) must be the figure they would compute.

The summary and the forecast run on the e-supervision world of test_supervision_api
(hand-built rows, figures worked out by hand there), then again after ``grow`` has added
more concluded projects (and open ones) in 仁和区. The statements sent are captured with
``before_cursor_execute``: their number and each one's count of bound parameters must be
the same both times. A list of ids sent back as ``IN (...)`` (one parameter each) grows
with the data and fails beyond 65,535 parameters on PostgreSQL; a read per row grows the
statement count. The answers after growth are checked against the figures by hand.

Each grown round (Asia/Shanghai, March 2026, no holiday): a project declared Mon 2 Mar
09:00, conclusion notice Fri 6 Mar 09:00 (4.0 working days), with
- enterprise_filing (drc): received and accepted Mon 2 Mar 10:00, concluded Tue 3 Mar
  10:00 = 1.0 day, filing clock due Thu 5 Mar → on time;
- land_pre_review (land): received 2 Mar 10:00, accepted Tue 3 Mar 09:00 after a
  correction (acceptance clock paused), concluded Thu 5 Mar 09:00 = 2.0 days, promised
  clock due 17 Mar → on time, a yellow record on 4 Mar;
- water's reply clock red and stopped by the timer (an automatic reply);
and an open project declared Fri 20 Mar whose land matter's promised clock, due Mon 30
Mar, is still running (overdue now).
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from engine import calendar, handling, supervision
from engine.db import unit_of_work
from engine.models import Project, ProjectMatter
from tests.integration.helpers import actor, statements
from tests.integration.test_supervision_api import (  # noqa: F401  (world is a fixture)
    NOW, P1, P2, P3, _alert, _clock, _matter, _notice, _project, at, world,
)

MARCH = {"start": at(2026, 3, 1).date(), "end": at(2026, 3, 31).date()}
ROUNDS = 4


def store_figures(platform) -> None:
    """What the sweep does: store the handling time of every concluded matter lacking it
    (the world's rows are inserted without it)."""
    with unit_of_work(platform.session_factory) as s:
        handling.refresh(s, calendar.current(s), now=NOW, limit=10_000)


@pytest.fixture
def stored(world, platform):
    store_figures(platform)
    return platform


def grow(platform, count: int = ROUNDS) -> list[str]:
    """``count`` rounds as the module docstring says; returns the concluded projects' codes."""
    codes = []
    with unit_of_work(platform.session_factory) as s:
        for k in range(100, 100 + count):
            p = _project(s, f"2026-510411-30-01-{k:06d}", "510411", at(2026, 3, 2, 9), "concluded")
            _matter(s, p, "enterprise_filing", "drc", "concluded", at(2026, 3, 2, 10), at(2026, 3, 2, 10), at(2026, 3, 3, 10))
            _matter(s, p, "land_pre_review", "land", "concluded", at(2026, 3, 2, 10), at(2026, 3, 3, 9), at(2026, 3, 5, 9))
            _clock(s, p, "filing", "drc", "enterprise_filing", at(2026, 3, 2, 10), "3", at(2026, 3, 5, 10),
                   stopped=at(2026, 3, 3, 10))
            _clock(s, p, "acceptance", "land", "land_pre_review", at(2026, 3, 2, 12), "5", at(2026, 3, 10, 8),
                   stopped=at(2026, 3, 3, 9), pauses=[(at(2026, 3, 2, 12), at(2026, 3, 3, 8), "correction")])
            promised = _clock(s, p, "promised", "land", "land_pre_review", at(2026, 3, 3, 9), "10", at(2026, 3, 17, 9),
                              light="yellow", stopped=at(2026, 3, 5, 9))
            _alert(s, promised, "yellow", at(2026, 3, 4, 9))
            _clock(s, p, "reply", "water", None, at(2026, 3, 2, 10), "3", at(2026, 3, 5, 10), light="red",
                   stopped=at(2026, 3, 5, 10, 0, 1))
            _notice(s, p, f"RH-JG-2026-{k:04d}", at(2026, 3, 6, 9))
            codes.append(p.project_code)

            q = _project(s, f"2026-510411-30-01-{k + 500:06d}", "510411", at(2026, 3, 20, 9) + timedelta(minutes=k),
                         "dispatched")
            _matter(s, q, "land_pre_review", "land", "handling", at(2026, 3, 20, 10), at(2026, 3, 20, 10))
            _clock(s, q, "promised", "land", "land_pre_review", at(2026, 3, 20, 10), "5", at(2026, 3, 30, 9),
                   light="red", state="running")
    store_figures(platform)
    return codes


def run(app, platform, read):
    """``read(session)``'s answer and the bound-parameter count of each statement it sent
    (after a first run that warms the process's calendar cache)."""
    with platform.session_factory() as session:
        read(session)
    with platform.session_factory() as session, statements(app) as sent:
        answer = read(session)
    return answer, [count for _, count in sent]


def by(rows, key):
    return {row[key]: row for row in rows}


# --- bounded SQL ----------------------------------------------------------------------------------

@pytest.mark.parametrize("username", ["city_supervisor", "land"])
def test_the_summary_sends_the_same_statements_however_many_matters(app, platform, stored, username):
    reader = actor(platform, username)

    def read(s):
        return supervision.summary(s, reader, now=NOW, **MARCH)

    before, shape = run(app, platform, read)
    grown = grow(platform)
    after, shape_after = run(app, platform, read)
    assert shape_after == shape, (shape, shape_after)
    assert sum(shape) < 200  # the scope (a region's subtree) and the period: nothing per row

    land_before, land = by(before["departments"], "department")["land"], by(after["departments"], "department")["land"]
    assert (land_before["received"], land_before["concluded"], land_before["correction_request_rate"]) == (2, 1, 0.5)
    n = ROUNDS
    # a round: a concluded land matter accepted after a correction and an open one
    assert (land["received"], land["accepted"], land["concluded"], land["concluded_on_time"]) \
        == (2 + 2 * n, 2 + 2 * n, 1 + n, 1 + n)
    assert (land["yellow_records"], land["red_records"], land["overdue_now"]) == (n, 1, 1 + n)
    assert land["correction_request_rate"] == round((1 + n) / (2 + 2 * n), 4)
    assert land["mean_handling_days"] == round((2.5 + 2.0 * n) / (1 + n), 2) and land["p90_handling_days"] == 2.5
    assert [p["project_code"] for p in after["projects"]] == (
        [*grown, P1] if username == "land" else [*grown, P1, P3])
    assert {p["project_code"]: p["working_days"] for p in after["projects"]}[grown[0]] == 4.0
    if username == "city_supervisor":
        depts = by(after["departments"], "department")
        drc = depts["drc"]
        # 4.0, 1.0, 1.0 and a 1.0 a round: nearest-rank p90 of 7 values is the 7th, 4.0
        assert (drc["received"], drc["concluded"], drc["concluded_on_time"]) == (3 + n, 3 + n, 2 + n)
        assert (drc["mean_handling_days"], drc["p90_handling_days"]) == (round((6 + n) / (3 + n), 2), 4.0)
        assert (depts["water"]["automatic_replies"], depts["water"]["late_replies"]) == (1 + n, 0)
        assert by(after["matters"], "matter_code")["land_pre_review"]["concluded"] == 1 + n
    else:
        assert [d["department"] for d in after["departments"]] == ["land"]


def test_the_forecast_sends_the_same_statements_however_many_projects(app, platform, stored):
    reader = actor(platform, "supervisor")

    def read(s):
        return supervision.forecast(s, reader, now=NOW, page=1, page_size=20)

    (before, total_before), shape = run(app, platform, read)
    grown = grow(platform)
    (after, total), shape_after = run(app, platform, read)
    assert shape_after == shape, (shape, shape_after)
    assert sum(shape) < 100

    assert (total_before, total) == (1, 1 + ROUNDS)
    assert [p["project_code"] for p in before] == [P2]
    assert after[0]["project_code"] == P2 and len(after) == 1 + ROUNDS
    assert not set(grown) & {p["project_code"] for p in after}  # concluded: not forecast
    land = by(after[0]["basis"], "matter_code")["land_pre_review"]
    # land's history: P1's 2.5 days and 2.0 a round
    assert (land["method"], land["history_samples"], land["history_mean_days"]) == (
        "department_history", 1 + ROUNDS, round((2.5 + 2.0 * ROUNDS) / (1 + ROUNDS), 2))
    opened = by(after[1]["basis"], "matter_code")["land_pre_review"]
    assert opened["clock"]["kind"] == "promised" and opened["clock"]["state"] == "running"
    # Fri 20 Mar 10:00 → Tue 31 Mar 12:00: 14 + 120 + 24 + 12 h = 170 h = 7.08 days, more than expected
    assert (opened["elapsed_days"], opened["remaining_days"]) == (7.08, 0.0)


# --- stored handling time -------------------------------------------------------------------------

def set_figure(platform, project_code: str, matter_code: str, days: float | None) -> None:
    with unit_of_work(platform.session_factory) as s:
        project_id = s.scalar(select(Project.id).where(Project.project_code == project_code))
        s.execute(update(ProjectMatter).where(ProjectMatter.project_id == project_id,
                                              ProjectMatter.matter_code == matter_code)
                  .values(handling_days=days, handling_revision=None))


def drc_and_land(platform, username="city_supervisor"):
    reader = actor(platform, username)
    with platform.session_factory() as s:
        depts = by(supervision.summary(s, reader, now=NOW, **MARCH)["departments"], "department")
    return [(depts[d]["mean_handling_days"], depts[d]["p90_handling_days"]) for d in ("drc", "land")]


def land_history(platform):
    reader = actor(platform, "supervisor")
    with platform.session_factory() as s:
        (project,), _ = supervision.forecast(s, reader, now=NOW)
    land = by(project["basis"], "matter_code")["land_pre_review"]
    return land["method"], land["history_mean_days"], land["history_samples"]


def test_the_summary_reads_the_stored_figure_which_is_the_computed_one(platform, stored):
    # by hand (test_supervision_api): drc 4.0, 1.0, 1.0; land 2.5
    assert drc_and_land(platform) == [(2.0, 4.0), (2.5, 2.5)]
    with platform.session_factory() as s:
        figures = dict(s.execute(select(ProjectMatter.matter_code, ProjectMatter.handling_days).join(Project).where(
            Project.project_code == P1)).all())
    assert figures == {"enterprise_filing": 4.0, "land_pre_review": 2.5}

    set_figure(platform, P1, "enterprise_filing", None)  # as a calendar load leaves it: computed at read
    set_figure(platform, P1, "land_pre_review", None)
    assert drc_and_land(platform) == [(2.0, 4.0), (2.5, 2.5)]

    set_figure(platform, P1, "enterprise_filing", 7.0)  # a stored figure is what is read (not recomputed)
    assert drc_and_land(platform) == [(3.0, 7.0), (2.5, 2.5)]


def test_the_forecast_history_reads_the_stored_figures_and_computes_the_few_not_stored(platform, stored, monkeypatch):
    assert land_history(platform) == ("department_history", 2.5, 1)
    set_figure(platform, P1, "land_pre_review", None)
    assert land_history(platform) == ("department_history", 2.5, 1)  # not stored yet: computed here
    monkeypatch.setattr(supervision, "PENDING_IN_HISTORY", 0)
    # beyond the few it computes, a figure not stored yet waits for the sweep: no history
    assert land_history(platform) == ("promised_limit", None, 0)
    store_figures(platform)
    assert land_history(platform) == ("department_history", 2.5, 1)


def test_after_a_calendar_load_the_summary_computes_a_bounded_number_of_figures_and_counts_the_rest(
        app, platform, world, monkeypatch):  # noqa: F811
    """A load of the current year (a correction) clears every stored figure spanning it; until
    the sweep has stored them again the summary computes only the latest PENDING_IN_SUMMARY
    (made 2 here, their clocks read 2 pairs a statement) and says how many it left out."""
    store_figures(platform)
    monkeypatch.setattr(supervision, "PENDING_IN_SUMMARY", 2)
    monkeypatch.setattr(handling, "PAIRS_PER_READ", 2)
    reader = actor(platform, "city_supervisor")

    def after_a_load():
        with unit_of_work(platform.session_factory) as s:
            calendar.load_year_text(s, "year 2026\n2026-01-01 holiday 元旦\n", now=NOW, actor="operator")
        with platform.session_factory() as s:
            supervision.summary(s, reader, now=NOW, **MARCH)  # warm the calendar cache
        with platform.session_factory() as s, statements(app) as sent:
            body = supervision.summary(s, reader, now=NOW, **MARCH)
        return len(sent), body["handling_pending"]

    small, pending = after_a_load()
    grow(platform, 10)
    large, more_pending = after_a_load()
    assert large == small and more_pending > pending
    store_figures(platform)  # the sweep catches up: nothing is left out
    with platform.session_factory() as s:
        assert supervision.summary(s, reader, now=NOW, **MARCH)["handling_pending"] == 0
