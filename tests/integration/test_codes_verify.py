"""GET /api/v1/codes/{code}/verify: valid, unknown, superseded, malformed."""
from __future__ import annotations

from engine import codes
from tests.integration.helpers import declare


def verify(client, token, code, user="drc"):
    r = client.get(f"/api/v1/codes/{code}/verify", headers=token(user))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_a_code_the_platform_holds_is_valid(client, token):
    code = declare(client, token)["project_code"]
    body = verify(client, token, code)
    assert body["result"] == "valid" and body["project_code"] == code and body["scheme"] == "platform"


def test_a_well_formed_code_of_either_scheme_not_held_is_unknown(client, token):
    assert verify(client, token, "2026-510411-30-03-000777")["result"] == "unknown"
    central = codes.format_central_code(2021, 1, "510411", "01", "01", "12345")
    body = verify(client, token, central)
    assert body["result"] == "unknown" and body["scheme"] == "central"


def test_malformed_codes_say_what_is_wrong(client, token):
    body = verify(client, token, "2026-510411-30-03-00001")
    assert body["result"] == "malformed" and "length" in body["problems"]
    body = verify(client, token, "2026-990411-30-03-000001")
    assert body["result"] == "malformed" and "region" in body["problems"]
    body = verify(client, token, "2026-510411-30-09-000001")
    assert body["result"] == "malformed" and "type" in body["problems"]


def test_a_legacy_code_answers_with_the_project_code(client, token):
    code = declare(client, token, legacy_code="仁发改〔2016〕7号")["project_code"]
    body = verify(client, token, "仁发改〔2016〕7号")
    assert body["result"] == "valid" and body["project_code"] == code


def test_full_width_input_is_normalised(client, token):
    code = declare(client, token)["project_code"]
    full_width = code.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789-"})
    assert verify(client, token, full_width)["project_code"] == code


def test_only_officials_verify(client, token):
    r = client.get("/api/v1/codes/2026-510411-30-03-000001/verify", headers=token("applicant"))
    assert r.status_code == 403


def test_input_that_cannot_be_a_code_is_malformed_or_not_found_never_an_error(client, token):
    long_code = "2026-510411-30-03-" + "1" * 80
    body = verify(client, token, long_code)
    assert body["result"] == "malformed" and "length" in body["problems"]
    assert client.get(f"/api/v1/projects/{long_code}", headers=token("drc")).status_code == 404
