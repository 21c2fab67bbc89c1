"""实施情况监测 over HTTP (issue #5, 第十四条(五)): after its matters conclude the project unit
reports start, progress and completion under the project code; a monitoring department
records inspections, rectification orders whose deadline is a clock with yellow and red
lights, and penalties; the project unit sees the public records and its rectifications."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from engine.accounts import hash_password
from engine.models import Department, ImplementationReport, Region, SupervisionRecord, User
from engine.sweep import sweep
from tests.integration.test_clocks import set_now
from tests.integration.test_workflow_api import (
    ACCEPT, DECIDE, FILE, LAND_PROJECT, PRE_CHECK_PASS, approve, project, to_matters, work,
)

SHANGHAI = timezone(timedelta(hours=8))
LAND = "land_pre_review"


def concluded_project(client, token, platform):
    """Declare, dispatch, handle both matters (filing and land pre-review), deliver: concluded."""
    code = to_matters(client, token, **LAND_PROJECT)
    work(client, token, "drc", "filing_check", code, FILE, "enterprise_filing")
    for name, data in (("pre_check", PRE_CHECK_PASS), ("acceptance", ACCEPT), ("handling", DECIDE),
                       ("decision", approve("land"))):
        work(client, token, "land", name, code, data, LAND)
    sweep(platform)
    assert project(client, token, code)["status"] == "concluded"
    return code


def report(client, token, code, user="applicant", **body):
    return client.post(f"/api/v1/projects/{code}/implementation", json=body, headers=token(user))


def reports(client, token, code, user="applicant"):
    r = client.get(f"/api/v1/projects/{code}/implementation", headers=token(user), query_string={"page_size": 200})
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"]


def count(platform, model):
    with platform.session_factory() as s:
        return s.scalar(select(func.count()).select_from(model))


# --- implementation reports -------------------------------------------------------------------

def test_implementation_reports_start_progress_completion(client, token, platform, clock):
    running = to_matters(client, token, **LAND_PROJECT)
    r = report(client, token, running, kind="start", period="2026-03-02")
    assert r.status_code == 409, r.get_json()  # its matters have not concluded

    code = concluded_project(client, token, platform)
    assert report(client, token, code, user="land", kind="start", period="2026-03-02").status_code == 403
    assert report(client, token, code, user="applicant2", kind="start", period="2026-03-02").status_code == 404
    assert report(client, token, code, kind="progress", period="2026-03", percent_complete="10",
                  investment_completed="100").status_code == 409  # no start yet
    assert report(client, token, code, kind="completion", period="2026-03-02").status_code == 409
    for kind, period in (("progress", "2026-13"), ("progress", "２０２６-03"), ("completion", "2026-3-2")):
        r = report(client, token, code, kind=kind, period=period)  # its own field is wrong: said first, not the order
        assert r.status_code == 422 and "period" in r.get_json()["errors"], (kind, period, r.get_json())
    for bad, field in (({"period": "2026-03"}, "period"), ({"period": "2026-03-03"}, "period"),  # a month; tomorrow
                       ({"kind": "finish"}, "kind"), ({"percent_complete": "101"}, "percent_complete"),
                       ({"investment_completed": "-1"}, "investment_completed"), ({"content": "<script>"}, "content"),
                       ({"extra": 1}, "extra")):
        r = report(client, token, code, **{"kind": "start", "period": "2026-03-02", **bad})
        assert r.status_code == 422 and field in r.get_json()["errors"], (bad, r.get_json())
    assert count(platform, ImplementationReport) == 0

    r = report(client, token, code, kind="start", period="2026-03-02", content="主体工程开工")
    assert r.status_code == 201, r.get_json()
    assert (r.get_json()["project_code"], r.get_json()["kind"], r.get_json()["reported_by"]) == (code, "start", "applicant")
    assert report(client, token, code, kind="start", period="2026-03-02").status_code == 409

    r = report(client, token, code, kind="progress", period="2026-03", percent_complete="30", investment_completed="3600.5")
    assert r.status_code == 201, r.get_json()
    assert (r.get_json()["percent_complete"], r.get_json()["investment_completed"]) == ("30.00", "3600.5000")
    assert report(client, token, code, kind="progress", period="2026-03", percent_complete="35",
                  investment_completed="4000").status_code == 409  # that month is reported
    r = report(client, token, code, kind="progress", period="2026-04", percent_complete="50", investment_completed="5000")
    assert r.status_code == 422 and "period" in r.get_json()["errors"]  # next month has not come

    clock.set(datetime(2026, 5, 11, 9, 0, tzinfo=SHANGHAI))
    for bad, field in (({"percent_complete": "20"}, "percent_complete"),  # below the 30 reported
                       ({"investment_completed": "24001.01"}, "investment_completed"),  # over twice 12000.5 万元
                       ({"period": "2026-4"}, "period"), ({"period": "2026-04-30"}, "period"),
                       ({"percent_complete": None}, "percent_complete")):
        r = report(client, token, code, **{"kind": "progress", "period": "2026-04", "percent_complete": "60",
                                            "investment_completed": "7000", **bad})
        assert r.status_code == 422 and field in r.get_json()["errors"], (bad, r.get_json())
    r = report(client, token, code, kind="progress", period="2026-04", percent_complete="60", investment_completed="7000")
    assert r.status_code == 201, r.get_json()
    r = report(client, token, code, kind="completion", period="2026-05-08", percent_complete="90")
    assert r.status_code == 422 and "percent_complete" in r.get_json()["errors"]
    r = report(client, token, code, kind="completion", period="2026-03-31")  # before April's progress, reported
    assert r.status_code == 422 and "period" in r.get_json()["errors"], r.get_json()
    r = report(client, token, code, kind="completion", period="2026-05-08", investment_completed="11800")
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["percent_complete"] == "100.00"
    assert report(client, token, code, kind="completion", period="2026-05-09").status_code == 409
    assert report(client, token, code, kind="progress", period="2026-05", percent_complete="100",
                  investment_completed="11800").status_code == 409  # completed

    for user in ("applicant", "supervisor", "env"):
        assert [(x["kind"], x["period"], x["project_code"]) for x in reports(client, token, code, user)] == [
            ("start", "2026-03-02", code), ("progress", "2026-03", code), ("progress", "2026-04", code),
            ("completion", "2026-05-08", code)]
    assert client.get(f"/api/v1/projects/{code}/implementation", headers=token("applicant2")).status_code == 404
    history = client.get(f"/api/v1/projects/{code}/history", headers=token("applicant"),
                         query_string={"page_size": 200}).get_json()["items"]
    assert [e["action"] for e in history if e["action"].startswith("implementation.")] == [
        "implementation.start", "implementation.progress", "implementation.progress", "implementation.completion"]


# --- supervision records ----------------------------------------------------------------------

def record(client, token, code, user="land", **body):
    return client.post(f"/api/v1/projects/{code}/supervision-records", json=body, headers=token(user))


def records(client, token, code, user, **params):
    r = client.get(f"/api/v1/projects/{code}/supervision-records", headers=token(user),
                   query_string={"page_size": 200, **params})
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"]


def rectification_alerts(client, token, code, user="supervisor"):
    r = client.get("/api/v1/alerts", headers=token(user), query_string={"project_code": code, "clock": "rectification"})
    assert r.status_code == 200, r.get_json()
    return [(a["light"], a["department"], a["at"]) for a in r.get_json()["items"]]


def test_a_rectification_order_runs_a_clock_that_turns_yellow_then_red(client, token, platform):
    code = concluded_project(client, token, platform)
    r = record(client, token, code, kind="rectification", title="施工扬尘整改", content="施工现场未落实扬尘防治措施，限期整改",
               rectification_working_days=5, public=False)
    assert r.status_code == 201, r.get_json()
    order = r.get_json()
    assert (order["project_code"], order["region_code"], order["department"], order["state"]) == (
        code, "510411", "land", "open")
    deadline = order["deadline"]
    # recorded Monday 2026-03-02 09:00: 5 working days is Monday 2026-03-09 09:00, yellow at 80% (Friday 09:00)
    assert (deadline["due_at"], deadline["yellow_at"], deadline["light"], deadline["state"]) == (
        "2026-03-09T01:00:00+00:00", "2026-03-06T01:00:00+00:00", "green", "running")

    set_now(client, token, datetime(2026, 3, 6, 8, 0, tzinfo=SHANGHAI))
    assert rectification_alerts(client, token, code) == []
    set_now(client, token, datetime(2026, 3, 6, 10, 0, tzinfo=SHANGHAI))
    assert rectification_alerts(client, token, code) == [("yellow", "land", deadline["yellow_at"])]
    set_now(client, token, datetime(2026, 3, 9, 10, 0, tzinfo=SHANGHAI))
    assert rectification_alerts(client, token, code) == [("red", "land", deadline["due_at"]),
                                                         ("yellow", "land", deadline["yellow_at"])]
    assert rectification_alerts(client, token, code, user="land")[0][0] == "red"  # the ordering department's view
    assert rectification_alerts(client, token, code, user="env") == []  # another department's officer
    assert records(client, token, code, "applicant")[0]["deadline"]["light"] == "red"

    url = f"/api/v1/projects/{code}/supervision-records/{order['id']}/close"
    assert client.post(url, json={"content": "已整改"}, headers=token("env")).status_code == 403
    assert client.post(url, json={"content": "已整改"}, headers=token("applicant")).status_code == 403
    assert client.post(url, json={}, headers=token("land")).status_code == 422
    r = client.post(url, json={"content": "已覆盖裸土并设置喷淋"}, headers=token("land"))
    assert r.status_code == 200, r.get_json()
    closed = r.get_json()
    assert closed["state"] == "closed" and closed["closed_at"] == "2026-03-09T02:00:00+00:00"
    assert (closed["deadline"]["state"], closed["deadline"]["light"]) == ("stopped", "red")
    assert closed["details"]["closure"]["content"] == "已覆盖裸土并设置喷淋"
    assert client.post(url, json={"content": "再次"}, headers=token("land")).status_code == 409
    set_now(client, token, datetime(2026, 3, 20, 10, 0, tzinfo=SHANGHAI))
    assert len(rectification_alerts(client, token, code)) == 2  # a stopped clock raises nothing more


def test_penalties_need_their_particulars_and_the_unit_sees_only_what_is_public(client, token, platform):
    code = to_matters(client, token, **LAND_PROJECT)  # monitoring does not wait for conclusion
    before = count(platform, SupervisionRecord)
    r = record(client, token, code, kind="penalty", title="未批先建", content="未取得用地预审擅自开工")
    assert r.status_code == 422, r.get_json()
    assert set(r.get_json()["errors"]) == {"details.decision_number", "details.amount", "details.legal_basis"}
    for bad, field in (
        ({"kind": "penalty", "details": {"decision_number": "仁自然资罚〔2026〕3号", "amount": "-5",
                                         "legal_basis": "《土地管理法》第七十七条"}}, "details.amount"),
        ({"kind": "penalty", "details": {"decision_number": "x", "amount": "5", "legal_basis": "y", "note": "z"}},
         "details.note"),
        ({"kind": "inspection", "details": {"decision_number": "仁自然资罚〔2026〕3号"}}, "details.decision_number"),
        ({"kind": "inspection", "rectification_working_days": 5}, "rectification_working_days"),
        ({"kind": "rectification"}, "rectification_working_days"),
        ({"kind": "rectification", "rectification_working_days": 0}, "rectification_working_days"),
        ({"kind": "rectification", "rectification_working_days": 251}, "rectification_working_days"),
        ({"kind": "audit"}, "kind"), ({"kind": "inspection", "title": ""}, "title"),
    ):
        r = record(client, token, code, **{"title": "检查", "content": "现场检查", **bad})
        assert r.status_code == 422 and field in r.get_json()["errors"], (bad, r.get_json())
    assert record(client, token, code, user="applicant", kind="inspection", title="检查", content="x").status_code == 403
    assert record(client, token, code, user="supervisor", kind="inspection", title="检查", content="x").status_code == 403
    assert count(platform, SupervisionRecord) == before

    made = {}
    for key, body in (
        ("private_inspection", {"kind": "inspection", "title": "例行检查", "content": "现场检查未发现问题", "public": False,
                                "details": {"findings": "无"}}),
        ("public_inspection", {"kind": "inspection", "title": "专项检查", "content": "检查施工许可公示", "public": True}),
        ("penalty", {"kind": "penalty", "title": "未批先建", "content": "责令停止建设并处罚款",
                             "details": {"decision_number": "仁自然资罚〔2026〕3号", "amount": "50000",
                                         "legal_basis": "《土地管理法》第七十七条"}}),
        ("rectification", {"kind": "rectification", "title": "补办用地手续", "content": "限期补办", "rectification_working_days": 10}),
    ):
        r = record(client, token, code, **body)
        assert r.status_code == 201, (key, r.get_json())
        made[key] = r.get_json()
    assert made["penalty"]["details"]["amount"] == "50000.00"
    assert made["private_inspection"]["state"] == made["penalty"]["state"] == "closed"
    assert made["private_inspection"]["deadline"] is None

    officials = [x["id"] for x in records(client, token, code, "supervisor")]
    assert officials == [made[k]["id"] for k in ("private_inspection", "public_inspection", "penalty", "rectification")]
    assert made["penalty"]["public"] is True  # 处罚结果等要及时通过在线平台向社会公开: always
    assert made["rectification"]["public"] is True  # 监管信息 too, unless withheld (``public`` left out)
    assert [x["id"] for x in records(client, token, code, "applicant")] == [
        made["public_inspection"]["id"], made["penalty"]["id"], made["rectification"]["id"]]
    assert [x["title"] for x in records(client, token, code, "drc", kind="penalty")] == ["未批先建"]
    hidden = record(client, token, code, kind="penalty", title="不公开的处罚", content="x", public=False,
                    details={"decision_number": "仁自然资罚〔2026〕4号", "amount": "1", "legal_basis": "《土地管理法》"})
    assert hidden.status_code == 422 and "public" in hidden.get_json()["errors"], hidden.get_json()
    assert client.get(f"/api/v1/projects/{code}/supervision-records", headers=token("applicant2")).status_code == 404
    r = client.get(f"/api/v1/projects/{code}/supervision-records", headers=token("land"), query_string={"kind": "fine"})
    assert r.status_code == 422
    # closing applies to a rectification order only
    url = f"/api/v1/projects/{code}/supervision-records/{made['penalty']['id']}/close"
    assert client.post(url, json={"content": "已缴纳"}, headers=token("land")).status_code == 409
    history = client.get(f"/api/v1/projects/{code}/history", headers=token("supervisor"),
                         query_string={"page_size": 200}).get_json()["items"]
    assert [e["action"] for e in history if e["action"].startswith("supervision.")] == [
        "supervision.inspection", "supervision.inspection", "supervision.penalty", "supervision.rectification"]
    # the unit's view of the history leaves out the withheld inspection, as its list does
    mine = client.get(f"/api/v1/projects/{code}/history", headers=token("applicant"),
                      query_string={"page_size": 200}).get_json()["items"]
    assert [e["summary"]["title"] for e in mine if e["action"].startswith("supervision.")] == ["专项检查", "未批先建", "补办用地手续"]


def test_only_departments_whose_region_covers_the_project_record_on_it(client, token, platform):
    """An officer of another district (东区) does not see a 仁和区 project: 404, nothing stored."""
    code = to_matters(client, token, **LAND_PROJECT)
    with platform.session_factory() as s:
        s.add(Region(code="510402", name="东区", parent_code="510400", level="district"))
        s.flush()
        s.add(Department(code="dq_land", name="东区自然资源局", region_code="510402", kind="approving"))
        s.flush()
        s.add(User(username="dq_land", password_hash=hash_password("demo-password-东区"), display_name="东区经办人",
                   department_code="dq_land", roles=["officer"], created_at=platform.clock.now()))
        s.commit()
    r = record(client, token, code, user="dq_land", kind="inspection", title="检查", content="现场检查")
    assert r.status_code == 404
    assert count(platform, SupervisionRecord) == 0


def test_a_project_refused_everywhere_reports_no_start(client, token, platform):
    """Implementation follows an approval or a filing: a project whose matters were all
    refused (不予备案, 初审不予通过) is concluded, but is not to be built."""
    code = to_matters(client, token, **LAND_PROJECT)
    work(client, token, "drc", "filing_check", code, {"filing_decision": "refuse", "filing_comment": "不予备案",
                                                      "refusal_reason": "属于产业政策禁止投资建设的项目"}, "enterprise_filing")
    work(client, token, "land", "pre_check", code, {"precheck_result": "fail", "code_verified": True,
                                                    "within_competence": False, "precheck_comment": "不属于本部门"}, LAND)
    sweep(platform)
    assert project(client, token, code)["status"] == "concluded"
    r = report(client, token, code, kind="start", period="2026-03-02")
    assert r.status_code == 409 and "批准或备案" in r.get_json()["message"], r.get_json()
    assert count(platform, ImplementationReport) == 0
