"""Service guides (办事指南) over HTTP, on SQLite and PostgreSQL: the public list and its
filters, versions (a project keeps the version it was told), who may publish, refusals
that change nothing, and the demo seed's complete guide for every catalogue matter."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine import guides
from engine.db import unit_of_work
from engine.models import AuditEvent, Project, ProjectMatter, ServiceGuide
from tests.integration.helpers import declare

CATALOGUE = json.loads((Path(guides.__file__).resolve().parent / "data" / "matters.json").read_text(encoding="utf-8"))["matters"]
MATTERS = {m["code"]: m for m in CATALOGUE}
PORTAL = "/api/v1/portal/guides"
META = {"matter_code", "version", "published_at", "published_by"}
#: What the portal shows of a version (who published it is not the public's to read).
PUBLIC_META = META - {"published_by"}


def counts(platform) -> tuple[int, int]:
    with platform.session_factory() as s:
        return (s.scalar(select(func.count()).select_from(ServiceGuide)),
                s.scalar(select(func.count()).select_from(AuditEvent)))


def guide(client, matter_code, **params):
    r = client.get(f"{PORTAL}/{matter_code}", query_string=params)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def content_of(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in META}


def publish(client, headers, matter_code, content):
    return client.post(f"/api/v1/guides/{matter_code}", json=content, headers=headers)


# --- the demo seed ------------------------------------------------------------------------


def test_the_demo_seed_has_a_complete_guide_for_every_matter(client):
    for matter in CATALOGUE:
        body = guide(client, matter["code"])
        assert body["version"] == 1 and "published_by" not in body  # an official's login is not the public's
        assert body["name"] == matter["name"] and body["department_code"] == matter["department"]
        assert body["promised_working_days"] == matter["promised_working_days"]
        assert body["regimes"] == matter["regimes"]
        for key in guides.TEXT_FIELDS:
            assert body[key].strip(), (matter["code"], key)
        assert any(m["required"] for m in body["materials"])
        assert set(body) == guides.GUIDE_KEYS | PUBLIC_META


def test_chinese_text_round_trips(client, token):
    content = content_of(guide(client, "soil_water_plan"))
    content["contact"] = "仁和区水利局“水保”窗口（二楼）——电话：0812-0000105；《办事指南》第2版、容缺受理"
    content["materials"][0]["name"] = "生产建设项目水土保持方案审批申请书（盖章）"
    r = publish(client, token("operator"), "soil_water_plan", content)
    assert r.status_code == 201, r.get_json()
    assert "“水保”窗口（二楼）——" in r.get_data(as_text=True)
    assert content_of(guide(client, "soil_water_plan")) == content


# --- the public list ------------------------------------------------------------------------


def test_public_list_needs_no_token(client):
    r = client.get(PORTAL)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["total"] == len(CATALOGUE)
    assert {item["matter_code"] for item in body["items"]} == set(MATTERS)
    eia = next(item for item in body["items"] if item["matter_code"] == "eia_approval")
    assert eia["department"] == {"code": "env", "name": "攀枝花市仁和生态环境局"}
    assert eia["promised_working_days"] == 30 and eia["statutory_working_days"] == 60 and eia["version"] == 1


@pytest.mark.parametrize("params, expected", [
    ({"regime": "filing"}, {c for c, m in MATTERS.items() if "filing" in m["regimes"]}),
    ({"regime": "approval"}, {c for c, m in MATTERS.items() if "approval" in m["regimes"]}),
    ({"regime": "examination"}, {c for c, m in MATTERS.items() if "examination" in m["regimes"]}),
    ({"department": "drc"}, {"enterprise_filing", "enterprise_approval", "feasibility_study"}),
    ({"department": "drc", "regime": "filing"}, {"enterprise_filing"}),
    ({"matter_code": "eia_approval"}, {"eia_approval"}),
    ({"q": "施工"}, {"construction_permit"}),
    ({"q": "企业投资项目"}, {"enterprise_filing", "enterprise_approval"}),
    ({"q": "100%_"}, set()),
])
def test_list_filters(client, params, expected):
    r = client.get(PORTAL, query_string={**params, "page_size": 200})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert {item["matter_code"] for item in body["items"]} == expected
    assert body["total"] == len(expected)


@pytest.mark.parametrize("field", ["department", "matter_code"])
def test_a_filter_naming_no_department_or_matter_is_refused_not_an_empty_list(client, field):
    r = client.get(PORTAL, query_string={field: "nobody"})
    assert r.status_code == 422 and field in r.get_json()["errors"], r.get_json()


def test_list_pages_cover_every_guide_once(client):
    seen = []
    for page in (1, 2, 3):
        body = client.get(PORTAL, query_string={"page": page, "page_size": 3}).get_json()
        assert body["total"] == len(CATALOGUE) and body["page"] == page
        seen += [item["matter_code"] for item in body["items"]]
    assert len(seen) == len(CATALOGUE) == len(set(seen))
    assert client.get(PORTAL, query_string={"page": 4, "page_size": 3}).get_json()["items"] == []


@pytest.mark.parametrize("params, field", [
    ({"regime": "licence"}, "regime"),
    ({"page_size": 201}, "page_size"),
    ({"q": "<b>"}, "q"),
    ({"departement": "drc"}, "departement"),
])
def test_list_refuses_bad_parameters(client, params, field):
    r = client.get(PORTAL, query_string=params)
    assert r.status_code == 422
    assert field in r.get_json()["errors"]


def test_unknown_matter_and_version_are_404(client):
    assert client.get(f"{PORTAL}/no_such_matter").status_code == 404
    assert client.get(f"{PORTAL}/no_such_matter/versions").status_code == 404
    assert client.get(f"{PORTAL}/eia_approval", query_string={"version": 2}).status_code == 404
    assert client.get(f"{PORTAL}/eia_approval", query_string={"version": 0}).status_code == 422


# --- versions ---------------------------------------------------------------------------------


def test_publish_a_new_version_keeps_the_old_one_readable(client, token, platform):
    v1 = content_of(guide(client, "enterprise_filing"))
    v2 = copy.deepcopy(v1)
    v2["contact"] = "仁和区发展和改革局投资科；咨询电话：0812-0000199"
    v2["materials"].append({"code": "commitment_letter", "name": "信用承诺书", "required": False, "gap_tolerable": False,
                            "template": "信用承诺书.docx", "description": ""})
    guides_before, events_before = counts(platform)

    r = publish(client, token("drc_admin"), "enterprise_filing", v2)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["version"] == 2 and r.get_json()["published_by"] == "drc_admin"
    assert counts(platform) == (guides_before + 1, events_before + 1)

    assert content_of(guide(client, "enterprise_filing")) == v2
    old = guide(client, "enterprise_filing", version=1)
    assert content_of(old) == v1 and "published_by" not in old
    versions = client.get(f"{PORTAL}/enterprise_filing/versions").get_json()
    assert [v["version"] for v in versions["items"]] == [2, 1] and versions["total"] == 2
    listed = client.get(PORTAL, query_string={"matter_code": "enterprise_filing"}).get_json()["items"]
    assert [item["version"] for item in listed] == [2]

    again = publish(client, token("drc_admin"), "enterprise_filing", v2)
    assert again.status_code == 200 and again.get_json()["version"] == 2
    assert counts(platform) == (guides_before + 1, events_before + 1)

    with platform.session_factory() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "guide.publish")
                          .order_by(AuditEvent.seq.desc()).limit(1)).one()
        assert event.actor == "drc_admin" and event.target == "guide:enterprise_filing"
        assert event.summary["version"] == 2


def test_a_project_keeps_the_version_it_was_told(client, token, platform):
    project = declare(client, token)
    with platform.session_factory() as s:
        assert guides.current_versions(s, [*MATTERS, "no_such_matter"]) == {code: 1 for code in MATTERS}
        assert guides.current_versions(s, []) == {}
        project_id = s.scalar(select(Project.id).where(Project.project_code == project["project_code"]))
        pm = s.scalars(select(ProjectMatter).where(ProjectMatter.project_id == project_id,
                                                   ProjectMatter.matter_code == "enterprise_filing")).one()
        pm.guide_version = 1
        s.commit()

    v2 = content_of(guide(client, "enterprise_filing"))
    v2["fees"] = "不收费（第2版）"
    assert publish(client, token("drc_admin"), "enterprise_filing", v2).status_code == 201

    with platform.session_factory() as s:
        pm = s.scalars(select(ProjectMatter).where(ProjectMatter.project_id == project_id,
                                                   ProjectMatter.matter_code == "enterprise_filing")).one()
        assert guides.for_project_matter(s, pm).version == 1
        assert guides.material(guides.for_project_matter(s, pm), "filing_form")["required"] is True
        pm.guide_version = None
        assert guides.for_project_matter(s, pm).version == 2
        assert guides.current(s, "enterprise_filing").content["fees"] == "不收费（第2版）"
        assert guides.get(s, "enterprise_filing", 1).content["fees"] == "不收费"
        assert guides.get(s, "enterprise_filing", 3) is None


# --- who may publish -----------------------------------------------------------------------------


@pytest.mark.parametrize("user, matter_code, status", [
    ("drc_admin", "eia_approval", 403),
    ("drc", "enterprise_filing", 403),
    ("env", "eia_approval", 403),
    ("applicant", "enterprise_filing", 403),
    ("window", "enterprise_filing", 403),
    (None, "enterprise_filing", 401),
    ("drc_admin", "no_such_matter", 404),
])
def test_publish_refused(client, token, platform, user, matter_code, status):
    content = content_of(guide(client, "eia_approval" if matter_code == "eia_approval" else "enterprise_filing"))
    content["fees"] = "改过的收费说明"
    before = counts(platform)
    r = publish(client, token(user) if user else {}, matter_code, content)
    assert r.status_code == status, r.get_json()
    assert counts(platform) == before


def test_the_operator_publishes_any_departments_guide(client, token):
    content = content_of(guide(client, "eia_approval"))
    content["process"] += "\n6. 送达：批复文件通过在线平台送达。"
    r = publish(client, token("operator"), "eia_approval", content)
    assert r.status_code == 201 and r.get_json()["published_by"] == "operator"


# --- refusals change nothing -----------------------------------------------------------------------


def _bad(path: str, value):
    def make(content):
        *parents, last = path.split(".")
        target = content
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[int(last) if isinstance(target, list) else last] = value
        return content
    return make


@pytest.mark.parametrize("make, field", [
    (_bad("materials.2.code", "Bad Code"), "materials.2.code"),
    (_bad("materials.1.code", "filing_form"), "materials.1.code"),
    (_bad("department_code", "env"), "department_code"),
    (_bad("promised_working_days", 0), "promised_working_days"),
    (_bad("statutory_working_days", 2), "promised_working_days"),
    (_bad("regimes", ["filing", "licence"]), "regimes.1"),
    (_bad("legal_basis", "<a href='x'>依据</a>"), "legal_basis"),
    (_bad("materials.0.template", "../../secret.docx"), "materials.0.template"),
    (_bad("materials.2.gap_tolerable", True), "materials.2.gap_tolerable"),
    (_bad("remark", "多余字段"), "remark"),
])
def test_bad_content_is_422_naming_the_field_and_changes_nothing(client, token, platform, make, field):
    content = make(content_of(guide(client, "enterprise_filing")))
    before = counts(platform)
    r = publish(client, token("drc_admin"), "enterprise_filing", content)
    assert r.status_code == 422, r.get_json()
    assert field in r.get_json()["errors"], r.get_json()
    assert counts(platform) == before
    assert guide(client, "enterprise_filing")["version"] == 1


def test_a_guide_without_a_required_material_is_refused(client, token, platform):
    content = content_of(guide(client, "enterprise_filing"))
    for item in content["materials"]:
        item["required"], item["gap_tolerable"] = False, False
    before = counts(platform)
    r = publish(client, token("drc_admin"), "enterprise_filing", content)
    assert r.status_code == 422 and "materials" in r.get_json()["errors"]
    assert counts(platform) == before


# --- per regime, the matters it usually needs (issue #6) ----------------------------------------------


def test_matters_per_regime_follow_the_newest_guide(client, token):
    r = client.get("/api/v1/portal/regimes/filing/matters")
    assert r.status_code == 200, r.get_json()
    items = r.get_json()["items"]
    assert {i["matter_code"] for i in items} == {c for c, m in MATTERS.items() if "filing" in m["regimes"]}
    land = next(i for i in items if i["matter_code"] == "land_pre_review")
    assert land == {"matter_code": "land_pre_review", "name": "建设项目用地预审与选址意见书",
                    "department": {"code": "land", "name": "仁和区自然资源局"}, "promised_working_days": 10,
                    "guide_version": 1}

    content = content_of(guide(client, "land_pre_review"))
    content["regimes"] = ["examination", "approval"]
    assert publish(client, token("operator"), "land_pre_review", content).status_code == 201
    after = client.get("/api/v1/portal/regimes/filing/matters").get_json()
    assert "land_pre_review" not in {i["matter_code"] for i in after["items"]}
    assert after["total"] == r.get_json()["total"] - 1
    assert client.get("/api/v1/portal/regimes/licence/matters").status_code == 404


def test_guide_endpoints_are_in_the_openapi_document(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    for path in ("/api/v1/portal/guides", "/api/v1/portal/guides/{matter_code}",
                 "/api/v1/portal/guides/{matter_code}/versions", "/api/v1/guides/{matter_code}",
                 "/api/v1/portal/regimes/{regime}/matters"):
        assert path in paths, path


def test_seeding_again_adds_nothing(platform):
    before = counts(platform)
    with unit_of_work(platform.session_factory) as s:
        assert guides.load_seed(s, platform.clock.now()) == []
    assert counts(platform) == before


def test_the_promised_clock_runs_on_the_limit_the_project_was_told(client, token):
    """第十五条: 根据…事项办理时限要求进行计时. A department promising less than the catalogue
    (a new guide version) shortens the clocks of the projects told that version; a project
    told the earlier version keeps its limit."""
    from tests.integration.test_workflow_api import ACCEPT, PRE_CHECK_PASS, project, to_matters, work

    def accepted_land_matter():
        code = to_matters(client, token, new_land_use=True, industry_code="13", building_works=False)
        work(client, token, "land", "pre_check", code, PRE_CHECK_PASS, "land_pre_review")
        work(client, token, "land", "acceptance", code, ACCEPT, "land_pre_review")
        body = project(client, token, code)
        (matter,) = [m for m in body["matters"] if m["matter_code"] == "land_pre_review"]
        (clock,) = [c for c in body["clocks"] if c["kind"] == "promised" and c["matter_code"] == "land_pre_review"]
        return matter, clock

    told_before, clock_before = accepted_land_matter()
    assert told_before["guide_version"] == 1 and told_before["promised_working_days"] == 10
    assert float(clock_before["limit_days"]) == 10
    v2 = content_of(guide(client, "land_pre_review"))
    v2["promised_working_days"] = 6
    assert publish(client, token("operator"), "land_pre_review", v2).status_code == 201
    told_after, clock_after = accepted_land_matter()
    assert told_after["guide_version"] == 2 and told_after["promised_working_days"] == 6
    assert float(clock_after["limit_days"]) == 6


def test_a_project_told_no_guide_keeps_the_catalogues_limit_when_a_guide_appears_later(client, token, platform):
    from sqlalchemy import delete

    from engine.models import Clock
    from tests.integration.helpers import supply_materials
    from tests.integration.test_workflow_api import ACCEPT, PRE_CHECK_PASS, REPLY_ACCEPTED, dispatch, project, work

    content = content_of(guide(client, "land_pre_review"))
    with unit_of_work(platform.session_factory) as s:
        s.execute(delete(ServiceGuide).where(ServiceGuide.matter_code == "land_pre_review"))
    code = declare(client, token, new_land_use=True, industry_code="13", building_works=False)["project_code"]
    for department in dispatch(client, token, code):
        work(client, token, department, "department_reply", code, REPLY_ACCEPTED)
    content["promised_working_days"] = 4
    assert publish(client, token("operator"), "land_pre_review", content).status_code == 201
    supply_materials(client, token, code, "land_pre_review")
    work(client, token, "land", "pre_check", code, PRE_CHECK_PASS, "land_pre_review")
    work(client, token, "land", "acceptance", code, ACCEPT, "land_pre_review")
    (matter,) = [m for m in project(client, token, code)["matters"] if m["matter_code"] == "land_pre_review"]
    assert matter["guide_version"] is None and matter["promised_working_days"] == 10  # told the catalogue's
    with platform.session_factory() as s:
        assert s.scalar(select(Clock.limit_days).where(Clock.kind == "promised", Clock.matter_code == "land_pre_review")) == 10
