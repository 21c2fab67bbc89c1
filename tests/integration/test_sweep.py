"""The sweep fires each due item exactly once: two sweepers at once, a crash mid-sweep."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engine import runtime
from engine.db import unit_of_work
from engine.models import Alert, Clock, ProcessInstance, ProjectMatter, Task
from engine.sweep import sweep
from tests.integration.helpers import declare
from tests.integration.test_light_timers import to_handling
from tests.integration.test_workflow_api import LAND, LAND_PROJECT, PRE_CHECK_PASS, land_version, matter_instances, to_matters, upload, work


def _dispatched_projects(client, token, n):
    codes = []
    for _ in range(n):
        code = declare(client, token, new_land_use=True)["project_code"]
        window = [t for t in client.get("/api/v1/tasks", query_string={"project_code": code}, headers=token("window")).get_json()["items"]][0]
        r = client.post(f"/api/v1/tasks/{window['id']}/complete", headers=token("window"),
                        json={"data": {"window_decision": "dispatch", "departments": ["drc", "land"]}, "version": window["version"]})
        assert r.status_code == 200
        codes.append(code)
    return codes


def _replies(platform):
    """Each master's recorded replies, read from the workflow state the runtime saved."""
    from engine import spiff_adapter
    from engine.procedures import SPECS

    with platform.session_factory() as s:
        rows = s.scalars(select(ProcessInstance).where(ProcessInstance.kind == "master")).all()
        return [spiff_adapter.instance_data(spiff_adapter.restore(SPECS.get(r.procedure_version), r.state)).get("replies")
                for r in rows]


def _counts(platform):
    with platform.session_factory() as s:
        reply_clocks = s.scalar(select(func.count()).select_from(Clock).where(Clock.kind == "reply"))
        red = s.scalar(select(func.count()).select_from(Alert).where(Alert.light == "red", Alert.clock_kind == "reply"))
        matters = s.scalar(select(func.count()).select_from(ProcessInstance).where(ProcessInstance.kind == "matter"))
    return reply_clocks, red, matters


def test_two_sweepers_at_once_fire_each_timer_exactly_once(client, token, platform, clock, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("several sweepers share a database on PostgreSQL; SQLite runs one sweeper")
    _dispatched_projects(client, token, 6)
    clock.advance(days=10)
    barrier = threading.Barrier(2)
    errors = []

    def run():
        try:
            barrier.wait()
            sweep(platform)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    reply_clocks, red, matters = _counts(platform)
    assert reply_clocks == 12 and red == 12  # each department's reply clock went red once
    assert matters == 0  # both departments were silent: no matter at this stage
    for replies in _replies(platform):
        assert sorted(r["department"] for r in replies) == ["drc", "land"]
        assert all(r["outcome"] == "overdue_no_reply" for r in replies)


def test_a_sweep_that_crashes_midway_loses_nothing_and_fires_once_on_the_next(client, token, platform, clock, monkeypatch):
    _dispatched_projects(client, token, 3)
    clock.advance(days=10)
    real = runtime.fire_timers
    seen = []

    def crash_on_the_second_instance(session, row, *, until, isolated=True):
        fired = real(session, row, until=until, isolated=isolated)
        if row.id not in seen:
            seen.append(row.id)
        if len(seen) > 1 and row.id == seen[1]:
            raise RuntimeError("power cut between firing and commit")
        return fired

    monkeypatch.setattr(runtime, "fire_timers", crash_on_the_second_instance)
    sweep(platform)  # the chunk is rolled back and done again one by one: the second instance fails again
    assert len(seen) == 3
    with platform.session_factory() as s:
        assert s.get(ProcessInstance, seen[1]).next_timer_at <= clock.now()  # its timers wait for the next sweep
    monkeypatch.setattr(runtime, "fire_timers", real)
    report = sweep(platform)
    assert report.fired.get("timers", 0) >= 1  # the second instance's
    reply_clocks, red, _ = _counts(platform)
    assert red == reply_clocks == 6
    for replies in _replies(platform):
        assert sorted(r["department"] for r in replies) == ["drc", "land"]
    again = sweep(platform)
    assert "timers" not in again.fired and "alerts" not in again.fired


def test_sweep_reads_only_due_rows(client, token, platform, clock):
    _dispatched_projects(client, token, 2)
    report = sweep(platform)
    assert report.fired == {}
    clock.advance(hours=1)
    assert sweep(platform).fired == {}


def test_the_clock_rows_light_what_no_timer_fired_on_the_task_and_the_matter(client, token, platform, clock):
    """An instance stopped by an error fires no timer; its clock still turns yellow at its
    instant, and the light reaches the task list and the matter (the clock-row step)."""
    to_handling(client, token)
    with unit_of_work(platform.session_factory) as s:
        row = s.scalars(select(ProcessInstance).where(ProcessInstance.matter_code == "land_pre_review")).one()
        row.status, row.error_message = "error", "a broken expression in a new version"
        promised = s.scalars(select(Clock).where(Clock.kind == "promised")).one()
        yellow_at = promised.yellow_at
    clock.set(yellow_at + timedelta(minutes=1))
    assert sweep(platform).fired == {"alerts": 1}
    with platform.session_factory() as s:
        assert [(a.light, a.at) for a in s.scalars(select(Alert))] == [("yellow", yellow_at)]
        assert s.scalars(select(Task).where(Task.element_id == "handling")).one().light == "yellow"
        assert s.scalars(select(ProjectMatter).where(ProjectMatter.matter_code == "land_pre_review")).one().light == "yellow"


def test_a_diagram_failing_at_a_timer_marks_its_instance_and_the_rest_of_its_chunk_fires(client, token, platform, clock):
    """A new version's deemed acceptance fails (1 / 0): the sweep's chunk is undone and
    done again one instance at a time, so the failing instance is marked errored with
    its element and the other instances due with it fire as usual."""
    failing = land_version("accepted_as = 'deemed'", "accepted_as = 'deemed'\nratio = 1 / 0")
    assert upload(client, token, "operator", LAND, failing).status_code == 201
    code = to_matters(client, token, **LAND_PROJECT)  # a land pre-review and a filing
    work(client, token, "land", "pre_check", code, PRE_CHECK_PASS, "land_pre_review")
    clock.advance(days=30)  # past the acceptance clock's due instant and the filing clock's
    report = sweep(platform)
    assert report.fired.get("timers", 0) >= 2
    errored = [(i["matter_code"], i["error_element"]) for i in matter_instances(client, token, status="error")]
    assert errored == [("land_pre_review", "deemed_accepted")]
    with platform.session_factory() as s:
        filing = s.scalars(select(Alert).where(Alert.clock_kind == "filing")).all()
    assert sorted(a.light for a in filing) == ["red", "yellow"]
