"""Journeys over HTTP (issue: the matter lifecycle): an approval project whose parallel
matters meet a correction request, a tolerated gap, a special procedure and an
intermediary service, to the conclusion notice; every notice downloads as a PDF whose
text carries the project code."""
from __future__ import annotations

from io import BytesIO

from pypdf import PdfReader

from engine.sweep import sweep
from tests.integration.helpers import TINY_PDF, declare
from tests.integration.test_workflow_api import (
    DECIDE, PRE_CHECK_PASS, REPLY_ACCEPTED, approve, dispatch, project, work,
)

#: regime 核准 with new land, environmental sensitivity, soil and water impact and building works
APPROVAL_PROJECT = {"regime": "approval", "industry_code": "30", "new_land_use": True, "environment_sensitive": True,
                    "water_soil_impact": True, "building_works": True}
GAP = ("eia_approval", "public_participation")


def upload(client, token, code, matter, material, user="applicant"):
    r = client.post(f"/api/v1/projects/{code}/materials", headers=token(user), content_type="multipart/form-data",
                    data={"matter_code": matter, "material": material,
                          "file": (BytesIO(TINY_PDF + material.encode()), f"{material}.pdf")})
    assert r.status_code == 201, r.get_json()


def test_an_approval_project_with_correction_tolerated_gap_special_procedure_and_intermediary(client, token, platform, clock):
    code = declare(client, token, **APPROVAL_PROJECT)["project_code"]
    matters = {m["matter_code"]: m["department"] for m in project(client, token, code)["matters"]}
    assert len(matters) >= 4 and {"eia_approval", "land_pre_review", "soil_water_plan"} <= set(matters)
    for matter in matters:
        for item in client.get(f"/api/v1/portal/guides/{matter}").get_json()["materials"]:
            if item["required"] and (matter, item["code"]) != GAP:
                upload(client, token, code, matter, item["code"])
    r = client.post(f"/api/v1/projects/{code}/materials/commitments", headers=token("applicant"), json={
        "matter_code": GAP[0], "material": GAP[1], "commitment": "承诺十日内补交公众参与说明",
        "deadline": "2026-03-12T17:00:00+08:00"})
    assert r.status_code == 201, r.get_json()

    for department in dispatch(client, token, code):
        work(client, token, department, "department_reply", code, REPLY_ACCEPTED)
    for matter, department in matters.items():
        work(client, token, department, "pre_check", code, PRE_CHECK_PASS, matter)
    # one correction request (land), the rest accepted; the EIA accepted with its tolerated gap
    work(client, token, "land", "acceptance", code,
         {"acceptance_decision": "correction", "correction_items": [{"material": "site_plan", "note": "红线图坐标有误"}]},
         "land_pre_review")
    work(client, token, "applicant", "supply_materials", code, {"supplement_note": "已按要求补正"}, "land_pre_review")
    work(client, token, "land", "acceptance_after_correction", code, {"acceptance_decision": "accept"}, "land_pre_review")
    for matter, department in matters.items():
        if matter != "land_pre_review":
            work(client, token, department, "acceptance", code, {"acceptance_decision": "accept"}, matter)
    upload(client, token, code, *GAP)  # the committed material arrives in time

    # one special procedure (water), one intermediary service (env)
    work(client, token, "water", "handling", code, {
        "handling_action": "special_procedure", "handling_opinion": "需专家评审", "special_procedure_reason": "专家评审",
        "special_procedure_days": 30}, "soil_water_plan")
    clock.advance(days=2)
    work(client, token, "water", "special_procedure", code, {"special_procedure_result": "评审完成"}, "soil_water_plan")
    base = f"/api/v1/projects/{code}/matters/eia_approval/intermediaries"
    agency = client.post(base, headers=token("env"), json={"name": "环境科学研究院", "qualification": "环评甲级",
                                                           "service": "技术评估", "deadline": "2026-03-20"})
    assert agency.status_code == 201, agency.get_json()
    row = agency.get_json()
    for stage in ("accepted", "handling", "completed"):
        extra = {"result": "评估结论：可行"} if stage == "completed" else {}
        r = client.post(f"{base}/{row['id']}/events", headers=token("env"), json={"stage": stage, "version": row["version"], **extra})
        assert r.status_code in (200, 201), r.get_json()
        row = r.get_json()
    for matter, department in matters.items():
        work(client, token, department, "handling", code, DECIDE, matter)
        work(client, token, department, "decision", code, approve(department), matter)
    sweep(platform)

    body = project(client, token, code)
    assert body["status"] == "concluded"
    assert {m["status"] for m in body["matters"]} == {"concluded"}
    kinds = [n["kind"] for n in body["notices"]]
    assert "correction" in kinds and "conclusion" in kinds and kinds.count("acceptance") == len(matters)
    for notice in body["notices"]:
        pdf = client.get(notice["url"], headers=token("applicant"))
        assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
        text = "".join(page.extract_text() for page in PdfReader(BytesIO(pdf.data)).pages)
        assert code in text, notice["number"]
