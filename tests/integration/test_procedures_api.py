"""Deploying procedures (BPMN/DMN) over HTTP: checks before storing, versions, owners, reads."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.models import AuditEvent, ProcedureVersion
from tests.integration.helpers import snapshot

ROOT = Path(__file__).resolve().parents[2]
BPMN = ROOT / "bpmn"
FIXTURES = ROOT / "tests" / "fixtures" / "deploy"
FILING = "matter_enterprise_filing.bpmn"
LAND = "matter_land_pre_review.bpmn"
START_SCRIPT = "consultations = []\nstart_clock('filing', working_days=3)"
FILED_CONDITION = "filing_decision == 'file'"
ACCEPTANCE_TIMER = "clock_due('acceptance')"
FORM = '<spiffworkflow:property name="formJsonSchemaFilename" value="filing_check.schema.json" />'


def shipped(name: str) -> str:
    return (BPMN / name).read_text(encoding="utf-8")


def broken(name: str, old: str, new: str, count: int = 1) -> bytes:
    """A shipped diagram with one piece replaced (the piece must be there)."""
    text = shipped(name)
    assert old in text, f"{old!r} not in {name}"
    return text.replace(old, new, count).encode("utf-8")


def upload(client, headers, filename: str, content: bytes, path="/api/v1/procedures"):
    from io import BytesIO
    return client.post(path, headers=headers, data={"file": (BytesIO(content), filename)},
                       content_type="multipart/form-data")


def procedure_count(platform) -> int:
    with platform.session_factory() as s:
        return s.scalar(select(func.count()).select_from(ProcedureVersion))


def versions(platform, process_id: str) -> list[int]:
    with platform.session_factory() as s:
        return list(s.scalars(select(ProcedureVersion.version).where(ProcedureVersion.process_id == process_id)
                              .order_by(ProcedureVersion.version)))


# (case id, filename, content, the key of `errors`, a fragment of its message)
REFUSED = [
    ("not-xml", FILING, lambda: b"this is not <xml", "file", "not XML"),
    ("empty", FILING, lambda: b"", "file", "empty"),
    ("not-bpmn", FILING, lambda: (FIXTURES / "not_bpmn.bpmn").read_bytes(), "file", "not a BPMN"),
    ("wrong-extension", "procedure.txt", lambda: shipped(FILING).encode(), "file", ".bpmn"),
    ("not-executable", FILING, lambda: broken(FILING, 'isExecutable="true"', 'isExecutable="false"'), "file", "executable"),
    ("call-missing", "call_missing.bpmn", lambda: (FIXTURES / "call_missing.bpmn").read_bytes(), "call_review",
     "matter_not_deployed"),
    ("task-without-lane", FILING, lambda: broken(FILING, "<bpmn:flowNodeRef>filing_check</bpmn:flowNodeRef>", ""),
     "filing_check", "lane"),
    ("task-without-form", FILING, lambda: broken(FILING, FORM, ""), "filing_check", "form"),
    ("form-missing", FILING, lambda: broken(FILING, FORM, FORM.replace("filing_check.schema", "no_such_form.schema")),
     "filing_check", "no_such_form.schema.json"),
    ("ui-form-missing", FILING, lambda: broken(FILING, 'value="filing_check.uischema.json"', 'value="../forms/x.uischema.json"'),
     "filing_check", "does not exist"),
    ("script-syntax", FILING, lambda: broken(FILING, START_SCRIPT, "consultations = [\nstart_clock('filing'"),
     "start_filing_clock", "syntax"),
    ("script-import", FILING, lambda: broken(FILING, START_SCRIPT, "os = __import__('os')\n" + START_SCRIPT),
     "start_filing_clock", "__import__"),
    ("script-import-statement", FILING, lambda: broken(FILING, START_SCRIPT, "import os\n" + START_SCRIPT),
     "start_filing_clock", "import"),
    ("script-dunder-bases", FILING, lambda: broken(FILING, START_SCRIPT, "bases = ().__class__.__bases__\n" + START_SCRIPT),
     "start_filing_clock", "__class__"),
    ("script-open", FILING, lambda: broken(FILING, START_SCRIPT, "secret = open('/etc/passwd')\n" + START_SCRIPT),
     "start_filing_clock", "open"),
    ("script-unknown-function", FILING, lambda: broken(FILING, START_SCRIPT, "send_mail('x')\n" + START_SCRIPT),
     "start_filing_clock", "send_mail"),
    ("condition-import", FILING, lambda: broken(FILING, FILED_CONDITION, FILED_CONDITION + " and __import__('os')"),
     "flow_filing_gateway_to_filed", "__import__"),
    ("condition-bases", FILING, lambda: broken(FILING, FILED_CONDITION, "().__class__.__bases__ and " + FILED_CONDITION),
     "flow_filing_gateway_to_filed", "__class__"),
    ("condition-open", FILING, lambda: broken(FILING, FILED_CONDITION, "open('/etc/passwd') and " + FILED_CONDITION),
     "flow_filing_gateway_to_filed", "open"),
    ("timer-import", LAND, lambda: broken(LAND, ACCEPTANCE_TIMER, "__import__('os').getcwd()"),
     "acceptance_overdue", "__import__"),
    ("timer-bases", LAND, lambda: broken(LAND, ACCEPTANCE_TIMER, "().__class__.__bases__[0]"),
     "acceptance_overdue", "__class__"),
    ("timer-open", LAND, lambda: broken(LAND, ACCEPTANCE_TIMER, "open('/etc/passwd').read()"),
     "acceptance_overdue", "open"),
    ("timer-syntax", LAND, lambda: broken(LAND, ACCEPTANCE_TIMER, "clock_due('acceptance'"),
     "acceptance_overdue", "syntax"),
]


@pytest.mark.parametrize("case,filename,content,key,fragment", REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_deploy_names_the_element_and_stores_nothing(client, token, platform, case, filename, content, key, fragment):
    before, count = snapshot(platform), procedure_count(platform)
    r = upload(client, token("operator"), filename, content())
    body = r.get_json()
    assert r.status_code == 422, body
    assert body["code"] == 422 and body["status"] == "Unprocessable Entity"
    assert key in body["errors"], body["errors"]
    assert any(fragment in m for m in body["errors"][key]), body["errors"]
    assert snapshot(platform) == before
    assert procedure_count(platform) == count


VALIDATED = [c for c in REFUSED if c[0] in {"not-xml", "not-bpmn", "not-executable", "call-missing", "task-without-lane",
                                            "form-missing", "script-import", "condition-bases", "timer-open"}]


@pytest.mark.parametrize("case,filename,content,key,fragment", VALIDATED, ids=[c[0] for c in VALIDATED])
def test_analyst_validates_with_the_same_problems_and_stores_nothing(client, token, platform, case, filename, content, key, fragment):
    before, count = snapshot(platform), procedure_count(platform)
    r = upload(client, token("analyst"), filename, content(), "/api/v1/procedures/validate")
    assert r.status_code == 422, r.get_json()
    assert any(fragment in m for m in r.get_json()["errors"][key]), r.get_json()
    assert snapshot(platform) == before and procedure_count(platform) == count


def test_analyst_may_validate_but_not_deploy(client, token, platform):
    before, count = snapshot(platform), procedure_count(platform)
    changed = broken(FILING, 'name="备案审查"', 'name="备案审查（新）"')
    r = upload(client, token("analyst"), FILING, changed, "/api/v1/procedures/validate")
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"valid": True, "kind": "bpmn", "process_id": "matter_enterprise_filing"}
    r = upload(client, token("analyst"), FILING, changed)
    assert r.status_code == 403, r.get_json()
    for user in ("drc", "applicant", "window", "supervisor"):
        assert upload(client, token(user), FILING, changed).status_code == 403, user
        assert upload(client, token(user), FILING, changed, "/api/v1/procedures/validate").status_code == 403, user
    assert snapshot(platform) == before and procedure_count(platform) == count
    assert versions(platform, "matter_enterprise_filing") == [1]


def test_identical_content_is_a_no_op_and_changed_content_is_version_2(client, token, platform):
    count = procedure_count(platform)
    r = upload(client, token("drc_admin"), FILING, shipped(FILING).encode())
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["created"] is False and r.get_json()["version"] == 1
    assert procedure_count(platform) == count

    changed = broken(FILING, 'name="备案审查"', 'name="备案审查（第二版）"')
    r = upload(client, token("drc_admin"), FILING, changed)
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["created"] is True and body["version"] == 2
    assert body["process_id"] == "matter_enterprise_filing" and body["kind"] == "bpmn"
    assert body["department_code"] == "drc" and body["deployed_by"] == "drc_admin"
    assert body["deployed_at"].startswith("2026-03-02T01:00:00")
    assert versions(platform, "matter_enterprise_filing") == [1, 2]

    r = upload(client, token("drc_admin"), FILING, changed)  # the same again: still version 2
    assert r.status_code == 200 and r.get_json()["created"] is False and r.get_json()["version"] == 2
    assert versions(platform, "matter_enterprise_filing") == [1, 2]

    xml = client.get("/api/v1/procedures/matter_enterprise_filing/versions/2/xml", headers=token("analyst"))
    assert xml.status_code == 200 and xml.mimetype == "application/xml"
    assert xml.data == changed
    v1 = client.get("/api/v1/procedures/matter_enterprise_filing/versions/1/xml", headers=token("drc_admin"))
    assert v1.data == shipped(FILING).encode()
    meta = client.get("/api/v1/procedures/matter_enterprise_filing/versions/2", headers=token("operator")).get_json()
    assert meta["version"] == 2 and len(meta["sha256"]) == 64
    assert client.get("/api/v1/procedures/matter_enterprise_filing/versions/3/xml", headers=token("operator")).status_code == 404
    assert client.get("/api/v1/procedures/matter_enterprise_filing/versions/1/xml", headers=token("drc")).status_code == 403


def test_deploy_records_an_audit_event(client, token, platform):
    changed = broken(FILING, 'name="备案审查"', 'name="备案审查（审计）"')
    assert upload(client, token("operator"), FILING, changed).status_code == 201
    with platform.session_factory() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "procedure.deploy")
                          .order_by(AuditEvent.seq.desc())).first()
    assert event.actor == "operator" and event.target == "procedure:matter_enterprise_filing:v2"
    assert event.summary["version"] == 2


def test_department_admin_deploys_only_its_own_departments_procedures(client, token, platform):
    before, count = snapshot(platform), procedure_count(platform)
    eia = broken("matter_eia_approval.bpmn", 'name="受理审查"', 'name="受理审查（改）"')
    r = upload(client, token("drc_admin"), "matter_eia_approval.bpmn", eia)
    assert r.status_code == 403, r.get_json()
    assert snapshot(platform) == before and procedure_count(platform) == count
    # the operator may deploy anything; the coordinating department (drc) owns the master
    r = upload(client, token("operator"), "matter_eia_approval.bpmn", eia)
    assert r.status_code == 201 and r.get_json()["department_code"] == "env"
    master = broken("project_master.bpmn", 'name="综合窗口确认/批分"', 'name="综合窗口确认、批分"')
    r = upload(client, token("drc_admin"), "project_master.bpmn", master)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["process_id"] == "project_master" and r.get_json()["version"] == 2


def test_call_activity_calling_a_deployed_process_is_accepted(client, token):
    r = upload(client, token("operator"), "call_filing.bpmn", (FIXTURES / "call_filing.bpmn").read_bytes())
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["process_id"] == "joint_review_filing"


def test_list_is_paginated_and_filtered(client, token):
    r = client.get("/api/v1/procedures", headers=token("drc_admin"), query_string={"page_size": 4})
    assert r.status_code == 200
    body = r.get_json()
    shipped_ids = sorted(p.stem for p in BPMN.glob("*.bpmn")) + ["matters_notice"]
    assert body["total"] == len(shipped_ids) == 9 and body["page"] == 1 and body["page_size"] == 4
    assert len(body["items"]) == 4
    seen = [i["process_id"] for i in body["items"]]
    for page in (2, 3):
        r = client.get("/api/v1/procedures", headers=token("analyst"), query_string={"page_size": 4, "page": page})
        seen += [i["process_id"] for i in r.get_json()["items"]]
    assert sorted(seen) == sorted(shipped_ids)
    assert {i["version"] for i in body["items"]} == {1}
    one = client.get("/api/v1/procedures", headers=token("operator"), query_string={"process_id": "matters_notice"}).get_json()
    assert one["total"] == 1 and one["items"][0]["kind"] == "dmn"
    assert client.get("/api/v1/procedures", headers=token("applicant")).status_code == 403
    assert client.get("/api/v1/procedures", headers=token("drc"), query_string={"page_size": 500}).status_code in (403, 422)
    assert client.get("/api/v1/procedures", headers=token("operator"), query_string={"page_size": 500}).status_code == 422


DMN = "matters.dmn"
PERMIT_THRESHOLD = "<text>&gt;= 30</text>"


def test_dmn_deploy_is_versioned_and_takes_effect(client, token, platform):
    from tests.integration.helpers import declare

    changed = broken(DMN, PERMIT_THRESHOLD, "<text>&gt;= 20000</text>")
    r = upload(client, token("drc_admin"), DMN, changed)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["kind"] == "dmn" and r.get_json()["process_id"] == "matters_notice" and r.get_json()["version"] == 2
    xml = client.get("/api/v1/procedures/matters_notice/versions/2/xml", headers=token("operator"))
    assert xml.data == changed
    # a 12000.5 万元 building no longer needs the construction permit under the new table
    body = declare(client, token, regime="filing", industry_code="13", building_works=True)
    assert [m["matter_code"] for m in body["matters"]] == ["enterprise_filing"]
    r = upload(client, token("drc_admin"), DMN, changed)
    assert r.status_code == 200 and r.get_json()["created"] is False


def test_dmn_naming_a_matter_outside_the_catalogue_is_refused(client, token, platform):
    from tests.integration.helpers import declare

    count = procedure_count(platform)
    r = upload(client, token("drc_admin"), DMN, broken(DMN, '<text>"land_pre_review"</text>', '<text>"land_pre_check"</text>'))
    assert r.status_code == 422, r.get_json()
    assert "rule_land_matter_code" in r.get_json()["errors"], r.get_json()
    assert procedure_count(platform) == count
    declare(client, token, regime="filing", industry_code="13", new_land_use=True)


BROKEN_DMN = [
    ("cell-import", lambda: broken(DMN, '<text>"filing"</text>', "<text>__import__('os')</text>"), "rule_filing_regime", "__import__"),
    ("cell-open", lambda: broken(DMN, '<text>"filing"</text>', "<text>open('/etc/passwd')</text>"), "rule_filing_regime", "open"),
    ("cell-syntax", lambda: broken(DMN, PERMIT_THRESHOLD, "<text>&gt;= (30</text>"), "rule_construction_investment", "syntax"),
    ("input-bases", lambda: broken(DMN, "<text>regime</text>", "<text>regime.__class__.__bases__</text>"),
     "input_regime", "__class__"),
    ("not-xml", lambda: b"<definitions", "file", "not XML"),
    ("not-dmn", lambda: shipped(FILING).encode(), "file", "not a DMN"),
]


@pytest.mark.parametrize("case,content,key,fragment", BROKEN_DMN, ids=[c[0] for c in BROKEN_DMN])
def test_broken_dmn_is_refused(client, token, platform, case, content, key, fragment):
    before, count = snapshot(platform), procedure_count(platform)
    r = upload(client, token("operator"), DMN, content())
    body = r.get_json()
    assert r.status_code == 422, body
    assert key in body["errors"], body["errors"]
    assert any(fragment in m for m in body["errors"][key]), body["errors"]
    assert snapshot(platform) == before and procedure_count(platform) == count
