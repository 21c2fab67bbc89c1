"""Limits a calendar load moves into the past are met at their own instants whatever holds of
other matters or of the project came since; a retry applies an answer given in time before
the limits passed while the instance stood errored; reuse along the re-coding chain and
"-0". As a review of session 10 found them, on SQLite and PostgreSQL."""
from __future__ import annotations

import io
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from engine.models import Clock, ProcessInstance, Task
from tests.integration.helpers import declare, supply_all_materials
from tests.integration.test_limits_before_answers import complete as lc, replies
from tests.integration.test_materials_api import code, published, reuse, upload  # noqa: F401 - fixtures
from tests.integration.test_workflow_api import upload as deploy

SH = ZoneInfo("Asia/Shanghai")
LAND = dict(new_land_use=True, industry_code="13", building_works=False, regime="filing")
REPLY = {"reply_outcome": "accepted", "reply_comment": "受理"}
NO_MATTER = {"reply_outcome": "no_matter", "reply_comment": "无"}
WEEKEND_WORKED = "year 2026\n2026-03-07 workday 调休\n2026-03-08 workday 调休\n"
AGENCY = {"name": "攀枝花市工程咨询院", "qualification": "甲级", "service": "备案信息核查", "deadline": "2026-03-31"}


def at(y, mo, d, h=0, mi=0):
    return datetime(y, mo, d, h, mi, tzinfo=SH)


def _load_year(client, token, text):
    r = client.post("/api/v1/admin/calendar/years", data={"file": (io.BytesIO(text.encode()), "year.txt")},
                    headers=token("operator"), content_type="multipart/form-data")
    assert r.status_code == 201, r.get_json()


def _dispatched_land_project(client, token, clock):
    """Dispatched Fri 03-06 10:00 to drc and land: land's reply limit Wed 03-11 10:00 (Mon
    03-09 10:00 once Sat/Sun 03-07/08 are made working days)."""
    clock.set(at(2026, 3, 6, 9))
    code_ = declare(client, token, **LAND)["project_code"]
    supply_all_materials(client, token, code_)
    clock.set(at(2026, 3, 6, 10))
    r = lc(client, token, "window", "window_review", code_, {"window_decision": "dispatch", "departments": ["drc", "land"]})
    assert r.status_code == 200, r.get_json()
    return code_


def _only_land_still_to_reply(client, token, clock) -> str:
    code_ = _dispatched_land_project(client, token, clock)
    clock.set(at(2026, 3, 6, 10, 30))
    assert lc(client, token, "drc", "department_reply", code_, REPLY).status_code == 200
    return code_


#: land's reply limit moved to Mon 03-09 10:00 and met there as an automatic reply: (due,
#: stopped, e-supervision's (automatic, late) replies of land).
AUTOMATIC_AT_THE_MOVED_LIMIT = (at(2026, 3, 9, 10), at(2026, 3, 9, 10), (1, 0))


def _load_the_weekend_worked(client, token, clock, platform) -> tuple:
    """Loaded Tue 03-10 12:00, when land's reply limit moves to Mon 03-09 10:00, already past:
    land's reply clock (due, stopped) and e-supervision's count of its replies."""
    clock.set(at(2026, 3, 10, 12))
    _load_year(client, token, WEEKEND_WORKED)
    land = _land_reply_clock(platform)
    return land.due_at, land.stopped_at, replies(client, token, "land")


def _land_reply_clock(platform):
    with platform.session_factory() as s:
        return s.scalar(select(Clock).where(Clock.kind == "reply", Clock.department_code == "land"))


# --- a limit a calendar load moves into the past is met at its instant, whatever holds came since ---

def test_a_moved_reply_limit_is_met_at_its_instant_an_automatic_reply(client, token, clock, platform):
    _only_land_still_to_reply(client, token, clock)
    assert _load_the_weekend_worked(client, token, clock, platform) == AUTOMATIC_AT_THE_MOVED_LIMIT


def test_a_hold_of_another_matter_does_not_push_a_moved_reply_limit(client, token, clock, platform):
    """drc commissions an intermediary for ITS OWN matter (enterprise_filing) at 03-10 11:00; it
    holds no clock of the master (the reply clocks are held only by the project's own holds).
    The 2026 correction loaded at 12:00 moves land's reply limit to Mon 03-09 10:00: the
    automatic reply is given at 03-09 10:00, and e-supervision counts it as automatic."""
    code_ = _only_land_still_to_reply(client, token, clock)
    clock.set(at(2026, 3, 10, 11))
    r = client.post(f"/api/v1/projects/{code_}/matters/enterprise_filing/intermediaries", json=AGENCY, headers=token("drc"))
    assert r.status_code == 201, r.get_json()
    assert _load_the_weekend_worked(client, token, clock, platform) == AUTOMATIC_AT_THE_MOVED_LIMIT


def test_a_hold_of_another_matter_ended_meanwhile_does_not_push_it_either(client, token, clock, platform):
    """The same with a hold of drc's matter that began and ended before the load."""
    code_ = _only_land_still_to_reply(client, token, clock)
    clock.set(at(2026, 3, 6, 11))
    r = client.post(f"/api/v1/projects/{code_}/matters/enterprise_filing/intermediaries", json=AGENCY, headers=token("drc"))
    assert r.status_code == 201, r.get_json()
    row = r.get_json()
    base = f"/api/v1/projects/{code_}/matters/enterprise_filing/intermediaries/{row['id']}/events"
    for when, stage in ((at(2026, 3, 9, 14), "accepted"), (at(2026, 3, 9, 15), "handling"), (at(2026, 3, 10, 11), "completed")):
        clock.set(when)
        body = {"stage": stage, "version": row["version"], "note": ""}
        if stage == "completed":
            body["result"] = "核查完成"
        r = client.post(base, json=body, headers=token("drc"))
        assert r.status_code == 200, r.get_json()
        row = r.get_json()
    assert _load_the_weekend_worked(client, token, clock, platform) == AUTOMATIC_AT_THE_MOVED_LIMIT


# --- a retry applies an answer given in time, before the limits that passed while it stood errored ---

def test_an_on_time_end_of_a_special_procedure_is_applied_by_the_retry(client, token, clock, platform):
    """land puts the matter in a special procedure of 5 working days (its end is a fixed
    instant, special_procedure_until: the failure's pause does not move it). The officer ends
    it early, with its result, 2 days in; the step fails. The retry comes after the 5 days:
    the elapsed timer must not be met before the officer's on-time answer (it would be dropped,
    its result lost, and the promised clock would count while the instance stood errored).
    Applied first, as given in time, it ends the special procedure (its timer with it)."""
    from datetime import timedelta

    from tests.integration.test_clocks import _special_procedure, _to_acceptance, complete as cc
    from tests.integration.test_workflow_api import BPMN, LAND as LAND_BPMN
    old = "<bpmn:script>resume_clock('promised')</bpmn:script>"
    text = (BPMN / LAND_BPMN).read_text(encoding="utf-8")
    bad = text.replace(old, "<bpmn:script>resume_clock('promised')\nboom = 1 / 0</bpmn:script>").encode()
    fixed = text.replace(old, "<bpmn:script>resume_clock('promised')\nok = 1</bpmn:script>").encode()
    assert deploy(client, token, "operator", LAND_BPMN, bad).status_code == 201
    code_ = declare(client, token, new_land_use=True)["project_code"]
    _to_acceptance(client, token, code_)
    cc(client, token, "land", "acceptance", {"acceptance_decision": "accept"}, code_)
    _special_procedure(client, token, code_, 5)
    with platform.session_factory() as s:
        pm_instance = s.scalar(select(ProcessInstance).where(ProcessInstance.matter_code == "land_pre_review"))
        until, land_id = pm_instance.next_timer_at, pm_instance.id
    clock.advance(days=2)
    [task] = [t for t in client.get("/api/v1/tasks", headers=token("land"), query_string={"project_code": code_}).get_json()["items"]
              if t["name"] == "special_procedure"]
    r = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=token("land"),
                    json={"data": {"special_procedure_result": "专家评审完成，同意"}, "version": task["version"]})
    assert r.status_code == 202
    failed_at = clock.now()
    clock.set(until + timedelta(days=3))
    assert deploy(client, token, "operator", LAND_BPMN, fixed).status_code == 201
    r = client.post(f"/api/v1/instances/{land_id}/retry", headers=token("operator"), json={})
    with platform.session_factory() as s:
        sp_task = s.get(Task, task["id"])
    assert r.status_code == 200
    # the officer answered at failed_at, before `until`: the answer is applied, and the
    # special procedure ended then (the failure is not counted against anybody)
    assert sp_task.status == "completed" and sp_task.completed_by == "land", (sp_task.status, failed_at, until)


def test_a_suspension_after_a_moved_reply_limit_leaves_it_an_automatic_reply(client, token, clock, platform):
    """The project's own suspension (asked Tue 03-10 11:00, after land's moved limit Mon 03-09
    10:00): the automatic reply is still given at the limit, and counted as automatic."""
    code_ = _dispatched_land_project(client, token, clock)
    clock.set(at(2026, 3, 10, 11))
    r = client.post(f"/api/v1/projects/{code_}/changes", headers=token("applicant"),
                    json={"kind": "suspension", "reason": "资金未落实"})
    assert r.status_code == 201, r.get_json()
    assert _load_the_weekend_worked(client, token, clock, platform) == AUTOMATIC_AT_THE_MOVED_LIMIT


# --- reuse along the re-coding chain, both ways, and nothing outside it ---------------------------


def test_the_recoding_chain_reaches_both_ways_and_no_further(client, token, code, platform):
    def change(c, inv):
        r = client.post(f"/api/v1/projects/{c}/changes", headers=token("applicant"),
                        json={"kind": "major_change", "reason": "规模调整", "changes": {"investment": inv}})
        assert r.status_code == 201, r.get_json()
        return r.get_json()["project_code"]
    other = declare(client, token, **LAND)["project_code"]  # the same unit, another project
    foreign = upload(client, token, other, material="application_form").get_json()
    b = change(code, "50000")
    c = change(b, "60000")
    in_c = upload(client, token, c, material="application_form").get_json()
    assert reuse(client, token, b, in_c["id"], matter_code="land_pre_review", material="application_form").status_code in (201, 409)
    assert reuse(client, token, c, foreign["id"], matter_code="land_pre_review", material="application_form").status_code == 404
    other2 = declare(client, token, user="applicant2", **LAND)["project_code"]
    theirs = upload(client, token, other2, user="applicant2", material="application_form").get_json()
    assert reuse(client, token, c, theirs["id"], matter_code="land_pre_review", material="application_form").status_code == 404
    r = reuse(client, token, other2, in_c["id"], matter_code="land_pre_review", material="application_form")
    assert r.status_code == 404, r.get_json()



def test_a_suspension_ended_by_a_late_dated_conclusion_ends_where_it_began(client, token, clock, platform):
    """drc replies "no matter"; the unit suspends the project Tue 03-10 11:00. The corrected
    schedule loaded at 12:00 meets land's automatic reply at Mon 03-09 10:00, which concludes
    the master and ends the project's holds: none ends before it began."""
    code_ = _dispatched_land_project(client, token, clock)
    clock.set(at(2026, 3, 6, 10, 30))
    assert lc(client, token, "drc", "department_reply", code_, NO_MATTER).status_code == 200
    clock.set(at(2026, 3, 10, 11))
    r = client.post(f"/api/v1/projects/{code_}/changes", headers=token("applicant"), json={"kind": "suspension", "reason": "资金未落实"})
    assert r.status_code == 201, r.get_json()
    clock.set(at(2026, 3, 10, 12))
    _load_year(client, token, WEEKEND_WORKED)
    holds_ = client.get(f"/api/v1/projects/{code_}", headers=token("supervisor")).get_json()["holds"]
    assert holds_ and all(h["ended_at"] is None or datetime.fromisoformat(h["ended_at"]) >= datetime.fromisoformat(h["started_at"])
                          for h in holds_), holds_
