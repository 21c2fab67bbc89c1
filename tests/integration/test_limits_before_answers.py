"""A limit passed is met at its own instant, before whatever comes after it.

攀仁府办〔2018〕77号 三（五）: a department that has not replied within 3 working days is
replied for automatically (marked overdue, 逾期未回复), and its stage holds no matter; a
matter not acted on within 5 working days of submission is deemed accepted. The sweep
fires those timers every few seconds, but an officer's answer or a matter's result can
reach the master before it: the instance's due timers then fire first, each at the
instant it came due, so the late answer meets the automatic outcome (409), and
e-supervision counts an automatic reply, not a late one.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from engine import runtime
from engine.db import unit_of_work
from engine.models import Clock, Delivery, ProcessInstance
from engine.sweep import sweep
from tests.integration.helpers import declare, supply_all_materials

CHINA = ZoneInfo("Asia/Shanghai")
REPLY = {"reply_outcome": "accepted", "reply_comment": "受理"}
LAND = dict(new_land_use=True, industry_code="13", building_works=False)
FILE = {"filing_decision": "file", "filing_comment": "齐全", "document_number": "川投资备〔2026〕9号",
        "document_date": "2026-03-05"}
DISPATCHED = datetime(2026, 3, 2, 10, tzinfo=CHINA)  # Monday: the reply limit is Thursday 03-05 10:00
LIMIT = datetime(2026, 3, 5, 10, tzinfo=CHINA)


def find(client, token, user, name, code):
    r = client.get("/api/v1/tasks", query_string={"project_code": code, "page_size": 200}, headers=token(user))
    assert r.status_code == 200, r.get_json()
    (found,) = [t for t in r.get_json()["items"] if t["name"] == name]
    return found


def complete(client, token, user, name, code, data):
    task = find(client, token, user, name, code)
    return client.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": data, "version": task["version"]},
                       headers=token(user))


def project(client, token, code):
    r = client.get(f"/api/v1/projects/{code}", headers=token("supervisor"))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def reply_clock(client, token, code, department):
    (clock,) = [c for c in project(client, token, code)["clocks"] if c["kind"] == "reply" and c["department"] == department]
    return clock


def reply_stopped_at(platform, department):
    with platform.session_factory() as session:
        return session.scalar(select(Clock.stopped_at).where(Clock.kind == "reply", Clock.department_code == department))


def replies(client, token, department):
    """(automatic, late) replies of a department, as e-supervision counts them."""
    r = client.get("/api/v1/supervision/summary", query_string={"from": "2026-03-01", "to": "2026-03-31"},
                   headers=token("supervisor"))
    assert r.status_code == 200, r.get_json()
    (row,) = [d for d in r.get_json()["departments"] if d["department"] == department]
    return row["automatic_replies"], row["late_replies"]


def dispatched(client, token, clock, *, materials=False):
    clock.set(DISPATCHED - timedelta(hours=1))
    code = declare(client, token, **LAND)["project_code"]
    if materials:
        supply_all_materials(client, token, code)
    clock.set(DISPATCHED)
    r = complete(client, token, "window", "window_review", code, {"window_decision": "dispatch", "departments": ["drc", "land"]})
    assert r.status_code == 200, r.get_json()
    return code


def test_a_reply_after_its_limit_meets_the_automatic_reply_though_no_sweep_ran(client, token, clock, platform):
    code = dispatched(client, token, clock)
    assert datetime.fromisoformat(reply_clock(client, token, code, "land")["due_at"]) == LIMIT
    clock.set(LIMIT + timedelta(minutes=30))  # no sweep since the limit passed
    r = complete(client, token, "land", "department_reply", code, REPLY)
    assert r.status_code == 409, r.get_json()
    assert "办理时限已过" in r.get_json()["message"]
    assert find(client, token, "land", "department_reply", code)  # the refusal changed nothing; the sweep will act

    sweep(platform)
    matters = {m["matter_code"]: m["status"] for m in project(client, token, code)["matters"]}
    assert matters["land_pre_review"] == "no_matter"
    stopped = reply_stopped_at(platform, "land")
    assert stopped - LIMIT < timedelta(seconds=1)  # at the limit, not at the sweep
    assert replies(client, token, "land") == (1, 0)


def test_a_reply_before_its_limit_is_taken_though_a_warning_came_due_unswept(client, token, clock, platform):
    code = dispatched(client, token, clock)
    yellow = datetime.fromisoformat(reply_clock(client, token, code, "land")["yellow_at"])
    clock.set(yellow + timedelta(minutes=5))  # the warning is due; no sweep has recorded it
    r = complete(client, token, "land", "department_reply", code, REPLY)
    assert r.status_code == 200, r.get_json()
    r = client.get("/api/v1/alerts", query_string={"project_code": code, "clock": "reply", "department": "land"},
                   headers=token("supervisor"))
    assert [(a["light"], datetime.fromisoformat(a["at"])) for a in r.get_json()["items"]] == [("yellow", yellow)]


def test_a_result_delivered_after_a_limit_leaves_the_automatic_reply_at_the_limit(client, token, clock, platform):
    """drc accepts and files; land stays silent past its limit. The filing's result reaches
    the master two hours after land's limit, before any sweep fired land's timer."""
    code = dispatched(client, token, clock, materials=True)
    assert complete(client, token, "drc", "department_reply", code, REPLY).status_code == 200
    clock.set(LIMIT - timedelta(hours=1))
    assert complete(client, token, "drc", "filing_check", code, FILE).status_code == 200
    delivered_at = LIMIT + timedelta(hours=2)
    with unit_of_work(platform.session_factory) as session:
        (master,) = session.scalars(select(ProcessInstance).where(ProcessInstance.kind == "master"))
        pending = list(session.scalars(select(Delivery).where(Delivery.target_instance_id == master.id)))
        assert pending and master.next_timer_at <= delivered_at
        runtime.lock_for_steps(session, master.id)
        assert runtime.deliver(session, master, pending, now=delivered_at) == len(pending)
    stopped = reply_stopped_at(platform, "land")
    assert stopped - LIMIT < timedelta(seconds=1)
    assert replies(client, token, "land") == (1, 0)


def test_a_suspension_after_a_limit_meets_the_automatic_reply_at_the_limit(client, token, clock, platform):
    """land stays silent past its limit; half an hour later, before any sweep, the unit
    asks for a suspension. The limit is met first, at its instant (land's automatic reply,
    counted automatic), and only then does the suspension hold the project's clocks."""
    code = dispatched(client, token, clock)
    clock.set(LIMIT + timedelta(minutes=30))
    r = client.post(f"/api/v1/projects/{code}/changes", headers=token("applicant"),
                    json={"kind": "suspension", "reason": "资金未落实"})
    assert r.status_code == 201, r.get_json()
    assert reply_stopped_at(platform, "land") - LIMIT < timedelta(seconds=1)
    assert replies(client, token, "land") == (1, 0)
