"""A declaration with an Idempotency-Key: a project unit whose answer was lost (a dropped
connection after the commit) declares again with the same key and gets the project it
declared, not a second project under a new code (一项一码)."""
from __future__ import annotations

import threading

from sqlalchemy import func, select

from engine.models import AuditEvent, Project
from tests.integration.helpers import declaration, snapshot


def post(client, token, key, user="applicant", **overrides):
    headers = {**token(user), **({"Idempotency-Key": key} if key is not None else {})}
    return client.post("/api/v1/projects", json=declaration(**overrides), headers=headers)


def counts(platform) -> tuple[int, int]:
    with platform.session_factory() as s:
        return (s.scalar(select(func.count()).select_from(Project)),
                s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "project.declare")))


def test_the_same_key_again_answers_the_project_declared_with_it(client, token, platform):
    first = post(client, token, "申报-2026-0001".encode().hex())
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    before = snapshot(platform)
    again = post(client, token, "申报-2026-0001".encode().hex())
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["project_code"] == first.get_json()["project_code"]
    assert snapshot(platform) == before  # no project, serial or audit event added
    assert counts(platform) == (1, 1)


def test_a_key_used_for_another_declaration_is_409_and_changes_nothing(client, token, platform):
    assert post(client, token, "k-1").status_code == 201
    before = snapshot(platform)
    r = post(client, token, "k-1", name="另一个项目")
    assert r.status_code == 409 and "Idempotency-Key" in r.get_json()["errors"]
    assert snapshot(platform) == before


def test_keys_belong_to_their_project_unit_and_no_key_declares_each_time(client, token, platform):
    mine = post(client, token, "k-1").get_json()["project_code"]
    theirs = post(client, token, "k-1", user="applicant2")
    assert theirs.status_code == 201 and theirs.get_json()["project_code"] != mine
    assert post(client, token, None).status_code == 201 and post(client, token, None).status_code == 201
    assert counts(platform) == (4, 4)


def test_a_malformed_key_is_422_naming_the_header(client, token, platform):
    before = snapshot(platform)
    for key in ("x" * 65, "键", "a b"):
        r = post(client, token, key)
        assert r.status_code == 422 and "Idempotency-Key" in r.get_json()["errors"], (key, r.get_json())
    assert snapshot(platform) == before


def test_two_requests_racing_with_one_key_declare_once(app, token, platform):
    results: list = [None, None]
    barrier = threading.Barrier(2)

    def run(i):
        barrier.wait(timeout=30)
        r = post(app.test_client(), token, "race-1")
        results[i] = (r.status_code, (r.get_json() or {}).get("project_code"))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    statuses = sorted(status for status, _ in results)
    assert statuses in ([201, 201], [201, 409]), results  # the later one replays, or is turned away and may retry
    assert len({code for status, code in results if status == 201}) == 1
    assert counts(platform) == (1, 1)
    retry = post(app.test_client(), token, "race-1")
    assert retry.status_code == 201 and retry.get_json()["project_code"] in {code for _, code in results}


def test_a_project_declared_with_a_key_can_be_recoded(client, token, platform):
    """重新赋码 (第十二条): the key named the declaration request; the new code's project does not carry it."""
    code = post(client, token, "k-recode").get_json()["project_code"]
    r = client.post(f"/api/v1/projects/{code}/changes", headers=token("applicant"),
                    json={"kind": "major_change", "reason": "建设规模重大调整", "changes": {"investment": "50000"}})
    assert r.status_code == 201, r.get_json()
    with platform.session_factory() as s:
        keys = dict(s.execute(select(Project.project_code, Project.declaration_key)).all())
    assert keys[code] == "k-recode" and sorted(keys.values(), key=str) == [None, "k-recode"]
    assert post(client, token, "k-recode").get_json()["project_code"] == code  # a late retry still finds the declaration
