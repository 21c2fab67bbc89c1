"""办理用时 stored when a matter ends (engine.handling): the figure e-supervision would
compute, cleared by a calendar load that changes a day it spans, stored again by the
sweep; a reader meeting a cleared figure computes it itself.

The land pre-review is accepted on Mon 2 Mar 2026 at 09:00 and concluded on Fri 6 Mar at
09:00: 96 working hours, 4.0 working days, none of them paused."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, update

from engine import calendar, handling
from engine.db import unit_of_work
from engine.models import Project, ProjectMatter
from engine.sweep import sweep
from tests.integration.helpers import waits_for_a_lock
from tests.integration.test_workflow_api import ACCEPT, DECIDE, LAND_PROJECT, PRE_CHECK_PASS, approve, to_matters, work

MATTER = "land_pre_review"
HOLIDAY_4_MARCH = "year 2026\n2026-01-01 holiday 元旦\n2026-03-04 holiday 更正\n"


def load(platform, clock, schedule: str) -> None:
    with unit_of_work(platform.session_factory) as s:
        calendar.load_year_text(s, schedule, now=clock.now(), actor="operator")


def conclude_in_four_days(client, token, clock) -> str:
    code = to_matters(client, token, **LAND_PROJECT)
    work(client, token, "land", "pre_check", code, PRE_CHECK_PASS, MATTER)
    work(client, token, "land", "acceptance", code, ACCEPT, MATTER)
    clock.advance(days=4)
    work(client, token, "land", "handling", code, DECIDE, MATTER)
    work(client, token, "land", "decision", code, approve("land"), MATTER)
    return code


def stored(platform, code: str) -> tuple[float | None, str | None, float | None]:
    """The stored figure, its revision, and what a reader gets (stored or computed)."""
    with platform.session_factory() as s:
        pm = s.scalars(select(ProjectMatter).join(Project, Project.id == ProjectMatter.project_id).where(
            Project.project_code == code, ProjectMatter.matter_code == MATTER)).one()
        read = handling.days_of(s, calendar.current(s), [handling.Concluded(
            pm.id, pm.project_id, pm.matter_code, pm.accepted_at, pm.concluded_at, pm.handling_days)])[pm.id]
        return pm.handling_days, pm.handling_revision, read


def test_a_concluded_matter_stores_its_handling_time_on_the_calendar_in_force(client, token, clock, platform):
    code = conclude_in_four_days(client, token, clock)
    days, revision, read = stored(platform, code)
    with platform.session_factory() as s:
        assert revision == calendar.current(s).revision
    assert days == read == 4.0


def test_a_calendar_load_clears_the_figures_it_changes_and_the_sweep_stores_them_again(client, token, clock, platform):
    code = conclude_in_four_days(client, token, clock)
    with unit_of_work(platform.session_factory) as s:  # Wednesday 4 March becomes a holiday
        calendar.load_year_text(s, "year 2026\n2026-01-01 holiday 元旦\n2026-03-04 holiday 更正\n", now=clock.now(),
                                actor="operator")
    assert stored(platform, code)[0] is None and stored(platform, code)[2] == 3.0  # the reader computes it meanwhile
    report = sweep(platform)
    assert report.fired.get("handling_refreshed") == 1
    days, revision, read = stored(platform, code)
    with platform.session_factory() as s:
        assert revision == calendar.current(s).revision
    assert days == read == 3.0
    assert "handling_refreshed" not in sweep(platform).fired  # nothing owed any more


def test_a_load_of_another_year_leaves_the_figures_alone(client, token, clock, platform):
    code = conclude_in_four_days(client, token, clock)
    clock.advance(days=2)  # a matter concluded lately is computed again after any load (it may have read the old calendar)
    with unit_of_work(platform.session_factory) as s:
        calendar.load_year_text(s, "year 2027\n2027-01-01 holiday 元旦\n", now=clock.now(), actor="operator")
    days, _, _ = stored(platform, code)
    assert days == 4.0
    assert "handling_refreshed" not in sweep(platform).fired


def test_a_figure_computed_on_the_calendar_a_load_replaced_is_stored_again(client, token, clock, platform):
    """A step that read the calendar before a load and committed after it stored the old
    figure under the old revision: the sweep finds it among the recently concluded."""
    code = conclude_in_four_days(client, token, clock)
    with unit_of_work(platform.session_factory) as s:
        calendar.load_year_text(s, "year 2026\n2026-01-01 holiday 元旦\n2026-03-04 holiday 更正\n", now=clock.now(),
                                actor="operator")
        s.execute(update(ProjectMatter).where(ProjectMatter.matter_code == MATTER)  # as the late step left it
                  .values(handling_days=4.0, handling_revision="20260101T000000#old"))
    assert sweep(platform).fired.get("handling_refreshed") == 1
    assert stored(platform, code)[0] == 3.0
    clock.advance(days=2)  # long after: a stale revision is only looked for among the recently concluded
    with unit_of_work(platform.session_factory) as s:
        s.execute(update(ProjectMatter).where(ProjectMatter.matter_code == MATTER).values(handling_revision="x"))
    assert "handling_refreshed" not in sweep(platform).fired
    assert stored(platform, code)[:2] == (3.0, "x")


def test_a_calendar_load_while_the_sweep_stores_figures_waits_and_clears_them(client, token, clock, platform, database_url,
                                                                              monkeypatch):
    """The sweep computes owed figures on the calendar it read; the operator's corrected
    file is loaded meanwhile. The load waits for the sweep to store them, then clears them,
    and the next sweep stores them on the corrected calendar (PostgreSQL: on SQLite the
    sweep's transaction holds the one write lock and the load queues behind it anyway)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writer at a time")
    code = conclude_in_four_days(client, token, clock)
    clock.advance(days=2)
    load(platform, clock, HOLIDAY_4_MARCH)
    assert stored(platform, code)[0] is None
    real = handling.days_of
    loader = threading.Thread(target=load, args=(platform, clock, "year 2026\n2026-01-01 holiday 元旦\n"))

    def days_of_while_a_load_comes(session, cal, matters):
        figures = real(session, cal, matters)  # 3.0, on the calendar with 4 March off
        loader.start()
        with platform.session_factory() as watcher:
            assert waits_for_a_lock(watcher, "UPDATE platform_state%"), "the load never waited for the sweep"
        return figures

    monkeypatch.setattr(handling, "days_of", days_of_while_a_load_comes)
    assert sweep(platform).fired.get("handling_refreshed") == 1
    loader.join(timeout=30)
    monkeypatch.setattr(handling, "days_of", real)
    assert stored(platform, code)[0] is None  # the load cleared what the sweep stored on the replaced calendar
    sweep(platform)
    assert stored(platform, code)[0] == 4.0


def test_sweepers_share_the_owed_figures(client, token, clock, platform, database_url):
    """Several server processes sweep at once: each claims the figures it stores (PostgreSQL:
    SKIP LOCKED), so a load's backlog is shared, not computed by each of them."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one sweeper")
    start, codes = clock.now(), []
    for _ in range(2):
        clock.set(start)  # each decision's document date lies between its declaration and today
        codes.append(conclude_in_four_days(client, token, clock))
    with unit_of_work(platform.session_factory) as s:
        s.execute(update(ProjectMatter).where(ProjectMatter.matter_code == MATTER).values(handling_days=None,
                                                                                           handling_revision=None))
    with platform.session_factory() as first, platform.session_factory() as second:
        assert handling.refresh(first, calendar.current(first), now=clock.now(), limit=1) == 1
        assert handling.refresh(second, calendar.current(second), now=clock.now(), limit=10) == 1  # the other one
        assert handling.refresh(second, calendar.current(second), now=clock.now(), limit=10) == 0
        first.commit()
        second.commit()
    assert [stored(platform, code)[0] for code in codes] == [4.0, 4.0]
