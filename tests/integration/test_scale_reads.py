"""Reads that must not grow with the data: the risk warnings, the scores, the project
export, the alerts list and the public approvals list (scale review at provincial volume).

Each read runs once on the e-supervision world of test_supervision_api (hand-built rows)
plus one project driven through the demo flow, then again after ``grow`` has added more
of every kind of row the read goes over. The statements it sends are captured
(``before_cursor_execute``): their number and each one's count of bound parameters must
be the same both times. A list of ids sent back as ``IN (...)`` grows with the data and
fails at 65,535 parameters on PostgreSQL; a lookup per row grows the statement count.
The answers are checked too, against the figures the earlier (row-by-row) code gave.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from engine import alerts, exports, portal, risks, scoring
from engine.db import unit_of_work
from engine.models import BackfilledAct, Department, ImplementationReport, ProjectMatter, User
from engine.supervision import month_period
from tests.integration.helpers import actor, statements
from tests.integration.test_implementation_api import concluded_project
from tests.integration.test_supervision_api import (  # noqa: F401  (world is a fixture)
    NOW, P1, P2, P3, P4, P5, _alert, _clock, _notice, _project, at, world,
)

MARCH = {"start": month_period("2026-03").start, "end": month_period("2026-03").end}
GROWN = 4


@pytest.fixture
def base(request, client, token, platform):
    """One project concluded through the demo flow on 2 March 2026, then the world (now 31 March)."""
    code = concluded_project(client, token, platform)
    request.getfixturevalue("world")
    return code


def grow(platform, start: int, count: int = GROWN) -> list[tuple[str, str]]:
    """``count`` rounds of rows in 仁和区, each: a project concluded in September 2025 with
    no start report, a concluded filing with its decision, a late land clock with its red
    record, a red record of a 攀枝花市 department of its own, a back-filled act; and a
    project concluded in August 2025 whose three progress reports say 60%. Returns the
    (silent, stalled) project codes."""
    codes = []
    with unit_of_work(platform.session_factory) as s:
        for k in range(start, start + count):
            silent = _project(s, f"2025-510411-30-01-{k:06d}", "510411", at(2025, 9, 1, 9), "concluded")
            _notice(s, silent, f"RH-JG-2025-{k:04d}", at(2025, 9, 20, 9))
            s.add(ProjectMatter(project_id=silent.id, matter_code="enterprise_filing", department_code="drc",
                                status="concluded", updated_at=NOW, received_at=at(2025, 9, 2, 9),
                                accepted_at=at(2025, 9, 2, 9), concluded_at=at(2026, 3, 10, 9) + timedelta(minutes=k),
                                result={"decision": "filed", "document_number": f"川投资备〔2026〕{k}号",
                                        "document_title": "备案证明", "document_date": "2026-03-10",
                                        "main_content": "不公开", "reason": "不公开"}))
            late = _clock(s, silent, "promised", "land", "land_pre_review", at(2026, 3, 2, 9), "5", at(2026, 3, 9, 9),
                          light="red", stopped=at(2026, 3, 10, 9))
            _alert(s, late, "red", at(2026, 3, 9, 9))
            s.add(Department(code=f"city_{k}", name=f"攀枝花市审批局{k}", region_code="510400", kind="approving"))
            s.flush()
            city = _clock(s, silent, "promised", f"city_{k}", "land_pre_review", at(2026, 3, 2, 9), "5",
                          at(2026, 3, 9, 9), light="red", stopped=at(2026, 3, 11, 9))
            _alert(s, city, "red", at(2026, 3, 9, 9, 30))
            s.add(BackfilledAct(project_code=silent.project_code, matter_code="enterprise_filing", department_code="drc",
                                act="task:filing_check", effective_at=at(2026, 3, 3, 10), entered_at=at(2026, 3, 4, 10),
                                reason="系统故障线下办理", actor="drc"))

            stalled = _project(s, f"2025-510411-30-01-{k + 500:06d}", "510411", at(2025, 7, 1, 9), "concluded")
            _notice(s, stalled, f"RH-JG-2025-{k + 500:04d}", at(2025, 8, 1, 9))
            for kind, period, percent, reported in (("start", "2025-09-01", None, at(2025, 9, 1, 10)),
                                                    ("progress", "2025-10", 60, at(2025, 11, 5, 10)),
                                                    ("progress", "2025-11", 60, at(2025, 12, 5, 10)),
                                                    ("progress", "2025-12", 60, at(2026, 2, 5, 10))):
                s.add(ImplementationReport(project_id=stalled.id, project_code=stalled.project_code, kind=kind,
                                           period=period, percent_complete=percent, reported_at=reported,
                                           reported_by="applicant"))
            codes.append((silent.project_code, stalled.project_code))
    return codes


def run(app, platform, read):
    """``read(session)``'s answer and the shape of what it sent: the parameter count of each statement."""
    with platform.session_factory() as session, statements(app) as sent:
        answer = read(session)
    return answer, [count for _, count in sent], [sql for sql, _ in sent]


def same_shape_after_growth(app, platform, read):
    """Run ``read`` before and after ``grow``: the same statements with as many parameters."""
    before, shape, _ = run(app, platform, read)
    grown = grow(platform, 100)
    after, shape_after, sql = run(app, platform, read)
    assert shape_after == shape, (shape, shape_after)
    return before, after, grown, sql


# --- risk warnings ------------------------------------------------------------------------------

def test_risk_warnings_read_the_same_statements_however_many_projects(app, platform, base):
    supervisor = actor(platform, "supervisor")
    before, after, grown, _ = same_shape_after_growth(
        app, platform, lambda s: risks.risks(s, supervisor, now=NOW, **MARCH))

    assert [(r["project_code"], str(r["concluded_on"]), r["months_since_conclusion"]) for r in before["no_start"]] == [
        (P4, "2025-09-15", 6)]
    assert [(r["project_code"], r["reasons"], r["percent_complete"]) for r in before["stalled"]] == [
        (P5, ["percent_unchanged"], 50.0)]
    # land: 1 of its 8 clocks due in March went red (the world's 4, the demo project's 4),
    # 0 of 1 in February; each grown round adds a red one
    assert [(r["department"], r["overdue"], r["due"], r["previous_overdue"], r["previous_due"])
            for r in before["overdue_rate_rising"]] == [("land", 1, 8, 0, 1)]
    assert [(b["department"], b["name"], b["count"]) for b in before["backfilled"]] == [("land", "仁和区自然资源局", 1)]

    # 20 Sep + 6 months = 20 Mar <= 31 Mar: no start, 6 months on
    assert [(r["project_code"], str(r["concluded_on"]), r["months_since_conclusion"]) for r in after["no_start"]] == [
        (P4, "2025-09-15", 6), *((silent, "2025-09-20", 6) for silent, _ in grown)]
    stalled = after["stalled"]
    assert [(r["project_code"], r["reasons"], r["percent_complete"], r["last_report_kind"]) for r in stalled] == [
        (P5, ["percent_unchanged"], 50.0, "progress"),
        *((code, ["percent_unchanged"], 60.0, "progress") for _, code in grown)]
    assert stalled[0]["last_report_at"] == at(2026, 1, 5, 10) and stalled[-1]["last_report_at"] == at(2026, 2, 5, 10)
    assert [(r["department"], r["overdue"], r["due"], r["previous_overdue"], r["previous_due"])
            for r in after["overdue_rate_rising"]] == [("land", 1 + GROWN, 8 + GROWN, 0, 1)]
    assert [(b["department"], b["name"], b["count"]) for b in after["backfilled"]] == [
        ("drc", "仁和区发展和改革局", GROWN), ("land", "仁和区自然资源局", 1)]


def test_risk_warnings_of_a_department_read_the_same_statements(app, platform, base):
    """An officer's scope: its department's matters (P4 has a land clock but no land matter)."""
    officer = actor(platform, "land")
    before, after, _, _ = same_shape_after_growth(
        app, platform, lambda s: risks.risks(s, officer, now=NOW, months=2, **MARCH))
    assert before["no_start"] == after["no_start"] == before["stalled"] == after["stalled"] == []
    assert [(r["department"], r["overdue"], r["due"]) for r in after["overdue_rate_rising"]] == [("land", 1 + GROWN, 8 + GROWN)]
    assert [b["department"] for b in after["backfilled"]] == ["land"]


def test_risk_warnings_over_every_region_read_the_same_statements(app, platform, base):
    operator = actor(platform, "operator")
    before, after, grown, _ = same_shape_after_growth(
        app, platform, lambda s: risks.risks(s, operator, now=NOW, months=2, **MARCH))
    assert [r["project_code"] for r in before["no_start"]] == [P4]
    assert [r["project_code"] for r in after["no_start"]] == [P4, *(silent for silent, _ in grown)]
    # two months: P5's last report (5 Jan) is too old as well; the grown ones' (5 Feb) is not
    assert [(r["project_code"], r["reasons"]) for r in after["stalled"]] == [
        (P5, ["no_recent_report", "percent_unchanged"]), *((code, ["percent_unchanged"]) for _, code in grown)]


def test_the_month_arithmetic_is_the_calendar_s_on_shanghai_days():
    """The cutoff instant: a day before it is one whose day + N months is today or earlier."""
    assert risks.cutoff(at(2026, 3, 31).date(), 6) == at(2025, 10, 1)  # 30 Sep + 6 months = 30 Mar
    assert risks.cutoff(at(2026, 3, 29).date(), 6) == at(2025, 9, 30)
    # 28 Feb 2026 is 6 months after 28, 29, 30 and 31 Aug 2025 (clamped): all of them qualify
    assert risks.cutoff(at(2026, 2, 28).date(), 6) == at(2025, 9, 1)
    assert risks.cutoff(at(2026, 2, 27).date(), 6) == at(2025, 8, 28)
    # 16:30 UTC on 31 Aug is already 1 Sep in Shanghai: not before the cutoff
    assert datetime(2025, 8, 31, 16, 30, tzinfo=timezone.utc) == risks.cutoff(at(2026, 2, 28).date(), 6) + timedelta(minutes=30)


# --- scores ----------------------------------------------------------------------------------------

def test_scores_read_the_same_statements_however_many_departments_have_records(app, platform, base):
    supervisor = actor(platform, "supervisor")
    rule = scoring.configured_rule()
    period = month_period("2026-03")
    before, after, grown, _ = same_shape_after_growth(
        app, platform, lambda s: scoring.score_departments(s, supervisor, rule, period))

    lost = {row["department"]: (row["name"], row["points_lost_total"], len(row["points_lost"])) for row in before}
    after_lost = {row["department"]: (row["name"], row["points_lost_total"], len(row["points_lost"])) for row in after}
    red = rule.points["red_record"]
    # every department of 仁和区 is scored; each grown round's 攀枝花市 department is added by its record
    assert set(after_lost) == set(lost) | {f"city_{k}" for k in range(100, 100 + GROWN)}
    assert after_lost["city_100"] == ("攀枝花市审批局100", red, 1)
    assert after_lost["land"] == (lost["land"][0], round(lost["land"][1] + GROWN * red, 2), lost["land"][2] + GROWN)
    assert after_lost["drc"] == lost["drc"]


# --- project export --------------------------------------------------------------------------------

def test_project_export_reads_the_same_statements_however_many_projects(app, platform, base):
    supervisor = actor(platform, "supervisor")
    before, after, grown, sql = same_shape_after_growth(
        app, platform, lambda s: exports.project_rows(s, supervisor, now=NOW))
    assert len(sql) < 10

    def view(rows):
        return [(r["project_code"], r["region_name"], r["status"], str(r["declared_on"]), str(r["concluded_on"]))
                for r in rows]

    assert view(before) == [
        (P5, "仁和区", "concluded", "2025-07-01", "2025-08-01"), (P4, "仁和区", "concluded", "2025-09-01", "2025-09-15"),
        (base, "仁和区", "concluded", "2026-03-02", "2026-03-02"), (P1, "仁和区", "concluded", "2026-03-02", "2026-03-12"),
        (P2, "仁和区", "dispatched", "2026-03-09", "None")]  # P3 is 东区's
    assert before[0]["industry"].startswith("30 ") and before[0]["investment"] == Decimal("1000")
    grown_rows = [(code, "仁和区", "concluded", "2025-07-01", "2025-08-01") for _, code in grown]
    grown_rows += [(code, "仁和区", "concluded", "2025-09-01", "2025-09-20") for code, _ in grown]
    assert view(after) == [view(before)[0], *grown_rows[:GROWN], view(before)[1], *grown_rows[GROWN:], *view(before)[2:]]


# --- alerts list -----------------------------------------------------------------------------------

def test_alerts_page_reads_the_same_statements_and_leaves_out_a_scope_of_every_region(app, platform, base):
    with unit_of_work(platform.session_factory) as s:
        s.add(Department(code="province_supervision", name="四川省电子监察室", region_code="510000", kind="supervision"))
        s.flush()
        s.add(User(username="province_supervisor", password_hash="!", display_name="省监察", roles=["supervisor"],
                   department_code="province_supervision", created_at=NOW))
    answers = {}
    for username in ("supervisor", "land", "province_supervisor", "operator"):
        who = actor(platform, username)
        answers[username] = run(app, platform, lambda s: alerts.list_alerts(s, who, alerts.AlertFilter(), page=1,
                                                                            page_size=5))
    shapes = {name: shape for name, (_, shape, _) in answers.items()}
    grown = grow(platform, 100)
    for username in answers:
        who = actor(platform, username)
        (rows, total), shape, sql = run(app, platform, lambda s: alerts.list_alerts(
            s, who, alerts.AlertFilter(), page=1, page_size=5))
        assert shape == shapes[username], username
        before_rows, before_total = answers[username][0]
        answers[username] = (rows, total, before_total, sql)

    # the district supervisor: every alert of 仁和区's projects (P3 is 东区's and has none)
    rows, total, before_total, sql = answers["supervisor"]
    assert (before_total, total) == (5, 5 + 2 * GROWN)
    assert [(a.project_code, a.at) for a in rows[:2]] == [(P2, at(2026, 3, 25, 9)), (P2, at(2026, 3, 12, 10))]
    assert all("projects" in statement for statement in sql[-2:])  # the region scope
    rows, total, before_total, _ = answers["land"]  # its own department's
    assert (before_total, total) == (1, 1 + GROWN) and {a.department_code for a in rows} == {"land"}
    # the whole tree: no region condition at all, and the operator's answer
    for username in ("province_supervisor", "operator"):
        rows, total, before_total, sql = answers[username]
        assert (before_total, total) == (5, 5 + 2 * GROWN)
        assert not any("projects" in statement for statement in sql[-2:]), sql
        assert [a.id for a in rows] == [a.id for a in answers["supervisor"][0]]


# --- public approvals --------------------------------------------------------------------------------

def test_public_approvals_page_and_count_read_the_same_statements(app, platform, base):
    filters = {
        "all": portal.DisclosureFilter(),
        "renhe": portal.DisclosureFilter(region="510411"),
        "land": portal.DisclosureFilter(department="land", matter_code="land_pre_review"),
        "march": portal.DisclosureFilter(region="510400", date_from=at(2026, 3, 1).date(), date_to=at(2026, 3, 30).date()),
    }

    def page(flt, size=3):
        return lambda s: portal.approvals(s, flt, offset=0, limit=size)

    before = {name: run(app, platform, page(flt)) for name, flt in filters.items()}
    grown = grow(platform, 100)
    after = {name: run(app, platform, page(flt)) for name, flt in filters.items()}
    for name in filters:
        assert after[name][1] == before[name][1], name

    def view(answer):
        items, total = answer[0]
        return total, [(i["project_code"], i["matter_code"], i["decision"], i["document_number"]) for i in items]

    # the world's matters carry no decision; the demo project's (concluded 2 March) do
    p3, p2, p1 = ((code, "enterprise_filing", None, None) for code in (P3, P2, P1))
    p1_land = (P1, "land_pre_review", None, None)
    assert view(before["all"]) == (6, [p3, p2, p1])
    assert view(before["renhe"]) == (5, [p2, p1, p1_land])
    assert view(before["land"]) == (2, [p1_land, (base, "land_pre_review", "approved", "land〔2026〕1号")])
    assert view(before["march"]) == (6, [p3, p2, p1])
    # the grown filings, concluded 10 March 09:00 + k minutes: between P2's (22:00) and P1's (6 March)
    newest = [(code, "enterprise_filing", "filed", f"川投资备〔2026〕{k}号") for k, (code, _) in enumerate(grown, 100)][::-1]
    assert view(after["all"]) == (6 + GROWN, [p3, p2, newest[0]])
    assert view(after["renhe"]) == (5 + GROWN, [p2, *newest[:2]])
    assert view(after["land"]) == view(before["land"])
    assert view(after["march"]) == (6 + GROWN, [p3, p2, newest[0]])
    item = after["renhe"][0][0][1]
    assert item["region"] == {"code": "510411", "name": "仁和区"} and item["department"] == {
        "code": "drc", "name": "仁和区发展和改革局"}
    assert (item["document_title"], item["document_date"], item["concluded_at"]) == (
        "备案证明", "2026-03-10", at(2026, 3, 10, 9) + timedelta(minutes=100 + GROWN - 1))
    assert "main_content" not in item and "reason" not in item

    # the page is chosen on project_matters alone, in the disclosure index's order and condition
    statement = after["all"][2][-1]
    chooser = statement[statement.index("FROM project_matters"):]
    assert "coalesce(project_matters.concluded_at, project_matters.updated_at) DESC" in chooser
    assert "project_matters.status = 'concluded'" in chooser
    assert "JOIN" not in chooser.split(")")[0]
    counts = {name: [sql for sql in after[name][2] if "count(*)" in sql] for name in ("renhe", "all")}
    assert "projects" in counts["renhe"][0] and "projects" not in counts["all"][0]  # the count's joins


def test_the_approvals_feed_does_not_count(app, client, platform, base):
    with statements(app) as sent:
        r = client.get("/api/v1/portal/disclosure/approvals.atom")
    assert r.status_code == 200 and r.data.count(b"<entry>") == 6
    assert not any("count(" in sql.lower() and "project_matters" in sql for sql, _ in sent)
    with statements(app) as sent:
        r = client.get("/api/v1/portal/disclosure/approvals")
    assert r.status_code == 200 and r.get_json()["total"] == 6
    assert any("count(" in sql.lower() and "project_matters" in sql for sql, _ in sent)
