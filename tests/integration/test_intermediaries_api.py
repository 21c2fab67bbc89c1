"""中介服务 over HTTP (issue #5, Hunan 第十六条): a department commissions an intermediary
while it handles a matter; commission, acceptance, handling and completion are recorded
in order with the result; the intermediary's working time is not counted on the
matter's clock."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from engine import calendar
from engine.models import IntermediaryService
from engine.workcal import WorkCalendar
from tests.integration.test_workflow_api import ACCEPT, LAND_PROJECT, PRE_CHECK_PASS, FILE, project, to_matters, work

SHANGHAI = timezone(timedelta(hours=8))
LAND = "land_pre_review"
AGENCY = {"name": "攀枝花市国土规划勘测设计院", "qualification": "土地规划甲级", "service": "用地预审踏勘论证",
          "deadline": "2026-03-20"}


def url(code, matter=LAND, *rest):
    return "/".join([f"/api/v1/projects/{code}/matters/{matter}/intermediaries", *map(str, rest)])


def commission(client, token, code, user="land", matter=LAND, **overrides):
    return client.post(url(code, matter), json={**AGENCY, **overrides}, headers=token(user))


def stage(client, token, code, row, name, user="land", **extra):
    return client.post(url(code, LAND, row["id"], "events"), headers=token(user),
                       json={"stage": name, "version": row["version"], **extra})


def promised(client, token, code):
    found = [c for c in project(client, token, code)["clocks"] if c["kind"] == "promised" and c["matter_code"] == LAND]
    assert len(found) == 1, found
    return found[0]


def handling_land_matter(client, token):
    """A land pre-review past acceptance: its promised clock (10 working days) is running."""
    code = to_matters(client, token, **LAND_PROJECT)
    work(client, token, "land", "pre_check", code, PRE_CHECK_PASS, LAND)
    work(client, token, "land", "acceptance", code, ACCEPT, LAND)
    return code


def test_intermediary_lifecycle_and_its_time_is_not_counted_on_the_matter_clock(client, token, platform, clock):
    code = handling_land_matter(client, token)
    before = promised(client, token, code)
    assert before["state"] == "running"
    # started Monday 2026-03-02 09:00, 10 working days: Monday 2026-03-16 09:00
    assert before["due_at"] == "2026-03-16T01:00:00+00:00"

    commissioned_at = datetime(2026, 3, 5, 10, 0, tzinfo=SHANGHAI)  # Thursday
    clock.set(commissioned_at)
    r = commission(client, token, code)
    assert r.status_code == 201, r.get_json()
    row = r.get_json()
    assert (row["project_code"], row["matter_code"], row["department"], row["status"], row["deadline"]) == (
        code, LAND, "land", "commissioned", "2026-03-20")
    assert [e["stage"] for e in row["events"]] == ["commissioned"]
    held = promised(client, token, code)
    assert held["state"] == "paused" and held["due_at"] is None
    assert held["pauses"][-1]["reason"] == "intermediary"

    # the stages run in order: no skipping ahead, no going back
    assert stage(client, token, code, row, "completed", result="论证通过").status_code == 409
    assert stage(client, token, code, row, "handling").status_code == 409
    clock.set(datetime(2026, 3, 5, 15, 0, tzinfo=SHANGHAI))
    r = stage(client, token, code, row, "accepted", note="已接受委托")
    assert r.status_code == 200, r.get_json()
    accepted = r.get_json()
    assert accepted["status"] == "accepted" and accepted["version"] == row["version"] + 1
    assert stage(client, token, code, row, "handling").status_code == 409  # stale version
    assert stage(client, token, code, accepted, "accepted").status_code == 409  # already accepted
    r = stage(client, token, code, accepted, "handling", note="现场踏勘")
    assert r.status_code == 200, r.get_json()
    handling = r.get_json()

    r = stage(client, token, code, handling, "completed")
    assert r.status_code == 422 and "result" in r.get_json()["errors"]
    r = stage(client, token, code, handling, "handling", result="不该有结果")
    assert r.status_code == 422 and "result" in r.get_json()["errors"]

    completed_at = datetime(2026, 3, 9, 10, 0, tzinfo=SHANGHAI)  # the next Monday, across a weekend
    clock.set(completed_at)
    r = stage(client, token, code, handling, "completed", result="用地符合规划，论证通过", note="出具论证报告")
    assert r.status_code == 200, r.get_json()
    done = r.get_json()
    assert done["status"] == "completed" and done["result"] == "用地符合规划，论证通过"
    assert done["completed_at"] == completed_at.astimezone(timezone.utc).isoformat()
    assert [(e["stage"], e["by"]) for e in done["events"]] == [
        ("commissioned", "land"), ("accepted", "land"), ("handling", "land"), ("completed", "land")]
    assert stage(client, token, code, done, "completed", result="再次").status_code == 409

    after = promised(client, token, code)
    assert after["state"] == "running"
    with platform.session_factory() as s:
        cal = calendar.current(s)
        not_counted = cal.working_time_between(commissioned_at, completed_at).amount
        expected = cal.add_working_time(datetime.fromisoformat(before["due_at"]), not_counted).instant
    assert not_counted == timedelta(days=2)  # Thursday 10:00 – Monday 10:00: 14 h + Friday + 10 h
    assert datetime.fromisoformat(after["due_at"]) == expected == datetime(2026, 3, 18, 9, 0, tzinfo=SHANGHAI)

    # the project unit and officials of the region read them; another unit cannot
    for user in ("applicant", "supervisor", "drc"):
        r = client.get(url(code), headers=token(user))
        assert r.status_code == 200 and [i["status"] for i in r.get_json()["items"]] == ["completed"], (user, r.get_json())
    listed = client.get(f"/api/v1/projects/{code}/intermediaries", headers=token("applicant"),
                        query_string={"matter_code": LAND, "page_size": 1}).get_json()
    assert (listed["total"], listed["page_size"], listed["items"][0]["name"]) == (1, 1, AGENCY["name"])
    assert client.get(url(code), headers=token("applicant2")).status_code == 404

    history = client.get(f"/api/v1/projects/{code}/history", headers=token("applicant"),
                         query_string={"page_size": 200}).get_json()["items"]
    assert [e["action"] for e in history if e["action"].startswith("intermediary.")] == [
        "intermediary.commissioned", "intermediary.accepted", "intermediary.handling", "intermediary.completed"]


def test_the_clock_stays_held_until_the_last_open_intermediary_completes(client, token, clock):
    code = handling_land_matter(client, token)
    first = commission(client, token, code).get_json()
    second = commission(client, token, code, name="四川省地质工程勘察院", service="地质灾害危险性评估").get_json()
    assert promised(client, token, code)["state"] == "paused"
    for name in ("accepted", "handling"):
        first = stage(client, token, code, first, name).get_json()
    r = stage(client, token, code, first, "completed", result="踏勘完成")
    assert r.status_code == 200, r.get_json()
    assert promised(client, token, code)["state"] == "paused"  # the second one still runs
    for name in ("accepted", "handling"):
        second = stage(client, token, code, second, name).get_json()
    assert stage(client, token, code, second, "completed", result="评估完成").status_code == 200
    assert promised(client, token, code)["state"] == "running"


def test_who_may_commission_and_what_is_refused(client, token, platform, clock):
    code = handling_land_matter(client, token)

    def count():
        with platform.session_factory() as s:
            return s.scalar(select(func.count()).select_from(IntermediaryService))

    assert commission(client, token, code, user="env").status_code == 403  # not the matter's department
    assert commission(client, token, code, user="applicant").status_code == 403
    assert commission(client, token, code, user="supervisor").status_code == 403
    assert commission(client, token, "2026-510411-13-02-999999").status_code == 404
    assert commission(client, token, code, matter="eia_approval").status_code == 404
    r = commission(client, token, code, deadline="2026-03-01")  # yesterday
    assert r.status_code == 422 and "deadline" in r.get_json()["errors"], r.get_json()
    for bad in ({"name": ""}, {"qualification": "<b>甲级</b>"}, {"deadline": "soon"}, {"fee": 100}):
        r = commission(client, token, code, **bad)
        assert r.status_code == 422 and set(bad) <= set(r.get_json()["errors"]), (bad, r.get_json())
    assert commission(client, token, code, deadline="2026-03-02").status_code == 201  # today is allowed
    assert count() == 1

    # a concluded matter commissions nothing
    work(client, token, "drc", "filing_check", code, FILE, "enterprise_filing")
    r = commission(client, token, code, user="drc", matter="enterprise_filing")
    assert r.status_code == 409, r.get_json()

    row = client.get(url(code), headers=token("land")).get_json()["items"][0]
    assert stage(client, token, code, row, "accepted", user="env").status_code == 403
    assert stage(client, token, code, row, "accepted", user="applicant").status_code == 403
    assert stage(client, token, code, row, "started").status_code == 422
    r = client.post(url(code, LAND, 999999, "events"), headers=token("land"), json={"stage": "accepted", "version": 1})
    assert r.status_code == 404
    assert count() == 1


def test_a_clock_started_during_a_hold_starts_held_and_overlapping_holds_release_only_when_the_last_ends(
        client, token, clock):
    """An intermediary commissioned before acceptance: the promised clock the acceptance
    starts is held from its start. A suspension overlapping it: resuming the project
    leaves the clock held by the intermediary, whose completion lets it count."""
    code = to_matters(client, token, **LAND_PROJECT)
    work(client, token, "land", "pre_check", code, PRE_CHECK_PASS, LAND)
    row = commission(client, token, code).get_json()
    work(client, token, "land", "acceptance", code, ACCEPT, LAND)
    started = promised(client, token, code)
    assert started["state"] == "paused" and started["due_at"] is None
    assert [p["reason"] for p in started["pauses"]] == ["intermediary"]

    clock.advance(hours=1)
    r = client.post(f"/api/v1/projects/{code}/changes", headers=token("applicant"),
                    json={"kind": "suspension", "reason": "资金未落实"})
    assert r.status_code == 201, r.get_json()
    clock.advance(hours=1)
    r = client.post(f"/api/v1/projects/{code}/changes", headers=token("applicant"),
                    json={"kind": "resumption", "reason": "资金已落实"})
    assert r.status_code == 201, r.get_json()
    assert promised(client, token, code)["state"] == "paused"  # the intermediary still holds it

    for name in ("accepted", "handling"):
        row = stage(client, token, code, row, name).get_json()
    clock.advance(hours=1)
    assert stage(client, token, code, row, "completed", result="踏勘完成").status_code == 200
    counting = promised(client, token, code)
    assert counting["state"] == "running" and counting["due_at"] is not None
    # 10 working days from the end of the hold: nothing before it was counted
    due = WorkCalendar.from_chinese_calendar([2026]).add_working_days(clock.now(), 10).instant
    assert datetime.fromisoformat(counting["due_at"]) == due
    holds = [(h["matter_code"], h["reason"], h["ended_at"] is not None) for h in project(client, token, code)["holds"]]
    assert holds == [(LAND, "intermediary", True), (None, "suspension", True)]


SPECIAL = {"handling_action": "special_procedure", "handling_opinion": "需现场勘验",
           "special_procedure_reason": "现场勘验", "special_procedure_days": 30}
SPECIAL_DONE = {"special_procedure_result": "勘验完成"}


def _due_without(started_at, *not_counted):
    return WorkCalendar.from_chinese_calendar([2026]).add_working_days(
        datetime.fromisoformat(started_at), 10, list(not_counted)).instant


@pytest.mark.parametrize("first", ["intermediary", "special_procedure"])
def test_an_intermediary_and_a_special_procedure_overlapping_count_on_when_the_intermediary_completes(
        client, token, clock, first):
    """Whichever begins first, the special procedure's own pause ends while the
    intermediary is still open: the clock stays held until the intermediary completes,
    and nothing from the first of them to then is counted."""
    code = handling_land_matter(client, token)
    started = promised(client, token, code)["started_at"]
    clock.advance(hours=1)
    not_counted_from = clock.now()
    rows = []
    begin = {"intermediary": lambda: rows.append(commission(client, token, code).get_json()),
             "special_procedure": lambda: work(client, token, "land", "handling", code, SPECIAL, LAND)}
    for what in (first, *(set(begin) - {first})):
        begin[what]()
        clock.advance(hours=1)
    work(client, token, "land", "special_procedure", code, SPECIAL_DONE, LAND)
    assert promised(client, token, code)["state"] == "paused"  # the intermediary still holds it
    row = rows[0]
    for name in ("accepted", "handling"):
        row = stage(client, token, code, row, name).get_json()
    clock.advance(days=2)
    not_counted_to = clock.now()
    assert stage(client, token, code, row, "completed", result="踏勘完成").status_code == 200
    counting = promised(client, token, code)
    assert counting["state"] == "running"
    assert datetime.fromisoformat(counting["due_at"]) == _due_without(started, (not_counted_from, not_counted_to))


def test_an_intermediary_completing_during_a_special_procedure_leaves_the_clock_held_until_the_procedure_ends(
        client, token, clock):
    """The special procedure begins while an intermediary holds the clock and outlasts it:
    the intermediary's completion does not let the clock count while the procedure lasts."""
    code = handling_land_matter(client, token)
    row = commission(client, token, code).get_json()
    clock.advance(hours=1)
    work(client, token, "land", "handling", code, SPECIAL, LAND)
    for name in ("accepted", "handling"):
        row = stage(client, token, code, row, name).get_json()
    clock.advance(days=1)
    assert stage(client, token, code, row, "completed", result="踏勘完成").status_code == 200
    assert promised(client, token, code)["state"] == "paused"  # the special procedure still holds it
    clock.advance(days=1)
    work(client, token, "land", "special_procedure", code, SPECIAL_DONE, LAND)
    counting = promised(client, token, code)
    assert counting["state"] == "running"
    assert [p["reason"] for p in counting["pauses"]] == ["intermediary", "special_procedure"]


def test_deemed_acceptance_leaves_out_the_holds_since_the_pre_check(client, token, clock):
    """The promised limit of a deemed acceptance runs from the pre-check; an intermediary
    between the pre-check and the deemed acceptance is not counted on it."""
    code = to_matters(client, token, **LAND_PROJECT)
    work(client, token, "land", "pre_check", code, PRE_CHECK_PASS, LAND)
    clock.advance(hours=1)
    held_from = clock.now()
    row = commission(client, token, code).get_json()
    for name in ("accepted", "handling"):
        row = stage(client, token, code, row, name).get_json()
    clock.advance(days=1)
    held_to = clock.now()
    assert stage(client, token, code, row, "completed", result="踏勘完成").status_code == 200
    acceptance = [c for c in project(client, token, code)["clocks"] if c["kind"] == "acceptance"][-1]
    r = client.post("/api/v1/admin/clock", headers=token("operator"),
                    json={"now": (datetime.fromisoformat(acceptance["due_at"]) + timedelta(minutes=1)).isoformat()})
    assert r.status_code == 200, r.get_json()
    deemed = promised(client, token, code)
    assert deemed["started_at"] == acceptance["started_at"]
    assert [(p["reason"], p["start"], p["end"]) for p in deemed["pauses"]] == [
        ("intermediary", held_from.isoformat(), held_to.isoformat())]
    assert datetime.fromisoformat(deemed["due_at"]) == _due_without(acceptance["started_at"], (held_from, held_to))
