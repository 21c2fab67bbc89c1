"""Concurrent officers over HTTP, on SQLite (writers serialize behind the busy timeout)
and PostgreSQL (row locks): one task completed twice at once is done once; the
departments of one project working their own matters at once never conflict."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from engine import audit
from engine.models import AuditEvent, Delivery, Notice, Task
from engine.sweep import sweep
from tests.integration.helpers import declare, supply_all_materials, waits_for_a_lock

PRE_CHECK_PASS = {"precheck_result": "pass", "code_verified": True, "within_competence": True}
ACCEPT = {"acceptance_decision": "accept"}
DECIDE = {"handling_action": "decide", "handling_opinion": "同意"}
REPLY_ACCEPTED = {"reply_outcome": "accepted", "reply_comment": "本部门有应办事项，已受理"}
#: 审批 (examination) with new land, an environment-sensitive site, water and soil impact
#: and building works: feasibility study (drc), land pre-review, EIA, soil and water
#: plan, construction permit — five departments, one matter each.
FIVE_MATTERS = {"regime": "examination", "industry_code": "13", "new_land_use": True, "environment_sensitive": True,
                "water_soil_impact": True, "building_works": True}
DEPARTMENTS = {"drc": "feasibility_study", "land": "land_pre_review", "env": "eia_approval",
               "water": "soil_water_plan", "housing": "construction_permit"}


def tasks(client, headers, **params):
    r = client.get("/api/v1/tasks", headers=headers, query_string={"page_size": 200, **params})
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"]


def find(client, headers, name, project_code, matter_code=None):
    found = [t for t in tasks(client, headers, project_code=project_code)
             if t["name"] == name and (matter_code is None or t["matter_code"] == matter_code)]
    assert len(found) == 1, (name, [(t["name"], t["matter_code"]) for t in tasks(client, headers)])
    return found[0]


def complete(client, headers, task, data):
    return client.post(f"/api/v1/tasks/{task['id']}/complete", headers=headers,
                       json={"data": data, "version": task["version"]})


def at_once(app, calls):
    """Run each (headers, task, data) completion in its own thread with its own client,
    all released together; answer [(status, body)] in the order given."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i, headers, task, data):
        client = app.test_client()
        try:
            barrier.wait(timeout=30)
            r = complete(client, headers, task, data)
            results[i] = (r.status_code, r.get_json())
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            results[i] = (None, repr(exc))

    threads = [threading.Thread(target=run, args=(i, *call)) for i, call in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a completion never returned"
    return results


def to_matters(client, token, **facts):
    code = declare(client, token, **facts)["project_code"]
    supply_all_materials(client, token, code)
    window = find(client, token("window"), "window_review", code)
    r = complete(client, token("window"), window,
                 {"window_decision": "dispatch", "departments": window["context"]["departments"]})
    assert r.status_code == 200, r.get_json()
    for department in window["context"]["departments"]:
        r = complete(client, token(department), find(client, token(department), "department_reply", code), REPLY_ACCEPTED)
        assert r.status_code == 200, r.get_json()
    return code


def test_the_same_task_completed_twice_at_once_is_done_once(app, client, token, platform):
    code = to_matters(client, token, regime="filing", industry_code="13", new_land_use=True, building_works=False)
    other = platform.session_factory
    for name, data in (("pre_check", PRE_CHECK_PASS), ("acceptance", ACCEPT)):
        task = find(client, token("land"), name, code, "land_pre_review")
        headers = token("land")
        results = at_once(app, [(headers, task, data), (headers, task, data)])
        assert sorted(status for status, _ in results) == [200, 409], results
        with other() as s:
            assert s.get(Task, task["id"]).status == "completed"
            completions = [e for e in s.scalars(select(AuditEvent).where(AuditEvent.action == "task.complete"))
                           if e.summary.get("task_id") == task["id"]]
            assert len(completions) == 1
    # the matter moved exactly one step per task: one handling task, one acceptance notice
    assert [t["name"] for t in tasks(client, token("land"), project_code=code)] == ["handling"]
    with other() as s:
        assert s.scalar(select(func.count()).select_from(Notice).where(
            Notice.project_code == code, Notice.kind == "acceptance")) == 1
        assert audit.verify(s).ok


def test_five_departments_work_one_project_at_once(app, client, token, platform):
    code = to_matters(client, token, **FIVE_MATTERS)
    body = client.get(f"/api/v1/projects/{code}", headers=token("applicant")).get_json()
    assert {m["matter_code"]: m["department"] for m in body["matters"]} == {m: d for d, m in DEPARTMENTS.items()}
    rounds = [("pre_check", lambda d: PRE_CHECK_PASS, "acceptance"),
              ("acceptance", lambda d: ACCEPT, "handling"),
              ("handling", lambda d: DECIDE, "decision"),
              ("decision", lambda d: {"decision": "approve", "document_number": f"{d}〔2026〕8号", "document_title": f"{d}批复",
                                      "document_date": "2026-03-02", "main_content": "同意"}, None)]
    for name, data, following in rounds:
        calls = [(token(d), find(client, token(d), name, code, m), data(d)) for d, m in DEPARTMENTS.items()]
        results = at_once(app, calls)
        assert [status for status, _ in results] == [200] * 5, [(d, r) for d, r in zip(DEPARTMENTS, results)]
        for department, matter in DEPARTMENTS.items():
            mine = [t["name"] for t in tasks(client, token(department), project_code=code, include_read_only=False)]
            assert mine == ([following] if following else []), (department, name, mine)

    with platform.session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Delivery).where(Delivery.delivered_at.is_(None))) == 5
    sweep(platform)
    body = client.get(f"/api/v1/projects/{code}", headers=token("applicant")).get_json()
    assert body["status"] == "concluded"
    assert {m["matter_code"]: (m["status"], m["result"]["document_number"]) for m in body["matters"]} == {
        m: ("concluded", f"{d}〔2026〕8号") for d, m in DEPARTMENTS.items()}
    decisions = sorted(n["matter_code"] for n in body["notices"] if n["kind"] == "decision")
    assert decisions == sorted(DEPARTMENTS.values())
    with platform.session_factory() as s:
        assert audit.verify(s).ok


def test_five_departments_reply_to_one_dispatch_at_once(app, client, token, platform):
    """The replies all belong to the master instance: they serialize on it, none is lost
    and none is refused."""
    code = declare(client, token, **FIVE_MATTERS)["project_code"]
    window = find(client, token("window"), "window_review", code)
    r = complete(client, token("window"), window, {"window_decision": "dispatch", "departments": list(DEPARTMENTS)})
    assert r.status_code == 200, r.get_json()
    calls = [(token(d), find(client, token(d), "department_reply", code), REPLY_ACCEPTED) for d in DEPARTMENTS]
    results = at_once(app, calls)
    assert [status for status, _ in results] == [200] * 5, [(d, r) for d, r in zip(DEPARTMENTS, results)]
    body = client.get(f"/api/v1/projects/{code}", headers=token("applicant")).get_json()
    assert {m["matter_code"]: m["status"] for m in body["matters"]} == {m: "handling" for m in DEPARTMENTS.values()}
    for department, matter in DEPARTMENTS.items():
        assert [t["name"] for t in tasks(client, token(department), project_code=code)] == ["pre_check"], department
    replies = [c for c in body["clocks"] if c["kind"] == "reply"]
    assert sorted(c["department"] for c in replies) == sorted(DEPARTMENTS) and {c["state"] for c in replies} == {"stopped"}


def test_an_officer_and_the_sweep_on_one_instance_at_once(app, client, token, platform, clock, monkeypatch):
    """The officer accepts at the very moment the sweep fires the deemed-acceptance timer
    of the same matter. Either may win (accepted by notice, or deemed and the officer told
    409), but neither may fail: the two must take their locks in the same order.

    The interleaving is forced where it used to deadlock on PostgreSQL: the officer holds
    its locks and has not yet written the instance when the sweep runs; a sweep that could
    claim the instance then waits before asking for the clocks, while the officer goes on
    to write the instance. (With one lock order the sweep cannot claim the instance and
    passes it by; the next sweep finds nothing left to fire.)"""
    from datetime import datetime, timedelta, timezone

    from engine import runtime

    code = to_matters(client, token, regime="filing", industry_code="13", new_land_use=True, building_works=False)
    r = complete(client, token("land"), find(client, token("land"), "pre_check", code), PRE_CHECK_PASS)
    assert r.status_code == 200
    task = find(client, token("land"), "acceptance", code)
    assert task["due_at"] == "2026-03-09T01:00:00+00:00"  # 5 working days
    clock.set(datetime(2026, 3, 9, 10, 0, tzinfo=timezone(timedelta(hours=8))))  # due, not yet swept
    headers = token("land")

    officer_locked, sweep_started, sweep_moved = threading.Event(), threading.Event(), threading.Event()
    officer_thread: list[threading.Thread] = []
    original_load, original_lock_clocks = runtime._load, runtime.lock_clocks

    def load(row):
        if threading.current_thread() in officer_thread:
            officer_locked.set()
            sweep_started.wait(timeout=10)
            sweep_moved.wait(timeout=1)  # on SQLite the sweep waits for this whole transaction
        return original_load(row)

    def lock_clocks(session, instance_id):
        if threading.current_thread() not in officer_thread and officer_locked.is_set():
            sweep_moved.set()
            threading.Event().wait(0.5)  # the officer goes on to write the instance meanwhile
        return original_lock_clocks(session, instance_id)

    monkeypatch.setattr(runtime, "_load", load)
    monkeypatch.setattr(runtime, "lock_clocks", lock_clocks)
    answer: list = []
    reports: list = []

    def officer():
        answer.append(complete(app.test_client(), headers, task, ACCEPT))

    def sweeper():
        officer_locked.wait(timeout=10)
        sweep_started.set()
        try:
            reports.append(sweep(platform))
        finally:
            sweep_moved.set()

    threads = [threading.Thread(target=officer), threading.Thread(target=sweeper)]
    officer_thread.append(threads[0])
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert answer and reports
    status = answer[0].status_code
    assert status in (200, 409), (status, answer[0].get_json())
    monkeypatch.undo()
    sweep(platform)  # whatever the first sweep left, the next one finishes
    body = client.get(f"/api/v1/projects/{code}", headers=token("applicant")).get_json()
    acceptance = [n["content"]["accepted_as"] for n in body["notices"] if n["kind"] == "acceptance"]
    assert acceptance == (["notice"] if status == 200 else ["deemed"]), (status, acceptance)
    assert [t["name"] for t in tasks(client, token("land"), project_code=code)] == ["handling"]


@pytest.mark.parametrize("attempts", [3, 1], ids=["done again", "no attempt left"])
def test_a_request_the_database_aborts_for_a_deadlock_is_done_again(app, client, token, platform, database_url, caplog,
                                                                    monkeypatch, attempts):
    """The window dispatches while another transaction holds a clock of the project's
    master instance and then asks for the instance itself: a lock cycle, which
    PostgreSQL breaks by aborting the request (it waited longest). The request is done
    again in a new transaction, once the other has gone: the window sees 200, the
    dispatch happened once, and the chain holds. With no attempt left the window is told
    503 "busy, retry" and nothing changed."""
    if not database_url.startswith("postgresql"):
        pytest.skip("deadlocks are PostgreSQL's; SQLite serializes writers at BEGIN")
    import logging

    from sqlalchemy import text

    from api import transaction
    from engine.models import Clock, ProcessInstance

    monkeypatch.setattr(transaction, "MAX_ATTEMPTS", attempts)

    code = declare(client, token, regime="filing", industry_code="13", new_land_use=True, building_works=False)["project_code"]
    supply_all_materials(client, token, code)
    window = find(client, token("window"), "window_review", code)
    other = platform.session_factory()
    other.execute(text("SET deadlock_timeout = '30s'"))  # the request, not this session, detects the cycle
    instance_id = other.scalar(select(Task.instance_id).where(Task.id == window["id"]))
    assert other.execute(select(Clock.id).where(Clock.instance_id == instance_id).with_for_update()).all()
    answer: list = []
    dispatch = threading.Thread(target=lambda: answer.append(complete(
        app.test_client(), token("window"), window,
        {"window_decision": "dispatch", "departments": window["context"]["departments"]})))
    caplog.set_level(logging.WARNING, logger="api.transaction")
    dispatch.start()
    try:
        with platform.session_factory() as watcher:
            assert waits_for_a_lock(watcher, "%FROM clocks%FOR UPDATE%"), "the dispatch never waited for the clock"
        # closes the cycle; returns once the request has been aborted and let go of the instance
        other.execute(select(ProcessInstance.id).where(ProcessInstance.id == instance_id).with_for_update())
    finally:
        other.rollback()
        other.close()
        dispatch.join(timeout=60)
    assert answer, "the dispatch never answered"
    if attempts == 1:
        assert answer[0].status_code == 503 and answer[0].headers["Retry-After"] == "1", answer[0].get_json()
        assert "busy" in answer[0].get_json()["message"]
        with platform.session_factory() as s:
            assert s.get(Task, window["id"]).status == "ready"
        return
    assert answer[0].status_code == 200, answer[0].get_json()
    assert any("40P01" in r.getMessage() and "doing it again" in r.getMessage() for r in caplog.records)
    with platform.session_factory() as s:
        assert s.get(Task, window["id"]).status == "completed"
        dispatched = [e for e in s.scalars(select(AuditEvent).where(AuditEvent.action == "task.complete"))
                      if e.summary.get("task_id") == window["id"]]
        assert len(dispatched) == 1
        assert audit.verify(s).ok
    replies = tasks(client, token("land"), project_code=code)
    assert [t["name"] for t in replies] == ["department_reply"]


def test_work_outside_a_request_the_database_aborts_for_a_deadlock_is_done_again_whole(platform, database_url, caplog):
    """The sweep's items and the commands run through ``engine.db.retrying``: work that
    PostgreSQL aborts to break a deadlock is done again in a new transaction once the
    other side has gone, and what the aborted attempt wrote is gone with it."""
    if not database_url.startswith("postgresql"):
        pytest.skip("deadlocks are PostgreSQL's; SQLite serializes writers at BEGIN")
    import logging

    from sqlalchemy import text, update

    from engine.db import retrying, unit_of_work
    from engine.models import PlatformState

    def write(session, key: str, value: str) -> None:
        session.execute(update(PlatformState).where(PlatformState.key == key).values(value=value))

    with unit_of_work(platform.session_factory) as s:
        s.add_all([PlatformState(key="test_a", value="-"), PlatformState(key="test_b", value="-")])
    other = platform.session_factory()
    other.execute(text("SET deadlock_timeout = '30s'"))  # the work, not this session, detects the cycle
    write(other, "test_b", "other")
    attempts: list[int] = []

    def work(session) -> int:
        attempts.append(len(attempts) + 1)
        write(session, "test_a", f"attempt {attempts[-1]}")
        write(session, "test_b", f"attempt {attempts[-1]}")  # the first attempt waits for the other side here
        return attempts[-1]

    result: list = []
    caplog.set_level(logging.WARNING, logger="engine.db")
    worker = threading.Thread(target=lambda: result.append(retrying(platform.session_factory, work, what="the test's work")))
    worker.start()
    try:
        with platform.session_factory() as watcher:
            assert waits_for_a_lock(watcher, "UPDATE platform_state%"), "the work never waited for the other side"
        write(other, "test_a", "other")  # closes the cycle; returns once the work's attempt is aborted
        other.commit()
    finally:
        other.close()
        worker.join(timeout=60)
    assert result == [2] and attempts == [1, 2]
    assert any("40P01" in r.getMessage() and "doing it again" in r.getMessage() for r in caplog.records)
    with platform.session_factory() as s:
        assert {k: s.get(PlatformState, k).value for k in ("test_a", "test_b")} == {"test_a": "attempt 2", "test_b": "attempt 2"}


def test_work_failing_for_another_reason_is_not_done_again(platform):
    from sqlalchemy.exc import IntegrityError

    from engine.db import retrying
    from engine.models import PlatformState

    attempts: list[int] = []

    def work(session) -> None:
        attempts.append(1)
        session.add_all([PlatformState(key="test_twice", value="1"), PlatformState(key="test_twice", value="2")])
        session.flush()

    with pytest.raises(IntegrityError):
        retrying(platform.session_factory, work, what="the test's work")
    assert attempts == [1]
    with platform.session_factory() as s:
        assert s.get(PlatformState, "test_twice") is None
