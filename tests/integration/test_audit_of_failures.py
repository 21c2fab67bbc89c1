"""痕迹管理 where a step fails, a retry applies it, or the platform acts alone: the trail
names the officer's act with its data and checks (not the operator who retried it), a
failure is said in the trail, an automatic reply is said as such, and what a failed
sign-in typed is not kept. On SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime
from io import BytesIO

from sqlalchemy import select

from engine import audit
from engine.models import AuditEvent, BackfilledAct, Material
from engine.sweep import sweep
from tests.integration.helpers import TINY_PDF, declare
from tests.integration.test_workflow_api import (
    ACCEPT, ACCEPT_MATERIALS, ACCEPTED, DECIDE, FILING_PROJECT, LAND as LAND_BPMN, LAND_PROJECT, PRE_CHECK_PASS,
    RESTART_ACCEPTANCE,
    REPLY_ACCEPTED, SHANGHAI, approve, complete, dispatch, find, land_version, matter_instances, to_matters, upload, work,
)

LAND = "land_pre_review"
FAILING_PRE_CHECK = land_version(ACCEPT_MATERIALS, ACCEPT_MATERIALS.replace("<bpmn:script>", "<bpmn:script>ratio = 1 / 0\n"))
FIXED_PRE_CHECK = land_version(ACCEPT_MATERIALS, ACCEPT_MATERIALS.replace("<bpmn:script>", "<bpmn:script>ratio = 1 / 1\n"))


def _deploy(client, token, content: bytes) -> None:
    r = upload(client, token, "operator", LAND_BPMN, content)
    assert r.status_code == 201, r.get_json()


def _retry(client, token) -> dict:
    [errored] = matter_instances(client, token, status="error")
    r = client.post(f"/api/v1/instances/{errored['id']}/retry", headers=token("operator"))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def _trail(platform, code: str) -> list[AuditEvent]:
    with platform.session_factory() as s:
        assert audit.verify(s).ok
        return list(s.scalars(select(AuditEvent).where(AuditEvent.project_code == code).order_by(AuditEvent.seq)))


def test_a_failed_step_and_the_retry_that_applies_it_are_in_the_trail_under_whose_act_they_are(client, token, platform):
    _deploy(client, token, FAILING_PRE_CHECK)
    code = to_matters(client, token, **LAND_PROJECT)
    task = find(client, token, "land", "pre_check", code)
    assert complete(client, token, "land", task, PRE_CHECK_PASS).status_code == 202
    failed = _trail(platform, code)[-1]
    assert (failed.actor, failed.action, failed.summary["pending"]) == ("land", "instance.error", "complete")
    assert "1 / 0" not in str(failed.summary)  # the script's message is for operators (GET /instances)

    _deploy(client, token, FIXED_PRE_CHECK)
    assert _retry(client, token)["status"] == "running"
    done = [e for e in _trail(platform, code) if e.action == "task.complete" and e.target == "task:pre_check"]
    assert len(done) == 1 and done[0].actor == "land"
    assert done[0].summary["data"]["precheck_result"] == "pass"
    assert done[0].summary["applied_at_retry"]["by"] == "operator"
    assert datetime.fromisoformat(done[0].summary["applied_at_retry"]["submitted_at"]) <= done[0].at


def test_a_retry_that_fails_again_is_in_the_trail(client, token, platform):
    _deploy(client, token, FAILING_PRE_CHECK)
    code = to_matters(client, token, **LAND_PROJECT)
    assert complete(client, token, "land", find(client, token, "land", "pre_check", code), PRE_CHECK_PASS).status_code == 202
    _deploy(client, token, land_version(ACCEPT_MATERIALS, ACCEPT_MATERIALS.replace("<bpmn:script>", "<bpmn:script>ratio = 2 / 0\n")))
    assert _retry(client, token)["status"] == "error"
    last = _trail(platform, code)[-1]
    assert (last.actor, last.action) == ("operator", "instance.error")


def test_a_backfilled_act_whose_step_failed_keeps_its_backfill_at_the_retry(client, token, platform, clock):
    _deploy(client, token, FAILING_PRE_CHECK)
    code = to_matters(client, token, **LAND_PROJECT)
    task = find(client, token, "land", "pre_check", code)
    effective = platform.clock.now()
    clock.advance(hours=2)
    r = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=token("land"),
                    json={"data": PRE_CHECK_PASS, "version": task["version"], "effective_at": effective.isoformat(),
                          "backfill_reason": "系统故障，线下先行办理"})
    assert r.status_code == 202, r.get_json()
    _deploy(client, token, FIXED_PRE_CHECK)
    _retry(client, token)
    with platform.session_factory() as s:
        [act] = s.scalars(select(BackfilledAct).where(BackfilledAct.project_code == code)).all()
    assert (act.actor, act.reason, act.effective_at) == ("land", "系统故障，线下先行办理", effective)
    [done] = [e for e in _trail(platform, code) if e.action == "task.complete" and e.target == "task:pre_check"]
    assert done.summary["backfilled"]["reason"] == "系统故障，线下先行办理"


def test_an_acceptance_applied_by_the_retry_makes_the_materials_final_as_any_acceptance(client, token, platform):
    failing = land_version(ACCEPTED, ACCEPTED.replace("</bpmn:script>", "\nlate = 1 / 0</bpmn:script>"))
    _deploy(client, token, failing)
    code = to_matters(client, token, **LAND_PROJECT)
    work(client, token, "land", "pre_check", code, PRE_CHECK_PASS, LAND)
    assert complete(client, token, "land", find(client, token, "land", "acceptance", code, LAND), ACCEPT).status_code == 202
    _deploy(client, token, land_version(ACCEPTED, ACCEPTED.replace("</bpmn:script>", "\nlate = 1 / 1</bpmn:script>")))
    _retry(client, token)
    with platform.session_factory() as s:
        assert {m.status for m in s.scalars(select(Material).where(Material.project_code == code, Material.matter_code == LAND))} == {"accepted"}
    assert [e.actor for e in _trail(platform, code) if e.action == "material.accepted"] == ["land"]  # the officer accepted them
    item = next(m for m in client.get(f"/api/v1/portal/guides/{LAND}").get_json()["materials"] if m["required"])
    r = client.post(f"/api/v1/projects/{code}/materials", headers=token("applicant"), content_type="multipart/form-data",
                    data={"matter_code": LAND, "material": item["code"], "file": (BytesIO(TINY_PDF + b"swap"), "swap.pdf")})
    assert r.status_code == 409, r.get_json()


def test_a_decision_applied_by_the_retry_concludes_the_matter_as_the_officers_act(client, token, platform):
    copy = "<bpmn:script>copy_to = ['drc', 'housing']"
    _deploy(client, token, land_version(copy, "<bpmn:script>boom = 1 / 0\n" + copy[len("<bpmn:script>"):]))
    code = to_matters(client, token, **LAND_PROJECT)
    for name, data in (("pre_check", PRE_CHECK_PASS), ("acceptance", ACCEPT), ("handling", DECIDE)):
        work(client, token, "land", name, code, data, LAND)
    assert complete(client, token, "land", find(client, token, "land", "decision", code, LAND), approve("land")).status_code == 202
    _deploy(client, token, land_version(copy, "<bpmn:script>boom = 0\n" + copy[len("<bpmn:script>"):]))
    _retry(client, token)
    trail = _trail(platform, code)
    assert [e.actor for e in trail if e.action == "matter.concluded"] == ["land"]
    assert [e.actor for e in trail if e.action == "instance.retry"] == ["operator"]


def test_a_departments_automatic_reply_is_in_the_trail_as_overdue(client, token, platform, clock):
    """004 三（五）: 逾期不回复（自动回复，但必须标注为逾期未回复）."""
    code = declare(client, token, **FILING_PROJECT)["project_code"]
    dispatch(client, token, code)
    work(client, token, "drc", "department_reply", code, REPLY_ACCEPTED)
    work(client, token, "housing", "department_reply", code, REPLY_ACCEPTED)
    clock.set(datetime(2026, 3, 5, 9, 30, tzinfo=SHANGHAI))
    sweep(platform)
    [silent] = [e for e in _trail(platform, code) if e.action == "matter.no_matter"]
    assert (silent.actor, silent.target, silent.summary) == (
        "platform", f"matter:{LAND}", {"department": "land", "reply": "overdue_no_reply"})


def test_a_failed_sign_in_keeps_neither_what_was_typed_nor_a_name_for_the_one_who_tried(client, platform):
    for username in ("drc", "My-Secret-Pass-2026"):
        r = client.post("/api/v1/auth/token", json={"username": username, "password": "wrong-password"})
        assert r.status_code == 401
    with platform.session_factory() as s:
        failures = [(e.actor, e.target) for e in s.scalars(select(AuditEvent).where(AuditEvent.action == "auth.failure")
                                                            .order_by(AuditEvent.seq))]
        assert audit.verify(s).ok
    assert failures == [("anonymous", "user:drc"), ("anonymous", "user:(unknown)")]


def test_an_operator_can_discard_a_failed_completion_so_the_officer_acts_again(client, token, platform):
    """The retry need not apply what failed: discarded, the officer's completion is kept in
    the trail only, the task is back on the officer's list with its limit, and the officer
    answers it anew."""
    _deploy(client, token, FAILING_PRE_CHECK)
    code = to_matters(client, token, **LAND_PROJECT)
    task = find(client, token, "land", "pre_check", code)
    assert complete(client, token, "land", task, PRE_CHECK_PASS).status_code == 202
    assert find(client, token, "land", "pre_check", code)["due_at"] is None  # the failure stopped its clock
    _deploy(client, token, FIXED_PRE_CHECK)
    [errored] = matter_instances(client, token, status="error")
    r = client.post(f"/api/v1/instances/{errored['id']}/retry", headers=token("operator"), json={"pending": "discard"})
    assert r.status_code == 200 and r.get_json()["status"] == "running", r.get_json()

    again = find(client, token, "land", "pre_check", code)
    assert again["id"] == task["id"] and again["due_at"] is not None
    retried = [e for e in _trail(platform, code) if e.action == "instance.retry"]
    assert retried[-1].actor == "operator"
    assert retried[-1].summary["discarded"]["actor"] == "land"
    assert retried[-1].summary["discarded"]["data"]["precheck_result"] == "pass"
    assert not [e for e in _trail(platform, code) if e.action == "task.complete" and e.target == "task:pre_check"]

    work(client, token, "land", "pre_check", code, PRE_CHECK_PASS, LAND)  # the officer's new answer, on the fix
    find(client, token, "land", "acceptance", code, LAND)
    [done] = [e for e in _trail(platform, code) if e.action == "task.complete" and e.target == "task:pre_check"]
    assert done.actor == "land" and "applied_at_retry" not in done.summary


def test_only_an_officers_failed_completion_can_be_discarded(client, token, platform, clock):
    """A timer's failure has no completion to drop (409, nothing changed); a value other
    than apply or discard is 422 naming the field."""
    failing = land_version("accepted_as = 'deemed'", "accepted_as = 'deemed'\nratio = 1 / 0")
    _deploy(client, token, failing)
    code = to_matters(client, token, **LAND_PROJECT)
    work(client, token, "land", "pre_check", code, PRE_CHECK_PASS, LAND)
    clock.advance(days=30)  # past the acceptance clock: the deemed acceptance fails
    sweep(platform)
    [errored] = matter_instances(client, token, status="error")
    before = len(_trail(platform, code))
    r = client.post(f"/api/v1/instances/{errored['id']}/retry", headers=token("operator"), json={"pending": "discard"})
    assert r.status_code == 409, r.get_json()
    r = client.post(f"/api/v1/instances/{errored['id']}/retry", headers=token("operator"), json={"pending": "drop"})
    assert r.status_code == 422 and "pending" in str(r.get_json()), r.get_json()
    assert [i["id"] for i in matter_instances(client, token, status="error")] == [errored["id"]]
    assert len(_trail(platform, code)) == before


def test_the_project_units_failed_submission_is_applied_never_discarded(client, token, platform):
    """The unit answered a correction and was told it is submitted: an operator may not
    drop it (409, nothing changed); the retry applies it after a fix."""
    _deploy(client, token, land_version(RESTART_ACCEPTANCE, RESTART_ACCEPTANCE + "\nratio = 1 / 0"))
    code = to_matters(client, token, **LAND_PROJECT)
    work(client, token, "land", "pre_check", code, PRE_CHECK_PASS, LAND)
    work(client, token, "land", "acceptance", code,
         {"acceptance_decision": "correction", "correction_items": [{"material": "site_plan", "note": "补充用地红线图"}]}, LAND)
    supply = find(client, token, "applicant", "supply_materials", code, LAND)
    assert complete(client, token, "applicant", supply, {"supplement_note": "已补充用地红线图"}).status_code == 202
    [errored] = matter_instances(client, token, status="error")
    before = len(_trail(platform, code))
    r = client.post(f"/api/v1/instances/{errored['id']}/retry", headers=token("operator"), json={"pending": "discard"})
    assert r.status_code == 409, r.get_json()
    assert len(_trail(platform, code)) == before
    _deploy(client, token, land_version(RESTART_ACCEPTANCE, RESTART_ACCEPTANCE + "\nratio = 1 / 1"))
    assert _retry(client, token)["status"] == "running"
    [done] = [e for e in _trail(platform, code) if e.action == "task.complete" and e.target == "task:supply_materials"]
    assert done.actor == "applicant"
