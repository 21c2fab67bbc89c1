"""Accounts administration by the operator: project units (credit codes) and users."""
from __future__ import annotations

import pytest
from stdnum.cn import uscc

from tests.integration.helpers import snapshot

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
