"""Declaring projects, reading them, who sees what, changes and re-codes, over HTTP."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import update

from engine.db import unit_of_work
from engine.models import Project
from tests.integration.helpers import declaration, declare, snapshot, supply_all_materials

CODE_RE = re.compile(r"^\d{4}-\d{6}-\d{2}-\d{2}-\d{6}$")


def test_declare_assigns_a_24_character_code(client, token):
    body = declare(client, token, regime="approval", industry_code="44")
    assert len(body["project_code"]) == 24 and CODE_RE.match(body["project_code"])
    assert body["project_code"] == "2026-510411-44-02-000001"
    assert body["name"] == "仁和区新能源材料产业园项目"
    assert body["investment"] == "12000.5000"
    assert body["project_unit"]["credit_code"] == "91510411MA62111112"
    second = declare(client, token, regime="filing")
    assert second["project_code"].endswith("-03-000002")


def test_classified_project_is_refused_and_nothing_stored(client, token, platform):
    before = snapshot(platform)
    r = client.post("/api/v1/projects", json=declaration(classified=True), headers=token("applicant"))
    assert r.status_code == 422
    body = r.get_json()
    assert body["message"] == "涉密项目不得通过在线平台办理"
    assert body["errors"] == {"classified": ["涉密项目不得通过在线平台办理"]}
    assert snapshot(platform) == before


BAD_FIELDS = [
    ("name", 123, "wrong type"),
    ("name", "", "empty"),
    ("name", "项" * 201, "too long"),
    ("name", "<script>alert(1)</script>", "markup"),
    ("construction_content", "详见</textarea><img src=x onerror=alert(1)>", "a closing tag"),
    ("name", "x'; DROP TABLE projects;--", "SQL"),
    ("regime", "licence", "not a regime"),
    ("region_code", "51041", "short region"),
    ("region_code", "999999", "unknown region"),
    ("region_code", "510000", "region above the platform"),
    ("industry_code", "4", "short industry"),
    ("industry_code", "99", "unknown industry"),
    ("location", None, "null"),
    ("investment", "0", "zero"),
    ("investment", "-5", "negative"),
    ("investment", "abc", "not a number"),
    ("investment", "NaN", "NaN"),
    ("construction_content", "a" * 4001, "too long"),
    ("start_year", "2026", "string year"),
    ("start_year", 1800, "out of range"),
    ("end_year", 2025, "before start"),
    ("classified", "maybe", "not a bool"),
    ("building_works", [], "not a bool"),
    ("legacy_code", "", "empty legacy code"),
    ("unexpected", 1, "unknown field"),
]


@pytest.mark.parametrize("field,value,why", BAD_FIELDS, ids=[f"{f}-{w}" for f, _, w in BAD_FIELDS])
def test_bad_declaration_fields_name_the_field_and_store_nothing(client, token, platform, field, value, why):
    before = snapshot(platform)
    r = client.post("/api/v1/projects", json=declaration(**{field: value}), headers=token("applicant"))
    assert r.status_code == 422, (why, r.get_json())
    body = r.get_json()
    assert body["code"] == 422 and body["status"] == "Unprocessable Entity"
    assert field in body["errors"], body
    assert snapshot(platform) == before


@pytest.mark.parametrize("field", ["name", "regime", "region_code", "industry_code", "location", "investment", "construction_content", "start_year", "end_year", "classified"])
def test_missing_required_field(client, token, platform, field):
    body = declaration()
    del body[field]
    before = snapshot(platform)
    r = client.post("/api/v1/projects", json=body, headers=token("applicant"))
    assert r.status_code == 422 and field in r.get_json()["errors"]
    assert snapshot(platform) == before


def test_body_that_is_not_json_is_a_clear_4xx(client, token, platform):
    before = snapshot(platform)
    r = client.post("/api/v1/projects", data="{not json", headers={**token("applicant"), "Content-Type": "application/json"})
    assert 400 <= r.status_code < 500
    assert r.is_json and "code" in r.get_json()
    assert snapshot(platform) == before


def test_only_applicants_declare(client, token):
    r = client.post("/api/v1/projects", json=declaration(), headers=token("drc"))
    assert r.status_code == 403 and r.get_json()["code"] == 403


def test_applicant_sees_only_its_own_units_projects(client, token):
    mine = declare(client, token, user="applicant")
    theirs = declare(client, token, user="applicant2")
    assert client.get(f"/api/v1/projects/{mine['project_code']}", headers=token("applicant")).status_code == 200
    r = client.get(f"/api/v1/projects/{theirs['project_code']}", headers=token("applicant"))
    assert r.status_code == 404
    unknown = client.get("/api/v1/projects/2026-510411-30-03-999999", headers=token("applicant"))
    assert unknown.get_json()["message"] == r.get_json()["message"]
    listed = client.get("/api/v1/projects", headers=token("applicant")).get_json()
    assert [p["project_code"] for p in listed["items"]] == [mine["project_code"]]
    assert listed["total"] == 1


def test_officials_see_projects_of_their_region_paginated(client, token):
    codes = [declare(client, token, user=u)["project_code"] for u in ("applicant", "applicant2", "applicant")]
    page = client.get("/api/v1/projects?page=1&page_size=2", headers=token("supervisor")).get_json()
    assert page["total"] == 3 and len(page["items"]) == 2
    assert page["items"][0]["project_code"] == codes[-1]
    page2 = client.get("/api/v1/projects?page=2&page_size=2", headers=token("drc")).get_json()
    assert [p["project_code"] for p in page2["items"]] == [codes[0]]
    assert client.get("/api/v1/projects?page_size=1000", headers=token("drc")).status_code == 422



def test_an_analyst_edits_diagrams_and_sees_no_project(client, token):
    """Jilin 第九条: permissions protect the applicant's business secrets; an analyst edits
    procedures and is given no project's data, its materials or its history."""
    code = declare(client, token)["project_code"]
    supply_all_materials(client, token, code)
    material_id = client.get(f"/api/v1/projects/{code}/materials", headers=token("applicant")).get_json()["items"][0]["id"]
    for path in (f"/api/v1/projects/{code}", f"/api/v1/projects/{code}/materials", f"/api/v1/projects/{code}/history",
                 f"/api/v1/projects/{code}/materials/{material_id}/file"):
        assert client.get(path, headers=token("analyst")).status_code == 404, path
        assert client.get(path, headers=token("drc")).status_code == 200, path
    assert client.get("/api/v1/projects", headers=token("analyst")).get_json()["total"] == 0
    for path in ("/api/v1/alerts", f"/api/v1/codes/{code}/verify"):  # nor its clocks' lights, nor its code
        assert client.get(path, headers=token("analyst")).status_code == 403, path
        assert client.get(path, headers=token("drc")).status_code == 200, path
    assert client.get("/api/v1/procedures", headers=token("analyst")).status_code == 200  # its own work

def test_officials_of_another_region_do_not_see_the_project(client, token, platform):
    from engine.db import unit_of_work
    from engine.models import Department, Region
    from engine import accounts
    from engine.access import Actor

    code = declare(client, token)["project_code"]
    with unit_of_work(platform.session_factory) as s:
        s.add(Region(code="510402", name="东区", parent_code="510400", level="district"))
        s.flush()
        s.add(Department(code="east_drc", name="东区发改局", region_code="510402", kind="approving"))
        s.flush()
        accounts.create_user(s, now=platform.clock.now(), actor="test", username="east", password="Str0ng-password!",
                             display_name="东区经办", roles=["officer"], department_code="east_drc")
    assert client.get(f"/api/v1/projects/{code}", headers=token("east")).status_code == 404
    assert client.get("/api/v1/projects", headers=token("east")).get_json()["total"] == 0
    assert Actor  # imported for the type of the check above


def test_unauthenticated_and_bad_tokens_are_401(client):
    assert client.get("/api/v1/projects").status_code == 401
    r = client.get("/api/v1/projects", headers={"Authorization": "Bearer not.a.token"})
    assert r.status_code == 401 and r.is_json


def test_legacy_code_maps_to_the_project_code(client, token):
    body = declare(client, token, legacy_code="川发改备〔2015〕12号")
    assert body["legacy_code"] == "川发改备〔2015〕12号"
    r = client.get("/api/v1/projects/川发改备〔2015〕12号", headers=token("applicant"))
    assert r.status_code == 200 and r.get_json()["project_code"] == body["project_code"]
    dup = client.post("/api/v1/projects", json=declaration(legacy_code="川发改备〔2015〕12号"), headers=token("applicant"))
    assert dup.status_code == 422 and "legacy_code" in dup.get_json()["errors"]


def test_suspension_and_resumption_are_recorded(client, token):
    code = declare(client, token)["project_code"]
    r = client.post(f"/api/v1/projects/{code}/changes", json={"kind": "suspension", "reason": "资金未落实"}, headers=token("applicant"))
    assert r.status_code == 201 and r.get_json()["suspended"] is True
    again = client.post(f"/api/v1/projects/{code}/changes", json={"kind": "suspension", "reason": "再次"}, headers=token("applicant"))
    assert again.status_code == 409
    r = client.post(f"/api/v1/projects/{code}/changes", json={"kind": "resumption", "reason": "资金已落实"}, headers=token("applicant"))
    assert r.get_json()["suspended"] is False
    history = client.get(f"/api/v1/projects/{code}/history", headers=token("applicant")).get_json()
    actions = [e["action"] for e in history["items"] if e["action"].startswith("project.")]
    assert actions == ["project.declare", "project.matters_notice", "project.suspension", "project.resumption"]
    suspension = next(e for e in history["items"] if e["action"] == "project.suspension")
    assert suspension["summary"]["reason"] == "资金未落实"


def test_adjustment_keeps_the_code_and_major_change_recodes(client, token):
    code = declare(client, token)["project_code"]
    r = client.post(f"/api/v1/projects/{code}/changes", json={"kind": "extension", "reason": "工期延长", "changes": {"end_year": 2029}}, headers=token("applicant"))
    assert r.status_code == 201 and r.get_json()["project_code"] == code and r.get_json()["end_year"] == 2029
    r = client.post(f"/api/v1/projects/{code}/changes", json={"kind": "major_change", "reason": "建设规模重大调整", "changes": {"investment": "50000"}}, headers=token("applicant"))
    assert r.status_code == 201
    new = r.get_json()
    assert new["project_code"] != code and new["supersedes"] == code and new["investment"] == "50000.0000"
    old = client.get(f"/api/v1/projects/{code}", headers=token("applicant")).get_json()
    assert old["status"] == "superseded" and old["superseded_by"] == new["project_code"]
    v = client.get(f"/api/v1/codes/{code}/verify", headers=token("drc")).get_json()
    assert v["result"] == "superseded" and v["new_code"] == new["project_code"]
    refused = client.post(f"/api/v1/projects/{code}/changes", json={"kind": "adjustment", "reason": "x", "changes": {"name": "新名称"}}, headers=token("applicant"))
    assert refused.status_code == 409


@pytest.mark.parametrize("body,field", [
    ({"kind": "rename", "reason": "x"}, "kind"),
    ({"kind": "adjustment", "reason": "x"}, "changes"),
    ({"kind": "adjustment", "reason": "x", "changes": {"regime": "approval"}}, "changes.regime"),
    ({"kind": "adjustment", "reason": "x", "changes": {"investment": "-1"}}, "changes.investment"),
    ({"kind": "adjustment", "reason": "", "changes": {"name": "y"}}, "reason"),
    ({"kind": "suspension", "reason": "x", "changes": {"name": "y"}}, "changes"),
    ({"kind": "extension", "reason": "x", "changes": {"end_year": 2020}}, "changes.end_year"),
    ({"kind": "extension", "reason": "x", "changes": {"name": "延期并改名"}}, "changes.name"),
    ({"kind": "adjustment", "reason": "x", "changes": {"new_land_use": True}}, "changes.new_land_use"),
])
def test_bad_change_requests(client, token, platform, body, field):
    code = declare(client, token)["project_code"]
    before = snapshot(platform)
    r = client.post(f"/api/v1/projects/{code}/changes", json=body, headers=token("applicant"))
    assert r.status_code == 422, r.get_json()
    assert field in r.get_json()["errors"], r.get_json()
    assert snapshot(platform) == before


def test_another_units_project_cannot_be_changed(client, token):
    code = declare(client, token, user="applicant2")["project_code"]
    r = client.post(f"/api/v1/projects/{code}/changes", json={"kind": "suspension", "reason": "x"}, headers=token("applicant"))
    assert r.status_code == 404


def _code_after(code: str, serials: int) -> str:
    head, serial = code.rsplit("-", 1)
    return f"{head}-{int(serial) + serials:06d}"


def test_a_legacy_code_in_the_form_of_a_code_not_yet_issued_never_names_two_projects(client, token):
    """一项一码 (第十条): a unit declaring with a legacy code shaped as the next code the platform
    issues does not take that code from the next project: the platform passes the serial over."""
    first = declare(client, token, name="示范建设一期")["project_code"]
    taken = _code_after(first, 2)
    other = declare(client, token, user="applicant2", name="钒钛占位项目", legacy_code=taken)
    assert other["legacy_code"] == taken and other["project_code"] == _code_after(first, 1)
    mine = declare(client, token, name="示范建设二期")
    assert mine["project_code"] == _code_after(first, 3)
    for path, headers in ((f"/api/v1/projects/{mine['project_code']}", token("window")),
                          (f"/api/v1/portal/projects/{mine['project_code']}", {})):
        assert client.get(path, headers=headers).get_json()["name"] == "示范建设二期"


def test_a_legacy_code_that_is_a_projects_code_is_refused(client, token, platform):
    first = declare(client, token, name="示范建设一期")["project_code"]
    before = snapshot(platform)
    r = client.post("/api/v1/projects", headers=token("applicant2"), json=declaration(legacy_code=first))
    assert r.status_code == 422 and list(r.get_json()["errors"]) == ["legacy_code"], r.get_json()
    assert snapshot(platform) == before


def test_a_project_code_names_its_project_before_a_legacy_code_of_the_same_text(client, token, platform):
    """Rows stored before codes were kept apart: a lookup answers the project the code was
    issued to, the same every time, on the portal and for officials."""
    mine = declare(client, token, name="示范建设一期")["project_code"]
    other = declare(client, token, user="applicant2", name="钒钛占位项目")["project_code"]
    with unit_of_work(platform.session_factory) as s:
        s.execute(update(Project).where(Project.project_code == other).values(legacy_code=mine))
    for path, headers in ((f"/api/v1/projects/{mine}", token("window")), (f"/api/v1/portal/projects/{mine}", {}),
                          (f"/api/v1/projects/{mine}", token("applicant"))):
        r = client.get(path, headers=headers)
        assert r.status_code == 200 and r.get_json()["name"] == "示范建设一期", (path, r.get_json())
    assert client.get(f"/api/v1/projects/{mine}", headers=token("applicant2")).get_json()["name"] == "钒钛占位项目"


def test_ordinary_signs_in_a_declaration_are_kept_not_taken_for_markup(client, token):
    body = declare(client, token, name="一期--二期扩建项目", construction_content="容积率<2.0，建筑高度>24米；绿地率≥30%")
    assert (body["name"], body["construction_content"]) == ("一期--二期扩建项目", "容积率<2.0，建筑高度>24米；绿地率≥30%")


def test_an_adjustment_that_would_change_the_matters_notice_is_refused_for_a_major_change(client, token, platform):
    """第十二条: 调整 keeps the code; a change that brings new approvals (施工许可 above the
    threshold) is a major change: requested as such, it re-codes and tells the new matters."""
    code = declare(client, token, investment="20")["project_code"]
    told = {m["matter_code"] for m in client.get(f"/api/v1/projects/{code}", headers=token("applicant")).get_json()["matters"]}
    assert "construction_permit" not in told
    before = snapshot(platform)
    r = client.post(f"/api/v1/projects/{code}/changes", headers=token("applicant"),
                    json={"kind": "adjustment", "reason": "投资增加", "changes": {"investment": "50000"}})
    assert r.status_code == 422 and "major_change" in r.get_json()["errors"]["changes"][0], r.get_json()
    assert snapshot(platform) == before
    r = client.post(f"/api/v1/projects/{code}/changes", headers=token("applicant"),
                    json={"kind": "major_change", "reason": "投资增加", "changes": {"investment": "50000"}})
    assert r.status_code == 201, r.get_json()
    assert "construction_permit" in {m["matter_code"] for m in r.get_json()["matters"]}


def test_a_major_change_may_change_the_facts_that_decide_the_matters(client, token):
    code = declare(client, token)["project_code"]
    r = client.post(f"/api/v1/projects/{code}/changes", headers=token("applicant"),
                    json={"kind": "major_change", "reason": "新增建设用地", "changes": {"new_land_use": True}})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["new_land_use"] is True
    assert "land_pre_review" in {m["matter_code"] for m in r.get_json()["matters"]}


def test_a_suspended_project_is_not_handled_until_it_resumes(client, token, platform):
    """中止: the unit's suspension stops its clocks, and the handling with them: no dispatch,
    reply or decision is given on it meanwhile (its clocks would not count them)."""
    from tests.integration.test_workflow_api import find

    code = declare(client, token)["project_code"]
    task = find(client, token, "window", "window_review", code)
    suspend = client.post(f"/api/v1/projects/{code}/changes", headers=token("applicant"),
                          json={"kind": "suspension", "reason": "资金暂未到位"})
    assert suspend.status_code == 201, suspend.get_json()
    data = {"window_decision": "dispatch", "departments": task["context"]["departments"]}
    task = find(client, token, "window", "window_review", code)  # the pause moved its deadline: a new version
    before = snapshot(platform)
    r = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=token("window"), json={"data": data, "version": task["version"]})
    assert r.status_code == 409 and "暂停" in r.get_json()["message"], r.get_json()
    assert snapshot(platform) == before
    assert client.post(f"/api/v1/projects/{code}/changes", headers=token("applicant"),
                       json={"kind": "resumption", "reason": "资金到位"}).status_code == 201
    task = find(client, token, "window", "window_review", code)
    r = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=token("window"), json={"data": data, "version": task["version"]})
    assert r.status_code == 200, r.get_json()
