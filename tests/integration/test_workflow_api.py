"""The one-window parallel approval flow over HTTP (issue: procedures as versioned diagrams,
one-window parallel approval, task lists).

Declare → matters notice → the general window dispatches → each department replies →
each matter runs as its own instance → the sweep delivers concluded matters to the
master → the project is concluded. Also: form errors, stale versions, who may work
what, corrections, consultations, claim/delegate, list filters, version pinning,
run-time failures and retry, restricted scripts at run time, the automatic reply.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from io import BytesIO
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import runtime, scripting
from engine.models import Alert, Clock, ProcessInstance, Task, User
from engine.sweep import sweep
from tests.integration.helpers import declare, snapshot, supply_all_materials

BPMN = Path(__file__).resolve().parents[2] / "bpmn"
LAND = "matter_land_pre_review.bpmn"

PRE_CHECK_PASS = {"precheck_result": "pass", "code_verified": True, "within_competence": True}
ACCEPT = {"acceptance_decision": "accept"}
DECIDE = {"handling_action": "decide", "handling_opinion": "同意"}
REPLY_ACCEPTED = {"reply_outcome": "accepted", "reply_comment": "本部门有应办事项，已受理"}
FILE = {"filing_decision": "file", "filing_comment": "备案信息齐全", "document_number": "川投资备〔2026〕1号",
        "document_date": "2026-03-02"}
#: A filing-regime project needing the land pre-review (new land) and the construction
#: permit (building works ≥ 30 万元); industry 13 (food processing) needs no EIA.
FILING_PROJECT = {"regime": "filing", "industry_code": "13", "building_works": True, "new_land_use": True}
#: A project needing only the land pre-review besides the filing.
LAND_PROJECT = {"regime": "filing", "industry_code": "13", "building_works": False, "new_land_use": True}
SHANGHAI = timezone(timedelta(hours=8))

def approve(user):
    return {"decision": "approve", "document_number": f"{user}〔2026〕1号", "document_title": f"{user}批复",
            "document_date": "2026-03-02", "main_content": "同意建设"}


# --- helpers --------------------------------------------------------------------------------

def tasks(client, token, user, **params):
    r = client.get("/api/v1/tasks", headers=token(user), query_string={"page_size": 200, **params})
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"]


def find(client, token, user, name, project_code, matter_code=None):
    found = [t for t in tasks(client, token, user, project_code=project_code)
             if t["name"] == name and (matter_code is None or t["matter_code"] == matter_code)]
    assert len(found) == 1, (user, name, [(t["name"], t["matter_code"]) for t in tasks(client, token, user)])
    return found[0]


def complete(client, token, user, task, data, version=None):
    return client.post(f"/api/v1/tasks/{task['id']}/complete", headers=token(user),
                       json={"data": data, "version": task["version"] if version is None else version})


def work(client, token, user, name, project_code, data, matter_code=None):
    task = find(client, token, user, name, project_code, matter_code)
    r = complete(client, token, user, task, data)
    assert r.status_code == 200, (user, name, r.status_code, r.get_json())
    return r.get_json()


def project(client, token, code, user="applicant"):
    r = client.get(f"/api/v1/projects/{code}", headers=token(user))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def dispatch(client, token, code):
    window = find(client, token, "window", "window_review", code)
    r = complete(client, token, "window", window,
                 {"window_decision": "dispatch", "departments": window["context"]["departments"]})
    assert r.status_code == 200, r.get_json()
    return window["context"]["departments"]


def to_matters(client, token, user="applicant", **facts):
    """Declare, dispatch, every department replies accepted: the matters are running."""
    code = declare(client, token, user=user, **facts)["project_code"]
    supply_all_materials(client, token, code, user)
    for department in dispatch(client, token, code):
        work(client, token, department, "department_reply", code, REPLY_ACCEPTED)
    return code


def upload(client, token, user, filename, content: bytes):
    return client.post("/api/v1/procedures", headers=token(user), data={"file": (BytesIO(content), filename)},
                       content_type="multipart/form-data")


def land_version(text_old: str, text_new: str) -> bytes:
    text = (BPMN / LAND).read_text(encoding="utf-8")
    assert text_old in text
    return text.replace(text_old, text_new, 1).encode("utf-8")


def matter_instances(client, token, **params):
    r = client.get("/api/v1/instances", headers=token("operator"), query_string={"page_size": 200, **params})
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"]


# --- the whole flow -----------------------------------------------------------------------------

def test_declare_dispatch_reply_handle_and_conclude(client, token, platform):
    body = declare(client, token, **FILING_PROJECT)
    code = body["project_code"]
    assert body["status"] == "declared"
    assert [(m["matter_code"], m["department"], m["status"]) for m in body["matters"]] == [
        ("enterprise_filing", "drc", "notified"), ("land_pre_review", "land", "notified"),
        ("construction_permit", "housing", "notified")]

    supply_all_materials(client, token, code)
    window = find(client, token, "window", "window_review", code)
    assert window["context"]["departments"] == ["drc", "land", "housing"]
    assert window["form"]["properties"]["window_decision"]["enum"] == ["dispatch", "return", "cancel"]
    assert window["due_at"] == "2026-03-03T01:00:00+00:00"  # the dispatch clock: 1 working day
    r = complete(client, token, "window", window, {"window_decision": "dispatch", "departments": ["drc", "land", "housing"]})
    assert r.status_code == 200 and r.get_json()["instance_status"] == "running"
    assert r.get_json()["task"]["status"] == "completed"
    assert project(client, token, code)["status"] == "dispatched"

    for department in ("drc", "land", "housing"):
        reply = find(client, token, department, "department_reply", code)
        assert reply["department"] == department and reply["lane"] == "$department:officer"
        assert reply["due_at"] == "2026-03-05T01:00:00+00:00"  # the reply clock: 3 working days
        assert set(reply["form"]["properties"]) == {"reply_outcome", "reply_comment"}
        assert tasks(client, token, "water", project_code=code) == []
        r = complete(client, token, department, reply, REPLY_ACCEPTED)
        assert r.status_code == 200, r.get_json()

    assert [m["status"] for m in project(client, token, code)["matters"]] == ["handling"] * 3
    work(client, token, "drc", "filing_check", code, FILE, "enterprise_filing")
    for department, matter in (("land", "land_pre_review"), ("housing", "construction_permit")):
        work(client, token, department, "pre_check", code, PRE_CHECK_PASS, matter)
        work(client, token, department, "acceptance", code, ACCEPT, matter)
        work(client, token, department, "handling", code, DECIDE, matter)
        work(client, token, department, "decision", code, approve(department), matter)

    # every matter is concluded; the master hears of it on the next sweep
    assert project(client, token, code)["status"] == "dispatched"
    report = sweep(platform)
    assert report.fired.get("deliveries") == 3
    p = project(client, token, code)
    assert p["status"] == "concluded"
    results = {m["matter_code"]: (m["status"], m["result"]["decision"], m["result"]["document_number"]) for m in p["matters"]}
    assert results == {
        "enterprise_filing": ("concluded", "filed", "川投资备〔2026〕1号"),
        "land_pre_review": ("concluded", "approved", "land〔2026〕1号"),
        "construction_permit": ("concluded", "approved", "housing〔2026〕1号"),
    }
    conclusion = [n for n in p["notices"] if n["kind"] == "conclusion"]
    assert len(conclusion) == 1 and conclusion[0]["number"] and conclusion[0]["matter_code"] is None
    assert sorted(n["matter_code"] for n in p["notices"] if n["kind"] == "decision") == sorted(results)
    assert all(c["state"] == "stopped" for c in p["clocks"])

    # 抄送: the concluded matters' documents on the copied departments' lists, read-only
    copies = {u: sorted(t["matter_code"] for t in tasks(client, token, u, project_code=code)) for u in
              ("drc", "land", "env", "housing", "water")}
    assert copies == {
        "drc": ["construction_permit", "land_pre_review"],
        "land": ["construction_permit", "enterprise_filing"],
        "env": ["enterprise_filing"],
        "housing": ["enterprise_filing", "land_pre_review"],
        "water": ["enterprise_filing"],
    }
    copy = tasks(client, token, "env", project_code=code)[0]
    assert copy["read_only"] is True and copy["name"] == "copy"
    assert complete(client, token, "env", copy, {}).status_code == 409
    assert [t["matter_code"] for t in tasks(client, token, "env", project_code=code, include_read_only=False)] == []
    # the applicant is told, read-only too
    told = tasks(client, token, "applicant", project_code=code)
    assert [(t["name"], t["read_only"]) for t in told] == [("conclusion_notice", True)]
    assert tasks(client, token, "applicant2") == []
    assert {i["status"] for i in matter_instances(client, token)} == {"completed"}


# --- completing: forms, versions, who ---------------------------------------------------------

def test_form_errors_are_422_by_field_and_the_task_stays_ready(client, token, platform):
    code = declare(client, token, **FILING_PROJECT)["project_code"]
    dispatch(client, token, code)
    reply = find(client, token, "land", "department_reply", code)
    code2 = declare(client, token, **FILING_PROJECT)["project_code"]
    window = find(client, token, "window", "window_review", code2)
    before = snapshot(platform)
    cases = [
        ({"reply_outcome": "maybe", "reply_comment": "x"}, "data.reply_outcome"),
        ({"reply_outcome": "accepted"}, "data.reply_comment"),
        ({"reply_outcome": "accepted", "reply_comment": "x" * 1001}, "data.reply_comment"),
        ({"reply_outcome": "accepted", "reply_comment": "x", "working_days": 1}, "data.working_days"),
        ({}, "data.reply_outcome"),
    ]
    for data, key in cases:
        r = complete(client, token, "land", reply, data)
        assert r.status_code == 422, (data, r.get_json())
        assert key in r.get_json()["errors"], (data, r.get_json())
    # the body itself: data must be an object, version an integer
    r = client.post(f"/api/v1/tasks/{reply['id']}/complete", headers=token("land"), json={"data": [], "version": 1})
    assert r.status_code == 422 and "data" in r.get_json()["errors"]
    r = client.post(f"/api/v1/tasks/{reply['id']}/complete", headers=token("land"), json={"data": {}, "version": "1"})
    assert r.status_code == 422 and "version" in r.get_json()["errors"]
    # a conditional requirement (dispatching names the departments)
    r = complete(client, token, "window", window, {"window_decision": "dispatch"})
    assert r.status_code == 422 and "data.departments" in r.get_json()["errors"], r.get_json()
    assert snapshot(platform) == before
    again = find(client, token, "land", "department_reply", code)
    assert again["id"] == reply["id"] and again["version"] == reply["version"] and again["status"] == "ready"
    assert complete(client, token, "land", again, REPLY_ACCEPTED).status_code == 200


def test_stale_version_and_completing_twice_are_409(client, token):
    code = declare(client, token, **FILING_PROJECT)["project_code"]
    dispatch(client, token, code)
    reply = find(client, token, "drc", "department_reply", code)
    r = complete(client, token, "drc", reply, REPLY_ACCEPTED, version=reply["version"] + 1)
    assert r.status_code == 409, r.get_json()
    assert find(client, token, "drc", "department_reply", code)["version"] == reply["version"]
    assert complete(client, token, "drc", reply, REPLY_ACCEPTED).status_code == 200
    r = complete(client, token, "drc", reply, REPLY_ACCEPTED)
    assert r.status_code == 409, r.get_json()
    r = complete(client, token, "drc", reply, REPLY_ACCEPTED, version=reply["version"] + 1)
    assert r.status_code == 409


def test_another_departments_task_is_403_and_another_units_task_is_404(client, token):
    code = declare(client, token, **FILING_PROJECT)["project_code"]
    dispatch(client, token, code)
    reply = find(client, token, "drc", "department_reply", code)
    assert complete(client, token, "land", reply, REPLY_ACCEPTED).status_code == 403
    assert complete(client, token, "window", reply, REPLY_ACCEPTED).status_code == 403
    assert complete(client, token, "applicant", reply, REPLY_ACCEPTED).status_code == 404
    assert client.get(f"/api/v1/tasks/{reply['id']}", headers=token("land")).status_code == 404
    assert client.get(f"/api/v1/tasks/{reply['id']}", headers=token("drc")).status_code == 200
    r = client.post("/api/v1/tasks/00000000-0000-0000-0000-000000000000/complete", headers=token("drc"),
                    json={"data": REPLY_ACCEPTED, "version": 1})
    assert r.status_code == 404
    assert find(client, token, "drc", "department_reply", code)["status"] == "ready"


def test_correction_request_goes_to_the_applicant_and_back_to_the_officer(client, token, platform):
    code = to_matters(client, token, **LAND_PROJECT)
    work(client, token, "land", "pre_check", code, PRE_CHECK_PASS, "land_pre_review")
    work(client, token, "land", "acceptance", code,
         {"acceptance_decision": "correction", "correction_items": [{"material": "site_plan", "note": "补充用地红线图"}]},
         "land_pre_review")
    assert [t["name"] for t in tasks(client, token, "land", project_code=code)] == []
    supply = find(client, token, "applicant", "supply_materials", code, "land_pre_review")
    assert supply["lane"] == "applicant" and supply["role"] == "applicant" and supply["department"] is None
    assert supply["context"]["correction_items"] == [{"material": "site_plan", "name": "拟选址位置图及用地范围勘测定界图",
                                                      "note": "补充用地红线图"}]
    assert "supplement_note" in supply["form"]["properties"]
    p = project(client, token, code)
    assert [n["kind"] for n in p["notices"] if n["matter_code"] == "land_pre_review"] == ["correction"]
    acceptance_clock = [c for c in p["clocks"] if c["kind"] == "acceptance"]
    assert [c["state"] for c in acceptance_clock] == ["paused"]
    # another unit cannot see or answer it
    assert tasks(client, token, "applicant2") == []
    assert complete(client, token, "applicant2", supply, {"supplement_note": "x"}).status_code == 404
    assert complete(client, token, "land", supply, {"supplement_note": "x"}).status_code in (403, 404)
    r = complete(client, token, "applicant", supply, {"supplement_note": "已补充用地红线图", "materials": ["M-0001"]})
    assert r.status_code == 200, r.get_json()
    assert tasks(client, token, "applicant", project_code=code) == []
    back = find(client, token, "land", "acceptance_after_correction", code, "land_pre_review")
    assert back["form"]["properties"]["acceptance_decision"]["enum"] == ["accept", "refuse"]
    running = [c for c in project(client, token, code)["clocks"] if c["kind"] == "acceptance" and c["state"] == "running"]
    assert len(running) == 1 and running[0]["started_at"] == "2026-03-02T01:00:00+00:00"
    r = complete(client, token, "land", back, ACCEPT)
    assert r.status_code == 200
    assert find(client, token, "land", "handling", code, "land_pre_review")


def test_consultation_goes_to_the_consulted_department_and_back(client, token, platform):
    code = to_matters(client, token, **LAND_PROJECT)
    work(client, token, "land", "pre_check", code, PRE_CHECK_PASS, "land_pre_review")
    work(client, token, "land", "acceptance", code, ACCEPT, "land_pre_review")
    work(client, token, "land", "handling", code,
         {"handling_action": "consult", "handling_opinion": "需征求环保意见", "consulted_department": "env",
          "consultation_question": "选址是否涉及饮用水水源保护区？"}, "land_pre_review")
    assert tasks(client, token, "land", project_code=code) == []
    asked = find(client, token, "env", "consultation", code, "land_pre_review")
    assert asked["department"] == "env" and asked["lane"] == "$consulted_department:officer"
    assert asked["context"]["consultation_question"] == "选址是否涉及饮用水水源保护区？"
    assert complete(client, token, "land", asked, {"consultation_result": "agree", "consultation_opinion": "x"}).status_code == 403
    r = complete(client, token, "env", asked, {"consultation_result": "conditional", "consultation_opinion": "须避让保护区"})
    assert r.status_code == 200, r.get_json()
    assert tasks(client, token, "env", project_code=code) == []
    work(client, token, "land", "handling", code, DECIDE, "land_pre_review")
    work(client, token, "land", "decision", code, approve("land"), "land_pre_review")
    result = {m["matter_code"]: m["result"] for m in project(client, token, code)["matters"]}["land_pre_review"]
    assert result["consultations"] == [{"department": "env", "question": "选址是否涉及饮用水水源保护区？",
                                        "result": "conditional", "opinion": "须避让保护区"}]


def test_claim_unclaim_and_delegate_within_the_department(client, token, platform):
    r = client.post("/api/v1/users", headers=token("operator"), json={
        "username": "land2", "password": "Ren-he-2026-land", "display_name": "自然资源局经办人二",
        "roles": ["officer"], "department_code": "land"})
    assert r.status_code == 201, r.get_json()
    with platform.session_factory() as s:
        land2_id = s.scalar(select(User.id).where(User.username == "land2"))
    code = to_matters(client, token, **LAND_PROJECT)
    task = find(client, token, "land", "pre_check", code)
    assert find(client, token, "land2", "pre_check", code)["id"] == task["id"]  # the department's list

    r = client.post(f"/api/v1/tasks/{task['id']}/claim", headers=token("land"))
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["version"] == find(client, token, "land", "pre_check", code)["version"]  # the answer is current
    land_id = r.get_json()["assignee_id"]
    assert land_id is not None and land_id != land2_id
    assert [t["id"] for t in tasks(client, token, "land", mine=True)] == [task["id"]]
    assert tasks(client, token, "land2", mine=True) == []
    assert client.post(f"/api/v1/tasks/{task['id']}/claim", headers=token("land2")).status_code == 409
    assert client.post(f"/api/v1/tasks/{task['id']}/claim", headers=token("drc")).status_code == 404
    assert client.post(f"/api/v1/tasks/{task['id']}/unclaim", headers=token("land2")).status_code == 409
    current = find(client, token, "land", "pre_check", code)
    assert complete(client, token, "land2", current, PRE_CHECK_PASS).status_code == 409

    r = client.post(f"/api/v1/tasks/{task['id']}/unclaim", headers=token("land"))
    assert r.status_code == 200 and r.get_json()["assignee_id"] is None
    assert r.get_json()["version"] == find(client, token, "land", "pre_check", code)["version"]

    for to in ("drc", "applicant", "nobody"):
        r = client.post(f"/api/v1/tasks/{task['id']}/delegate", headers=token("land"), json={"to": to})
        assert r.status_code == 422 and "to" in r.get_json()["errors"], (to, r.get_json())
    r = client.post(f"/api/v1/tasks/{task['id']}/delegate", headers=token("land"), json={"to": "land2"})
    assert r.status_code == 200 and r.get_json()["assignee_id"] == land2_id
    delegated = r.get_json()
    assert delegated["version"] == find(client, token, "land2", "pre_check", code)["version"]  # the answer is current
    assert [t["id"] for t in tasks(client, token, "land2", mine=True)] == [task["id"]]
    assert complete(client, token, "land", delegated, PRE_CHECK_PASS).status_code == 409
    r = complete(client, token, "land2", delegated, PRE_CHECK_PASS)  # with the version the delegation answered
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["task"]["status"] == "completed"
    assert client.post(f"/api/v1/tasks/{task['id']}/claim", headers=token("land")).status_code == 409
    # the new task is unclaimed again
    assert find(client, token, "land", "acceptance", code)["assignee_id"] is None


def test_department_admin_releases_a_claimed_task(client, token):
    code = to_matters(client, token, **LAND_PROJECT)
    task = find(client, token, "drc", "filing_check", code)
    assert client.post(f"/api/v1/tasks/{task['id']}/claim", headers=token("drc")).status_code == 200
    r = client.post(f"/api/v1/tasks/{task['id']}/unclaim", headers=token("drc_admin"))
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["assignee_id"] is None


def test_delegating_to_a_deactivated_colleague_is_refused(client, token, platform):
    r = client.post("/api/v1/users", headers=token("operator"), json={
        "username": "drc2", "password": "Ren-he-2026-drc!", "display_name": "发改局经办人二",
        "roles": ["officer"], "department_code": "drc"})
    assert r.status_code == 201, r.get_json()
    with platform.session_factory() as s:
        s.scalar(select(User).where(User.username == "drc2")).active = False
        s.commit()
    code = to_matters(client, token, **LAND_PROJECT)
    task = find(client, token, "drc", "filing_check", code)
    r = client.post(f"/api/v1/tasks/{task['id']}/delegate", headers=token("drc"), json={"to": "drc2"})
    assert r.status_code == 422, r.get_json()
    assert find(client, token, "drc", "filing_check", code)["assignee_id"] is None


def test_a_created_colleague_is_answered_with_its_id(client, token, platform):
    r = client.post("/api/v1/users", headers=token("operator"), json={
        "username": "land3", "password": "Ren-he-2026-land", "display_name": "自然资源局经办人三",
        "roles": ["officer"], "department_code": "land"})
    assert r.status_code == 201, r.get_json()
    with platform.session_factory() as s:
        assert r.get_json()["id"] == s.scalar(select(User.id).where(User.username == "land3"))


def test_task_list_filters_sorting_and_pagination(client, token, platform, clock):
    first = to_matters(client, token, **LAND_PROJECT)
    clock.advance(hours=2)
    second = to_matters(client, token, **LAND_PROJECT)
    clock.advance(hours=2)
    third = to_matters(client, token, user="applicant2", **LAND_PROJECT)

    listed = tasks(client, token, "land")
    assert [(t["project_code"], t["name"]) for t in listed] == [(first, "pre_check"), (second, "pre_check"), (third, "pre_check")]
    assert [t["due_at"] for t in listed] == sorted(t["due_at"] for t in listed)
    for t in listed:
        assert isinstance(t["version"], int) and t["form"]["type"] == "object"
        assert "precheck_result" in t["form"]["properties"] and t["light"] == "green"
        assert t["matter_code"] == "land_pre_review" and t["department"] == "land"

    page = client.get("/api/v1/tasks", headers=token("land"), query_string={"page_size": 1, "page": 2}).get_json()
    assert page["total"] == 3 and page["page"] == 2 and [t["project_code"] for t in page["items"]] == [second]
    assert [t["project_code"] for t in tasks(client, token, "land", project_code=second)] == [second]
    full_width = second.translate(str.maketrans("0123456789-", "０１２３４５６７８９－"))
    assert [t["project_code"] for t in tasks(client, token, "land", project_code=f" {full_width} ")] == [second]  # typed as a lookup takes it
    assert tasks(client, token, "land", project_code="2026-000000") == []
    assert len(tasks(client, token, "land", matter_code="land_pre_review")) == 3
    assert tasks(client, token, "land", matter_code="eia_approval") == []
    due = datetime.fromisoformat(listed[1]["due_at"])
    assert [t["project_code"] for t in tasks(client, token, "land", due_before=due.isoformat())] == [first]

    # the first project's pre-review clock turns yellow at 80% of 3 working days
    clock.set(datetime.fromisoformat(listed[0]["due_at"]) - timedelta(hours=13))
    sweep(platform)
    assert [t["project_code"] for t in tasks(client, token, "land", light="yellow")] == [first]
    assert len(tasks(client, token, "land", light="green")) == 2
    assert tasks(client, token, "land", light="red") == []

    claimed = client.post(f"/api/v1/tasks/{listed[2]['id']}/claim", headers=token("land"))
    assert claimed.status_code == 200
    assert [t["project_code"] for t in tasks(client, token, "land", mine=True)] == [third]
    # applicants see only their own unit's tasks; officers only their department's
    assert tasks(client, token, "applicant") == [] and tasks(client, token, "applicant2") == []
    assert all(t["department"] == "drc" for t in tasks(client, token, "drc"))
    for bad in ({"light": "purple"}, {"page_size": 0}, {"due_before": "tomorrow"}):
        r = client.get("/api/v1/tasks", headers=token("land"), query_string=bad)
        assert r.status_code == 422, (bad, r.get_json())
    assert client.get("/api/v1/tasks").status_code == 401


# --- versions ---------------------------------------------------------------------------------

def test_running_matter_keeps_its_version_and_new_ones_take_the_newest(client, token, platform):
    old = to_matters(client, token, **LAND_PROJECT)
    v2 = land_version('name="受理审查"', 'name="受理审查（第二版）"')
    r = upload(client, token, "operator", LAND, v2)
    assert r.status_code == 201 and r.get_json()["version"] == 2, r.get_json()

    work(client, token, "land", "pre_check", old, PRE_CHECK_PASS, "land_pre_review")
    assert find(client, token, "land", "acceptance", old)["title"] == "受理审查"
    new = to_matters(client, token, **LAND_PROJECT)
    work(client, token, "land", "pre_check", new, PRE_CHECK_PASS, "land_pre_review")
    assert find(client, token, "land", "acceptance", new)["title"] == "受理审查（第二版）"

    versions = {(i["process_id"], i["procedure_version"]) for i in matter_instances(client, token)
                if i["matter_code"] == "land_pre_review"}
    assert versions == {("matter_land_pre_review", 1), ("matter_land_pre_review", 2)}
    for code in (old, new):
        work(client, token, "land", "acceptance", code, ACCEPT)
        work(client, token, "land", "handling", code, DECIDE)
        work(client, token, "land", "decision", code, approve("land"))
        work(client, token, "drc", "filing_check", code, FILE)
    sweep(platform)
    assert project(client, token, old)["status"] == project(client, token, new)["status"] == "concluded"
    land = sorted((i["procedure_version"], i["status"]) for i in matter_instances(client, token)
                  if i["matter_code"] == "land_pre_review")
    assert land == [(1, "completed"), (2, "completed")]


ACCEPT_MATERIALS = "<bpmn:script>stop_clock('pre_review')\nstart_clock('acceptance', working_days=5)</bpmn:script>"


def test_run_time_failure_marks_the_instance_and_retry_resumes_on_the_fix(client, token, platform):
    failing = land_version(ACCEPT_MATERIALS, ACCEPT_MATERIALS.replace("<bpmn:script>", "<bpmn:script>ratio = 1 / 0\n"))
    r = upload(client, token, "operator", LAND, failing)
    assert r.status_code == 201 and r.get_json()["version"] == 2, r.get_json()
    code = to_matters(client, token, **LAND_PROJECT)
    task = find(client, token, "land", "pre_check", code)

    r = complete(client, token, "land", task, PRE_CHECK_PASS)
    assert r.status_code == 202, r.get_json()
    body = r.get_json()
    assert body["instance_status"] == "error"
    assert body["error"]["element"] == "accept_materials" and "ZeroDivisionError" in body["error"]["message"]
    errored = matter_instances(client, token, status="error")
    assert [(i["matter_code"], i["procedure_version"], i["error_element"]) for i in errored] == [
        ("land_pre_review", 2, "accept_materials")]
    assert client.get("/api/v1/instances", headers=token("land")).status_code == 403
    # the officer's task is still there; completing it again while the instance is broken is refused
    again = find(client, token, "land", "pre_check", code)
    assert again["status"] == "ready"
    assert complete(client, token, "land", again, PRE_CHECK_PASS).status_code == 409
    # the failed step moved no clock; the failure stops the matter's clock until the retry
    clocks = [c for c in project(client, token, code)["clocks"] if c["matter_code"] == "land_pre_review"]
    assert [(c["kind"], c["state"], [p["reason"] for p in c["pauses"]]) for c in clocks] == [
        ("pre_review", "paused", [runtime.PLATFORM_FAILURE])]

    fixed = land_version(ACCEPT_MATERIALS, ACCEPT_MATERIALS.replace("<bpmn:script>", "<bpmn:script>ratio = 1 / 1\n"))
    r = upload(client, token, "operator", LAND, fixed)
    assert r.status_code == 201 and r.get_json()["version"] == 3, r.get_json()
    assert client.post(f"/api/v1/instances/{errored[0]['id']}/retry", headers=token("land")).status_code == 403
    r = client.post(f"/api/v1/instances/{errored[0]['id']}/retry", headers=token("operator"))
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == "running" and r.get_json()["procedure_version"] == 3
    assert r.get_json()["error_element"] is None
    assert matter_instances(client, token, status="error") == []
    assert tasks(client, token, "land", project_code=code, include_read_only=False)[0]["name"] == "acceptance"
    with platform.session_factory() as s:
        assert s.get(Task, task["id"]).status == "completed"
    assert client.post(f"/api/v1/instances/{errored[0]['id']}/retry", headers=token("operator")).status_code == 409
    work(client, token, "land", "acceptance", code, ACCEPT)


ACCEPTED = ("issue_notice('acceptance')\nstart_clock('promised', working_days=promised_days())</bpmn:script>")


def test_a_failed_step_leaves_no_notice_or_clock_behind(client, token, platform):
    """A script that fails after issue_notice/start_clock: the step is undone as a whole, so
    the retried step issues exactly one acceptance notice and starts one promised clock."""
    failing = land_version(ACCEPTED, ACCEPTED.replace("</bpmn:script>", "\nlate = 1 / 0</bpmn:script>"))
    assert upload(client, token, "operator", LAND, failing).status_code == 201
    code = to_matters(client, token, **LAND_PROJECT)
    work(client, token, "land", "pre_check", code, PRE_CHECK_PASS)
    task = find(client, token, "land", "acceptance", code)
    r = complete(client, token, "land", task, ACCEPT)
    assert r.status_code == 202 and r.get_json()["error"]["element"] == "accepted", r.get_json()
    p = project(client, token, code)
    assert [n["number"] for n in p["notices"] if n["kind"] == "acceptance"] == []
    assert [(c["kind"], c["state"]) for c in p["clocks"] if c["kind"] in ("acceptance", "promised")] == [
        ("acceptance", "paused")]  # stopped by the failure until the retry, no promised clock
    fixed = land_version(ACCEPTED, ACCEPTED.replace("</bpmn:script>", "\nlate = 1 / 1</bpmn:script>"))
    assert upload(client, token, "operator", LAND, fixed).status_code == 201
    instance_id = matter_instances(client, token, status="error")[0]["id"]
    assert client.post(f"/api/v1/instances/{instance_id}/retry", headers=token("operator")).status_code == 200
    p = project(client, token, code)
    assert [n["number"] for n in p["notices"] if n["kind"] == "acceptance"] == [
        f"{code}-land_pre_review-acceptance-01"]
    promised = [c for c in p["clocks"] if c["kind"] == "promised"]
    assert [c["state"] for c in promised] == ["running"]


RESTART_ACCEPTANCE = ("flow_restart_acceptance_clock_to_acceptance_after_correction</bpmn:outgoing>\n"
                      "      <bpmn:script>start_clock('acceptance', working_days=5)")


def test_the_project_unit_is_told_plainly_when_the_procedure_fails_after_its_answer(client, token, platform):
    """The unit answers a correction request and the diagram fails after it: the unit is
    answered 202 with a plain sentence, not the failing element or the script's message;
    the operator's list has both."""
    failing = land_version(RESTART_ACCEPTANCE, RESTART_ACCEPTANCE + "\nratio = 1 / 0")
    assert upload(client, token, "operator", LAND, failing).status_code == 201
    code = to_matters(client, token, **LAND_PROJECT)
    work(client, token, "land", "pre_check", code, PRE_CHECK_PASS, "land_pre_review")
    work(client, token, "land", "acceptance", code,
         {"acceptance_decision": "correction", "correction_items": [{"material": "site_plan", "note": "补充用地红线图"}]},
         "land_pre_review")
    r = complete(client, token, "applicant", find(client, token, "applicant", "supply_materials", code, "land_pre_review"),
                 {"supplement_note": "已补充用地红线图"})
    assert r.status_code == 202, r.get_json()
    body = r.get_json()
    assert body["error"] == {"element": None, "message": runtime.FAILURE_TOLD_TO_APPLICANT}
    assert "1 / 0" not in r.get_data(as_text=True) and "restart_acceptance_clock" not in r.get_data(as_text=True)
    [errored] = matter_instances(client, token, status="error")
    assert errored["error_element"] == "restart_acceptance_clock" and "1 / 0" in errored["error_message"]

MASTER = Path("bpmn/project_master.bpmn").read_text(encoding="utf-8")
RECORD_REPLY = ("department_matters = [m['matter_code'] for m in matters_notice "
                "if m['department'] == department and reply_outcome == 'accepted']")


def master_version(extra_line: str) -> bytes:
    """The shipped master with one more line in record_reply (a new version of it)."""
    assert MASTER.count(RECORD_REPLY) == 1
    return MASTER.replace(RECORD_REPLY, f"{RECORD_REPLY}\n{extra_line}").encode()


def test_a_matter_concluded_while_its_master_is_errored_is_delivered_after_the_retry(client, token, platform):
    """drc's matter runs from drc's reply; housing's reply then fails the master. drc's
    result waits (the sweep leaves it pending) and reaches the master once it is retried."""
    assert upload(client, token, "operator", "project_master.bpmn",
                  master_version("boom = 1 / 0 if department == 'housing' else 0")).status_code == 201
    code = declare(client, token, **FILING_PROJECT)["project_code"]
    supply_all_materials(client, token, code)
    dispatch(client, token, code)
    work(client, token, "drc", "department_reply", code, REPLY_ACCEPTED)
    work(client, token, "land", "department_reply", code, {"reply_outcome": "no_matter", "reply_comment": "无"})
    r = complete(client, token, "housing", find(client, token, "housing", "department_reply", code),
                 {"reply_outcome": "no_matter", "reply_comment": "无"})
    assert r.status_code == 202 and r.get_json()["error"]["element"] == "record_reply", r.get_json()
    work(client, token, "drc", "filing_check", code, FILE, "enterprise_filing")
    assert "deliveries" not in sweep(platform).fired  # the master is errored: the result waits
    assert upload(client, token, "operator", "project_master.bpmn", master_version("boom = 0")).status_code == 201
    [master] = matter_instances(client, token, status="error")
    assert client.post(f"/api/v1/instances/{master['id']}/retry", headers=token("operator")).status_code == 200
    assert sweep(platform).fired.get("deliveries") == 1
    p = project(client, token, code)
    assert p["status"] == "concluded", [(m["matter_code"], m["status"]) for m in p["matters"]]
    assert {m["matter_code"]: m["status"] for m in p["matters"]} == {
        "enterprise_filing": "concluded", "land_pre_review": "no_matter", "construction_permit": "no_matter"}


def test_retrying_on_a_version_that_cannot_hold_the_state_is_409_and_changes_nothing(client, token, platform):
    """An instance errored on a master whose structure the newest version changed: the
    retry says so (409) instead of failing, and the instance stays as it was."""
    old_master = MASTER.replace(RECORD_REPLY, "department_matters = []").replace(
        '<bpmn:subProcess id="matter_stages"', '<bpmn:subProcess id="matter_stages_v0"')
    old_master = old_master.replace('bpmnElement="matter_stages"', 'bpmnElement="matter_stages_v0"').replace(
        'targetRef="matter_stages"', 'targetRef="matter_stages_v0"').replace(
        'sourceRef="matter_stages"', 'sourceRef="matter_stages_v0"').replace(
        "<bpmn:flowNodeRef>matter_stages</bpmn:flowNodeRef>", "<bpmn:flowNodeRef>matter_stages_v0</bpmn:flowNodeRef>")
    failing = old_master.replace("department_matters = []", "department_matters = []\nboom = 1 / 0")
    assert upload(client, token, "operator", "project_master.bpmn", failing.encode()).status_code == 201
    code = declare(client, token, **FILING_PROJECT)["project_code"]
    dispatch(client, token, code)
    r = complete(client, token, "drc", find(client, token, "drc", "department_reply", code), REPLY_ACCEPTED)
    assert r.status_code == 202, r.get_json()
    assert upload(client, token, "operator", "project_master.bpmn", master_version("fixed = 1")).status_code == 201
    [master] = matter_instances(client, token, status="error")
    r = client.post(f"/api/v1/instances/{master['id']}/retry", headers=token("operator"))
    assert r.status_code == 409 and "does not fit version" in r.get_json()["message"], r.get_json()
    assert matter_instances(client, token, status="error") == [master]
    r = client.post(f"/api/v1/instances/{master['id']}/retry", headers=token("operator"), json={"version": "sideways"})
    assert r.status_code == 422 and "version" in r.get_json()["errors"], r.get_json()
    # on its own version it fails again the same way (the fault is in that version): errored, not lost
    r = client.post(f"/api/v1/instances/{master['id']}/retry", headers=token("operator"), json={"version": "current"})
    assert r.status_code == 200 and r.get_json()["status"] == "error", r.get_json()
    assert r.get_json()["procedure_version"] == master["procedure_version"]


# --- restricted scripts at run time -------------------------------------------------------------

FORMAT_ESCAPE = "stop_clock('pre_review')\nleak = '{0.__class__.__mro__}'.format(precheck_result)\nstart_clock('acceptance', working_days=5)"


def test_an_escape_built_at_run_time_passes_deploy_but_is_stopped_when_it_runs(client, token, platform):
    """str.format reaches attributes through the format string, which no static check
    reads: the deploy accepts it, the run-time guard refuses it and the instance errs."""
    diagram = land_version(ACCEPT_MATERIALS, f"<bpmn:script>{FORMAT_ESCAPE}</bpmn:script>")
    r = upload(client, token, "operator", LAND, diagram)
    assert r.status_code == 201, r.get_json()
    code = to_matters(client, token, **LAND_PROJECT)
    r = complete(client, token, "land", find(client, token, "land", "pre_check", code), PRE_CHECK_PASS)
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["error"]["element"] == "accept_materials"
    assert "format" in r.get_json()["error"]["message"]
    with platform.session_factory() as s:
        row = s.scalar(select(ProcessInstance).where(ProcessInstance.matter_code == "land_pre_review"))
        assert "mro" not in row.state and "class " not in row.state


MEMORY_BOMB = "stop_clock('pre_review')\nrows = [[i] * 1000000 for i in range(2000)]"


@pytest.mark.skipif(scripting.resident_memory() is None, reason="resident memory is read from /proc (Linux)")
def test_a_script_filling_memory_is_stopped_and_its_instance_errs(client, token, platform, monkeypatch):
    """Two thousand million-item lists (16 GB) pass every check at deploy, and each is one
    allowed operation: the memory watch stops the script at the limit (lowered here, so the
    one-second clock cannot come first on a slow machine), the officer's request answers,
    and the instance waits errored for an operator."""
    monkeypatch.setattr(scripting, "MAX_SCRIPT_MEMORY", 128 * 2**20)
    diagram = land_version(ACCEPT_MATERIALS, f"<bpmn:script>{MEMORY_BOMB}</bpmn:script>")
    assert upload(client, token, "operator", LAND, diagram).status_code == 201
    code = to_matters(client, token, **LAND_PROJECT)
    r = complete(client, token, "land", find(client, token, "land", "pre_check", code), PRE_CHECK_PASS)
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["error"]["element"] == "accept_materials"
    assert "more than 128 MB of memory" in r.get_json()["error"]["message"], r.get_json()
    [errored] = matter_instances(client, token, status="error")
    assert errored["matter_code"] == "land_pre_review"


RUNTIME_GUARDS = [
    ("format-attribute", "leak = '{0.__class__}'.format(value)", NotImplementedError),
    ("format-map", "leak = '{x.__class__}'.format_map({'x': value})", NotImplementedError),
    ("function-attribute", "leak = working_days.keys", scripting.ScriptError),
    ("method-attribute", "leak = value.upper.keys", scripting.ScriptError),
    ("huge-range", "numbers = range(10 ** 6)", scripting.ScriptError),
    ("huge-string", "text = 'x' * (10 ** 7)", scripting.ScriptError),
    ("doubling-slice", "items = [1]\nfor i in range(40):\n    items[len(items):] = items", scripting.ScriptError),
    ("huge-power", "number = 10 ** 100000", scripting.ScriptError),
    ("endless-loop", "while True:\n    pass", scripting.ScriptBudgetExceeded),
    ("write-to-a-string", "value[0] = 'y'", scripting.ScriptError),
    ("non-json-data", "leak = working_days", None),
    ("shadow-a-function", "working_days = 1", None),
]


@pytest.mark.parametrize("case,script,error", RUNTIME_GUARDS, ids=[c[0] for c in RUNTIME_GUARDS])
def test_scripting_run_time_guards(case, script, error):
    assert scripting.check_script(script) is None or case == "shadow-a-function", scripting.check_script(script)
    env = scripting.RestrictedEnvironment({"working_days": lambda n: "2026-03-05T01:00:00+00:00"}, max_seconds=2)
    context = {"value": "x"}
    if error is None:
        env.execute(script, context)  # accepted, but nothing callable stays in the task data
        assert all(not callable(v) for v in context.values())
        return
    with pytest.raises(error):
        env.execute(script, context)
    assert "leak" not in context


def test_task_data_whose_json_would_be_huge_is_refused():
    env = scripting.RestrictedEnvironment({})
    with pytest.raises(scripting.ScriptError):
        env.execute("big = ['x' * 1000000] * 200", {})  # 200 MB of JSON, 1 MB in memory


def test_time_budget_bounds_slow_platform_function_calls():
    """A loop calling a slow platform function is stopped at the engine call's deadline,
    which counts the platform's time as well as the script's."""
    env = scripting.RestrictedEnvironment({"slow": lambda: time.sleep(0.05)}, max_seconds=0.2, max_total_seconds=0.3)
    started = time.monotonic()
    with pytest.raises(scripting.ScriptBudgetExceeded, match="together they ran longer than 0.3 s"):
        env.execute("for i in range(40):\n    slow()", {})
    assert time.monotonic() - started < 0.8


def test_a_platform_functions_own_time_is_not_the_scripts():
    """A notice's file made durable on a busy disk, a row lock waited for: the platform's
    time does not use up the script's own second (an acceptance failed so once)."""
    env = scripting.RestrictedEnvironment({"slow": lambda: time.sleep(0.05) or "done"}, max_seconds=0.2, max_total_seconds=5)
    context = {}
    env.execute("results = []\nfor i in range(10):\n    results.append(slow())\n    padding = [j for j in range(10)]", context)
    assert context["results"] == ["done"] * 10  # 0.5 s in the platform function, past the script's 0.2 s


# --- the automatic reply ------------------------------------------------------------------------

def test_silent_department_gets_the_automatic_reply_and_its_matter_no_matter(client, token, platform, clock):
    code = declare(client, token, **FILING_PROJECT)["project_code"]
    dispatch(client, token, code)
    work(client, token, "drc", "department_reply", code, REPLY_ACCEPTED)
    work(client, token, "housing", "department_reply", code, REPLY_ACCEPTED)
    silent = find(client, token, "land", "department_reply", code)
    assert silent["due_at"] == "2026-03-05T01:00:00+00:00"

    clock.set(datetime(2026, 3, 5, 8, 59, tzinfo=SHANGHAI))  # one minute before: nothing yet
    sweep(platform)
    assert find(client, token, "land", "department_reply", code)["light"] == "yellow"
    assert {m["matter_code"]: m["status"] for m in project(client, token, code)["matters"]}["land_pre_review"] == "notified"

    clock.set(datetime(2026, 3, 5, 9, 30, tzinfo=SHANGHAI))  # past 3 working days without a reply
    report = sweep(platform)
    # land's automatic reply; and the filing's yellow and red: drc's matter started at drc's reply,
    # 3 working days before (备案材料外网提交后3个工作日之内), not when the last department replied
    assert report.fired.get("timers") == 3, report
    assert [t["name"] for t in tasks(client, token, "land", project_code=code)] == []
    p = project(client, token, code)
    statuses = {m["matter_code"]: m["status"] for m in p["matters"]}
    assert statuses == {"enterprise_filing": "handling", "land_pre_review": "no_matter",
                        "construction_permit": "handling"}
    with platform.session_factory() as s:
        row = s.scalar(select(ProcessInstance).where(ProcessInstance.kind == "master"))
        from engine import procedures, spiff_adapter
        master = spiff_adapter.restore(procedures.SPECS.get(row.procedure_version), row.state)
        replies = {r["department"]: (r["outcome"], r["overdue"]) for r in spiff_adapter.recorded_values(master, "reply")}
        assert replies == {"drc": ("accepted", False), "land": ("overdue_no_reply", True), "housing": ("accepted", False)}
        filing = s.scalar(select(Clock).where(Clock.kind == "filing"))
        assert (filing.started_at, filing.light) == (datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc), "red")
        land_reply = s.scalar(select(Clock).where(Clock.kind == "reply", Clock.department_code == "land"))
        alerts = s.scalars(select(Alert).where(Alert.clock_id == land_reply.id).order_by(Alert.at)).all()
        assert land_reply.state == "stopped"
        assert [(a.light, a.clock_kind, a.department_code, a.project_code) for a in alerts] == [
            ("yellow", "reply", "land", code), ("red", "reply", "land", code)], [(a.light, a.at) for a in alerts]
        assert alerts[1].at == land_reply.due_at
        assert land_reply.light == "red"
    r = client.get("/api/v1/alerts", headers=token("supervisor"),
                   query_string={"project_code": code, "clock": "reply", "light": "red"})
    assert r.status_code == 200, r.get_json()
    assert [(a["department"], a["at"]) for a in r.get_json()["items"]] == [("land", "2026-03-05T01:00:00+00:00")]
    # the two that replied carry on
    assert find(client, token, "drc", "filing_check", code)
    assert find(client, token, "housing", "pre_check", code)


def test_automatic_reply_when_the_sweep_runs_late(client, token, platform, clock):
    """No sweep between dispatch and long after the reply deadline: the reply is still
    automatic, and the red light is recorded at the instant it came due."""
    code = declare(client, token, **LAND_PROJECT)["project_code"]
    dispatch(client, token, code)
    work(client, token, "drc", "department_reply", code, REPLY_ACCEPTED)
    clock.set(datetime(2026, 3, 10, 15, 0, tzinfo=SHANGHAI))
    sweep(platform)
    statuses = {m["matter_code"]: m["status"] for m in project(client, token, code)["matters"]}
    assert statuses == {"enterprise_filing": "handling", "land_pre_review": "no_matter"}
    r = client.get("/api/v1/alerts", headers=token("land"), query_string={"project_code": code})
    assert sorted((a["light"], a["clock"], a["at"]) for a in r.get_json()["items"]) == [
        ("red", "reply", "2026-03-05T01:00:00+00:00"), ("yellow", "reply", "2026-03-04T10:36:00+00:00")]
    # the filing clock started when drc replied: not when land's reply came due, nor at the late sweep
    filing = [c for c in project(client, token, code)["clocks"] if c["kind"] == "filing"]
    assert [c["started_at"][:19] for c in filing] == ["2026-03-02T01:00:00"], filing
