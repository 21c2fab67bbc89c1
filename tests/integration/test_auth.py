"""Sign-in, token expiry, lock-out after repeated failures."""
from __future__ import annotations

import threading
from datetime import timedelta


def sign_in(client, username, password):
    return client.post("/api/v1/auth/token", json={"username": username, "password": password})


def test_sign_in_issues_a_bearer_token_that_works(client):
    r = sign_in(client, "drc", "demo-password")
    assert r.status_code == 200
    body = r.get_json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 8 * 3600
    me = client.get("/api/v1/projects", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200


def test_wrong_username_and_wrong_password_get_the_same_401(client):
    a = sign_in(client, "drc", "wrong-password")
    b = sign_in(client, "nobody", "demo-password")
    assert a.status_code == b.status_code == 401
    assert a.get_json() == b.get_json()


def test_token_expires_on_the_platform_clock(client, clock):
    token = sign_in(client, "drc", "demo-password").get_json()["access_token"]
    clock.advance(hours=8, seconds=1)
    r = client.get("/api/v1/projects", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


def test_five_failures_in_fifteen_minutes_lock_the_username(client, clock):
    for _ in range(5):
        assert sign_in(client, "land", "bad").status_code == 401
        clock.advance(minutes=1)
    locked = sign_in(client, "land", "demo-password")
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert sign_in(client, "env", "demo-password").status_code == 200  # other users unaffected
    clock.advance(minutes=15)
    assert sign_in(client, "land", "demo-password").status_code == 200


def test_failures_spread_over_more_than_fifteen_minutes_do_not_lock(client, clock):
    for _ in range(6):
        assert sign_in(client, "water", "bad").status_code == 401
        clock.advance(minutes=4)
    assert sign_in(client, "water", "demo-password").status_code == 200


def test_sign_in_body_is_validated(client):
    r = client.post("/api/v1/auth/token", json={"username": "drc"})
    assert r.status_code == 422 and "password" in r.get_json()["errors"]
    r = client.post("/api/v1/auth/token", json={"username": "drc", "password": "x", "otp": 1})
    assert r.status_code == 422 and "otp" in r.get_json()["errors"]


def test_failed_sign_ins_are_audited(client, token):
    sign_in(client, "housing", "bad")
    from sqlalchemy import select

    from engine.models import AuditEvent

    app = client.application
    with app.extensions["tzxm"].session_factory() as s:
        actions = s.scalars(select(AuditEvent.action).where(AuditEvent.target == "user:housing")).all()
    assert "auth.failure" in actions and timedelta  # the failure was kept although the request failed


def test_guesses_sent_at_once_through_two_server_processes_stop_at_the_lockout(app, database_url, clock):
    """Five failures lock a username for the whole platform, however the guesses arrive:
    twenty sent at the same moment, split over two apps (two server processes, each
    with its own connection pool) on one database, get at most five password checks."""
    from api import create_app
    from tests.conftest import SECRET

    other = create_app({"TESTING": True, "DATABASE_URL": database_url, "SECRET_KEY": SECRET, "TZXM_CLOCK_OBJECT": clock,
                        "TZXM_PLATFORM_REGION": "510411", "TZXM_SWEEP_SECONDS": 1})
    barrier = threading.Barrier(20)
    answers = []

    def guess(server, i):
        client = server.test_client()
        barrier.wait()
        answers.append(sign_in(client, "drc", f"wrong-{i}").status_code)

    threads = [threading.Thread(target=guess, args=(app if i % 2 else other, i)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.extensions["tzxm_engine"].dispose()
    assert sorted(answers) == [401] * 5 + [429] * 15


def test_a_username_typed_full_width_spaced_or_capitalised_names_the_account(client):
    for typed in ("ｄｒｃ", " drc ", "DRC"):
        r = client.post("/api/v1/auth/token", json={"username": typed, "password": "demo-password"})
        assert r.status_code == 200, (typed, r.get_json())
