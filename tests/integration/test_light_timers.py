"""Yellow and red as the diagrams' non-interrupting timers, over HTTP with the manual clock.

Every task during which a clock runs carries a timer at ``clock_yellow(kind)`` (and one
at ``clock_due(kind)`` unless an automatic outcome already ends the task there) whose
script calls ``record_light(kind)``. The sweep fires each timer a microsecond after its
instant, before its own clock-row step: a light the timer recorded leaves that step
nothing to do (no ``alerts`` in the sweep's report), and each threshold is recorded
once, at the instant it passed. The officer keeps the task: it shows the light and can
still be completed.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from tests.integration.helpers import declare, supply_all_materials

PASS = {"precheck_result": "pass", "code_verified": True, "within_competence": True}
DECIDE = {"handling_action": "decide", "handling_opinion": "符合国土空间规划"}
APPROVE = {"decision": "approve", "document_number": "仁自然资〔2026〕7号", "document_title": "用地预审与选址意见书",
           "document_date": "2026-03-02", "main_content": "同意选址"}
MINUTE = timedelta(minutes=1)


def set_now(client, token, instant):
    r = client.post("/api/v1/admin/clock", json={"now": instant.isoformat()}, headers=token("operator"))
    assert r.status_code == 200, r.get_json()
    return r.get_json()["sweep"]


def tasks(client, token, user, code):
    r = client.get("/api/v1/tasks", query_string={"project_code": code, "page_size": 200}, headers=token(user))
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"]


def task(client, token, user, code, name):
    found = [t for t in tasks(client, token, user, code) if t["name"] == name]
    assert len(found) == 1, (user, name, [t["name"] for t in tasks(client, token, user, code)])
    return found[0]


def complete(client, token, user, code, name, data):
    t = task(client, token, user, code, name)
    r = client.post(f"/api/v1/tasks/{t['id']}/complete", json={"data": data, "version": t["version"]}, headers=token(user))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def project(client, token, code):
    r = client.get(f"/api/v1/projects/{code}", headers=token("supervisor"))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def clock_of(client, token, code, kind, department=None):
    found = [c for c in project(client, token, code)["clocks"]
             if c["kind"] == kind and (department is None or c["department"] == department)]
    assert found, kind
    return found[-1]


def lights(client, token, code, **params):
    r = client.get("/api/v1/alerts", query_string={"project_code": code, "page_size": 200, **params},
                   headers=token("supervisor"))
    assert r.status_code == 200, r.get_json()
    return sorted((a["light"], a["clock"], a["department"], a["at"]) for a in r.get_json()["items"])


def land_matter(client, token, code):
    return next(m for m in project(client, token, code)["matters"] if m["matter_code"] == "land_pre_review")


def instance(client, token, kind, matter_code=None):
    r = client.get("/api/v1/instances", query_string={"page_size": 200}, headers=token("operator"))
    assert r.status_code == 200, r.get_json()
    (found,) = [i for i in r.get_json()["items"] if i["kind"] == kind and i["matter_code"] == matter_code
                and i["status"] == "running"]
    return found


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def to_handling(client, token):
    """A project whose only matter is the land pre-review, accepted: handling is ready."""
    code = declare(client, token, new_land_use=True, building_works=False)["project_code"]
    supply_all_materials(client, token, code)
    complete(client, token, "window", code, "window_review", {"window_decision": "dispatch", "departments": ["land"]})
    complete(client, token, "land", code, "department_reply", {"reply_outcome": "accepted", "reply_comment": "受理"})
    complete(client, token, "land", code, "pre_check", PASS)
    complete(client, token, "land", code, "acceptance", {"acceptance_decision": "accept"})
    assert [t["name"] for t in tasks(client, token, "land", code)] == ["handling"]
    return code


def test_promised_clock_turns_yellow_then_red_by_the_diagram_and_handling_stays_workable(client, token):
    code = to_handling(client, token)
    promised = clock_of(client, token, code, "promised")
    yellow_at, due_at = promised["yellow_at"], promised["due_at"]
    assert instance(client, token, "matter", "land_pre_review")["next_timer_at"] == yellow_at  # handling_yellow armed

    assert set_now(client, token, instant(yellow_at) - MINUTE) == {}
    assert lights(client, token, code) == []
    swept = set_now(client, token, instant(yellow_at) + MINUTE)
    assert swept.get("timers") == 1 and "alerts" not in swept  # the timer recorded it; the clock rows had nothing left
    assert lights(client, token, code) == [("yellow", "promised", "land", yellow_at)]
    handling = task(client, token, "land", code, "handling")  # non-interrupting: still the officer's
    assert handling["light"] == "yellow"
    assert land_matter(client, token, code)["light"] == "yellow"
    assert instance(client, token, "matter", "land_pre_review")["next_timer_at"] == due_at  # handling_red next

    swept = set_now(client, token, instant(due_at) + MINUTE)
    assert swept.get("timers") == 1 and "alerts" not in swept
    assert lights(client, token, code) == [("red", "promised", "land", due_at), ("yellow", "promised", "land", yellow_at)]
    assert task(client, token, "land", code, "handling")["light"] == "red"
    assert land_matter(client, token, code)["light"] == "red"

    set_now(client, token, instant(due_at) + 2 * MINUTE)  # a later sweep records nothing again
    complete(client, token, "land", code, "handling", DECIDE)
    assert task(client, token, "land", code, "decision")["light"] == "red"  # entered late: its timers fire at once
    complete(client, token, "land", code, "decision", APPROVE)
    land = land_matter(client, token, code)
    assert land["status"] == "concluded" and land["light"] == "red"
    assert clock_of(client, token, code, "promised")["state"] == "stopped"
    assert lights(client, token, code) == [("red", "promised", "land", due_at), ("yellow", "promised", "land", yellow_at)]


def test_dispatch_clock_yellow_on_the_window_review(client, token):
    code = declare(client, token, new_land_use=True)["project_code"]
    dispatch = clock_of(client, token, code, "dispatch")
    assert instance(client, token, "master")["next_timer_at"] == dispatch["yellow_at"]
    swept = set_now(client, token, instant(dispatch["yellow_at"]) + MINUTE)
    assert swept.get("timers") == 1 and "alerts" not in swept
    assert lights(client, token, code) == [("yellow", "dispatch", "window", dispatch["yellow_at"])]
    window = task(client, token, "window", code, "window_review")
    assert window["light"] == "yellow"
    complete(client, token, "window", code, "window_review", {"window_decision": "dispatch", "departments": ["land"]})
    assert clock_of(client, token, code, "dispatch")["state"] == "stopped"
    assert lights(client, token, code) == [("yellow", "dispatch", "window", dispatch["yellow_at"])]


def test_a_silent_departments_reply_turns_yellow_then_the_automatic_reply_records_red_once(client, token):
    code = declare(client, token, new_land_use=True)["project_code"]
    complete(client, token, "window", code, "window_review", {"window_decision": "dispatch", "departments": ["drc", "land"]})
    # drc replies at once, with nothing to handle (an accepted matter would start its own clock now, and its timers)
    complete(client, token, "drc", code, "department_reply", {"reply_outcome": "no_matter", "reply_comment": "本阶段无事项"})
    reply = clock_of(client, token, code, "reply", "land")
    swept = set_now(client, token, instant(reply["yellow_at"]) + MINUTE)
    assert swept.get("timers") == 1 and "alerts" not in swept
    assert lights(client, token, code, clock="reply") == [("yellow", "reply", "land", reply["yellow_at"])]
    assert task(client, token, "land", code, "department_reply")["light"] == "yellow"  # still the land window's

    swept = set_now(client, token, instant(reply["due_at"]) + MINUTE)  # reply_overdue interrupts: 逾期未回复
    assert swept.get("timers") == 1 and "alerts" not in swept
    assert lights(client, token, code, clock="reply") == [
        ("red", "reply", "land", reply["due_at"]), ("yellow", "reply", "land", reply["yellow_at"])]
    assert not [t for t in tasks(client, token, "land", code) if t["name"] == "department_reply"]
    assert land_matter(client, token, code)["status"] == "no_matter"


def test_a_special_procedure_before_yellow_moves_the_yellow_timer(client, token, clock):
    code = to_handling(client, token)
    first = clock_of(client, token, code, "promised")
    clock.advance(hours=2)
    complete(client, token, "land", code, "handling", {
        "handling_action": "special_procedure", "handling_opinion": "需现场勘验",
        "special_procedure_reason": "现场勘验", "special_procedure_days": 30})
    swept = set_now(client, token, instant(first["yellow_at"]) + MINUTE)  # the clock is paused: nothing at the old instant
    assert "timers" not in swept and lights(client, token, code) == []
    complete(client, token, "land", code, "special_procedure", {"special_procedure_result": "勘验完成"})
    moved = clock_of(client, token, code, "promised")
    assert moved["state"] == "running" and moved["yellow_at"] > first["yellow_at"]
    assert instance(client, token, "matter", "land_pre_review")["next_timer_at"] == moved["yellow_at"]
    assert set_now(client, token, instant(moved["yellow_at"]) - MINUTE) == {}
    swept = set_now(client, token, instant(moved["yellow_at"]) + MINUTE)
    assert swept.get("timers") == 1 and "alerts" not in swept
    assert lights(client, token, code) == [("yellow", "promised", "land", moved["yellow_at"])]


def test_a_prerequisite_wait_re_arms_the_timer_of_the_task_that_stays_ready(client, token, clock):
    """The task stays ready while its clock is paused (等待前置): the yellow timer waits
    with it and is re-armed at the moved instant when the wait ends."""
    code = declare(client, token, new_land_use=True, environment_sensitive=True, building_works=False)["project_code"]
    supply_all_materials(client, token, code)
    complete(client, token, "window", code, "window_review", {"window_decision": "dispatch", "departments": ["env", "land"]})
    for user, name, data in (("env", "department_reply", {"reply_outcome": "accepted", "reply_comment": "受理"}),
                             ("land", "department_reply", {"reply_outcome": "accepted", "reply_comment": "受理"}),
                             ("land", "pre_check", PASS), ("land", "acceptance", {"acceptance_decision": "accept"})):
        complete(client, token, user, code, name, data)
    first = clock_of(client, token, code, "promised", "land")
    url = f"/api/v1/projects/{code}/matters/land_pre_review/prerequisite-wait"
    r = client.post(url, json={"prerequisite": "eia_approval"}, headers=token("land"))
    assert r.status_code == 200, r.get_json()
    set_now(client, token, instant(first["yellow_at"]) + MINUTE)
    assert lights(client, token, code, clock="promised", department="land") == []
    assert task(client, token, "land", code, "handling")["light"] == "green"
    r = client.delete(url, headers=token("land"))
    assert r.status_code == 200, r.get_json()
    moved = clock_of(client, token, code, "promised", "land")
    assert moved["state"] == "running" and moved["yellow_at"] > first["yellow_at"]
    assert instance(client, token, "matter", "land_pre_review")["next_timer_at"] == moved["yellow_at"]
    swept = set_now(client, token, instant(moved["yellow_at"]) + MINUTE)
    assert swept.get("timers", 0) >= 1 and "alerts" not in swept
    assert lights(client, token, code, clock="promised", department="land") == [
        ("yellow", "promised", "land", moved["yellow_at"])]
    assert task(client, token, "land", code, "handling")["light"] == "yellow"
