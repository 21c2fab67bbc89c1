"""What changes, suspensions and back-filled acts do to the running procedures, and the
progress instants every matter carries (issue: the matter lifecycle)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from io import BytesIO

from sqlalchemy import func, select

from engine.models import AuditEvent, BackfilledAct, Hold, ProcessInstance, ProjectMatter, Task
from tests.integration.helpers import TINY_PDF, declare, supply_materials
from tests.integration.test_clocks import _to_acceptance, at, clock_of, complete, dispatch, project, set_now, tasks


def change(client, token, code, body, user="applicant"):
    return client.post(f"/api/v1/projects/{code}/changes", json=body, headers=token(user))


def test_a_suspended_projects_clocks_stop_counting_until_it_resumes(client, token, clock):
    clock.set(at(2026, 3, 2, 9))  # Monday
    code = declare(client, token)["project_code"]
    due = datetime.fromisoformat(clock_of(project(client, token, code), "dispatch")["due_at"])
    assert due == at(2026, 3, 3, 9)
    clock.set(at(2026, 3, 2, 15))
    assert change(client, token, code, {"kind": "suspension", "reason": "资金未落实"}).status_code == 201
    paused = clock_of(project(client, token, code), "dispatch")
    assert paused["state"] == "paused" and paused["due_at"] is None
    # suspended across a weekend: Monday 15:00 to Wednesday 15:00 is two working days not counted
    set_now(client, token, at(2026, 3, 4, 15))
    assert not [a for a in client.get("/api/v1/alerts", query_string={"project_code": code},
                                       headers=token("supervisor")).get_json()["items"]]
    assert change(client, token, code, {"kind": "resumption", "reason": "资金已落实"}).status_code == 201
    resumed = clock_of(project(client, token, code), "dispatch")
    assert resumed["state"] == "running"
    assert datetime.fromisoformat(resumed["due_at"]) == at(2026, 3, 5, 9)  # 18 hours were left at the suspension


def test_a_major_change_closes_the_old_codes_matters_and_restarts_them_under_the_new_code(client, token, platform):
    code = declare(client, token, new_land_use=True)["project_code"]
    _to_acceptance(client, token, code)
    assert tasks(client, token, "land", project_code=code)
    r = change(client, token, code, {"kind": "major_change", "reason": "建设规模重大调整", "changes": {"investment": "50000"}})
    assert r.status_code == 201, r.get_json()
    new_code = r.get_json()["project_code"]
    assert new_code != code
    old = project(client, token, code)
    assert old["status"] == "superseded"
    assert {m["status"] for m in old["matters"]} == {"closed"}
    assert all(c["state"] == "stopped" for c in old["clocks"])
    assert not tasks(client, token, "land", project_code=code)
    with platform.session_factory() as s:
        old_id = s.scalar(select(ProcessInstance.project_id).join(Task, Task.instance_id == ProcessInstance.id)
                          .where(Task.project_code == code).limit(1))
        statuses = set(s.scalars(select(ProcessInstance.status).where(ProcessInstance.project_id == old_id)))
        reasons = {pm.result["reason"] for pm in s.scalars(select(ProjectMatter).where(ProjectMatter.project_id == old_id))}
    assert statuses == {"cancelled"}
    assert reasons == {f"重新赋码为 {new_code}：建设规模重大调整"}
    new = project(client, token, new_code)
    assert new["status"] == "declared" and {m["status"] for m in new["matters"]} == {"notified"}
    assert [t["name"] for t in tasks(client, token, "window", project_code=new_code)] == ["window_review"]


def test_a_back_filled_act_needs_a_reason_and_is_flagged(client, token, platform, clock):
    clock.set(at(2026, 3, 2, 9))
    code = declare(client, token)["project_code"]
    window = tasks(client, token, "window", project_code=code)[0]
    data = {"window_decision": "dispatch", "departments": window["context"]["departments"]}

    def submit(**extra):
        return client.post(f"/api/v1/tasks/{window['id']}/complete", headers=token("window"),
                           json={"data": data, "version": window["version"], **extra})

    clock.set(at(2026, 3, 2, 16))
    with platform.session_factory() as s:
        events = s.scalar(select(func.count()).select_from(AuditEvent))
    no_reason = submit(effective_at=at(2026, 3, 2, 10).isoformat())
    assert no_reason.status_code == 422 and "backfill_reason" in no_reason.get_json()["errors"]
    future = submit(effective_at=at(2026, 3, 2, 17).isoformat(), backfill_reason="线下已办")
    assert future.status_code == 422 and "effective_at" in future.get_json()["errors"]
    before_task = submit(effective_at=at(2026, 3, 1, 10).isoformat(), backfill_reason="线下已办")
    assert before_task.status_code == 422 and "effective_at" in before_task.get_json()["errors"]
    orphan_reason = submit(backfill_reason="线下已办")
    assert orphan_reason.status_code == 422 and "effective_at" in orphan_reason.get_json()["errors"]
    with platform.session_factory() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == events
        assert s.scalar(select(func.count()).select_from(BackfilledAct)) == 0

    ok = submit(effective_at=at(2026, 3, 2, 10).isoformat(), backfill_reason="系统故障，上午已在窗口线下批分")
    assert ok.status_code == 200, ok.get_json()
    with platform.session_factory() as s:
        act = s.scalars(select(BackfilledAct)).one()
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "task.complete",
                                                   AuditEvent.project_code == code)).one()
    assert (act.project_code, act.department_code, act.act, act.actor) == (code, "window", "task:window_review", "window")
    assert act.effective_at == at(2026, 3, 2, 10) and act.entered_at == at(2026, 3, 2, 16)
    assert act.reason == "系统故障，上午已在窗口线下批分"
    assert event.summary["backfilled"] == {"effective_at": at(2026, 3, 2, 10).isoformat(), "reason": act.reason}


def test_matters_carry_received_accepted_and_concluded_instants(client, token, platform, clock):
    clock.set(at(2026, 3, 2, 9))
    code = declare(client, token, new_land_use=True)["project_code"]
    dispatch(client, token, code, departments=["drc", "land"])
    clock.set(at(2026, 3, 2, 10))
    for user in ("drc", "land"):
        complete(client, token, user, "department_reply", {"reply_outcome": "accepted", "reply_comment": "受理"}, code)
    clock.set(at(2026, 3, 2, 11))
    complete(client, token, "land", "pre_check", {"precheck_result": "pass", "code_verified": True, "within_competence": True},
             code, "land_pre_review")
    acceptance = clock_of(project(client, token, code), "acceptance")
    set_now(client, token, datetime.fromisoformat(acceptance["due_at"]) + timedelta(minutes=5))  # deemed acceptance
    clock.set(at(2026, 3, 16, 9))
    complete(client, token, "land", "handling", {"handling_action": "decide", "handling_opinion": "同意"}, code)
    complete(client, token, "land", "decision", {"decision": "approve", "document_number": "川自然资预〔2026〕3号",
                                                 "document_title": "用地预审与选址意见书", "document_date": "2026-03-16",
                                                 "main_content": "同意"}, code)
    with platform.session_factory() as s:
        land = s.scalars(select(ProjectMatter).where(ProjectMatter.matter_code == "land_pre_review")).one()
    assert land.received_at == at(2026, 3, 2, 10)
    assert land.accepted_at == at(2026, 3, 2, 11)  # deemed: the pre-check-passed instant
    assert land.concluded_at == at(2026, 3, 16, 9) and land.status == "concluded"


def _upload(client, token, code, matter, material):
    r = client.post(f"/api/v1/projects/{code}/materials", headers=token("applicant"), content_type="multipart/form-data",
                    data={"matter_code": matter, "material": material, "file": (BytesIO(TINY_PDF + material.encode()), "材料.pdf")})
    assert r.status_code == 201, r.get_json()


def _land_at_acceptance_with_a_gap(client, token, clock) -> str:
    """A filing and a land pre-review, every material but the one the guide tolerates a gap
    for (land_ownership) supplied, both departments replied, land's pre-check passed."""
    clock.set(at(2026, 3, 2, 9))
    code = declare(client, token, new_land_use=True, building_works=False)["project_code"]
    supply_materials(client, token, code, "enterprise_filing")
    guide = client.get("/api/v1/portal/guides/land_pre_review").get_json()
    for item in guide["materials"]:
        if item["required"] and not item["gap_tolerable"]:
            _upload(client, token, code, "land_pre_review", item["code"])
    dispatch(client, token, code, departments=["drc", "land"])
    for user in ("drc", "land"):
        complete(client, token, user, "department_reply", {"reply_outcome": "accepted", "reply_comment": "受理"}, code)
    complete(client, token, "land", "pre_check", {"precheck_result": "pass", "code_verified": True, "within_competence": True},
             code, "land_pre_review")
    return code


def test_missing_materials_block_acceptance_a_tolerated_gap_is_not_counted_and_a_lapsed_commitment_ends_the_matter(
        client, token, platform, clock):
    code = _land_at_acceptance_with_a_gap(client, token, clock)
    acceptance = [t for t in tasks(client, token, "land", project_code=code) if t["name"] == "acceptance"][0]
    refused = client.post(f"/api/v1/tasks/{acceptance['id']}/complete", headers=token("land"),
                          json={"data": {"acceptance_decision": "accept"}, "version": acceptance["version"]})
    assert refused.status_code == 422
    missing = refused.get_json()["errors"]["materials"]
    assert len(missing) == 1 and missing[0].startswith("缺少必要材料：") and missing[0].endswith("(land_ownership)")

    # the project unit commits to supply the tolerated-gap material: the matter's clocks stop counting
    clock.set(at(2026, 3, 3, 9))
    r = client.post(f"/api/v1/projects/{code}/materials/commitments", headers=token("applicant"), json={
        "matter_code": "land_pre_review", "material": "land_ownership", "commitment": "承诺十个工作日内补交土地权属证明",
        "deadline": at(2026, 3, 10, 17).isoformat()})
    assert r.status_code == 201, r.get_json()
    held = clock_of(project(client, token, code), "acceptance")
    assert held["state"] == "paused" and held["due_at"] is None
    complete(client, token, "land", "acceptance", {"acceptance_decision": "accept"}, code)  # 容缺受理
    with platform.session_factory() as s:
        land = s.scalars(select(ProjectMatter).where(ProjectMatter.matter_code == "land_pre_review")).one()
        assert land.accepted_at == at(2026, 3, 3, 9) and land.status == "handling"
    # 容缺预审环节不计: only until acceptance. The promised time limit counts from it, the
    # commitment still open; and no commitment is made after acceptance.
    promised = clock_of(project(client, token, code), "promised")
    assert promised["state"] == "running" and promised["due_at"] is not None, promised
    again = client.post(f"/api/v1/projects/{code}/materials/commitments", headers=token("applicant"), json={
        "matter_code": "land_pre_review", "material": "land_ownership", "commitment": "再次承诺",
        "deadline": at(2026, 3, 20, 17).isoformat()})
    assert again.status_code == 409, again.get_json()

    set_now(client, token, at(2026, 3, 10, 18))  # the deadline passed with the material still missing
    with platform.session_factory() as s:
        land = s.scalars(select(ProjectMatter).where(ProjectMatter.matter_code == "land_pre_review")).one()
        instance = s.get(ProcessInstance, land.instance_id)
    assert land.status == "terminated" and land.result["decision"] == "terminated" and "land_ownership" in land.result["reason"]
    assert instance.status == "cancelled"
    assert not tasks(client, token, "land", project_code=code)
    assert all(c["state"] == "stopped" for c in project(client, token, code)["clocks"] if c["matter_code"] == "land_pre_review")
    with platform.session_factory() as s:  # the tolerated gap's hold ended at acceptance
        assert [(h.reason, h.ended_at) for h in s.scalars(select(Hold).where(Hold.matter_code == "land_pre_review"))] == [
            ("tolerated_gap", at(2026, 3, 3, 9))]


def test_a_wait_on_a_prerequisite_that_was_terminated_ends(client, token, platform, clock):
    """等待前置情况消除后则恢复计时: a prerequisite ended in any way (here terminated, its
    tolerated-gap commitment lapsed) ends the wait, and the waiting matter's clock counts."""
    code = _land_at_acceptance_with_a_gap(client, token, clock)
    r = client.post(f"/api/v1/projects/{code}/materials/commitments", headers=token("applicant"), json={
        "matter_code": "land_pre_review", "material": "land_ownership", "commitment": "承诺补交",
        "deadline": at(2026, 3, 6, 17).isoformat()})
    assert r.status_code == 201, r.get_json()
    complete(client, token, "land", "acceptance", {"acceptance_decision": "accept"}, code)
    r = client.post(f"/api/v1/projects/{code}/matters/enterprise_filing/prerequisite-wait", headers=token("drc"),
                    json={"prerequisite": "land_pre_review"})
    assert r.status_code == 200, r.get_json()
    assert clock_of(project(client, token, code), "filing")["state"] == "paused"

    set_now(client, token, at(2026, 3, 9, 9))  # the commitment lapsed: land terminated; the next sweep ends the wait
    set_now(client, token, at(2026, 3, 9, 9, 1))
    body = project(client, token, code)
    assert {m["matter_code"]: m["status"] for m in body["matters"]}["land_pre_review"] == "terminated"
    assert clock_of(body, "filing")["state"] == "running"
    with platform.session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Hold).where(Hold.ended_at.is_(None))) == 0


def test_a_commitment_that_lapses_before_the_department_receives_the_matter_ends_the_gap(client, token, platform, clock):
    """The gap was tolerated until the deadline: lapsed before receipt, it holds nothing,
    and the matter's clocks count from the start (acceptance then needs the material)."""
    clock.set(at(2026, 3, 2, 9))
    code = declare(client, token, new_land_use=True, building_works=False)["project_code"]
    r = client.post(f"/api/v1/projects/{code}/materials/commitments", headers=token("applicant"), json={
        "matter_code": "land_pre_review", "material": "land_ownership", "commitment": "承诺两日内补交土地权属证明",
        "deadline": at(2026, 3, 3, 17).isoformat()})
    assert r.status_code == 201, r.get_json()
    assert [h["reason"] for h in project(client, token, code)["holds"] if h["ended_at"] is None] == ["tolerated_gap"]
    swept = set_now(client, token, at(2026, 3, 3, 18))
    assert swept["sweep"].get("commitments_lapsed") == 1
    assert [(h["reason"], h["ended_at"]) for h in project(client, token, code)["holds"]] == [
        ("tolerated_gap", at(2026, 3, 3, 18).astimezone(timezone.utc).isoformat())]
    supply_materials(client, token, code, "enterprise_filing")
    dispatch(client, token, code, departments=["drc", "land"])
    for user in ("drc", "land"):
        complete(client, token, user, "department_reply", {"reply_outcome": "accepted", "reply_comment": "受理"}, code)
    pre_review = clock_of(project(client, token, code), "pre_review", "land")
    assert pre_review["state"] == "running" and pre_review["pauses"] == [] and pre_review["due_at"] is not None
