"""A procedure that fails stops its clocks until the operator's retry.

The departments cannot act on an errored instance, so the platform's failure is not
counted against them (pause ``platform_failure``): a hold that comes or goes meanwhile
leaves the clocks still; the retry hands them to a hold still open, or lets them count
on, and re-arms the timers before its pending action. And a write beside the workflow
first meets the matter's limits already passed (a commitment after the acceptance limit
finds the matter deemed accepted).
"""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from engine.models import Clock, ProcessInstance
from engine.runtime import PLATFORM_FAILURE
from engine.sweep import sweep
from tests.integration.helpers import declare, supply_all_materials
from tests.integration.test_limits_before_answers import (CHINA, DISPATCHED, LIMIT, complete, find, project, replies,
                                                           reply_stopped_at)
from tests.integration.test_materials_api import (  # noqa: F401 - fixtures
    code, commit, complete as m_complete, published, to_handling, upload as m_upload,
)
from tests.integration.test_workflow_api import (ACCEPT_MATERIALS, FILING_PROJECT, LAND, LAND_PROJECT, land_version,
                                                 master_version, to_matters, upload)
from tests.integration.test_workflow_api import complete as wf_complete
from tests.integration.test_workflow_api import find as wf_find

PRE_CHECK_PASS = {"precheck_result": "pass", "code_verified": True, "within_competence": True}


def _errored_master(client, token, clock):
    """Dispatched Mon 10:00; housing's on-time reply (Tue 10:00) fails the master (a broken
    record_reply); drc and land stay silent."""
    assert upload(client, token, "operator", "project_master.bpmn",
                  master_version("boom = 1 / 0 if department == 'housing' else 0")).status_code == 201
    clock.set(DISPATCHED - timedelta(hours=1))
    code_ = declare(client, token, **FILING_PROJECT)["project_code"]
    supply_all_materials(client, token, code_)
    clock.set(DISPATCHED)
    departments = find(client, token, "window", "window_review", code_)["context"]["departments"]
    assert complete(client, token, "window", "window_review", code_,
                    {"window_decision": "dispatch", "departments": departments}).status_code == 200
    clock.set(DISPATCHED + timedelta(days=1))
    r = complete(client, token, "housing", "department_reply", code_, {"reply_outcome": "no_matter", "reply_comment": "无"})
    assert r.status_code == 202 and r.get_json()["instance_status"] == "error", r.get_json()
    return code_


def _change(client, token, code_, kind):
    r = client.post(f"/api/v1/projects/{code_}/changes", headers=token("applicant"), json={"kind": kind, "reason": "资金未落实"})
    assert r.status_code == 201, r.get_json()


def _retry_master(client, token, platform):
    assert upload(client, token, "operator", "project_master.bpmn", master_version("boom = 0")).status_code == 201
    with platform.session_factory() as s:
        master = s.scalar(select(ProcessInstance.id).where(ProcessInstance.kind == "master"))
    r = client.post(f"/api/v1/instances/{master}/retry", headers=token("operator"))
    assert r.status_code == 200, r.get_json()


def _land_reply(platform):
    with platform.session_factory() as s:
        c = s.scalar(select(Clock).where(Clock.kind == "reply", Clock.department_code == "land"))
        return c.state, [(p["reason"], p["end"] is None) for p in c.pauses], c.due_at


def _land_matter(client, token, code_):
    return {m["matter_code"]: m["status"] for m in project(client, token, code_)["matters"]}["land_pre_review"]


def test_a_failed_procedure_stops_its_clocks_until_the_retry(client, token, clock, platform):
    """housing replies a day before its limit, but its reply fails the master; land stays
    silent. The operator retries two hours after the limit: the failure's time is not
    counted against either department. housing's reply, applied at the retry, is on time;
    land's limit has moved by the time the master stood still, and its automatic reply
    comes at the moved limit, counted automatic, not late."""
    _errored_master(client, token, clock)
    clock.set(LIMIT + timedelta(hours=2))
    sweep(platform)  # no light while the master stands still
    _retry_master(client, token, platform)
    with platform.session_factory() as session:
        reply = {c.department_code: c for c in session.scalars(select(Clock).where(Clock.kind == "reply"))}
    assert reply["housing"].state == "stopped" and reply["housing"].light == "green"
    assert [p["reason"] for p in reply["land"].pauses] == [PLATFORM_FAILURE]
    # Tue 10:00 → Thu 12:00 is 50 working hours; from Thu 10:00, 50 more: Mon 03-09 12:00
    moved = datetime(2026, 3, 9, 12, tzinfo=CHINA)
    assert reply["land"].state == "running" and reply["land"].due_at == moved
    clock.set(moved + timedelta(minutes=1))
    sweep(platform)
    assert replies(client, token, "land") == (1, 0)
    assert reply_stopped_at(platform, "land") - moved < timedelta(seconds=1)


# --- holds coming and going while an instance is errored ---------------------------------------

def test_a_suspension_resumed_while_the_master_is_errored_leaves_its_clocks_still_until_the_retry(
        client, token, clock, platform):
    """The project is suspended while the master is errored (Tue 11:00) and resumes while it
    is still errored (Tue 12:00): land's reply clock stays still until the retry (Thu 12:00),
    then counts what was left: 48 working hours (24 used before the failure), due Mon 12:00.
    (A suspended project is not handled, so no step fails while it is suspended.)"""
    code_ = _errored_master(client, token, clock)
    clock.set(DISPATCHED + timedelta(days=1, hours=1))
    _change(client, token, code_, "suspension")
    clock.set(DISPATCHED + timedelta(days=1, hours=2))
    _change(client, token, code_, "resumption")
    state, _, _ = _land_reply(platform)
    clock.set(LIMIT + timedelta(hours=2))
    _retry_master(client, token, platform)
    _, _, due_after = _land_reply(platform)
    assert state == "paused", "land's reply clock counts while the master is errored"
    assert _land_matter(client, token, code_) == "notified", "land was auto-replied at the retry"
    assert due_after == datetime(2026, 3, 9, 12, tzinfo=CHINA)


def test_a_suspension_open_at_the_retry_keeps_the_silent_departments_limit(client, token, clock, platform):
    """The retry hands the clocks to the suspension still open."""
    code_ = _errored_master(client, token, clock)
    clock.set(DISPATCHED + timedelta(days=1, hours=2))
    _change(client, token, code_, "suspension")
    clock.set(LIMIT + timedelta(hours=2))
    _retry_master(client, token, platform)
    state, pauses, _ = _land_reply(platform)
    assert _land_matter(client, token, code_) == "notified", "land auto-replied (no_matter) while suspended"
    assert state == "paused" and pauses[-1] == ("suspension", True)


# --- a write beside the workflow meets the limits already passed first -------------------------

def test_a_commitment_after_the_acceptance_limit_is_refused(client, token, code, platform):
    """Nobody acts on acceptance for 5 working days: deemed accepted at the limit (三（五）).
    Half an hour later, before any sweep, the unit's commitment to a gap meets that first:
    no commitment after acceptance (容缺预审环节不计 only before it)."""
    to_handling(client, token, code)
    assert m_upload(client, token, code, material="application_form").status_code == 201
    assert m_upload(client, token, code, material="survey_map").status_code == 201
    m_complete(client, token, "land", "pre_check", code, PRE_CHECK_PASS)
    [acceptance] = [c for c in project(client, token, code)["clocks"] if c["kind"] == "acceptance"]
    platform.clock.set(datetime.fromisoformat(acceptance["due_at"]) + timedelta(minutes=30))
    r = commit(client, token, code, platform)
    clocks_ = [(c["kind"], c["state"], [p["reason"] for p in c["pauses"]])
               for c in project(client, token, code)["clocks"] if c["matter_code"] == "land_pre_review"]
    assert r.status_code == 409, (r.get_json(), clocks_)
    assert ("acceptance", "running", []) in clocks_  # refused: nothing changed; the sweep deems the acceptance


def test_a_prerequisite_wait_can_be_recorded_while_the_matters_instance_is_errored(client, token, platform):
    """A wait recorded while the instance is errored takes the clock over at the retry."""
    failing = land_version(ACCEPT_MATERIALS, ACCEPT_MATERIALS.replace("<bpmn:script>", "<bpmn:script>ratio = 1 / 0\n"))
    assert upload(client, token, "operator", LAND, failing).status_code == 201
    code_ = to_matters(client, token, **FILING_PROJECT)
    r = wf_complete(client, token, "land", wf_find(client, token, "land", "pre_check", code_), PRE_CHECK_PASS)
    assert r.status_code == 202, r.get_json()
    r = client.post(f"/api/v1/projects/{code_}/matters/land_pre_review/prerequisite-wait", headers=token("land"),
                    json={"prerequisite": "enterprise_filing"})
    assert r.status_code == 200, r.get_json()
    fixed = land_version(ACCEPT_MATERIALS, ACCEPT_MATERIALS.replace("<bpmn:script>", "<bpmn:script>ratio = 1 / 1\n"))
    assert upload(client, token, "operator", LAND, fixed).status_code == 201
    with platform.session_factory() as s:
        errored = s.scalar(select(ProcessInstance.id).where(ProcessInstance.status == "error"))
    assert client.post(f"/api/v1/instances/{errored}/retry", headers=token("operator")).status_code == 200
    with platform.session_factory() as s:
        acceptance = s.scalar(select(Clock).where(Clock.kind == "acceptance"))
    assert acceptance.state == "paused" and acceptance.pauses[-1]["reason"] == "prerequisite:enterprise_filing"


def test_an_errored_instances_task_shows_no_deadline_its_clock_no_longer_has(client, token, platform):
    """No limit runs while the instance is errored: its tasks show none (the list sorts and
    filters on it)."""
    failing = land_version(ACCEPT_MATERIALS, ACCEPT_MATERIALS.replace("<bpmn:script>", "<bpmn:script>ratio = 1 / 0\n"))
    assert upload(client, token, "operator", LAND, failing).status_code == 201
    code_ = to_matters(client, token, **LAND_PROJECT)
    r = wf_complete(client, token, "land", wf_find(client, token, "land", "pre_check", code_), PRE_CHECK_PASS)
    assert r.status_code == 202, r.get_json()
    [pre_review] = [c for c in project(client, token, code_)["clocks"] if c["kind"] == "pre_review"]
    task = wf_find(client, token, "land", "pre_check", code_)
    assert pre_review["due_at"] is None and task["due_at"] is None
