"""Clocks driven by the manual clock over HTTP: working time on the official calendar,
yellow and red, pauses, the automatic outcomes, and a year with no schedule."""
from __future__ import annotations

import io
import logging
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import select

from engine.models import Project
from tests.integration.helpers import declare, supply_all_materials

SH = ZoneInfo("Asia/Shanghai")


def at(y, mo, d, h=0, mi=0):
    return datetime(y, mo, d, h, mi, tzinfo=SH)


def set_now(client, token, instant):
    r = client.post("/api/v1/admin/clock", json={"now": instant.isoformat()}, headers=token("operator"))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def tasks(client, token, user, **params):
    r = client.get("/api/v1/tasks", query_string=params, headers=token(user))
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"]


def complete(client, token, user, name, data, project_code, matter=None):
    found = [t for t in tasks(client, token, user, project_code=project_code)
             if t["name"] == name and (matter is None or t["matter_code"] == matter)]
    assert found, (user, name, [t["name"] for t in tasks(client, token, user)])
    r = client.post(f"/api/v1/tasks/{found[0]['id']}/complete", json={"data": data, "version": found[0]["version"]}, headers=token(user))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def project(client, token, code):
    return client.get(f"/api/v1/projects/{code}", headers=token("supervisor")).get_json()


def clock_of(body, kind, department=None):
    found = [c for c in body["clocks"] if c["kind"] == kind and (department is None or c["department"] == department)]
    assert found, (kind, [c["kind"] for c in body["clocks"]])
    return found[-1]


def alerts(client, token, **params):
    return client.get("/api/v1/alerts", query_string=params, headers=token("supervisor")).get_json()["items"]


def dispatch(client, token, code, departments=None):
    window = tasks(client, token, "window", project_code=code)[0]
    data = {"window_decision": "dispatch", "departments": departments or window["context"]["departments"]}
    r = client.post(f"/api/v1/tasks/{window['id']}/complete", json={"data": data, "version": window["version"]}, headers=token("window"))
    assert r.status_code == 200, r.get_json()


def test_dispatch_clock_friday_afternoon_is_due_monday_afternoon_with_yellow_then_red(client, token, clock):
    clock.set(at(2026, 3, 13, 16))  # Friday 16:00 before an ordinary weekend
    code = declare(client, token)["project_code"]
    dispatch_clock = clock_of(project(client, token, code), "dispatch")
    assert dispatch_clock["due_at"] == at(2026, 3, 16, 16).astimezone(timezone.utc).isoformat()
    # 80% of 24 working hours = 19h12m: 8h on Friday, 11h12m on Monday
    assert dispatch_clock["yellow_at"] == at(2026, 3, 16, 11, 12).astimezone(timezone.utc).isoformat()
    window_task = tasks(client, token, "window", project_code=code)[0]
    assert window_task["due_at"] == dispatch_clock["due_at"] and window_task["light"] == "green"

    set_now(client, token, at(2026, 3, 15, 23))  # Sunday: nothing has come due
    assert alerts(client, token, project_code=code) == []
    set_now(client, token, at(2026, 3, 16, 12))
    yellow = alerts(client, token, project_code=code)
    assert [(a["light"], a["clock"], a["at"]) for a in yellow] == [("yellow", "dispatch", dispatch_clock["yellow_at"])]
    set_now(client, token, at(2026, 3, 17, 9))
    red = alerts(client, token, project_code=code, light="red")
    assert red[0]["at"] == dispatch_clock["due_at"] and red[0]["clock"] == "dispatch"
    assert tasks(client, token, "window", project_code=code)[0]["light"] == "red"
    # red is recorded permanently, even after the window acts
    dispatch(client, token, code)
    assert alerts(client, token, project_code=code, light="red")


def test_the_dispatch_clock_is_the_general_windows_in_its_alerts_and_in_e_supervision(client, token, clock):
    """督办计时 is the general window's duty (三（五）: 综合窗口人员应当在1个工作日之内…): its
    clock, its yellow and red are the window's, on the window's alert list and in its
    row of the e-supervision summary."""
    clock.set(at(2026, 3, 2, 9))
    code = declare(client, token, legacy_code="川发改备〔2019〕12号")["project_code"]
    assert clock_of(project(client, token, code), "dispatch")["department"] == "window"
    set_now(client, token, at(2026, 3, 10, 9))  # left undispatched for a week
    for named in (code, "川发改备〔2019〕12号"):  # the filter takes a code as a lookup does, the legacy code too
        r = client.get("/api/v1/alerts", query_string={"project_code": named}, headers=token("window"))
        assert r.status_code == 200, r.get_json()
        assert sorted((a["light"], a["clock"], a["department"]) for a in r.get_json()["items"]) == [
            ("red", "dispatch", "window"), ("yellow", "dispatch", "window")]
    r = client.get("/api/v1/supervision/summary", query_string={"from": "2026-03-01", "to": "2026-03-31"},
                   headers=token("supervisor"))
    (window,) = [d for d in r.get_json()["departments"] if d["department"] == "window"]
    assert window["red_records"] == 1 and window["overdue_now"] == 1


def test_a_clock_started_on_a_holiday_counts_from_the_next_working_day(client, token, clock):
    clock.set(at(2026, 10, 2, 10))  # National Day holiday
    code = declare(client, token)["project_code"]
    assert clock_of(project(client, token, code), "dispatch")["due_at"] == at(2026, 10, 9, 0).astimezone(timezone.utc).isoformat()


def test_reply_clock_crosses_national_day_and_counts_the_tiaoxiu_saturday(client, token, clock):
    clock.set(at(2026, 9, 29, 10))
    code = declare(client, token, new_land_use=True)["project_code"]
    clock.set(at(2026, 9, 30, 10))
    dispatch(client, token, code)
    reply = clock_of(project(client, token, code), "reply", "land")
    # 3 working days from Wed 09-30 10:00: 14h on 09-30, holiday 10-01..07, 10-08, 10-09, then 10h on Sat 10-10 (调休上班)
    assert reply["due_at"] == at(2026, 10, 10, 10).astimezone(timezone.utc).isoformat()


def test_silent_department_gets_the_automatic_reply_and_no_matter(client, token, clock):
    code = declare(client, token, new_land_use=True)["project_code"]
    dispatch(client, token, code)
    for user in ("drc",):
        complete(client, token, user, "department_reply", {"reply_outcome": "accepted", "reply_comment": "受理"}, code)
    reply_due = clock_of(project(client, token, code), "reply", "land")["due_at"]
    swept = set_now(client, token, datetime.fromisoformat(reply_due) + timedelta(minutes=1))
    assert swept["sweep"].get("timers", 0) >= 1
    body = project(client, token, code)
    matters = {m["matter_code"]: m["status"] for m in body["matters"]}
    assert matters["land_pre_review"] == "no_matter"
    assert matters["enterprise_filing"] == "handling"
    assert clock_of(body, "reply", "land")["light"] == "red"
    red = alerts(client, token, project_code=code, clock="reply", light="red")
    silent = {m["department"] for m in body["matters"]} - {"drc"}
    assert {a["department"] for a in red} == silent and "land" in silent
    assert all(a["at"] == reply_due for a in red)
    assert not [t for t in tasks(client, token, "land", project_code=code) if t["name"] == "department_reply"]


def _to_acceptance(client, token, code, user="land", matter="land_pre_review"):
    supply_all_materials(client, token, code)
    dispatch(client, token, code, departments=sorted({"drc", user}))
    for u in {"drc", user}:
        complete(client, token, u, "department_reply", {"reply_outcome": "accepted", "reply_comment": "受理"}, code)
    complete(client, token, user, "pre_check", {"precheck_result": "pass", "code_verified": True, "within_competence": True}, code, matter)


def test_deemed_acceptance_after_five_working_days_runs_the_promised_clock_from_pre_check(client, token, clock):
    code = declare(client, token, new_land_use=True)["project_code"]
    _to_acceptance(client, token, code)
    acceptance = clock_of(project(client, token, code), "acceptance")
    pre_check_passed = acceptance["started_at"]
    set_now(client, token, datetime.fromisoformat(acceptance["due_at"]) + timedelta(hours=1))
    body = project(client, token, code)
    promised = clock_of(body, "promised")
    assert promised["started_at"] == pre_check_passed and promised["matter_code"] == "land_pre_review"
    assert float(promised["limit_days"]) == 10
    assert [t["name"] for t in tasks(client, token, "land", project_code=code)] == ["handling"]
    assert any(n["kind"] == "acceptance" for n in body["notices"])


def test_correction_request_stops_the_acceptance_clock_which_restarts_from_zero(client, token, clock):
    code = declare(client, token, new_land_use=True)["project_code"]
    _to_acceptance(client, token, code)
    clock.advance(hours=2)
    complete(client, token, "land", "acceptance", {"acceptance_decision": "correction", "correction_items": [{"material": "site_plan", "note": "补充用地红线图"}]}, code)
    body = project(client, token, code)
    assert clock_of(body, "acceptance")["state"] == "paused"
    supply = [t for t in tasks(client, token, "applicant", project_code=code) if t["name"] == "supply_materials"]
    assert supply and [i["note"] for i in supply[0]["context"]["correction_items"]] == ["补充用地红线图"]
    clock.set(at(2026, 3, 20, 9))  # long after the first 5 days would have run out
    complete(client, token, "applicant", "supply_materials", {"supplement_note": "已补充"}, code)
    restarted = clock_of(project(client, token, code), "acceptance")
    assert restarted["state"] == "running" and restarted["started_at"] == at(2026, 3, 20, 9).astimezone(timezone.utc).isoformat()
    set_now(client, token, at(2026, 3, 20, 10))
    assert not alerts(client, token, project_code=code, clock="acceptance")


def test_special_procedure_pauses_the_promised_clock_and_is_bounded(client, token, clock):
    code = declare(client, token, new_land_use=True)["project_code"]
    _to_acceptance(client, token, code)
    complete(client, token, "land", "acceptance", {"acceptance_decision": "accept"}, code)
    before = clock_of(project(client, token, code), "promised")["due_at"]
    handling = [t for t in tasks(client, token, "land", project_code=code) if t["name"] == "handling"][0]
    too_long = client.post(f"/api/v1/tasks/{handling['id']}/complete", headers=token("land"), json={"version": handling["version"], "data": {
        "handling_action": "special_procedure", "handling_opinion": "需专家评审", "special_procedure_reason": "专家评审",
        "special_procedure_days": 61}})
    assert too_long.status_code == 422 and "data.special_procedure_days" in too_long.get_json()["errors"]
    complete(client, token, "land", "handling", {"handling_action": "special_procedure", "handling_opinion": "需专家评审",
                                                 "special_procedure_reason": "专家评审", "special_procedure_days": 30}, code)
    paused = clock_of(project(client, token, code), "promised")
    assert paused["state"] == "paused" and paused["due_at"] is None
    ended = [t for t in tasks(client, token, "land", project_code=code) if t["name"] == "special_procedure"]
    assert ended
    clock.advance(days=3)
    complete(client, token, "land", "special_procedure", {"special_procedure_result": "评审完成"}, code)
    resumed = clock_of(project(client, token, code), "promised")
    assert resumed["state"] == "running" and resumed["due_at"] > before

    # 最多60个工作日 in all: Monday 9 to Thursday 12 March used 3 working days, 57 are left
    special = {"handling_action": "special_procedure", "handling_opinion": "再次评审", "special_procedure_reason": "补充评审"}
    handling = [t for t in tasks(client, token, "land", project_code=code) if t["name"] == "handling"][0]
    over = client.post(f"/api/v1/tasks/{handling['id']}/complete", headers=token("land"), json={
        "version": handling["version"], "data": {**special, "special_procedure_days": 58}})
    assert over.status_code == 422, over.get_json()
    assert "已用3个，尚可57个" in over.get_json()["errors"]["special_procedure_days"][0]
    complete(client, token, "land", "handling", {**special, "special_procedure_days": 57}, code)
    assert clock_of(project(client, token, code), "promised")["state"] == "paused"


def _special_procedure(client, token, code, days):
    complete(client, token, "land", "handling", {"handling_action": "special_procedure", "handling_opinion": "需专家评审",
                                                 "special_procedure_reason": "专家评审", "special_procedure_days": days}, code)


def _land_timer(platform, code):
    from sqlalchemy import select

    from engine.models import ProcessInstance, Project
    with platform.session_factory() as s:
        return s.scalar(select(ProcessInstance.next_timer_at).join(Project, Project.id == ProcessInstance.project_id)
                        .where(Project.project_code == code, ProcessInstance.matter_code == "land_pre_review"))


def test_a_special_procedure_its_timer_ended_leaves_exactly_the_rest_of_the_budget(client, token, clock, platform):
    code = declare(client, token, new_land_use=True)["project_code"]
    _to_acceptance(client, token, code)
    complete(client, token, "land", "acceptance", {"acceptance_decision": "accept"}, code)
    _special_procedure(client, token, code, 30)
    until = _land_timer(platform, code)
    set_now(client, token, until + timedelta(minutes=1))  # the pause runs out: its timer ends it
    resumed = clock_of(project(client, token, code), "promised")
    assert resumed["state"] == "running"
    assert datetime.fromisoformat(resumed["pauses"][-1]["end"]) == until  # at its instant, no stray microsecond
    assert datetime.fromisoformat(resumed["due_at"]).microsecond == 0
    _special_procedure(client, token, code, 30)  # 30 used, 30 left
    assert clock_of(project(client, token, code), "promised")["state"] == "paused"


def test_loading_a_year_during_a_special_procedure_does_not_start_the_pause_over(client, token, clock, platform):
    code = declare(client, token, new_land_use=True)["project_code"]
    _to_acceptance(client, token, code)
    complete(client, token, "land", "acceptance", {"acceptance_decision": "accept"}, code)
    _special_procedure(client, token, code, 5)
    ends = _land_timer(platform, code)
    clock.advance(days=3)
    r = client.post("/api/v1/admin/calendar/years", data={"file": (io.BytesIO(b"year 2027\n2027-01-01 holiday \xe5\x85\x83\xe6\x97\xa6\n"), "2027.txt")},
                    headers=token("operator"), content_type="multipart/form-data")
    assert r.status_code == 201, r.get_json()
    assert _land_timer(platform, code) == ends  # re-armed, not restarted from the load


def test_a_year_without_schedule_is_provisional_until_loaded(client, token, clock):
    clock.set(at(2026, 12, 31, 10))
    code = declare(client, token, new_land_use=True)["project_code"]
    dispatch_clock = clock_of(project(client, token, code), "dispatch")
    assert dispatch_clock["calendar_provisional"] is True
    # 2027 unloaded: weekends and the holidays fixed in advance off (元旦 on Friday 01-01):
    # Thursday 10:00 + 24h → Monday 2027-01-04 10:00
    assert dispatch_clock["due_at"] == at(2027, 1, 4, 10).astimezone(timezone.utc).isoformat()
    schedule = "year 2027\n2027-01-01 holiday 元旦\n2027-01-04 holiday 元旦（调休）\n"
    r = client.post("/api/v1/admin/calendar/years", data={"file": (io.BytesIO(schedule.encode()), "2027.txt")},
                    headers=token("operator"), content_type="multipart/form-data")
    assert r.status_code == 201, r.get_json()
    loaded = clock_of(project(client, token, code), "dispatch")
    assert loaded["calendar_provisional"] is False
    assert loaded["due_at"] == at(2027, 1, 5, 10).astimezone(timezone.utc).isoformat()


def test_a_clock_computed_on_a_calendar_since_replaced_is_computed_again_by_the_next_sweep(client, token, clock, platform):
    """A step in flight while a year is loaded computes its clocks on the calendar the
    load replaces, and commits them after the load has recomputed every clock it could
    see (PostgreSQL: tests/integration/test_lock_order.py forces that race). Such a clock
    keeps the revision it was computed on; the next sweep computes it again and moves the
    diagram's timers with it."""
    from sqlalchemy import select

    from engine import calendar
    from engine.db import unit_of_work
    from engine.models import Clock, ProcessInstance, Project
    from engine.sweep import sweep

    clock.set(at(2026, 12, 31, 10))
    code = declare(client, token, new_land_use=True)["project_code"]
    assert clock_of(project(client, token, code), "dispatch")["due_at"] == at(2027, 1, 4, 10).astimezone(timezone.utc).isoformat()
    with unit_of_work(platform.session_factory) as s:  # the year lands; this clock is not among those it recomputes
        calendar.load_year_text(s, "year 2027\n2027-01-01 holiday 元旦\n2027-01-04 holiday 元旦（调休）\n",
                                now=clock.now(), actor="operator")
    assert clock_of(project(client, token, code), "dispatch")["calendar_provisional"] is True

    assert sweep(platform).fired.get("clocks_recomputed") == 1
    recomputed = clock_of(project(client, token, code), "dispatch")
    assert recomputed["calendar_provisional"] is False
    assert recomputed["due_at"] == at(2027, 1, 5, 10).astimezone(timezone.utc).isoformat()
    with platform.session_factory() as s:
        master = s.scalar(select(ProcessInstance).join(Project, Project.id == ProcessInstance.project_id)
                          .where(Project.project_code == code, ProcessInstance.kind == "master"))
        row = s.scalar(select(Clock).where(Clock.instance_id == master.id, Clock.kind == "dispatch"))
        assert row.calendar_revision == calendar.current(s).revision
        assert master.next_timer_at in (row.yellow_at, row.due_at)  # the diagram's timers moved with the clock
    assert "clocks_recomputed" not in sweep(platform).fired  # once


def test_a_late_sweep_fires_in_time_order_with_the_instants_things_came_due(client, token, clock):
    code = declare(client, token, new_land_use=True)["project_code"]
    dispatch(client, token, code)
    set_now(client, token, at(2026, 3, 9, 9))  # the server was down for a week
    red = sorted(alerts(client, token, project_code=code, light="red"), key=lambda a: a["at"])
    assert red and all(a["at"] == a["due_at"] for a in red)
    assert all(datetime.fromisoformat(a["at"]) < at(2026, 3, 9, 9) for a in red)


def test_admin_clock_is_for_the_operator_on_a_manual_clock_only(client, token, database_url):
    assert client.post("/api/v1/admin/clock", json={"now": "2026-03-03T09:00:00+08:00"}, headers=token("drc")).status_code == 403
    assert client.post("/api/v1/admin/clock", json={"now": "2026-03-03T09:00:00"}, headers=token("operator")).status_code == 422
    from api import create_app

    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "k" * 40, "TZXM_CLOCK": "system",
                      "TZXM_PLATFORM_REGION": "510411", "TZXM_SWEEP_SECONDS": 1})
    system_client = app.test_client()
    r = system_client.post("/api/v1/admin/clock", json={"now": "2026-03-03T09:00:00+08:00"}, headers=token("operator"))
    assert r.status_code in (401, 404)  # the token fixture signs with the test app's secret
    app.extensions["tzxm_engine"].dispose()


def _land_and_eia_accepted(client, token):
    """A project whose land pre-review and EIA are both accepted; (its code, land's wait URL)."""
    code = declare(client, token, new_land_use=True, environment_sensitive=True, building_works=False)["project_code"]
    supply_all_materials(client, token, code)
    dispatch(client, token, code, departments=["drc", "env", "land"])
    for user in ("drc", "env", "land"):
        complete(client, token, user, "department_reply", {"reply_outcome": "accepted", "reply_comment": "受理"}, code)
    for user, matter in (("land", "land_pre_review"), ("env", "eia_approval")):
        complete(client, token, user, "pre_check", {"precheck_result": "pass", "code_verified": True, "within_competence": True}, code, matter)
        complete(client, token, user, "acceptance", {"acceptance_decision": "accept"}, code, matter)
    url = f"/api/v1/projects/{code}/matters/land_pre_review/prerequisite-wait"
    return code, url


def test_waiting_for_a_prerequisite_pauses_until_it_concludes_or_the_officer_ends_it(client, token, clock):
    code, url = _land_and_eia_accepted(client, token)
    assert client.post(url, json={"prerequisite": "eia_approval"}, headers=token("env")).status_code == 403
    assert client.post(url, json={"prerequisite": "land_pre_review"}, headers=token("land")).status_code == 422
    r = client.post(url, json={"prerequisite": "eia_approval"}, headers=token("land"))
    assert r.status_code == 200, r.get_json()
    land_clock = [c for c in r.get_json()["clocks"] if c["kind"] == "promised" and c["matter_code"] == "land_pre_review"][-1]
    assert land_clock["state"] == "paused" and land_clock["due_at"] is None
    clock.advance(days=2)
    complete(client, token, "env", "handling", {"handling_action": "decide", "handling_opinion": "同意"}, code, "eia_approval")
    complete(client, token, "env", "decision", {"decision": "approve", "document_number": "环审〔2026〕1号", "document_title": "批复",
                                                "document_date": "2026-03-02", "main_content": "同意"}, code, "eia_approval")
    swept = set_now(client, token, clock.now() + timedelta(minutes=1))
    assert swept["sweep"].get("waits_ended") == 1
    resumed = clock_of(project(client, token, code), "promised", "land")
    assert resumed["state"] == "running" and resumed["due_at"] is not None
    assert client.delete(url, headers=token("land")).status_code == 409  # no longer waiting


def test_a_wait_ended_by_a_late_sweep_counts_on_from_the_prerequisites_conclusion(client, token, clock):
    """004 三（五）: 等待前置情况消除后（前置事项完成…）则回复计时 — from the conclusion, not from
    whenever the sweep next ran (here two days later: the sweeper was down)."""
    code, url = _land_and_eia_accepted(client, token)
    assert client.post(url, json={"prerequisite": "eia_approval"}, headers=token("land")).status_code == 200
    clock.advance(days=1)
    complete(client, token, "env", "handling", {"handling_action": "decide", "handling_opinion": "同意"}, code, "eia_approval")
    complete(client, token, "env", "decision", {"decision": "approve", "document_number": "环审〔2026〕1号", "document_title": "批复",
                                                "document_date": "2026-03-02", "main_content": "同意"}, code, "eia_approval")
    concluded = clock.now()
    swept = set_now(client, token, concluded + timedelta(days=2))
    assert swept["sweep"].get("waits_ended") == 1
    resumed = clock_of(project(client, token, code), "promised", "land")
    assert resumed["state"] == "running"
    (wait,) = [p for p in resumed["pauses"] if p["reason"] == "prerequisite:eia_approval"]
    assert datetime.fromisoformat(wait["end"]) == concluded


def test_a_wait_another_ended_first_is_passed_by_quietly(client, token, clock, platform, monkeypatch, caplog):
    """Two sweepers (or the officer and a sweeper) read the same wait as ready to end; the
    second finds it ended under the matter's lock: nothing to do, nothing to report."""
    from engine import waits
    from engine.sweep import sweep

    code = declare(client, token, new_land_use=True)["project_code"]
    _to_acceptance(client, token, code)
    url = f"/api/v1/projects/{code}/matters/land_pre_review/prerequisite-wait"
    assert client.post(url, json={"prerequisite": "enterprise_filing"}, headers=token("land")).status_code == 200
    with platform.session_factory() as session:
        project_id = session.scalar(select(Project.id).where(Project.project_code == code))
    read_before = [(project_id, "land_pre_review", None)]  # as the other sweeper read it, before the officer acted
    assert client.delete(url, headers=token("land")).status_code == 200
    monkeypatch.setattr(waits, "waits_to_end", lambda session: read_before)
    caplog.set_level(logging.WARNING)
    report = sweep(platform)
    assert "waits_ended" not in report.fired
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_wait_for_a_prerequisite_moves_the_deemed_acceptance_timer_with_the_clock(client, token, clock):
    """The wait is a hold: the diagram's timers that read the paused clock are re-armed,
    so deemed acceptance does not happen at the old instant while the matter waits."""
    code = declare(client, token, new_land_use=True)["project_code"]
    _to_acceptance(client, token, code)
    old_due = datetime.fromisoformat(clock_of(project(client, token, code), "acceptance")["due_at"])
    clock.advance(hours=1)
    url = f"/api/v1/projects/{code}/matters/land_pre_review/prerequisite-wait"
    r = client.post(url, json={"prerequisite": "enterprise_filing"}, headers=token("land"))
    assert r.status_code == 200, r.get_json()
    set_now(client, token, old_due + timedelta(days=3))
    body = project(client, token, code)
    assert clock_of(body, "acceptance")["state"] == "paused"
    assert not [c for c in body["clocks"] if c["kind"] == "promised" and c["matter_code"] == "land_pre_review"]
    assert [t["name"] for t in tasks(client, token, "land", project_code=code)] == ["acceptance"]
    assert client.delete(url, headers=token("land")).status_code == 200
    moved_due = datetime.fromisoformat(clock_of(project(client, token, code), "acceptance")["due_at"])
    assert moved_due > old_due + timedelta(days=3)
    set_now(client, token, moved_due + timedelta(minutes=1))
    assert [t["name"] for t in tasks(client, token, "land", project_code=code)] == ["handling"]  # deemed accepted


def test_yellow_fraction_is_configurable_per_kind_and_per_matter(client, token, clock):
    url = "/api/v1/admin/yellow-fractions"
    for bad in ({"dispatch": 1.5}, {"lunch": 0.5}, {"dispatch": "half"}, {"promised:no_such_matter": 0.5}):
        r = client.put(url, json={"fractions": bad}, headers=token("operator"))
        assert r.status_code == 422 and any(k.startswith("fractions") for k in r.get_json()["errors"]), r.get_json()
    assert client.put(url, json={"fractions": {"dispatch": 0.5}}, headers=token("drc")).status_code == 403
    r = client.put(url, json={"fractions": {"dispatch": 0.5, "promised:land_pre_review": 0.6}}, headers=token("operator"))
    assert r.status_code == 200
    assert client.get(url, headers=token("supervisor")).get_json()["fractions"]["dispatch"] == 0.5
    clock.set(at(2026, 3, 16, 0))  # Monday 00:00: half of 24 working hours is Monday noon
    code = declare(client, token)["project_code"]
    assert clock_of(project(client, token, code), "dispatch")["yellow_at"] == at(2026, 3, 16, 12).astimezone(timezone.utc).isoformat()


def test_the_general_window_cancels_a_declaration(client, token):
    code = declare(client, token, new_land_use=True)["project_code"]
    window = tasks(client, token, "window", project_code=code)[0]
    refused = client.post(f"/api/v1/tasks/{window['id']}/complete", headers=token("window"),
                          json={"data": {"window_decision": "cancel"}, "version": window["version"]})
    assert refused.status_code == 422 and "data.window_comment" in refused.get_json()["errors"]
    r = client.post(f"/api/v1/tasks/{window['id']}/complete", headers=token("window"),
                    json={"data": {"window_decision": "cancel", "window_comment": "重复申报"}, "version": window["version"]})
    assert r.status_code == 200, r.get_json()
    body = project(client, token, code)
    assert body["status"] == "cancelled"
    assert {m["status"] for m in body["matters"]} == {"cancelled"}
    assert all(c["state"] == "stopped" for c in body["clocks"])
    assert tasks(client, token, "window", project_code=code) == []


def test_a_returned_declaration_pauses_then_restarts_the_dispatch_clock(client, token, clock):
    code = declare(client, token, new_land_use=True)["project_code"]
    window = tasks(client, token, "window", project_code=code)[0]
    r = client.post(f"/api/v1/tasks/{window['id']}/complete", headers=token("window"),
                    json={"data": {"window_decision": "return", "window_comment": "补充建设规模"}, "version": window["version"]})
    assert r.status_code == 200, r.get_json()
    assert clock_of(project(client, token, code), "dispatch")["state"] == "paused"
    supply = [t for t in tasks(client, token, "applicant", project_code=code) if t["name"] == "complete_declaration"]
    assert supply and supply[0]["context"]["window_comment"] == "补充建设规模"
    assert [t for t in tasks(client, token, "applicant2") if t["project_code"] == code] == []
    clock.advance(days=2)
    complete(client, token, "applicant", "complete_declaration", {"completion_note": "已补充"}, code)
    restarted = clock_of(project(client, token, code), "dispatch")
    assert restarted["state"] == "running" and restarted["started_at"] == clock.now().isoformat()
    assert [t["name"] for t in tasks(client, token, "window", project_code=code)] == ["window_review"]


def test_a_calendar_load_rolled_back_lends_nothing_to_the_next_load(platform, clock):
    """A process caches the calendar under its revision. A load that was rolled back had
    its calendar cached inside its transaction; the next load at the same instant gets a
    revision of its own, so the calendar in force is the committed one."""
    from datetime import date

    from engine import calendar
    from engine.db import unit_of_work

    march_3 = date(2026, 3, 3)
    with platform.session_factory() as s:
        calendar.load_year_text(s, "year 2026\n2026-01-01 holiday 元旦\n2026-03-03 holiday 更正\n", now=clock.now(),
                                actor="operator")
        assert not calendar.current(s).is_workday(march_3)  # built and cached inside the transaction
        s.rollback()
    with unit_of_work(platform.session_factory) as s:
        calendar.load_year_text(s, "year 2026\n2026-01-01 holiday 元旦\n", now=clock.now(), actor="operator")
    with platform.session_factory() as s:
        assert calendar.current(s).is_workday(march_3)


def test_a_calendar_load_that_moves_a_limit_into_the_past_meets_it_at_its_moved_instant(client, token, clock, platform):
    """The year's schedule comes late and makes a Saturday a working day (调休上班): a limit
    computed on the weekday rule moves earlier, to an instant already past when the year is
    loaded. The limit is met at that instant, as the sweep meets every limit at its own
    instant, not at the load's."""
    clock.set(at(2026, 12, 31, 10))
    code = declare(client, token, new_land_use=True)["project_code"]
    assert clock_of(project(client, token, code), "dispatch")["due_at"] == at(2027, 1, 4, 10).astimezone(timezone.utc).isoformat()
    clock.set(at(2027, 1, 3, 12))  # no sweep since: nothing has fired
    schedule = "year 2027\n2027-01-01 holiday 元旦\n2027-01-02 workday 元旦调休上班\n"
    r = client.post("/api/v1/admin/calendar/years", data={"file": (io.BytesIO(schedule.encode()), "2027.txt")},
                    headers=token("operator"), content_type="multipart/form-data")
    assert r.status_code == 201, r.get_json()
    moved = clock_of(project(client, token, code), "dispatch")
    due = at(2027, 1, 2, 10).astimezone(timezone.utc)
    assert moved["due_at"] == due.isoformat() and moved["light"] == "red"
    red = [a for a in alerts(client, token, project_code=code) if a["clock"] == "dispatch" and a["light"] == "red"]
    assert [datetime.fromisoformat(a["at"]) for a in red] == [due], red


def test_an_automatic_reply_whose_limit_a_calendar_load_moves_into_the_past_is_given_at_that_limit(client, token, clock, platform):
    """逾期未回复 is the platform's reply at the reply limit: when the year's schedule moves
    that limit to an instant already past, the automatic reply is given at it (the reply
    clock stopped there, so e-supervision counts it as automatic), not at the load."""
    from engine.models import AuditEvent, Clock

    clock.set(at(2026, 12, 29, 10))
    code = declare(client, token, new_land_use=True)["project_code"]
    dispatch(client, token, code)
    reply = clock_of(project(client, token, code), "reply", "land")
    assert reply["due_at"] == at(2027, 1, 4, 10).astimezone(timezone.utc).isoformat()  # the weekday rule
    clock.set(at(2027, 1, 3, 12))
    schedule = "year 2027\n2027-01-01 holiday 元旦\n2027-01-02 workday 元旦调休上班\n"
    r = client.post("/api/v1/admin/calendar/years", data={"file": (io.BytesIO(schedule.encode()), "2027.txt")},
                    headers=token("operator"), content_type="multipart/form-data")
    assert r.status_code == 201, r.get_json()
    due = at(2027, 1, 2, 10).astimezone(timezone.utc)
    with platform.session_factory() as s:
        [land] = s.scalars(select(Clock).join(Project, Project.id == Clock.project_id).where(
            Project.project_code == code, Clock.kind == "reply", Clock.department_code == "land")).all()
        assert (land.state, land.due_at, land.stopped_at) == ("stopped", due, due)
        [auto] = s.scalars(select(AuditEvent).where(AuditEvent.project_code == code, AuditEvent.action == "matter.no_matter",
                                                    AuditEvent.target == "matter:land_pre_review")).all()
        assert auto.summary["reply"] == "overdue_no_reply"
