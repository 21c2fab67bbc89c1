"""Accounts administration by the operator: project units (credit codes) and users."""
from __future__ import annotations

import pytest
from sqlalchemy import select
from stdnum.cn import uscc

from engine.models import AuditEvent, Task

from tests.integration.helpers import declare, snapshot
from tests.integration.test_workflow_api import FILING_PROJECT, dispatch, find

GOOD_CODE = "91510411MA6233333" + uscc.calc_check_digit("91510411MA6233333")


def test_operator_registers_a_unit_with_a_valid_credit_code(client, token):
    r = client.post("/api/v1/units", json={"name": "攀枝花新项目有限公司", "credit_code": GOOD_CODE.lower()}, headers=token("operator"))
    assert r.status_code == 201 and r.get_json()["credit_code"] == GOOD_CODE
    dup = client.post("/api/v1/units", json={"name": "重复", "credit_code": GOOD_CODE}, headers=token("operator"))
    assert dup.status_code == 422 and "credit_code" in dup.get_json()["errors"]


@pytest.mark.parametrize("body,field", [
    ({"name": "x", "credit_code": GOOD_CODE[:-1] + ("0" if GOOD_CODE[-1] != "0" else "1")}, "credit_code"),
    ({"name": "x", "credit_code": "915104"}, "credit_code"),
    ({"name": "x", "credit_code": "<b>91510411MA6233333X</b>"}, "credit_code"),
    ({"name": "<i>x</i>", "credit_code": GOOD_CODE}, "name"),
    ({"credit_code": GOOD_CODE}, "name"),
    ({"name": "x", "credit_code": GOOD_CODE, "contact_phone": "call me"}, "contact_phone"),
    ({"name": "x", "credit_code": GOOD_CODE, "extra": True}, "extra"),
])
def test_bad_units_are_refused_naming_the_field(client, token, platform, body, field):
    before = snapshot(platform)
    r = client.post("/api/v1/units", json=body, headers=token("operator"))
    assert r.status_code == 422 and field in r.get_json()["errors"], r.get_json()
    assert snapshot(platform) == before


def test_only_the_operator_administers_accounts(client, token):
    assert client.post("/api/v1/units", json={"name": "x", "credit_code": GOOD_CODE}, headers=token("drc_admin")).status_code == 403
    assert client.get("/api/v1/users", headers=token("supervisor")).status_code == 403


def test_operator_creates_and_lists_users(client, token):
    r = client.post("/api/v1/users", json={"username": "land2", "password": "Ziran-Ziyuan-2026", "display_name": "自然资源经办2",
                                          "roles": ["officer"], "department_code": "land"}, headers=token("operator"))
    assert r.status_code == 201 and "password" not in r.get_json()
    page = client.get("/api/v1/users?page_size=4&page=4", headers=token("operator")).get_json()
    assert page["total"] == 13 and [u["username"] for u in page["items"]] == ["land2"]


@pytest.mark.parametrize("body,field", [
    ({"password": "short"}, "password"),
    ({"password": "land3land3land3LAND"}, "password"),
    ({"roles": ["king"]}, "roles.0"),
    ({"roles": []}, "roles"),
    ({"department_code": "nowhere"}, "department_code"),
    ({"username": "Bad Name"}, "username"),
    ({"roles": ["applicant"], "department_code": None}, "project_unit_id"),
    ({"roles": ["applicant", "officer"], "project_unit_id": 1}, "roles"),
    ({"roles": ["operator", "applicant"], "department_code": None, "project_unit_id": 1}, "roles"),
    ({"roles": ["supervisor", "officer"], "department_code": "supervision"}, "roles"),
    ({"roles": ["officer", "officer"]}, "roles"),
    ({"roles": ["applicant"], "project_unit_id": 1}, "department_code"),
    ({"project_unit_id": 1}, "project_unit_id"),
])
def test_bad_users_are_refused(client, token, platform, body, field):
    base = {"username": "land3", "password": "Ziran-Ziyuan-2026", "display_name": "经办", "roles": ["officer"], "department_code": "land"}
    before = snapshot(platform)
    r = client.post("/api/v1/users", json=base | body, headers=token("operator"))
    assert r.status_code == 422 and field in r.get_json()["errors"], r.get_json()
    assert snapshot(platform) == before


def test_roles_that_go_together_are_accepted(client, token):
    """An analyst who also administers the department's procedures, a supervisor who
    also reads as an analyst: combinations no rule forbids stay possible."""
    for username, roles, department in (("drcboth", ["dept_admin", "analyst"], "drc"),
                                        ("watch2", ["supervisor", "analyst"], "supervision")):
        r = client.post("/api/v1/users", json={"username": username, "password": "Ziran-Ziyuan-2026", "display_name": "兼任",
                                              "roles": roles, "department_code": department}, headers=token("operator"))
        assert r.status_code == 201 and r.get_json()["roles"] == roles, r.get_json()


def _user_id(client, token, username: str) -> int:
    users = client.get("/api/v1/users?page_size=200", headers=token("operator")).get_json()["items"]
    return next(u["id"] for u in users if u["username"] == username)


def _patch(client, token, username: str, body: dict, user: str = "operator"):
    return client.patch(f"/api/v1/users/{_user_id(client, token, username)}", json=body, headers=token(user))


def test_the_operator_disables_an_account_and_its_tokens_are_refused_at_once(client, token, platform):
    """设置用户权限 (Jilin 第九条): an officer who leaves keeps no access."""
    held = token("land")
    assert client.get("/api/v1/tasks", headers=held).status_code == 200
    r = _patch(client, token, "land", {"active": False})
    assert r.status_code == 200 and r.get_json()["active"] is False
    assert client.get("/api/v1/tasks", headers=held).status_code == 401
    assert client.post("/api/v1/auth/token", json={"username": "land", "password": "demo-password"}).status_code == 401
    assert _patch(client, token, "land", {"active": True}).status_code == 200
    assert client.post("/api/v1/auth/token", json={"username": "land", "password": "demo-password"}).status_code == 200
    with platform.session_factory() as s:
        changes = [e.summary for e in s.scalars(select(AuditEvent).where(AuditEvent.action == "user.update",
                                                                          AuditEvent.target == "user:land").order_by(AuditEvent.seq))]
    assert changes == [{"active": False}, {"active": True}]


def test_a_role_or_department_taken_away_applies_to_the_next_request(client, token):
    held = token("land")
    r = _patch(client, token, "land", {"roles": ["analyst"], "display_name": "自然资源分析员"})
    assert r.status_code == 200 and r.get_json()["roles"] == ["analyst"] and r.get_json()["display_name"] == "自然资源分析员"
    assert client.get("/api/v1/projects", headers=held).get_json()["total"] == 0  # an analyst sees no project
    r = _patch(client, token, "land", {"roles": ["officer"], "department_code": "env"})
    assert r.status_code == 200 and r.get_json()["department_code"] == "env"


def test_a_password_reset_lifts_a_sign_in_lock_out_and_is_audited_without_the_password(client, token, platform):
    for attempt in range(5):
        client.post("/api/v1/auth/token", json={"username": "drc", "password": f"wrong-{attempt}"})
    assert client.post("/api/v1/auth/token", json={"username": "drc", "password": "demo-password"}).status_code == 429
    assert _patch(client, token, "drc", {"password": "Fagai-Xinmima-2026"}).status_code == 200
    assert client.post("/api/v1/auth/token", json={"username": "drc", "password": "Fagai-Xinmima-2026"}).status_code == 200
    with platform.session_factory() as s:
        [event] = s.scalars(select(AuditEvent).where(AuditEvent.action == "user.update")).all()
    assert (event.actor, event.summary) == ("operator", {"password_reset": True})


@pytest.mark.parametrize("username,body,field,status", [
    ("operator", {"active": False}, "active", 422),
    ("operator", {"roles": ["supervisor"], "department_code": "supervision"}, "roles", 422),
    ("land", {"roles": ["applicant"]}, "project_unit_id", 422),
    ("land", {"roles": ["supervisor", "officer"]}, "roles", 422),
    ("land", {"department_code": "nowhere"}, "department_code", 422),
    ("land", {"password": "short"}, "password", 422),
    ("land", {}, "body", 422),
    ("land", {"username": "landx"}, "username", 422),
    ("land", {"active": "no"}, "active", 422),
    ("land", {"active": False}, None, 403),
])
def test_bad_account_changes_are_refused_and_change_nothing(client, token, platform, username, body, field, status):
    before = snapshot(platform)
    r = _patch(client, token, username, body, user="drc_admin" if status == 403 else "operator")
    assert r.status_code == status, r.get_json()
    if field:
        assert field in r.get_json()["errors"], r.get_json()
    assert snapshot(platform) == before


def test_an_absent_account_is_not_found(client, token):
    assert client.patch("/api/v1/users/999999", json={"active": False}, headers=token("operator")).status_code == 404


def test_tasks_an_account_claimed_go_back_to_its_department_when_it_can_no_longer_work_them(client, token, platform):
    code = declare(client, token, **FILING_PROJECT)["project_code"]
    dispatch(client, token, code)
    task = find(client, token, "land", "department_reply", code)
    assert client.post(f"/api/v1/tasks/{task['id']}/claim", headers=token("land")).status_code == 200
    other = find(client, token, "drc", "department_reply", code)
    assert client.post(f"/api/v1/tasks/{other['id']}/claim", headers=token("drc")).status_code == 200

    assert _patch(client, token, "land", {"department_code": "env"}).status_code == 200
    assert _patch(client, token, "drc", {"display_name": "发改经办（更名）"}).status_code == 200  # still works its task
    with platform.session_factory() as s:
        assert s.get(Task, task["id"]).assignee_id is None
        assert s.get(Task, other["id"]).assignee_id is not None
        [released] = s.scalars(select(AuditEvent).where(AuditEvent.action == "task.unclaim")).all()
    assert (released.actor, released.summary["released_from"], released.project_code) == ("operator", "land", code)


def test_tokens_issued_before_a_disable_or_a_password_reset_stay_refused(client, token):
    """What an operator does when an account is compromised ends the tokens already out."""
    before_reset = token("land")
    assert _patch(client, token, "land", {"password": "Ziran-Xinmima-2026"}).status_code == 200
    assert client.get("/api/v1/tasks", headers=before_reset).status_code == 401
    before_disable = token("drc")
    assert _patch(client, token, "drc", {"active": False}).status_code == 200
    assert _patch(client, token, "drc", {"active": True}).status_code == 200
    assert client.get("/api/v1/tasks", headers=before_disable).status_code == 401  # not revived by enabling
    assert client.get("/api/v1/tasks", headers=token("drc")).status_code == 200  # a new one works
    held = token("env")
    assert _patch(client, token, "env", {"display_name": "生态环境经办"}).status_code == 200
    assert client.get("/api/v1/tasks", headers=held).status_code == 200  # a change of name ends nothing
