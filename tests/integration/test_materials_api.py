"""申报材料 over HTTP (issue #5): upload per project and matter, type by bytes, size limit,
stored once by SHA-256 outside the database, downloaded only as an attachment by those
allowed; 容缺承诺 (tolerated-gap commitments) and their clock hold; what acceptance and a
correction notice may ask for; lapsed commitments. Every test runs on SQLite and PostgreSQL."""
from __future__ import annotations

import hashlib
import threading
from datetime import timedelta
from io import BytesIO
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from engine import guides, materials
from engine.access import Actor
from engine.db import unit_of_work
from engine.errors import Invalid
from engine.models import AuditEvent, Clock, Material, MaterialCommitment, Project, ProjectMatter, StoredFile
from engine.sweep import sweep
from tests.integration.helpers import declare, supply_all_materials, waits_for_a_lock
from tests.integration.test_workflow_api import ACCEPT, DECIDE, FILE, PRE_CHECK_PASS, REPLY_ACCEPTED, approve, dispatch, find, work
from tests.integration.test_workflow_api import complete as complete_task

#: A filing-regime project with new land: 企业投资项目备案 (drc) and 用地预审 (land).
LAND_PROJECT = {"regime": "filing", "industry_code": "13", "building_works": False, "new_land_use": True}
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
REPLY_ACCEPTED = {"reply_outcome": "accepted", "reply_comment": "本部门有应办事项，已受理"}

LAND_MATERIALS = [
    {"code": "application_form", "name": "建设项目用地预审与选址申请表", "required": True, "gap_tolerable": False,
     "template": "用地预审申请表.docx", "description": "加盖单位公章"},
    {"code": "site_report", "name": "建设项目节约集约用地论证分析专章", "required": True, "gap_tolerable": True,
     "template": "", "description": "可容缺受理，承诺期限内补交"},
    {"code": "survey_map", "name": "勘测定界图", "required": True, "gap_tolerable": True, "template": "",
     "description": "可容缺受理"},
    {"code": "other_proof", "name": "其他证明材料", "required": False, "gap_tolerable": False, "template": "",
     "description": "如有"},
]
FILING_MATERIALS = [
    {"code": "filing_form", "name": "企业投资项目备案信息表", "required": True, "gap_tolerable": False,
     "template": "", "description": "在线填报"},
]


def guide(department: str, name: str, items: list[dict]) -> dict:
    return {
        "name": name, "department_code": department, "legal_basis": "《土地管理法》第五十二条",
        "content": name, "acceptance_conditions": "材料齐全、符合法定形式", "materials": items,
        "process": "申请\n受理\n审查\n决定", "promised_working_days": 3, "statutory_working_days": 20,
        "fees": "不收费", "supervision_requirements": "接受电子监察", "contact": "0812-0000000",
        "regimes": ["examination", "approval", "filing"],
    }


@pytest.fixture
def published(platform):
    """The guides of the two matters, published before the project is declared (so they
    are the versions the project is told, whatever the seed holds)."""
    with unit_of_work(platform.session_factory) as s:
        actor = Actor.system("test-setup")
        guides.publish(s, actor=actor, matter_code="land_pre_review", now=platform.clock.now(),
                       content=guide("land", "建设项目用地预审与选址意见书", LAND_MATERIALS))
        guides.publish(s, actor=actor, matter_code="enterprise_filing", now=platform.clock.now(),
                       content=guide("drc", "企业投资项目备案", FILING_MATERIALS))


@pytest.fixture
def code(client, token, published):
    return declare(client, token, **LAND_PROJECT)["project_code"]


# --- helpers -----------------------------------------------------------------------------------


def upload(client, token, code, *, user="applicant", matter_code="land_pre_review", material="application_form",
           data=PDF, filename="申请表.pdf", **extra):
    form = {"matter_code": matter_code, "material": material, "file": (BytesIO(data), filename), **extra}
    return client.post(f"/api/v1/projects/{code}/materials", headers=token(user), data=form,
                       content_type="multipart/form-data")


def commit(client, token, code, platform, *, user="applicant", material="site_report", days=30, **overrides):
    body = {"matter_code": "land_pre_review", "material": material, "commitment": "承诺在期限内补交论证分析专章",
            "deadline": (platform.clock.now() + timedelta(days=days)).isoformat(), **overrides}
    return client.post(f"/api/v1/projects/{code}/materials/commitments", headers=token(user), json=body)


def counts(platform) -> tuple:
    with platform.session_factory() as s:
        return tuple(s.scalar(select(func.count()).select_from(model))
                     for model in (Material, StoredFile, MaterialCommitment, AuditEvent))


def stored_files(root) -> list:
    """The files stored under their SHA-256 (not the store's PLATFORM binding)."""
    return [p for p in root.glob("??/*") if p.is_file()] if root.exists() else []


def tasks(client, token, user, code):
    r = client.get("/api/v1/tasks", headers=token(user), query_string={"page_size": 200, "project_code": code})
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"]


def complete(client, token, user, name, code, data):
    [task] = [t for t in tasks(client, token, user, code) if t["name"] == name]
    r = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=token(user),
                    json={"data": data, "version": task["version"]})
    assert r.status_code == 200, r.get_json()
    return task


def to_handling(client, token, code):
    """The window dispatches, each department replies accepted: the matters are being handled."""
    [window] = [t for t in tasks(client, token, "window", code) if t["name"] == "window_review"]
    departments = window["context"]["departments"]
    r = client.post(f"/api/v1/tasks/{window['id']}/complete", headers=token("window"),
                    json={"data": {"window_decision": "dispatch", "departments": departments}, "version": window["version"]})
    assert r.status_code == 200, r.get_json()
    for department in departments:
        complete(client, token, department, "department_reply", code, REPLY_ACCEPTED)


def project_matter(s, code, matter_code="land_pre_review") -> ProjectMatter:
    return s.scalar(select(ProjectMatter).join(Project, Project.id == ProjectMatter.project_id)
                    .where(Project.project_code == code, ProjectMatter.matter_code == matter_code))


def matter_clocks(platform, code) -> list[tuple[str, str, str | None]]:
    with platform.session_factory() as s:
        pm = project_matter(s, code)
        rows = s.scalars(select(Clock).where(Clock.instance_id == pm.instance_id, Clock.state != "stopped")).all()
        return [(c.kind, c.state, (c.pauses or [{}])[-1].get("reason") if c.state == "paused" else None) for c in rows]


# --- upload, list, download ---------------------------------------------------------------------


def test_the_owner_uploads_and_those_allowed_download_as_an_attachment(client, token, code, file_store):
    r = upload(client, token, code, filename="扫描件/2026/用地预审申请表（盖章）.pdf")
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert {k: body[k] for k in ("matter_code", "material", "filename", "size", "media_type", "uploaded_by", "status")} == {
        "matter_code": "land_pre_review", "material": "application_form", "filename": "用地预审申请表（盖章）.pdf",
        "size": len(PDF), "media_type": "application/pdf", "uploaded_by": "applicant", "status": "submitted"}
    assert body["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert body["url"] == f"/api/v1/projects/{code}/materials/{body['id']}/file"
    assert stored_files(file_store) == [file_store / body["sha256"][:2] / body["sha256"]]

    for user in ("applicant", "land", "drc", "supervisor"):
        listed = client.get(f"/api/v1/projects/{code}/materials", headers=token(user))
        assert listed.status_code == 200, (user, listed.get_json())
        assert [m["id"] for m in listed.get_json()["items"]] == [body["id"]] and listed.get_json()["total"] == 1
        got = client.get(body["url"], headers=token(user))
        assert got.status_code == 200 and got.data == PDF
        assert got.mimetype == "application/pdf"
        assert got.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in got.headers["Content-Security-Policy"]
        disposition = got.headers["Content-Disposition"]
        assert disposition.startswith("attachment;")
        assert f"filename*=UTF-8''{quote('用地预审申请表（盖章）.pdf', safe='')}" in disposition
        assert disposition.encode("latin-1")  # the header itself stays ASCII

    narrowed = client.get(f"/api/v1/projects/{code}/materials", headers=token("applicant"),
                          query_string={"matter_code": "enterprise_filing"})
    assert narrowed.get_json()["items"] == [] and narrowed.get_json()["total"] == 0
    history = client.get(f"/api/v1/projects/{code}/history", headers=token("applicant"), query_string={"page_size": 200})
    [event] = [e for e in history.get_json()["items"] if e["action"] == "material.upload"]
    assert event["summary"]["sha256"] == body["sha256"] and event["summary"]["material"] == "application_form"


def test_a_stored_file_altered_on_disk_is_reported_not_served(client, token, code, file_store):
    body = upload(client, token, code).get_json()
    (file_store / body["sha256"][:2] / body["sha256"]).write_bytes(b"%PDF-1.4 something else")
    r = client.get(body["url"], headers=token("applicant"))
    assert r.status_code == 500 and r.mimetype == "application/json"
    assert body["sha256"] in r.get_json()["message"]


def test_another_unit_sees_nothing_and_uploads_nothing(client, token, code, platform, file_store):
    r = upload(client, token, code)
    assert r.status_code == 201
    url = r.get_json()["url"]
    before = counts(platform)
    refused = upload(client, token, code, user="applicant2", data=PDF + b"x")
    assert refused.status_code == 404 and refused.get_json()["code"] == 404
    for path in (f"/api/v1/projects/{code}/materials", url, f"/api/v1/projects/{code}/materials/commitments"):
        assert client.get(path, headers=token("applicant2")).status_code == 404
    assert client.get(f"/api/v1/projects/{code}/materials/999999/file", headers=token("applicant")).status_code == 404
    assert commit(client, token, code, platform, user="applicant2").status_code == 404
    assert client.get(url).status_code == 401
    assert counts(platform) == before and len(stored_files(file_store)) == 1


@pytest.mark.parametrize(("overrides", "status", "field"), [
    pytest.param({"data": b"#!/bin/sh\necho pwned\n", "filename": "申请表.pdf"}, 422, "file", id="a script renamed .pdf"),
    pytest.param({"data": b"<html><script>alert(1)</script></html>", "filename": "a.pdf"}, 422, "file", id="an HTML page"),
    pytest.param({"data": b"", "filename": "空.pdf"}, 422, "file", id="an empty file"),
    pytest.param({"filename": ""}, 422, "file", id="no file name"),
    pytest.param({"material": "business_licence"}, 422, "material", id="not on the guide's list"),
    pytest.param({"matter_code": "construction_permit"}, 422, "matter_code", id="not on the matters notice"),
    pytest.param({"matter_code": ""}, 422, "matter_code", id="blank matter code"),
    pytest.param({"material": "signed_document"}, 403, None, id="the applicant uploading a signed decision"),
    pytest.param({"user": "land"}, 403, None, id="an officer uploading the unit's material"),
    pytest.param({"user": "window"}, 403, None, id="the window"),
    pytest.param({"note": "x"}, 422, "note", id="an unknown form field"),
    pytest.param({"material": ["application_form", "site_report"]}, 422, "material", id="a field given twice"),
])
def test_refused_uploads_change_nothing(client, token, code, platform, file_store, overrides, status, field):
    before = counts(platform)
    r = upload(client, token, code, **overrides)
    assert r.status_code == status, r.get_json()
    body = r.get_json()
    assert body["code"] == status and body["message"]
    if field:
        assert field in body["errors"], body
    assert counts(platform) == before
    assert stored_files(file_store) == []


def test_two_files_in_one_upload_are_refused_not_read_as_the_first(client, token, code, platform, file_store):
    before = counts(platform)
    r = upload(client, token, code, file=[(BytesIO(PDF), "甲.pdf"), (BytesIO(PDF + b"2"), "乙.pdf")])
    assert r.status_code == 422 and list(r.get_json()["errors"]) == ["file"], r.get_json()
    assert counts(platform) == before and stored_files(file_store) == []


def test_a_request_without_the_file_names_the_field(client, token, code, platform):
    r = client.post(f"/api/v1/projects/{code}/materials", headers=token("applicant"), content_type="multipart/form-data",
                    data={"matter_code": "land_pre_review", "material": "application_form"})
    assert r.status_code == 422 and "file" in r.get_json()["errors"]
    r = client.post(f"/api/v1/projects/{code}/materials", headers=token("applicant"),
                    json={"matter_code": "land_pre_review", "material": "application_form"})
    assert r.status_code == 422 and "file" in r.get_json()["errors"]


def test_the_size_limit_is_configurable_and_answers_413(client, token, code, platform, file_store, monkeypatch, app):
    monkeypatch.setenv("TZXM_MAX_UPLOAD_BYTES", "64")
    exact = PDF.ljust(64, b" ")
    before = counts(platform)
    r = upload(client, token, code, data=exact + b" ")
    assert r.status_code == 413, r.get_json()
    assert r.get_json() == {"code": 413, "status": "Request Entity Too Large", "message": r.get_json()["message"],
                            "errors": {"file": ["文件不得超过 64 字节 (at most 64 bytes)"]}}
    assert counts(platform) == before and stored_files(file_store) == []
    assert upload(client, token, code, data=exact).status_code == 201

    # A body over Flask's MAX_CONTENT_LENGTH is refused before it is parsed, in the same JSON shape.
    monkeypatch.delenv("TZXM_MAX_UPLOAD_BYTES")
    app.config["MAX_CONTENT_LENGTH"] = 1024
    r = upload(client, token, code, data=PDF + b"\0" * 4096)
    assert r.status_code == 413
    body = r.get_json()
    assert body["code"] == 413 and body["status"] == "Request Entity Too Large" and body["message"]


def test_the_same_bytes_are_stored_once_and_a_newer_file_replaces_the_older(client, token, code, platform, file_store):
    first = upload(client, token, code, filename="申请表.pdf").get_json()
    again = upload(client, token, code, filename="申请表（重新上传）.pdf").get_json()
    other_item = upload(client, token, code, material="site_report", filename="论证专章.pdf").get_json()
    other_matter = upload(client, token, code, matter_code="enterprise_filing", material="filing_form").get_json()
    assert first["sha256"] == again["sha256"] == other_item["sha256"] == other_matter["sha256"]
    with platform.session_factory() as s:
        assert s.scalar(select(func.count()).select_from(StoredFile)) == 1
        assert s.get(StoredFile, first["sha256"]).size == len(PDF)
        statuses = dict(s.execute(select(Material.id, Material.status)).all())
    assert len(stored_files(file_store)) == 1
    assert statuses == {first["id"]: "replaced", again["id"]: "submitted", other_item["id"]: "submitted",
                        other_matter["id"]: "submitted"}

    image = upload(client, token, code, material="other_proof", data=PNG, filename="现场照片.png").get_json()
    assert image["media_type"] == "image/png"
    assert len(stored_files(file_store)) == 2
    listed = client.get(f"/api/v1/projects/{code}/materials", headers=token("land"),
                        query_string={"matter_code": "land_pre_review", "page_size": 2, "page": 2})
    assert listed.get_json()["total"] == 4
    assert [m["id"] for m in listed.get_json()["items"]] == [other_item["id"], image["id"]]


def test_the_matters_department_uploads_the_signed_decision(client, token, code, platform):
    assert upload(client, token, code, user="land", material="signed_document").status_code == 409  # not handled yet
    to_handling(client, token, code)
    assert upload(client, token, code, user="drc", material="signed_document").status_code == 403
    r = upload(client, token, code, user="land", material="signed_document", filename="用地预审意见书（签章）.pdf")
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["uploaded_by"] == "land" and r.get_json()["material"] == "signed_document"


# --- 容缺承诺 -----------------------------------------------------------------------------------


def test_a_commitment_holds_the_matters_clocks_until_the_material_is_supplied(client, token, code, platform):
    to_handling(client, token, code)
    running = matter_clocks(platform, code)
    assert running and all(state == "running" for _, state, _ in running)

    r = commit(client, token, code, platform)
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert {k: body[k] for k in ("matter_code", "material", "state", "recorded_by", "closed_at")} == {
        "matter_code": "land_pre_review", "material": "site_report", "state": "open", "recorded_by": "applicant",
        "closed_at": None}
    assert all((state, reason) == ("paused", "tolerated_gap") for _, state, reason in matter_clocks(platform, code))
    second = commit(client, token, code, platform, material="survey_map")
    assert second.status_code == 201

    platform.clock.advance(hours=2)
    assert upload(client, token, code, material="site_report").status_code == 201
    assert all(state == "paused" for _, state, _ in matter_clocks(platform, code))  # survey_map still missing
    assert upload(client, token, code, material="survey_map", data=PDF + b"map").status_code == 201
    assert all(state == "running" for _, state, _ in matter_clocks(platform, code))

    listed = client.get(f"/api/v1/projects/{code}/materials/commitments", headers=token("land"))
    assert listed.status_code == 200
    items = listed.get_json()["items"]
    assert [(c["material"], c["state"]) for c in items] == [("site_report", "fulfilled"), ("survey_map", "fulfilled")]
    assert all(c["closed_at"] == platform.clock.now().isoformat() for c in items)


def test_a_commitment_racing_the_matters_launch_waits_for_the_master_first(app, client, token, code, platform,
                                                                           database_url):
    """Before the department receives the matter, the master process launches it under
    its own lock and then takes the matter row. A commitment therefore takes the master
    first: while a launch holds it, the commitment waits holding nothing (the matter row
    stays free for the launch), and is made once the master is released."""
    if not database_url.startswith("postgresql"):
        pytest.skip("row locks are PostgreSQL's; SQLite serializes writers at BEGIN")
    from sqlalchemy import text

    from engine.models import ProcessInstance

    launch = platform.session_factory()
    master = launch.scalar(select(ProcessInstance.id).join(Project, Project.id == ProcessInstance.project_id).where(
        Project.project_code == code, ProcessInstance.kind == "master").with_for_update())
    result = {}
    racing = threading.Thread(target=lambda: result.setdefault("r", commit(app.test_client(), token, code, platform)))
    racing.start()
    try:
        with platform.session_factory() as watcher:
            assert waits_for_a_lock(watcher, "%process_instances%FOR NO KEY UPDATE%"), \
                "the commitment did not wait for the master's lock"
            pm_id = project_matter(watcher, code).id
            free = watcher.execute(text("SELECT id FROM project_matters WHERE id = :id FOR UPDATE NOWAIT"), {"id": pm_id})
            assert free.scalar() == pm_id  # the waiting commitment holds no lock on the matter row
            watcher.rollback()
    finally:
        launch.rollback()
        launch.close()
        racing.join(timeout=30)
    assert master is not None and result["r"].status_code == 201, result["r"].get_json()


@pytest.mark.parametrize(("overrides", "field"), [
    pytest.param({"material": "application_form"}, "material", id="not gap-tolerable"),
    pytest.param({"material": "other_proof"}, "material", id="not required"),
    pytest.param({"material": "no_such_material"}, "material", id="not on the guide"),
    pytest.param({"matter_code": "construction_permit"}, "matter_code", id="not on the matters notice"),
    pytest.param({"days": -1}, "deadline", id="a deadline in the past"),
    pytest.param({"days": 91}, "deadline", id="more than 90 days ahead"),
    pytest.param({"deadline": "2026-04-01T00:00:00"}, "deadline", id="no time zone"),
    pytest.param({"commitment": "  "}, "commitment", id="a blank commitment"),
    pytest.param({"commitment": "<b>承诺</b>"}, "commitment", id="markup"),
    pytest.param({"extra": 1}, "extra", id="an unknown field"),
])
def test_refused_commitments_change_nothing(client, token, code, platform, overrides, field):
    before = counts(platform)
    r = commit(client, token, code, platform, **overrides)
    assert r.status_code == 422, r.get_json()
    assert field in r.get_json()["errors"], r.get_json()
    assert counts(platform) == before


def test_no_commitment_for_a_submitted_or_already_committed_material(client, token, code, platform):
    assert upload(client, token, code, material="survey_map").status_code == 201
    r = commit(client, token, code, platform, material="survey_map")
    assert r.status_code == 422 and "已提交" in r.get_json()["errors"]["material"][0]
    assert commit(client, token, code, platform).status_code == 201  # before handling: nothing to hold
    r = commit(client, token, code, platform)
    assert r.status_code == 422 and "承诺" in r.get_json()["errors"]["material"][0]
    assert commit(client, token, code, platform, user="land").status_code == 403
    assert commit(client, token, code, platform, days=90).status_code == 422  # still the same open one


# --- acceptance, corrections, lapses (the engine functions the runtime and the sweep call) --------


def test_acceptance_needs_every_required_material_or_its_commitment(client, token, code, platform):
    to_handling(client, token, code)
    now = platform.clock.now()
    with platform.session_factory() as s:
        with pytest.raises(Invalid) as refused:
            materials.check_acceptance(s, project_matter=project_matter(s, code), now=now)
    assert refused.value.errors == {"materials": [
        "缺少必要材料：建设项目用地预审与选址申请表 (application_form)",
        "缺少必要材料：建设项目节约集约用地论证分析专章 (site_report)",
        "缺少必要材料：勘测定界图 (survey_map)"]}

    assert upload(client, token, code, material="application_form").status_code == 201
    assert upload(client, token, code, material="survey_map", data=PNG).status_code == 201
    assert commit(client, token, code, platform, material="site_report").status_code == 201
    with unit_of_work(platform.session_factory) as s:
        materials.check_acceptance(s, project_matter=project_matter(s, code), now=now, actor="land")
    with platform.session_factory() as s:
        assert dict(s.execute(select(Material.material, Material.status)).all()) == {
            "application_form": "accepted", "survey_map": "accepted"}
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "material.accepted")) == 1

    # An accepted material is final: not replaced, and no correction may ask for it.
    r = upload(client, token, code, material="application_form", data=PDF + b"v2")
    assert r.status_code == 409
    with platform.session_factory() as s:
        pm = project_matter(s, code)
        with pytest.raises(Invalid) as refused:
            materials.check_correction_items(s, project_matter=pm, items=[
                {"material": "site_report", "note": "请补交"}, {"material": "application_form", "note": "重新盖章"},
                {"material": "business_licence", "note": "营业执照"}, {"material": "site_report", "note": "again"}])
        assert set(refused.value.errors) == {"correction_items.1.material", "correction_items.2.material",
                                             "correction_items.3.material"}
        assert "已受理" in refused.value.errors["correction_items.1.material"][0]
        assert materials.check_correction_items(s, project_matter=pm, items=[
            {"material": "site_report", "note": "请补交专章"}, {"material": "other_proof", "note": "补充证明"}]) == [
            {"material": "site_report", "note": "请补交专章", "name": "建设项目节约集约用地论证分析专章"},
            {"material": "other_proof", "note": "补充证明", "name": "其他证明材料"}]


def test_a_commitment_past_its_deadline_lapses_once(client, token, code, platform):
    to_handling(client, token, code)
    assert commit(client, token, code, platform, days=10).status_code == 201
    assert commit(client, token, code, platform, material="survey_map", days=20).status_code == 201
    deadline = platform.clock.now() + timedelta(days=10)
    later = deadline + timedelta(days=1)
    with unit_of_work(platform.session_factory) as s:
        assert materials.due_commitments(s, now=deadline) == []  # supplied by the deadline is in time at it
    with unit_of_work(platform.session_factory) as s:
        due = materials.due_commitments(s, now=later)
        lapsed = [materials.lapse(s, commitment_id, now=later) for commitment_id in due]
        assert [(c.material, c.state, c.closed_at) for c in lapsed] == [("site_report", "lapsed", deadline)]
        assert materials.lapse(s, due[0], now=later) is None
        assert project_matter(s, code).status == "terminated"  # the department was handling it
    with unit_of_work(platform.session_factory) as s:
        assert materials.due_commitments(s, now=later) == []
        assert s.scalar(select(func.count()).select_from(AuditEvent)
                        .where(AuditEvent.action == "material.commitment_lapsed")) == 1
    listed = client.get(f"/api/v1/projects/{code}/materials/commitments", headers=token("applicant"),
                        query_string={"matter_code": "land_pre_review"})
    # the other commitment ended with its matter: nothing is owed to a terminated matter
    assert [(c["material"], c["state"]) for c in listed.get_json()["items"]] == [("site_report", "lapsed"),
                                                                                  ("survey_map", "ended")]
    with unit_of_work(platform.session_factory) as s:
        assert materials.due_commitments(s, now=later + timedelta(days=30)) == []


def test_a_material_supplied_at_its_commitments_deadline_instant_is_in_time(client, token, code, platform):
    to_handling(client, token, code)
    assert commit(client, token, code, platform, days=10).status_code == 201
    platform.clock.set(platform.clock.now() + timedelta(days=10))  # the deadline itself
    assert upload(client, token, code, material="site_report").status_code == 201
    sweep(platform)
    with platform.session_factory() as s:
        assert project_matter(s, code).status == "handling"
        assert s.scalar(select(MaterialCommitment.state)) == "fulfilled"


def test_a_material_supplied_after_its_commitments_deadline_saves_nothing(client, token, code, platform):
    """The deadline is met at its instant though no sweep has lapsed the commitment yet:
    the late upload is refused (the matter ended), and the sweep then ends it."""
    to_handling(client, token, code)
    assert commit(client, token, code, platform, days=10).status_code == 201
    platform.clock.set(platform.clock.now() + timedelta(days=10, hours=1))
    r = upload(client, token, code, material="site_report")
    assert r.status_code == 409, r.get_json()
    sweep(platform)
    with platform.session_factory() as s:
        assert project_matter(s, code).status == "terminated"
        assert s.scalar(select(MaterialCommitment.state)) == "lapsed"


def test_a_lapse_ends_a_matter_whose_instance_waits_for_an_operator(client, token, code, platform):
    """A matter whose instance errored (waiting for an operator's retry) is still being
    handled: a commitment lapsing then ends it as it ends a running one, rather than
    lapsing the commitment and leaving the matter and its hold open for ever."""
    from engine.models import Hold, ProcessInstance

    to_handling(client, token, code)
    assert commit(client, token, code, platform, days=10).status_code == 201
    with unit_of_work(platform.session_factory) as s:
        s.get(ProcessInstance, project_matter(s, code).instance_id).status = "error"
    later = platform.clock.now() + timedelta(days=11)
    with unit_of_work(platform.session_factory) as s:
        [lapsed] = [materials.lapse(s, i, now=later) for i in materials.due_commitments(s, now=later)]
        assert lapsed.state == "lapsed"
    with platform.session_factory() as s:
        pm = project_matter(s, code)
        assert (pm.status, s.get(ProcessInstance, pm.instance_id).status) == ("terminated", "cancelled")
        assert s.scalar(select(func.count()).select_from(Hold).where(
            Hold.project_id == pm.project_id, Hold.matter_code == pm.matter_code, Hold.ended_at.is_(None))) == 0


def test_a_filing_is_filed_only_with_its_required_materials_which_then_are_final(client, token, platform):
    """收到全部信息即为备案: filing without the required information is refused, naming what
    is missing; once filed, the materials are final as at any acceptance."""
    code = declare(client, token, **LAND_PROJECT)["project_code"]
    for department in dispatch(client, token, code):
        work(client, token, department, "department_reply", code, REPLY_ACCEPTED)
    task = find(client, token, "drc", "filing_check", code, "enterprise_filing")
    r = complete_task(client, token, "drc", task, FILE)
    assert r.status_code == 422 and r.get_json()["errors"]["materials"], r.get_json()
    supply_all_materials(client, token, code)
    work(client, token, "drc", "filing_check", code, FILE, "enterprise_filing")
    statuses = {m["status"] for m in client.get(f"/api/v1/projects/{code}/materials", headers=token("applicant"),
                                                query_string={"page_size": 200}).get_json()["items"]
                if m["matter_code"] == "enterprise_filing"}
    assert statuses == {"accepted"}


def _commitment_states(platform, code) -> list[tuple[str, str]]:
    with platform.session_factory() as s:
        return [(c.material, c.state) for c in s.scalars(
            select(MaterialCommitment).where(MaterialCommitment.project_code == code).order_by(MaterialCommitment.id))]


def test_a_commitment_ends_with_a_matter_refused_and_does_not_lapse_as_the_units_failure(client, token, code, platform):
    """初审不予通过: the matter is refused with a commitment still open; nothing is owed to a
    refused matter, so the commitment ends with it and the sweep after its deadline lapses
    nothing (a lapse is the unit's failure)."""
    to_handling(client, token, code)
    assert commit(client, token, code, platform, days=10).status_code == 201
    complete(client, token, "land", "pre_check", code, {"precheck_result": "fail", "code_verified": True,
                                                         "within_competence": False, "precheck_comment": "不属于本部门受理范围"})
    with platform.session_factory() as s:
        assert project_matter(s, code).status == "refused"
    assert _commitment_states(platform, code) == [("site_report", "ended")]
    platform.clock.set(platform.clock.now() + timedelta(days=11))
    sweep(platform)
    assert _commitment_states(platform, code) == [("site_report", "ended")]
    with platform.session_factory() as s:
        [ended] = s.scalars(select(AuditEvent).where(AuditEvent.action == "material.commitment_ended")).all()
        assert (ended.project_code, ended.summary["matter_status"]) == (code, "refused")
        assert not s.scalars(select(AuditEvent).where(AuditEvent.action == "material.commitment_lapsed")).all()


def test_a_commitment_ends_when_its_department_replies_no_matter(client, token, code, platform):
    """The unit committed before dispatch; the department then replies that it has no matter
    at this stage: the commitment ends with the matter."""
    assert commit(client, token, code, platform, days=10).status_code == 201
    [window] = [t for t in tasks(client, token, "window", code) if t["name"] == "window_review"]
    r = client.post(f"/api/v1/tasks/{window['id']}/complete", headers=token("window"),
                    json={"data": {"window_decision": "dispatch", "departments": window["context"]["departments"]},
                          "version": window["version"]})
    assert r.status_code == 200, r.get_json()
    complete(client, token, "land", "department_reply", code, {"reply_outcome": "no_matter", "reply_comment": "本阶段无应办事项"})
    with platform.session_factory() as s:
        assert project_matter(s, code).status == "no_matter"
    assert _commitment_states(platform, code) == [("site_report", "ended")]


# --- 不重复提交: a material already submitted is taken for another item ------------------------


def reuse(client, token, code, material_id, *, user="applicant", matter_code="enterprise_filing", material="filing_form"):
    return client.post(f"/api/v1/projects/{code}/materials/{material_id}/reuse", headers=token(user),
                       json={"matter_code": matter_code, "material": material})


def test_a_material_submitted_for_one_matter_is_taken_for_another_without_sending_it_again(client, token, code, platform):
    first = upload(client, token, code, material="application_form", filename="申请表.pdf").get_json()
    r = reuse(client, token, code, first["id"])
    assert r.status_code == 201, r.get_json()
    taken = r.get_json()
    assert (taken["matter_code"], taken["material"], taken["filename"]) == ("enterprise_filing", "filing_form", "申请表.pdf")
    with platform.session_factory() as s:
        rows = {m.id: m for m in s.scalars(select(Material))}
        assert rows[taken["id"]].sha256 == rows[first["id"]].sha256 and rows[first["id"]].status == "submitted"
        event = s.scalars(select(AuditEvent).where(AuditEvent.target == f"material:{taken['id']}")).one()
        assert event.action == "material.upload" and event.summary["reused_from"] == first["id"]
    listed = client.get(f"/api/v1/projects/{code}/materials", headers=token("drc"),
                        query_string={"matter_code": "enterprise_filing"}).get_json()["items"]
    assert [m["id"] for m in listed] == [taken["id"]]


def test_a_reused_material_fulfils_a_commitment_as_an_upload_does(client, token, code, platform):
    assert commit(client, token, code, platform, material="site_report").status_code == 201
    proof = upload(client, token, code, material="other_proof").get_json()
    assert reuse(client, token, code, proof["id"], matter_code="land_pre_review", material="site_report").status_code == 201
    with platform.session_factory() as s:
        assert s.scalar(select(MaterialCommitment.state)) == "fulfilled"


def test_refused_reuses_change_nothing(client, token, code, platform):
    first = upload(client, token, code, material="application_form").get_json()
    newer = upload(client, token, code, material="application_form", data=PDF + b"v2").get_json()
    other = declare(client, token, user="applicant2", **LAND_PROJECT)["project_code"]
    foreign = upload(client, token, other, user="applicant2", material="application_form").get_json()
    before = counts(platform)
    assert reuse(client, token, code, first["id"]).status_code == 409  # replaced by a newer file
    assert reuse(client, token, code, foreign["id"]).status_code == 404  # another project's
    assert reuse(client, token, code, 10 ** 9).status_code == 404
    assert reuse(client, token, code, newer["id"], user="drc").status_code == 403  # the unit's own act
    assert reuse(client, token, code, newer["id"], user="applicant2").status_code in (403, 404)
    r = reuse(client, token, code, newer["id"], material="no_such_item")
    assert r.status_code == 422 and "material" in r.get_json()["errors"], r.get_json()
    r = client.post(f"/api/v1/projects/{code}/materials/{newer['id']}/reuse", headers=token("applicant"),
                    json={"matter_code": "enterprise_filing"})
    assert r.status_code == 422 and "material" in r.get_json()["errors"], r.get_json()
    assert counts(platform) == before


def test_a_material_submitted_under_the_code_a_project_had_is_taken_under_its_new_code(client, token, code, platform):
    first = upload(client, token, code, material="application_form").get_json()
    r = client.post(f"/api/v1/projects/{code}/changes", headers=token("applicant"),
                    json={"kind": "major_change", "reason": "建设规模重大调整", "changes": {"investment": "50000"}})
    assert r.status_code == 201, r.get_json()
    new_code = r.get_json()["project_code"]
    r = reuse(client, token, new_code, first["id"], matter_code="land_pre_review", material="application_form")
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["project_code"] == new_code


def grant_with_site_report_owed(client, token, code, platform) -> None:
    """容缺: the land matter accepted with site_report committed, and approved before it came."""
    to_handling(client, token, code)
    assert upload(client, token, code, material="application_form").status_code == 201
    assert upload(client, token, code, material="survey_map", data=PNG).status_code == 201
    assert commit(client, token, code, platform, material="site_report", days=30).status_code == 201
    for user, name, data in (("land", "pre_check", PRE_CHECK_PASS), ("land", "acceptance", ACCEPT),
                             ("land", "handling", DECIDE), ("land", "decision", approve("land"))):
        complete(client, token, user, name, code, data)


def test_a_matter_granted_with_a_commitment_open_still_takes_the_owed_material_and_only_it(client, token, code, platform):
    """The material is still owed after the grant, so the unit can supply it (the commitment
    is fulfilled, no lapse counts against it); nothing else reaches the concluded matter, and
    the owed upload changes nothing of it (status, result, acceptance, clocks)."""
    grant_with_site_report_owed(client, token, code, platform)

    def matter_and_clocks():
        with platform.session_factory() as s:
            pm = project_matter(s, code)
            return ((pm.status, pm.result, pm.accepted_at, pm.concluded_at, pm.light),
                    [(c.id, c.state, c.due_at, c.stopped_at) for c in s.scalars(
                        select(Clock).where(Clock.project_id == pm.project_id).order_by(Clock.id))])

    before = matter_and_clocks()
    assert before[0][0] == "concluded"
    assert upload(client, token, code, material="other_proof").status_code == 409  # the matter has ended
    assert upload(client, token, code, material="survey_map", data=PNG + b"x").status_code == 409  # accepted, final
    assert upload(client, token, code, material="site_report").status_code == 201  # what is owed
    assert upload(client, token, code, material="site_report", data=PDF + b"v2").status_code == 409  # no longer owed
    assert matter_and_clocks() == before
    platform.clock.set(platform.clock.now() + timedelta(days=31))
    sweep(platform)
    assert _commitment_states(platform, code) == [("site_report", "fulfilled")]
