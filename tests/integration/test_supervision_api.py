"""E-supervision over HTTP, on a hand-built data set whose figures are worked out by hand here.

The rows are inserted directly (projects, matters with their received / accepted /
concluded instants, clocks, alerts, notices, reports, back-filled acts), so these
tests check the arithmetic and the scoping of the figures, not the workflow that
normally writes them. March 2026 has no public holiday; 7–8, 14–15, 21–22 and 28–29
March are weekends; Qingming 2026 is 4–6 April. One working day = 24 working hours.

The world (all instants Asia/Shanghai):

P1 2026-510411-30-01-000001 (仁和区), concluded; declared Mon 2 Mar 09:00, conclusion
   notice Thu 12 Mar 09:00: 15 + 4×24 + 3×24 + 9 = 192 h = 8.0 working days.
   - enterprise_filing (drc): received 2 Mar 10:00, accepted 2 Mar 10:00, concluded
     Fri 6 Mar 10:00 = 96 h = 4.0 days; filing clock due Thu 5 Mar 10:00 → late; yellow
     alert Wed 4 Mar 19:36, red alert Thu 5 Mar 10:00.
   - land_pre_review (land): received 2 Mar 10:00, accepted Tue 3 Mar 09:00, concluded
     Thu 5 Mar 21:00 = 15 + 24 + 21 = 60 h = 2.5 days; promised clock due 17 Mar → on
     time; its acceptance clock was paused for a correction.
P2 2026-510411-30-01-000002 (仁和区), open (dispatched); declared Mon 9 Mar 09:00.
   - enterprise_filing (drc): received and accepted 9 Mar 10:00, concluded Tue 10 Mar
     22:00 = 36 h, minus a 12 h pause (10 Mar 10:00–22:00) on its filing clock = 24 h =
     1.0 day; due Thu 12 Mar 22:00 → on time.
   - land_pre_review (land): received 10 Mar 09:00, accepted Wed 11 Mar 09:00, still
     handling; promised clock (10 days) due Wed 25 Mar 09:00, running → overdue now;
     red alert 25 Mar 09:00.
   - construction_permit (housing): dispatched, no clock yet.
   - reply clocks started 9 Mar 10:00, due Thu 12 Mar 10:00, both red: water's stopped
     by the timer a microsecond after due (automatic reply), housing's stopped at 15:00
     by an officer (late reply).
   - a back-filled act of land entered 20 Mar (effective 18 Mar).
P3 2026-510402-30-01-000003 (东区, another district of 攀枝花市), concluded; declared Mon
   16 Mar 09:00, conclusion notice Wed 18 Mar 09:00 = 15 + 24 + 9 = 48 h = 2.0 days.
   - enterprise_filing (drc): accepted 16 Mar 10:00, concluded 17 Mar 10:00 = 1.0 day,
     filing clock due 19 Mar 10:00 → on time.
P4 2025-510411-30-01-000004, concluded 15 Sep 2025, no start report → no start after 6 months.
   Its land clock due 10 Feb 2026 (green); a drc clock due 20 Feb 2026 went red.
P5 2025-510411-30-01-000005, concluded 1 Aug 2025, started, progress 50% three times → stalled.

Now: Tue 31 Mar 2026 12:00.
"""
from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from engine.db import unit_of_work
from engine.models import (
    Alert,
    BackfilledAct,
    Clock,
    Department,
    ImplementationReport,
    Notice,
    Project,
    ProjectMatter,
    ProjectUnit,
    Region,
    User,
)

SH = ZoneInfo("Asia/Shanghai")
MARCH = {"from": "2026-03-01", "to": "2026-03-31"}


def at(y, mo, d, h=0, mi=0, us=0):
    return datetime(y, mo, d, h, mi, 0, us, tzinfo=SH)


NOW = at(2026, 3, 31, 12)
P1, P2, P3 = "2026-510411-30-01-000001", "2026-510411-30-01-000002", "2026-510402-30-01-000003"
P4, P5 = "2025-510411-30-01-000004", "2025-510411-30-01-000005"


def _project(s, code, region, declared, status, name=None):
    unit = s.scalars(select(ProjectUnit).order_by(ProjectUnit.id)).first()
    p = Project(project_code=code, name=name or f"项目{code[-1]}", regime="filing", region_code=region, industry_code="30",
                location="攀枝花", investment=Decimal("1000"), construction_content="新建厂房", start_year=2026, end_year=2027,
                project_unit_id=unit.id, status=status, declared_at=declared)
    s.add(p)
    s.flush()
    return p


def _matter(s, p, code, dept, status, received=None, accepted=None, concluded=None):
    s.add(ProjectMatter(project_id=p.id, matter_code=code, department_code=dept, status=status, updated_at=NOW,
                        received_at=received, accepted_at=accepted, concluded_at=concluded))


def _clock(s, p, kind, dept, matter, started, limit, due, *, light="green", state="stopped", stopped=None, pauses=()):
    c = Clock(kind=kind, project_id=p.id, project_code=p.project_code, matter_code=matter, department_code=dept,
              started_at=started, limit_days=Decimal(limit), pauses=[
                  {"start": a.isoformat(), "end": b.isoformat(), "reason": r} for a, b, r in pauses],
              due_at=due, yellow_at=due, state=state, light=light, stopped_at=stopped)
    s.add(c)
    s.flush()
    return c


def _alert(s, c, light, instant):
    s.add(Alert(clock_id=c.id, light=light, clock_kind=c.kind, project_code=c.project_code, matter_code=c.matter_code,
                department_code=c.department_code, due_at=c.due_at, at=instant))


def _notice(s, p, number, issued):
    s.add(Notice(project_id=p.id, project_code=p.project_code, kind="conclusion", number=number, issued_at=issued))


def _user(s, username, department, roles):
    s.add(User(username=username, password_hash="!", display_name=username, department_code=department, roles=roles,
               created_at=NOW))


@pytest.fixture
def world(platform):
    platform.clock.set(NOW)
    with unit_of_work(platform.session_factory) as s:
        s.add(Region(code="510402", name="东区", parent_code="510400", level="district"))
        s.add(Department(code="dq_supervision", name="东区电子监察室", region_code="510402", kind="supervision"))
        s.add(Department(code="city_supervision", name="攀枝花市电子监察室", region_code="510400", kind="supervision"))
        s.flush()
        _user(s, "dq_supervisor", "dq_supervision", ["supervisor"])
        _user(s, "city_supervisor", "city_supervision", ["supervisor"])

        p1 = _project(s, P1, "510411", at(2026, 3, 2, 9), "concluded", name="=HYPERLINK(\"http://x\")")
        _matter(s, p1, "enterprise_filing", "drc", "concluded", at(2026, 3, 2, 10), at(2026, 3, 2, 10), at(2026, 3, 6, 10))
        _matter(s, p1, "land_pre_review", "land", "concluded", at(2026, 3, 2, 10), at(2026, 3, 3, 9), at(2026, 3, 5, 21))
        filing1 = _clock(s, p1, "filing", "drc", "enterprise_filing", at(2026, 3, 2, 10), "3", at(2026, 3, 5, 10),
                         light="red", stopped=at(2026, 3, 6, 10))
        _alert(s, filing1, "yellow", at(2026, 3, 4, 19, 36))
        _alert(s, filing1, "red", at(2026, 3, 5, 10))
        _clock(s, p1, "acceptance", "land", "land_pre_review", at(2026, 3, 2, 12), "5", at(2026, 3, 10, 8),
               stopped=at(2026, 3, 3, 9), pauses=[(at(2026, 3, 2, 12), at(2026, 3, 3, 8), "correction")])
        _clock(s, p1, "promised", "land", "land_pre_review", at(2026, 3, 3, 9), "10", at(2026, 3, 17, 9),
               stopped=at(2026, 3, 5, 21))
        _notice(s, p1, "RH-JG-2026-0001", at(2026, 3, 12, 9))

        p2 = _project(s, P2, "510411", at(2026, 3, 9, 9), "dispatched")
        _matter(s, p2, "enterprise_filing", "drc", "concluded", at(2026, 3, 9, 10), at(2026, 3, 9, 10), at(2026, 3, 10, 22))
        _matter(s, p2, "land_pre_review", "land", "handling", at(2026, 3, 10, 9), at(2026, 3, 11, 9))
        _matter(s, p2, "construction_permit", "housing", "dispatched")
        _clock(s, p2, "filing", "drc", "enterprise_filing", at(2026, 3, 9, 10), "3", at(2026, 3, 12, 22),
               stopped=at(2026, 3, 10, 22), pauses=[(at(2026, 3, 10, 10), at(2026, 3, 10, 22), "intermediary")])
        _clock(s, p2, "acceptance", "land", "land_pre_review", at(2026, 3, 10, 9), "5", at(2026, 3, 17, 9),
               stopped=at(2026, 3, 11, 9))
        land2 = _clock(s, p2, "promised", "land", "land_pre_review", at(2026, 3, 11, 9), "10", at(2026, 3, 25, 9),
                       light="red", state="running")
        _alert(s, land2, "red", at(2026, 3, 25, 9))
        water = _clock(s, p2, "reply", "water", None, at(2026, 3, 9, 10), "3", at(2026, 3, 12, 10), light="red",
                       stopped=at(2026, 3, 12, 10, 0, 1))
        _alert(s, water, "red", at(2026, 3, 12, 10))
        housing = _clock(s, p2, "reply", "housing", None, at(2026, 3, 9, 10), "3", at(2026, 3, 12, 10), light="red",
                         stopped=at(2026, 3, 12, 15))
        _alert(s, housing, "red", at(2026, 3, 12, 10))
        s.add(BackfilledAct(project_code=P2, matter_code="land_pre_review", department_code="land", act="task:handling",
                            effective_at=at(2026, 3, 18, 10), entered_at=at(2026, 3, 20, 10), reason="系统故障线下办理",
                            actor="land"))

        p3 = _project(s, P3, "510402", at(2026, 3, 16, 9), "concluded")
        _matter(s, p3, "enterprise_filing", "drc", "concluded", at(2026, 3, 16, 10), at(2026, 3, 16, 10), at(2026, 3, 17, 10))
        _clock(s, p3, "filing", "drc", "enterprise_filing", at(2026, 3, 16, 10), "3", at(2026, 3, 19, 10),
               stopped=at(2026, 3, 17, 10))
        _notice(s, p3, "DQ-JG-2026-0001", at(2026, 3, 18, 9))

        p4 = _project(s, P4, "510411", at(2025, 9, 1, 9), "concluded")
        _notice(s, p4, "RH-JG-2025-0004", at(2025, 9, 15, 9))
        _clock(s, p4, "promised", "land", "land_pre_review", at(2026, 1, 26, 9), "10", at(2026, 2, 10, 9),
               stopped=at(2026, 2, 5, 9))
        _clock(s, p4, "promised", "drc", "enterprise_filing", at(2026, 2, 13, 9), "3", at(2026, 2, 20, 9),
               light="red", stopped=at(2026, 2, 24, 9))

        p5 = _project(s, P5, "510411", at(2025, 7, 1, 9), "concluded")
        _notice(s, p5, "RH-JG-2025-0005", at(2025, 8, 1, 9))
        for kind, period, percent, reported in (("start", "2025-09-01", None, at(2025, 9, 1, 10)),
                                                ("progress", "2025-10", 50, at(2025, 11, 5, 10)),
                                                ("progress", "2025-11", 50, at(2025, 12, 5, 10)),
                                                ("progress", "2025-12", 50, at(2026, 1, 5, 10))):
            s.add(ImplementationReport(project_id=p5.id, project_code=P5, kind=kind, period=period,
                                       percent_complete=percent, reported_at=reported, reported_by="applicant"))
    return platform


def get(client, token, user, path, **params):
    r = client.get(f"/api/v1/supervision/{path}", query_string=params, headers=token(user))
    assert r.status_code == 200, r.get_json()
    return r


def by(rows, key):
    return {row[key]: row for row in rows}


DRC_RENHE = {"received": 2, "accepted": 2, "concluded": 2, "concluded_on_time": 1, "on_time_rate": 0.5,
             "yellow_records": 1, "red_records": 1, "overdue_now": 0, "mean_handling_days": 2.5,
             "p90_handling_days": 4.0, "correction_request_rate": 0.0}
LAND_RENHE = {"received": 2, "accepted": 2, "concluded": 1, "concluded_on_time": 1, "on_time_rate": 1.0,
              "yellow_records": 0, "red_records": 1, "overdue_now": 1, "mean_handling_days": 2.5,
              "p90_handling_days": 2.5, "correction_request_rate": 0.5}


def test_summary_figures_for_the_district_supervisor(client, token, world):
    body = get(client, token, "supervisor", "summary", **MARCH).get_json()
    assert body["period"] == MARCH
    depts = by(body["departments"], "department")
    assert set(depts) == {"drc", "land", "water", "housing"}
    for key, value in DRC_RENHE.items():
        assert depts["drc"][key] == value, key
    for key, value in LAND_RENHE.items():
        assert depts["land"][key] == value, key
    assert (depts["drc"]["automatic_replies"], depts["drc"]["late_replies"]) == (0, 0)
    assert (depts["water"]["automatic_replies"], depts["water"]["late_replies"], depts["water"]["red_records"]) == (1, 0, 1)
    assert (depts["housing"]["automatic_replies"], depts["housing"]["late_replies"]) == (0, 1)
    assert depts["housing"]["mean_handling_days"] is None and depts["housing"]["received"] == 0
    matters = by(body["matters"], "matter_code")
    assert set(matters) == {"enterprise_filing", "land_pre_review"}
    for key, value in DRC_RENHE.items():
        assert matters["enterprise_filing"][key] == value, key
    assert matters["land_pre_review"]["overdue_now"] == 1 and matters["land_pre_review"]["department"] == "land"
    assert [(p["project_code"], p["working_days"]) for p in body["projects"]] == [(P1, 8.0)]


def test_city_supervisor_sees_both_districts_and_a_district_supervisor_only_its_own(client, token, world):
    city = get(client, token, "city_supervisor", "summary", **MARCH).get_json()
    drc = by(city["departments"], "department")["drc"]
    # handling days 4.0, 1.0, 1.0: mean 2.0, nearest-rank p90 = 3rd of 3 = 4.0
    assert (drc["received"], drc["concluded"], drc["concluded_on_time"], drc["mean_handling_days"], drc["p90_handling_days"]) \
        == (3, 3, 2, 2.0, 4.0)
    assert [(p["project_code"], p["working_days"]) for p in city["projects"]] == [(P1, 8.0), (P3, 2.0)]
    assert get(client, token, "operator", "summary", **MARCH).get_json() == city

    # a province concludes tens of thousands of projects in a year: the list comes a page at a time, with its total
    pages = [get(client, token, "city_supervisor", "summary", page=n, page_size=1, **MARCH).get_json() for n in (1, 2, 3)]
    assert [([p["project_code"] for p in page["projects"]], page["projects_total"]) for page in pages] == [
        ([P1], 2), ([P3], 2), ([], 2)]
    assert pages[0]["departments"] == city["departments"]  # the figures do not depend on the page

    east = get(client, token, "dq_supervisor", "summary", **MARCH).get_json()
    assert [(d["department"], d["received"], d["mean_handling_days"]) for d in east["departments"]] == [("drc", 1, 1.0)]
    assert [p["project_code"] for p in east["projects"]] == [P3]
    refused = client.get("/api/v1/supervision/summary", query_string={"region": "510411", **MARCH},
                         headers=token("dq_supervisor"))
    assert refused.status_code == 403 and "region" in refused.get_json()["errors"]
    for path in ("scores", "risks", "forecast", "summary.csv", "projects.xlsx"):
        r = client.get(f"/api/v1/supervision/{path}", query_string={"region": "510400"}, headers=token("dq_supervisor"))
        assert r.status_code == 403, path

    narrowed = get(client, token, "city_supervisor", "summary", region="510402", **MARCH).get_json()
    assert narrowed == east


def test_a_department_sees_only_its_own_rows(client, token, world):
    body = get(client, token, "land", "summary", **MARCH).get_json()
    assert [d["department"] for d in body["departments"]] == ["land"]
    assert [m["matter_code"] for m in body["matters"]] == ["land_pre_review"]
    assert [p["project_code"] for p in body["projects"]] == [P1]
    assert {k: body["departments"][0][k] for k in LAND_RENHE} == LAND_RENHE
    assert [d["department"] for d in get(client, token, "drc_admin", "summary", **MARCH).get_json()["departments"]] == ["drc"]
    refused = client.get("/api/v1/supervision/summary", query_string={"department": "drc"}, headers=token("land"))
    assert refused.status_code == 403 and "department" in refused.get_json()["errors"]
    assert client.get("/api/v1/supervision/summary", headers=token("applicant")).status_code == 403
    assert client.get("/api/v1/supervision/summary").status_code == 401


def test_bad_filters_are_refused_naming_the_field(client, token, world):
    cases = [({"from": "2026-03-31", "to": "2026-03-01"}, "from"), ({"from": "2026-13-01"}, "from"),
             ({"region": "51x"}, "region"), ({"region": "999999"}, "region"), ({"department": "nope"}, "department"),
             ({"colour": "red"}, "colour")]
    for params, field in cases:
        r = client.get("/api/v1/supervision/summary", query_string=params, headers=token("supervisor"))
        assert r.status_code == 422 and field in r.get_json()["errors"], (params, r.get_json())
    r = client.get("/api/v1/supervision/scores", query_string={"period": "2026-03", "from": "2026-03-01"},
                   headers=token("supervisor"))
    assert r.status_code == 422 and "period" in r.get_json()["errors"]
    r = client.get("/api/v1/supervision/scores", query_string={"period": "2026-3"}, headers=token("supervisor"))
    assert r.status_code == 422 and "period" in r.get_json()["errors"]


def test_scores_with_the_records_behind_every_point(client, token, world):
    body = get(client, token, "supervisor", "scores", period="2026-03").get_json()
    assert body["period"] == MARCH and body["rule"]["points"]["red_record"] == 2
    scores = by(body["departments"], "department")
    # drc: a yellow (a prompt: 0 in the demo rule) and a red (2); land: a red (2); water: an
    # automatic reply (3); housing: a late reply (1); env: nothing.
    assert {d: s["score"] for d, s in scores.items()} == {"drc": 98.0, "land": 98.0, "water": 97.0, "housing": 99.0, "env": 100.0}
    drc = scores["drc"]["points_lost"]
    assert [(p["kind"], p["points"], p["record"]["project_code"], p["record"]["clock_kind"]) for p in drc] == [
        ("red_record", 2.0, P1, "filing")]
    assert drc[0]["record"]["alert_id"] and drc[0]["record"]["clock_id"]
    assert [p["kind"] for p in scores["water"]["points_lost"]] == ["automatic_reply"]
    assert [p["kind"] for p in scores["housing"]["points_lost"]] == ["late_reply"]
    assert scores["env"]["points_lost"] == []
    own = get(client, token, "land", "scores", period="2026-03").get_json()["departments"]
    assert [(d["department"], d["score"]) for d in own] == [("land", 98.0)]
    february = by(get(client, token, "supervisor", "scores", period="2026-02").get_json()["departments"], "department")
    assert february["drc"]["score"] == 100.0  # March's records do not count in February


def test_scores_follow_the_configured_rule_file(client, token, world, tmp_path, monkeypatch):
    rule = tmp_path / "rule.json"
    rule.write_text('{"base": 60, "points": {"red_record": 10, "automatic_reply": 25}}', encoding="utf-8")
    monkeypatch.setenv("TZXM_SCORING_RULE", str(rule))
    scores = by(get(client, token, "supervisor", "scores", **MARCH).get_json()["departments"], "department")
    assert {d: s["score"] for d, s in scores.items()} == {"drc": 50.0, "land": 50.0, "water": 35.0, "housing": 60.0, "env": 60.0}
    rule.write_text('{"base": 60, "points": {"red": 10}}', encoding="utf-8")
    r = client.get("/api/v1/supervision/scores", headers=token("supervisor"))
    assert r.status_code == 503 and "points.red" in r.get_json()["message"]


def test_risk_warnings(client, token, world):
    body = get(client, token, "supervisor", "risks", **MARCH).get_json()
    assert body["months"] == 6
    assert [(r["project_code"], r["concluded_on"], r["months_since_conclusion"]) for r in body["no_start"]] == [(P4, "2025-09-15", 6)]
    assert [(r["project_code"], r["reasons"], r["percent_complete"]) for r in body["stalled"]] == [(P5, ["percent_unchanged"], 50.0)]
    # land: 1 of the 4 clocks due in March went red (P1 and P2's acceptance and promised
    # clocks), 0 of 1 in February (环比: the previous calendar month); drc: 1 of 2 against 1 of 1, not rising.
    rising = body["overdue_rate_rising"]
    assert [(r["department"], r["overdue"], r["due"], r["overdue_rate"], r["previous_overdue_rate"]) for r in rising] == [
        ("land", 1, 4, 0.25, 0.0)]
    assert rising[0]["previous_period"] == {"from": "2026-02-01", "to": "2026-02-28"}
    assert [(b["department"], b["count"], b["acts"][0]["project_code"]) for b in body["backfilled"]] == [("land", 1, P2)]
    later = get(client, token, "supervisor", "risks", months=2, **MARCH).get_json()
    # two months: P5's last report (5 Jan; 5 Mar <= 31 Mar) is too old as well
    assert [r["reasons"] for r in later["stalled"]] == [["no_recent_report", "percent_unchanged"]]
    assert (body["no_start_total"], body["stalled_total"]) == (1, 1)
    beyond = get(client, token, "supervisor", "risks", page=2, page_size=1, **MARCH).get_json()
    assert (beyond["no_start"], beyond["stalled"], beyond["no_start_total"], beyond["stalled_total"]) == ([], [], 1, 1)
    east = get(client, token, "dq_supervisor", "risks", **MARCH).get_json()
    assert east["no_start"] == east["stalled"] == east["backfilled"] == []


def test_forecast_shows_its_basis(client, token, world):
    body = get(client, token, "supervisor", "forecast").get_json()
    assert body["total"] == 1
    (project,) = body["items"]
    assert project["project_code"] == P2
    basis = by(project["basis"], "matter_code")
    assert set(basis) == {"land_pre_review", "construction_permit"}
    land = basis["land_pre_review"]
    # history: land concluded one matter in 2.5 days; its clock has run 14.125 days
    # (11 Mar 09:00 → 31 Mar 12:00 = 15 + 48 + 120 + 120 + 24 + 12 h), so nothing remains.
    assert (land["method"], land["history_mean_days"], land["history_samples"], land["elapsed_days"], land["remaining_days"]) \
        == ("department_history", 2.5, 1, 14.12, 0.0)
    assert land["clock"]["kind"] == "promised" and land["clock"]["due_at"].startswith("2026-03-25T01:00:00")
    permit = basis["construction_permit"]
    # housing has no history: the catalogue's 5 days from now, skipping Qingming (4–6 Apr):
    # 31 Mar 12 h + 1–3 Apr 72 h + 7 Apr 24 h + 12 h on 8 Apr → 8 Apr 12:00.
    assert (permit["method"], permit["estimate_days"], permit["clock"]) == ("promised_limit", 5.0, None)
    assert permit["expected_at"].startswith("2026-04-08T04:00:00")
    assert project["expected_conclusion_date"] == "2026-04-08"
    assert get(client, token, "dq_supervisor", "forecast").get_json()["total"] == 0
    drc_view = get(client, token, "drc", "forecast").get_json()
    assert drc_view["total"] == 1 and drc_view["items"][0]["basis"] == []



@pytest.mark.parametrize("ended", ["terminated", "closed"])
def test_forecast_leaves_out_a_matter_the_platform_ended(client, token, world, platform, ended):
    """A matter ended by a lapsed commitment (terminated) or a re-code (closed) is not open."""
    with unit_of_work(platform.session_factory) as s:
        pm = s.scalar(select(ProjectMatter).join(Project).where(
            Project.project_code == P2, ProjectMatter.matter_code == "construction_permit"))
        pm.status = ended
    (project,) = get(client, token, "supervisor", "forecast").get_json()["items"]
    assert [b["matter_code"] for b in project["basis"]] == ["land_pre_review"]

def test_summary_exports_carry_the_same_figures(client, token, world):
    r = get(client, token, "supervisor", "summary.csv", **MARCH)
    assert r.headers["Content-Type"].startswith("text/csv")
    assert r.headers["Content-Disposition"].startswith("attachment;") and "filename*=UTF-8''" in r.headers["Content-Disposition"]
    assert r.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(r.data.decode("utf-8-sig"))))
    header, body = rows[0], rows[1:]
    drc = dict(zip(header, next(row for row in body if row[0] == "department" and row[1] == "drc")))
    assert (drc["收件 received"], drc["按时办结 on time"], drc["平均办理工作日 mean days"], drc["90%办理工作日 p90 days"]) \
        == ("2", "1", "2.5", "4.0")
    assert {row[1] for row in body if row[0] == "matter"} == {"enterprise_filing", "land_pre_review"}

    book = load_workbook(io.BytesIO(get(client, token, "supervisor", "summary.xlsx", **MARCH).data))
    assert book.sheetnames == ["部门 departments", "事项 matters", "项目 projects"]
    sheet = list(book["部门 departments"].values)
    land = dict(zip(sheet[0], next(row for row in sheet[1:] if row[0] == "land")))
    assert (land["办结 concluded"], land["当前超时 overdue now"], land["补正率 correction rate"]) == (1, 1, 0.5)
    projects = list(book["项目 projects"].values)
    assert projects[1][0] == P1 and projects[1][-1] == 8.0
    assert projects[1][1] == "'=HYPERLINK(\"http://x\")"


def test_project_exports_for_investment_statistics(client, token, world):
    r = get(client, token, "supervisor", "projects.csv")
    rows = list(csv.DictReader(io.StringIO(r.data.decode("utf-8-sig"))))
    assert [row["项目代码 project code"] for row in rows] == [P5, P4, P1, P2]
    p1 = next(row for row in rows if row["项目代码 project code"] == P1)
    assert p1["项目名称 name"] == "'=HYPERLINK(\"http://x\")"  # formula injection guarded
    assert (p1["行政区划 region"], p1["申报日期 declared"], p1["办结日期 concluded"], p1["总投资(万元) investment"]) \
        == ("仁和区", "2026-03-02", "2026-03-12", "1000.0")
    assert p1["行业 industry"].startswith("30 ") and len(p1["行业 industry"]) > 3  # code and name: Excel keeps it text
    assert next(row for row in rows if row["项目代码 project code"] == P2)["办结日期 concluded"] == ""
    march = get(client, token, "city_supervisor", "projects.xlsx", **MARCH)
    assert march.headers["Content-Type"].startswith("application/vnd.openxmlformats")
    sheet = list(load_workbook(io.BytesIO(march.data)).active.values)
    assert [row[0] for row in sheet[1:]] == [P1, P2, P3]
    assert [row[0] for row in list(load_workbook(io.BytesIO(get(client, token, "land", "projects.xlsx").data)).active.values)[1:]] \
        == [P1, P2]


def test_endpoints_are_in_the_openapi_document(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    for path in ("summary", "summary.csv", "summary.xlsx", "scores", "risks", "forecast", "projects.csv", "projects.xlsx"):
        assert f"/api/v1/supervision/{path}" in paths, path
