"""A task's light and due instant follow its clock without moving its version on.

The version guards what the officer answers (the task, its form, who holds it). A sweep
lighting the task yellow or red, or a pause moving its deadline, changes none of that:
an officer who listed the task and answers in time is not refused with 409 (a load
review found 38 of 200 in-time answers refused so, exactly when the deadline was near).
A claim by someone else still makes the listed version stale. On SQLite and PostgreSQL.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace

from sqlalchemy import select

from engine import clocks
from engine.db import unit_of_work
from engine.models import Task
from engine.sweep import sweep
from tests.integration.helpers import declare, supply_all_materials
from tests.integration.test_intermediaries_api import commission, handling_land_matter, promised, stage
from tests.integration.test_workflow_api import (DECIDE, LAND_PROJECT, PRE_CHECK_PASS, REPLY_ACCEPTED, complete, find,
                                                 to_matters)

MINUTE = timedelta(minutes=1)


def _listed(client, token, user, task):
    """The task as the officer's list shows it now."""
    return find(client, token, user, task["name"], task["project_code"], task["matter_code"])


def _stored_version(platform, task_id) -> int:
    with platform.session_factory() as s:
        return s.scalar(select(Task.version).where(Task.id == task_id))


def test_a_reply_the_sweep_lit_yellow_is_answered_with_the_version_listed_before(client, token, platform):
    code = declare(client, token, **LAND_PROJECT)["project_code"]
    supply_all_materials(client, token, code)
    window = find(client, token, "window", "window_review", code)
    r = complete(client, token, "window", window, {"window_decision": "dispatch", "departments": ["land"]})
    assert r.status_code == 200, r.get_json()
    listed = find(client, token, "land", "department_reply", code)
    assert listed["light"] == "green"

    # the officer fills the form; meanwhile the reply clock passes its yellow threshold and a sweep lights it
    platform.clock.set(datetime.fromisoformat(listed["due_at"]) - 30 * MINUTE)
    sweep(platform)
    now = _listed(client, token, "land", listed)
    assert (now["light"], now["status"], now["version"]) == ("yellow", "ready", listed["version"])

    r = complete(client, token, "land", listed, REPLY_ACCEPTED)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["task"]["status"] == "completed"


def test_handling_lit_yellow_then_red_by_its_timers_is_answered_with_the_version_listed_before(client, token, platform):
    code = handling_land_matter(client, token)
    listed = find(client, token, "land", "handling", code)
    clock = promised(client, token, code)
    assert listed["light"] == "green" and listed["due_at"] == clock["due_at"]

    platform.clock.set(datetime.fromisoformat(clock["yellow_at"]) + MINUTE)
    sweep(platform)  # the diagram's yellow timer: a step records the light and projects the task
    yellow = _listed(client, token, "land", listed)
    assert (yellow["light"], yellow["version"]) == ("yellow", listed["version"])

    platform.clock.set(datetime.fromisoformat(clock["due_at"]) + MINUTE)
    sweep(platform)
    red = _listed(client, token, "land", listed)
    assert (red["light"], red["version"]) == ("red", listed["version"])
    assert _stored_version(platform, listed["id"]) == listed["version"]

    r = complete(client, token, "land", listed, DECIDE)  # late, but nothing the officer answers has changed
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["task"]["status"] == "completed"
    assert _stored_version(platform, listed["id"]) == listed["version"] + 1  # the completion moves it on


def test_a_pause_moving_the_deadline_keeps_the_version_listed_before(client, token, platform, clock):
    code = handling_land_matter(client, token)
    listed = find(client, token, "land", "handling", code)
    before = promised(client, token, code)
    assert listed["due_at"] == before["due_at"]

    clock.set(datetime.fromisoformat(before["started_at"]) + timedelta(days=3))
    r = commission(client, token, code)  # an intermediary: the matter's clock stands still
    assert r.status_code == 201, r.get_json()
    paused = _listed(client, token, "land", listed)
    assert (paused["due_at"], paused["version"]) == (None, listed["version"])

    row = r.get_json()
    clock.set(clock.now() + timedelta(days=1))
    for name, extra in (("accepted", {}), ("handling", {}), ("completed", {"result": "论证通过"})):
        r = stage(client, token, code, row, name, **extra)
        assert r.status_code == 200, (name, r.get_json())
        row = r.get_json()
    after = promised(client, token, code)
    assert after["state"] == "running" and after["due_at"] > before["due_at"]  # the held day is not counted
    moved = _listed(client, token, "land", listed)
    assert (moved["due_at"], moved["version"]) == (after["due_at"], listed["version"])

    r = complete(client, token, "land", listed, DECIDE)
    assert r.status_code == 200, r.get_json()


def test_the_sweeps_set_wise_light_keeps_the_version_of_tasks_loaded_or_not(client, token, platform):
    """``clocks.show_lights`` (the sweep's lights of clocks no diagram timer watches) writes
    tasks with one UPDATE: a task object the session holds shows the light and flushes
    nothing stale."""
    code = to_matters(client, token, **LAND_PROJECT)
    listed = find(client, token, "land", "pre_check", code)
    with unit_of_work(platform.session_factory) as s:
        task = s.get(Task, listed["id"])
        clocks.show_lights(s, [SimpleNamespace(instance_id=task.instance_id, scope_id=task.scope_id,
                                               matter_code=task.matter_code, light="yellow")])
        assert (task.light, task.version) == ("yellow", listed["version"])
        assert not s.dirty
    lit = _listed(client, token, "land", listed)
    assert (lit["light"], lit["version"]) == ("yellow", listed["version"])
    r = complete(client, token, "land", listed, PRE_CHECK_PASS)
    assert r.status_code == 200, r.get_json()


def test_a_claim_by_another_officer_still_makes_the_listed_version_stale(client, token, platform):
    r = client.post("/api/v1/users", headers=token("operator"), json={
        "username": "land2", "password": "Ren-he-2026-land", "display_name": "自然资源局经办人二",
        "roles": ["officer"], "department_code": "land"})
    assert r.status_code == 201, r.get_json()
    code = to_matters(client, token, **LAND_PROJECT)
    listed = find(client, token, "land", "pre_check", code)

    # the colleague claims it and lets it go again: the same task, nobody holds it, yet it was held meanwhile
    assert client.post(f"/api/v1/tasks/{listed['id']}/claim", headers=token("land2")).status_code == 200
    assert client.post(f"/api/v1/tasks/{listed['id']}/unclaim", headers=token("land2")).status_code == 200
    r = complete(client, token, "land", listed, PRE_CHECK_PASS)
    assert r.status_code == 409, r.get_json()
    assert "刷新" in r.get_json()["message"]
    current = _listed(client, token, "land", listed)
    assert current["version"] == listed["version"] + 2 and current["status"] == "ready"
    assert complete(client, token, "land", current, PRE_CHECK_PASS).status_code == 200
