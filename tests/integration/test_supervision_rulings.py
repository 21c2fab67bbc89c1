"""电子监察 figures against the regulations (a review's findings, each reproduced over HTTP):
what is counted against a department is its own handling (Jilin 第十四条(四), Hunan 第二十一条),
a matter is judged on time against the clock counting it when it ended, a filing is
accepted when taken in, and the general window reads its own figures. On SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from engine.supervision import Period
from engine.sweep import sweep
from tests.integration.helpers import declare
from tests.integration.test_workflow_api import (
    ACCEPT,
    DECIDE,
    FILE,
    LAND_PROJECT,
    PRE_CHECK_PASS,
    approve,
    dispatch,
    project,
    to_matters,
    work,
)

SH = timezone(timedelta(hours=8))
MARCH = {"from": "2026-03-01", "to": "2026-03-31"}


def sh(*a):
    return datetime(*a, tzinfo=SH)


def summary(client, token, user="supervisor", **params):
    r = client.get("/api/v1/supervision/summary", headers=token(user), query_string=params)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def dept_row(body, dept):
    rows = {d["department"]: d for d in body["departments"]}
    return rows.get(dept)


def scores(client, token, user="supervisor", **params):
    r = client.get("/api/v1/supervision/scores", headers=token(user), query_string=params)
    assert r.status_code == 200, r.get_json()
    return {d["department"]: d for d in r.get_json()["departments"]}


def alerts(client, token, user="supervisor", **params):
    r = client.get("/api/v1/alerts", headers=token(user), query_string={"page_size": 200, **params})
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"]


def test_a_refusal_within_its_limit_is_concluded_on_time(client, token, platform, clock):
    code = to_matters(client, token, **LAND_PROJECT)
    work(client, token, "land", "pre_check", code,
         {"precheck_result": "fail", "code_verified": True, "within_competence": False,
          "precheck_comment": "不属于本部门受理范围"}, "land_pre_review")
    p = project(client, token, code)
    assert {m["matter_code"]: m["status"] for m in p["matters"]}["land_pre_review"] == "refused"
    land = dept_row(summary(client, token, **MARCH), "land")
    # refused on the first day of its 3-day pre-review clock: no red, no overdue
    assert land["red_records"] == 0 and land["concluded"] == 1
    assert land["concluded_on_time"] == 1 and land["on_time_rate"] == 1.0, land


def conclude_land_project(client, token, platform):
    code = to_matters(client, token, **LAND_PROJECT)
    work(client, token, "drc", "filing_check", code, FILE, "enterprise_filing")
    work(client, token, "land", "pre_check", code, PRE_CHECK_PASS, "land_pre_review")
    work(client, token, "land", "acceptance", code, ACCEPT, "land_pre_review")
    work(client, token, "land", "handling", code, DECIDE, "land_pre_review")
    work(client, token, "land", "decision", code, approve("land"), "land_pre_review")
    sweep(platform)
    assert project(client, token, code)["status"] == "concluded"
    return code


def rectify(client, token, code, days=5, public=None, user="land"):
    body = {"kind": "rectification", "title": "整改通知", "content": "施工扬尘治理不到位，限期整改",
            "rectification_working_days": days}
    if public is not None:
        body["public"] = public
    r = client.post(f"/api/v1/projects/{code}/supervision-records", headers=token(user), json=body)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_the_units_late_rectification_is_not_counted_against_the_ordering_department(client, token, platform, clock):
    code = conclude_land_project(client, token, platform)
    rectify(client, token, code, days=5)
    clock.set(sh(2026, 3, 20, 10))  # well past 5 working days; the unit has not rectified
    sweep(platform)
    land = dept_row(summary(client, token, **MARCH), "land")
    s = scores(client, token, period="2026-03")["land"]
    kinds = [p["record"]["clock_kind"] for p in s["points_lost"]]
    # the land department handled its matter on time; the overdue deadline is the project unit's
    assert "rectification" not in kinds, kinds
    assert land["overdue_now"] == 0 and land["red_records"] == 0, land


def test_the_units_own_suspension_does_not_stop_a_rectification_deadline(client, token, platform, clock):
    code = conclude_land_project(client, token, platform)
    rectify(client, token, code, days=5)
    r = client.post(f"/api/v1/projects/{code}/changes", headers=token("applicant"),
                    json={"kind": "suspension", "reason": "资金暂未到位", "changes": {}})
    assert r.status_code in (200, 201), r.get_json()
    clock.set(sh(2026, 4, 30, 10))
    sweep(platform)
    recs = client.get(f"/api/v1/projects/{code}/supervision-records", headers=token("land")).get_json()["items"]
    # the unit, not the department, asked for the suspension: the order's deadline should still run out
    assert recs[0]["deadline"]["light"] == "red", recs[0]["deadline"]


def test_a_filing_is_accepted_when_taken_in_and_has_a_handling_time(client, token, platform, clock):
    code = to_matters(client, token, **LAND_PROJECT)
    clock.set(sh(2026, 3, 3, 15))
    work(client, token, "drc", "filing_check", code, FILE, "enterprise_filing")
    drc = dept_row(summary(client, token, **MARCH), "drc")
    assert drc["received"] == 1 and drc["concluded"] == 1 and drc["concluded_on_time"] == 1
    # filed 1.25 working days after the materials were in (efficiency clock 3 days)
    assert drc["accepted"] == 1, drc
    assert drc["mean_handling_days"] is not None, drc


def test_the_general_window_reads_its_own_figures(client, token, platform, clock):
    code = declare(client, token, **LAND_PROJECT)["project_code"]
    clock.set(sh(2026, 3, 4, 10))  # the window let its 1-day dispatch clock run out
    sweep(platform)
    assert [a["light"] for a in alerts(client, token, "window", project_code=code)] == ["red", "yellow"]
    own = summary(client, token, "window", **MARCH)["departments"]
    assert [(d["department"], d["red_records"]) for d in own] == [("window", 1)]  # its own row only


def test_a_matter_decided_while_an_intermediary_works_is_judged_on_time(client, token, platform, clock):
    code = to_matters(client, token, **LAND_PROJECT)
    work(client, token, "land", "pre_check", code, PRE_CHECK_PASS, "land_pre_review")
    work(client, token, "land", "acceptance", code, ACCEPT, "land_pre_review")
    clock.set(sh(2026, 3, 4, 10))
    r = client.post(f"/api/v1/projects/{code}/matters/land_pre_review/intermediaries", headers=token("land"),
                    json={"name": "攀枝花测绘院", "qualification": "甲级测绘", "service": "勘测定界", "deadline": "2026-03-20"})
    assert r.status_code == 201, r.get_json()
    clock.set(sh(2026, 3, 5, 10))
    work(client, token, "land", "handling", code, DECIDE, "land_pre_review")
    work(client, token, "land", "decision", code, approve("land"), "land_pre_review")
    land = dept_row(summary(client, token, **MARCH), "land")
    # decided 3 days into a 10-day limit, never yellow or red
    assert (land["concluded"], land["red_records"]) == (1, 0)
    assert land["concluded_on_time"] == 1, land


def test_a_yellow_warning_costs_no_points_in_the_demo_rule(client, token, platform, clock):
    code = to_matters(client, token, **LAND_PROJECT)
    work(client, token, "land", "pre_check", code, PRE_CHECK_PASS, "land_pre_review")
    work(client, token, "land", "acceptance", code, ACCEPT, "land_pre_review")
    clock.set(sh(2026, 3, 12, 10))  # 80% of 10 days passed: yellow; decided the same day, 2 days before the limit
    sweep(platform)
    work(client, token, "land", "handling", code, DECIDE, "land_pre_review")
    work(client, token, "land", "decision", code, approve("land"), "land_pre_review")
    land = scores(client, token, period="2026-03")["land"]
    assert land["points_lost_total"] == 0, land["points_lost"]


def test_the_period_before_whole_months_is_as_many_months_before():
    def before(start, end):
        prev = Period(date.fromisoformat(start), date.fromisoformat(end)).previous()
        return prev.start.isoformat(), prev.end.isoformat()

    assert before("2026-03-01", "2026-03-31") == ("2026-02-01", "2026-02-28")
    assert before("2026-01-01", "2026-03-31") == ("2025-10-01", "2025-12-31")  # a quarter
    assert before("2025-01-01", "2025-12-31") == ("2024-01-01", "2024-12-31")  # a year
    assert before("2026-03-10", "2026-03-19") == ("2026-02-28", "2026-03-09")  # ten days: ten days before


def test_a_filings_handling_time_leaves_out_the_units_correction(client, token, clock):
    """A filing's clock restarts after a correction: the correction stands in the first
    clock's pauses, and is not the filing department's time."""
    code = to_matters(client, token, **LAND_PROJECT)
    work(client, token, "drc", "filing_check", code, {
        "filing_decision": "correction", "filing_comment": "请补正备案信息",
        "correction_items": [{"material": "filing_form", "note": "补充建设内容"}]}, "enterprise_filing")
    clock.advance(days=7)  # Mon 2 Mar -> Mon 9 Mar: five working days the unit took to correct
    work(client, token, "applicant", "supply_materials", code, {"supplement_note": "已补正"}, "enterprise_filing")
    work(client, token, "drc", "filing_check", code, {**FILE, "document_date": "2026-03-09"}, "enterprise_filing")
    drc = dept_row(summary(client, token, **MARCH), "drc")
    assert (drc["concluded"], drc["concluded_on_time"]) == (1, 1)
    assert drc["mean_handling_days"] < 1, drc



def rectifications(client, token, user="supervisor", status=200, **params):
    r = client.get("/api/v1/supervision/rectifications", headers=token(user), query_string=params)
    assert r.status_code == status, r.get_json()
    return r.get_json()


def test_supervisors_list_the_units_overdue_rectifications(client, token, platform, clock):
    """整改 across projects: the orders in the reader's scope with the unit that must act,
    soonest deadline first; overdue ones found by their deadline, before any sweep lights
    them red; a closed order leaves the open list."""
    code = conclude_land_project(client, token, platform)
    soon = rectify(client, token, code, days=5)
    later = rectify(client, token, code, days=60)
    clock.set(sh(2026, 3, 20, 10))  # past the first deadline, no sweep since

    body = rectifications(client, token, overdue="true")
    assert [r["id"] for r in body["items"]] == [soon["id"]] and body["total"] == 1
    [item] = body["items"]
    assert item["project_code"] == code and item["unit_name"] and item["project_name"]
    assert item["department"] == "land" and datetime.fromisoformat(item["deadline"]["due_at"]) < clock.now()
    assert [r["id"] for r in rectifications(client, token)["items"]] == [soon["id"], later["id"]]
    assert [r["id"] for r in rectifications(client, token, "land")["items"]] == [soon["id"], later["id"]]
    assert rectifications(client, token, "drc")["items"] == []  # a department reads its own orders
    rectifications(client, token, "drc", status=403, department="land")
    rectifications(client, token, "applicant", status=403)
    refused = rectifications(client, token, status=422, state="late")
    assert "state" in str(refused)
    assert "overdue" in str(rectifications(client, token, status=422, overdue="true", state="closed"))

    r = client.post(f"/api/v1/projects/{code}/supervision-records/{soon['id']}/close", headers=token("land"),
                    json={"content": "已完成扬尘治理整改"})
    assert r.status_code == 200, r.get_json()
    assert rectifications(client, token, overdue="true")["items"] == []
    assert [r["id"] for r in rectifications(client, token, state="closed")["items"]] == [soon["id"]]
    assert rectifications(client, token, state="all")["total"] == 2
