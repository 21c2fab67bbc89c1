"""Limits a calendar load moves into the past (met at their instants, after the holds as
they stand, and before what a retry applies), reuse across every code a project has had
(不重复提交), the owed material after a grant, and the strict JSON booleans and decimals with
the list filters, as a review of session 10 found them. On SQLite and PostgreSQL."""
from __future__ import annotations

import io
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from engine.models import Clock
from engine.sweep import sweep
from tests.integration.helpers import declaration, declare, supply_all_materials
from tests.integration.test_materials_api import (  # noqa: F401 - fixtures
    PNG, code, commit, grant_with_site_report_owed, published, reuse, tasks, upload,
)
from tests.integration.test_workflow_api import PRE_CHECK_PASS

SH = ZoneInfo("Asia/Shanghai")
LAND = dict(new_land_use=True, industry_code="13", building_works=False, regime="filing")
REPLY = {"reply_outcome": "accepted", "reply_comment": "受理"}
SCHEDULE_2027 = "year 2027\n2027-01-01 holiday 元旦\n2027-01-02 workday 元旦调休上班\n"


def at(y, mo, d, h=0, mi=0):
    return datetime(y, mo, d, h, mi, tzinfo=SH)


def _work(client, token, user, name, code_, data):
    [task] = [t for t in tasks(client, token, user, code_) if t["name"] == name]
    r = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=token(user), json={"data": data, "version": task["version"]})
    assert r.status_code == 200, r.get_json()


def _load_year(client, token, text):
    r = client.post("/api/v1/admin/calendar/years", data={"file": (io.BytesIO(text.encode()), "year.txt")},
                    headers=token("operator"), content_type="multipart/form-data")
    assert r.status_code == 201, r.get_json()


def _pre_checked_before_the_new_year(client, token, clock) -> str:
    """land passes its pre-check Mon 2026-12-28 10:00: its acceptance limit (5 working days)
    falls in 2027, whose schedule is not loaded (the weekday rule: Tue 01-05 10:00)."""
    clock.set(at(2026, 12, 24, 9))
    code_ = declare(client, token, **LAND)["project_code"]
    supply_all_materials(client, token, code_)
    clock.set(at(2026, 12, 24, 10))
    _work(client, token, "window", "window_review", code_, {"window_decision": "dispatch", "departments": ["drc", "land"]})
    _work(client, token, "land", "department_reply", code_, REPLY)
    clock.set(at(2026, 12, 28, 10))
    _work(client, token, "land", "pre_check", code_, PRE_CHECK_PASS)
    return code_


def _change(client, token, code_, kind, **extra):
    r = client.post(f"/api/v1/projects/{code_}/changes", headers=token("applicant"),
                    json={"kind": kind, "reason": "资金未落实", **extra})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


# --- a limit a calendar load moves into the past: met there, after the holds as they stand ---

def test_a_clock_a_calendar_load_starts_in_the_past_is_held_by_the_suspension_open_now(client, token, clock, platform):
    """land passes its pre-check Mon 12-28 10:00: acceptance 5 working days, Tue 01-05 10:00 on
    the weekday rule. The project is suspended Mon 01-04 11:00 (before that limit: nothing
    fires). At 12:00 the 2027 schedule is loaded (Sat 01-02 a working day): the acceptance
    limit moves to Mon 01-04 10:00, already past. The deemed acceptance is met no earlier than
    the suspension (the holds as they stand), so the promised clock it starts is held
    (暂停: every clock of the project stops until resumption)."""
    code_ = _pre_checked_before_the_new_year(client, token, clock)
    body = client.get(f"/api/v1/projects/{code_}", headers=token("supervisor")).get_json()
    [acc] = [c for c in body["clocks"] if c["kind"] == "acceptance"]
    assert datetime.fromisoformat(acc["due_at"]) == at(2027, 1, 5, 10)  # the weekday rule
    clock.set(at(2027, 1, 4, 11))
    _change(client, token, code_, "suspension")
    clock.set(at(2027, 1, 4, 12))
    _load_year(client, token, SCHEDULE_2027)
    body = client.get(f"/api/v1/projects/{code_}", headers=token("supervisor")).get_json()
    assert body["suspended"] is True
    promised = [c for c in body["clocks"] if c["kind"] == "promised"]
    assert promised, "the deemed acceptance at the moved limit started the promised clock"
    assert promised[-1]["state"] == "paused" and promised[-1]["pauses"][-1]["reason"] == "suspension", promised[-1]


def test_the_same_limit_met_before_a_suspension_is_held_by_it(client, token, clock, platform):
    """Control: the same limit already past when the suspension is asked (no calendar load) is
    met first at its instant and then held by the suspension: the promised clock is paused."""
    code_ = _pre_checked_before_the_new_year(client, token, clock)
    clock.set(at(2027, 1, 5, 11))  # past the acceptance limit (01-05 10:00), no sweep
    _change(client, token, code_, "suspension")
    body = client.get(f"/api/v1/projects/{code_}", headers=token("supervisor")).get_json()
    [promised] = [c for c in body["clocks"] if c["kind"] == "promised"]
    assert promised["state"] == "paused" and promised["pauses"][-1]["reason"] == "suspension", promised


# --- 不重复提交 across every code the project has had: A → B → C, and the new code's file for the old code's owed item ---

def test_a_material_under_the_first_code_of_a_project_recoded_twice_is_reused_under_the_third(client, token, code, platform):
    first = upload(client, token, code, material="application_form").get_json()
    b = _change(client, token, code, "major_change", changes={"investment": "50000"})["project_code"]
    c = _change(client, token, b, "major_change", changes={"investment": "60000"})["project_code"]
    r = reuse(client, token, c, first["id"], matter_code="land_pre_review", material="application_form")
    assert r.status_code == 201, r.get_json()


def test_the_old_codes_owed_material_is_taken_from_the_new_codes_file(client, token, code, platform):
    """land is approved under code A with site_report still owed (容缺); the project is then
    re-coded to B, and the unit submits site_report under B. The old code's granted matter
    still owes it, and B's file is taken for it without sending it again (不重复提交)."""
    grant_with_site_report_owed(client, token, code, platform)
    b = _change(client, token, code, "major_change", changes={"investment": "50000"})["project_code"]
    new = upload(client, token, b, material="site_report").get_json()
    r = reuse(client, token, code, new["id"], matter_code="land_pre_review", material="site_report")
    assert r.status_code == 201, r.get_json()
    assert upload(client, token, code, material="other_proof").status_code == 409  # only what is owed


# --- strict JSON input: what clients legitimately send is still taken ----------------------------

def test_query_booleans_and_decimal_texts_a_client_sends_are_still_taken(client, token, platform):
    for user, params in (("drc", {"mine": "true", "include_read_only": "false"}), ("drc", {"mine": "1"}),
                         ("applicant", {"include_read_only": "false"})):
        r = client.get("/api/v1/tasks", headers=token(user), query_string=params)
        assert r.status_code == 200, (params, r.get_json())
    r = client.get("/api/v1/supervision/rectifications", headers=token("supervisor"), query_string={"overdue": "true"})
    assert r.status_code == 200, r.get_json()
    for value in ("1200.50", 1200.5, "0.0001", 1e3, "12000"):
        r = client.post("/api/v1/projects", json=declaration(investment=value), headers=token("applicant"))
        assert r.status_code == 201, (value, r.get_json())
    for value in ("1e3", " 1200", "１２００", True, "1,200", "+1200", ".5"):
        r = client.post("/api/v1/projects", json=declaration(investment=value), headers=token("applicant"))
        assert r.status_code == 422, (value, r.get_json())
    for value in ("true", 1, "yes", None):
        r = client.post("/api/v1/projects", json=declaration(classified=value), headers=token("applicant"))
        assert r.status_code == 422, (value, r.get_json())
    from api.schemas.lifecycle import ImplementationReportInSchema, SupervisionDetailsSchema
    loaded = ImplementationReportInSchema().load({"kind": "progress", "period": "2026-03", "percent_complete": "0.0",
                                                   "investment_completed": "-0"})
    assert loaded["investment_completed"] == 0 and not str(loaded["investment_completed"]).startswith("-")
    assert not str(SupervisionDetailsSchema().load({"amount": "-0"})["amount"]).startswith("-")


def test_filters_refuse_unknown_names_but_not_empty_ones(client, token, code):
    assert client.get("/api/v1/alerts", headers=token("supervisor"), query_string={"department": ""}).status_code == 200
    assert client.get("/api/v1/alerts", headers=token("supervisor"), query_string={"department": "nope"}).status_code == 422
    assert client.get(f"/api/v1/projects/{code}/materials", headers=token("applicant"),
                      query_string={"matter_code": "nope"}).status_code == 422
    r = client.get(f"/api/v1/projects/{code}/materials/commitments", headers=token("applicant"),
                   query_string={"matter_code": "nope"})
    assert r.status_code == 422 and "matter_code" in r.get_json()["errors"], r.get_json()


def test_a_penalty_of_minus_zero_is_kept_as_zero(client, token, code):
    """A penalty of "-0" is zero: it is never disclosed to the public as "-0.00" 元."""
    r = client.post(f"/api/v1/projects/{code}/supervision-records", headers=token("drc"),
                    json={"kind": "penalty", "title": "未批先建处罚", "content": "责令停止建设并处罚款",
                          "details": {"decision_number": "仁发改罚〔2026〕1号", "amount": "-0", "legal_basis": "《企业投资项目核准和备案管理条例》第十八条"}})
    assert r.status_code == 201, r.get_json()
    assert not str(r.get_json()["details"]["amount"]).startswith("-"), r.get_json()


def test_a_commitment_made_after_a_moved_limit_leaves_no_hold_ending_before_it_starts(client, token, clock, platform, published):
    """The same timeline with a 容缺 commitment (Mon 01-04 11:00) instead of a suspension: the
    deemed acceptance re-armed into the past ends the tolerated-gap hold no earlier than it began."""
    clock.set(at(2026, 12, 24, 9))
    code_ = declare(client, token, **LAND)["project_code"]
    assert upload(client, token, code_, material="application_form").status_code == 201
    assert upload(client, token, code_, material="survey_map", data=PNG).status_code == 201
    assert upload(client, token, code_, matter_code="enterprise_filing", material="filing_form").status_code == 201
    clock.set(at(2026, 12, 24, 10))
    _work(client, token, "window", "window_review", code_, {"window_decision": "dispatch", "departments": ["drc", "land"]})
    _work(client, token, "land", "department_reply", code_, REPLY)
    clock.set(at(2026, 12, 28, 10))
    _work(client, token, "land", "pre_check", code_, PRE_CHECK_PASS)
    clock.set(at(2027, 1, 4, 11))
    assert commit(client, token, code_, platform, material="site_report", days=30).status_code == 201
    clock.set(at(2027, 1, 4, 12))
    _load_year(client, token, SCHEDULE_2027)
    body = client.get(f"/api/v1/projects/{code_}", headers=token("supervisor")).get_json()
    for h in body.get("holds") or []:
        if h.get("ended_at"):
            assert h["ended_at"] >= h["started_at"], h


@pytest.mark.parametrize("RETRY_BODY", [{}, {"pending": "discard"}], ids=["apply", "discard"])
def test_a_retry_after_a_calendar_load_moved_a_limit_before_the_failure_answers_cleanly(
        client, token, clock, platform, RETRY_BODY):
    """Dispatched Fri 03-06 10:00 (land's reply limit Wed 03-11 10:00); housing's reply on Tue
    03-10 10:00 fails the master. At 12:00 a corrected 2026 schedule makes Sat 03-07 and Sun
    03-08 working days: land's limit moves to Mon 03-09 10:00, before the failure (the load
    does not re-arm an errored instance). The retry applies or drops housing's reply first
    (it was submitted in time; no 500 from a task a limit ended first). Land's limit is then
    met: at its instant by the sweep when nothing was applied; at the retry when the applied
    reply moved the master on (README, known gaps)."""
    from tests.integration.test_limits_before_answers import complete as lc, find as lf
    from tests.integration.test_workflow_api import FILING_PROJECT, master_version, upload as deploy
    from engine.models import ProcessInstance
    assert deploy(client, token, "operator", "project_master.bpmn",
                  master_version("boom = 1 / 0 if department == 'housing' else 0")).status_code == 201
    clock.set(at(2026, 3, 6, 9))
    code_ = declare(client, token, **FILING_PROJECT)["project_code"]
    supply_all_materials(client, token, code_)
    clock.set(at(2026, 3, 6, 10))
    departments = lf(client, token, "window", "window_review", code_)["context"]["departments"]
    assert lc(client, token, "window", "window_review", code_, {"window_decision": "dispatch", "departments": departments}).status_code == 200
    clock.set(at(2026, 3, 10, 10))
    r = lc(client, token, "housing", "department_reply", code_, {"reply_outcome": "no_matter", "reply_comment": "无"})
    assert r.status_code == 202 and r.get_json()["instance_status"] == "error", r.get_json()
    clock.set(at(2026, 3, 10, 12))
    _load_year(client, token, "year 2026\n2026-03-07 workday 调休\n2026-03-08 workday 调休\n")
    clock.set(at(2026, 3, 10, 14))
    assert deploy(client, token, "operator", "project_master.bpmn", master_version("boom = 0")).status_code == 201
    with platform.session_factory() as s:
        master = s.scalar(select(ProcessInstance.id).where(ProcessInstance.kind == "master"))
    r = client.post(f"/api/v1/instances/{master}/retry", headers=token("operator"), json=RETRY_BODY)
    assert r.status_code == 200 and r.get_json()["status"] in ("running", "completed"), r.get_json()
    sweep(platform)
    with platform.session_factory() as s:
        land = s.scalar(select(Clock).where(Clock.kind == "reply", Clock.department_code == "land"))
        assert land.state == "stopped" and land.due_at == at(2026, 3, 9, 10)
        assert land.stopped_at == (at(2026, 3, 10, 14) if RETRY_BODY == {} else land.due_at), land.stopped_at


# --- a clock a late-dated step starts, and holds recorded after that step's instant -------------

def _intermediary(client, token, code_):
    r = client.post(f"/api/v1/projects/{code_}/matters/land_pre_review/intermediaries", headers=token("land"),
                    json={"name": "攀枝花市测绘院", "qualification": "甲级", "service": "勘测定界", "deadline": "2027-01-31"})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def _finish_intermediary(client, token, code_, row) -> None:
    base = f"/api/v1/projects/{code_}/matters/land_pre_review/intermediaries/{row['id']}/events"
    for stage in ("accepted", "handling", "completed"):
        body = {"stage": stage, "version": row["version"], "note": "", **({"result": "勘测完成"} if stage == "completed" else {})}
        r = client.post(base, json=body, headers=token("land"))
        assert r.status_code == 200, r.get_json()
        row = r.get_json()


def _promised(client, token, code_) -> dict:
    body = client.get(f"/api/v1/projects/{code_}", headers=token("supervisor")).get_json()
    [promised] = [c for c in body["clocks"] if c["kind"] == "promised"]
    return promised


def test_an_intermediary_commissioned_after_a_moved_limit_holds_the_clock_its_step_starts(client, token, clock, platform):
    """The deemed acceptance met at the moved limit (01-04 10:00) starts the promised clock; the
    intermediary commissioned at 10:30 (中介服务时间不计入) holds it from then, until it completes."""
    code_ = _pre_checked_before_the_new_year(client, token, clock)
    clock.set(at(2027, 1, 4, 10, 30))
    row = _intermediary(client, token, code_)
    clock.set(at(2027, 1, 4, 12))
    _load_year(client, token, SCHEDULE_2027)
    promised = _promised(client, token, code_)
    assert promised["state"] == "paused" and datetime.fromisoformat(promised["pauses"][-1]["start"]) == at(2027, 1, 4, 10, 30)
    clock.set(at(2027, 1, 4, 14))
    _finish_intermediary(client, token, code_, row)
    assert _promised(client, token, code_)["state"] == "running"


def test_a_suspension_begun_and_ended_after_a_moved_limit_is_left_out_of_the_clock_its_step_starts(client, token, clock, platform):
    code_ = _pre_checked_before_the_new_year(client, token, clock)
    clock.set(at(2027, 1, 4, 10, 30))
    _change(client, token, code_, "suspension")
    clock.set(at(2027, 1, 4, 11, 30))
    _change(client, token, code_, "resumption")
    clock.set(at(2027, 1, 4, 12))
    _load_year(client, token, SCHEDULE_2027)
    promised = _promised(client, token, code_)
    assert promised["state"] == "running"
    assert [(datetime.fromisoformat(p["start"]), datetime.fromisoformat(p["end"])) for p in promised["pauses"]] == [
        (at(2027, 1, 4, 10, 30), at(2027, 1, 4, 11, 30))]


def test_a_clock_held_by_an_open_hold_and_a_closed_one_inside_it_counts_on_when_the_open_one_ends(client, token, clock, platform):
    """The promised clock starts with the pauses [intermediary 10:30–open, suspension
    11:00–11:30]: when the intermediary completes (14:00) no hold is open, and the clock counts."""
    code_ = _pre_checked_before_the_new_year(client, token, clock)
    clock.set(at(2027, 1, 4, 10, 30))
    row = _intermediary(client, token, code_)
    clock.set(at(2027, 1, 4, 11))
    _change(client, token, code_, "suspension")
    clock.set(at(2027, 1, 4, 11, 30))
    _change(client, token, code_, "resumption")
    clock.set(at(2027, 1, 4, 12))
    _load_year(client, token, SCHEDULE_2027)
    assert _promised(client, token, code_)["state"] == "paused"
    clock.set(at(2027, 1, 4, 14))
    _finish_intermediary(client, token, code_, row)
    promised = _promised(client, token, code_)
    assert promised["state"] == "running" and promised["due_at"] is not None, promised
