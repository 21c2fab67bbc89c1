"""Who may see where a procedure fails: the operator and analysts every instance, a
department admin the instances of its own department's procedures (it deploys their
fixes); officers and project units no list at all. The rows name the failing element
and the message, never the project's data. On SQLite and PostgreSQL."""
from __future__ import annotations

from tests.integration.test_audit_of_failures import FAILING_PRE_CHECK, _deploy
from tests.integration.test_clock_owner import filing_started_after
from tests.integration.test_workflow_api import LAND_PROJECT, PRE_CHECK_PASS, complete, find, to_matters


def _errored(client, token, user: str, **params) -> list[tuple[str, str]]:
    r = client.get("/api/v1/instances", headers=token(user), query_string={"status": "error", "page_size": 100, **params})
    assert r.status_code == 200, r.get_json()
    return sorted((i["process_id"], i["error_element"]) for i in r.get_json()["items"])


def test_authors_see_where_their_procedures_fail_and_no_one_else_does(client, token):
    _deploy(client, token, FAILING_PRE_CHECK)  # the land department's procedure fails at its pre-check
    land = to_matters(client, token, **LAND_PROJECT)
    assert complete(client, token, "land", find(client, token, "land", "pre_check", land), PRE_CHECK_PASS).status_code == 202
    filing_started_after(client, token, "ratio = 1 / 0")  # drc's own procedure fails as its matter starts

    both = _errored(client, token, "operator")
    assert [p for p, _ in both] == ["matter_enterprise_filing", "matter_land_pre_review"]
    assert _errored(client, token, "analyst") == both  # analysts write the diagrams: they see every failure
    assert [p for p, _ in _errored(client, token, "drc_admin")] == ["matter_enterprise_filing"]  # its own only
    assert _errored(client, token, "analyst", process_id="matter_land_pre_review") == [
        e for e in both if e[0] == "matter_land_pre_review"]
    item = client.get("/api/v1/instances", headers=token("drc_admin"), query_string={"status": "error"}).get_json()["items"][0]
    assert set(item) == {"id", "kind", "matter_code", "status", "process_id", "procedure_version", "next_timer_at",
                         "error_element", "error_message", "updated_at"}  # no project, no data
    assert "division by zero" in item["error_message"]
    for user in ("land", "drc", "applicant", "supervisor"):
        assert client.get("/api/v1/instances", headers=token(user)).status_code == 403, user
    r = client.post(f"/api/v1/instances/{item['id']}/retry", headers=token("drc_admin"))
    assert r.status_code == 403  # the retry stays the operator's
