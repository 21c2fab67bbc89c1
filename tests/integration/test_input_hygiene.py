"""Input no field may hold, found by fuzzing every operation of the OpenAPI document:
each answered 500 (a database or date-arithmetic error) before it was refused at the
door. Now a path that cannot name a row is 404, a field is 422 naming it, an
over-deep body 400, always JSON, and nothing is written. On SQLite and PostgreSQL."""
from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select

from engine.models import AuditEvent, Project, Task, User
from tests.integration.helpers import declaration, declare, supply_all_materials


def counts(platform) -> tuple:
    with platform.session_factory() as s:
        return tuple(s.scalar(select(func.count()).select_from(model)) for model in (Project, Task, User, AuditEvent))


@pytest.mark.parametrize(("user", "method", "path"), [
    ("operator", "get", "/api/v1/procedures/project_master/versions/2147483648"),
    ("operator", "post", "/api/v1/instances/9223372036854775808/retry"),
    ("applicant", "get", "/api/v1/notices/2147483648/pdf"),
    ("operator", "get", "/api/v1/procedures/project_master/versions/0"),
    ("window", "get", "/api/v1/tasks/a%00b"),
    ("window", "post", "/api/v1/tasks/a%01b/claim"),
    (None, "get", "/api/v1/portal/guides/a%00b"),
], ids=["id over 32 bits", "id over 64 bits", "notice id over 32 bits", "version 0", "NUL in a task id",
        "control character in a task id", "NUL in a matter code"])
def test_a_path_that_cannot_name_a_row_is_not_found(client, token, platform, user, method, path):
    before = counts(platform)
    r = getattr(client, method)(path, headers=token(user) if user else {})
    assert r.status_code == 404, r.get_data(as_text=True)
    assert r.get_json()["message"] == "资源不存在 (not found)"
    assert counts(platform) == before


@pytest.mark.parametrize(("user", "path", "query", "field"), [
    ("window", "/api/v1/tasks", {"project_code": "2026\x00"}, "project_code"),
    ("supervisor", "/api/v1/alerts", {"department": "d\x00"}, "department"),
    ("supervisor", "/api/v1/supervision/summary", {"department": "\x00"}, "department"),
    ("window", "/api/v1/tasks", {"due_before": "9999-12-31T23:59:59-14:00"}, "due_before"),
    ("window", "/api/v1/tasks", {"due_before": "0001-01-01T00:00:00+14:00"}, "due_before"),
    ("supervisor", "/api/v1/supervision/summary", {"to": "0001-01-01"}, "to"),
    ("supervisor", "/api/v1/supervision/scores", {"from": "9999-12-30", "to": "9999-12-31"}, "from"),
    ("supervisor", "/api/v1/supervision/scores", {"period": "9999-12"}, "period"),
    ("supervisor", "/api/v1/supervision/scores", {"period": "2026-13"}, "period"),
    (None, "/api/v1/portal/disclosure/penalties", {"to": "9999-12-31"}, "to"),
    (None, "/api/v1/portal/disclosure/approvals", {"from": "0001-01-01"}, "from"),
], ids=["NUL in a task filter", "NUL in an alert filter", "NUL in a supervision filter", "due before year 9999",
        "due before year 1", "supervision to year 1", "supervision from year 9999", "scores for 9999-12",
        "scores for month 13", "disclosure to year 9999", "approvals from year 1"])
def test_a_query_parameter_no_row_can_match_is_refused_by_name(client, token, user, path, query, field):
    r = client.get(path, query_string=query, headers=token(user) if user else {})
    assert r.status_code == 422, r.get_data(as_text=True)
    assert field in r.get_json()["errors"], r.get_json()


def test_control_characters_anywhere_in_a_json_body_are_refused_by_name(client, token, platform):
    before = counts(platform)
    r = client.post("/api/v1/auth/token", json={"username": "a\x00b", "password": "x"})
    assert r.status_code == 422 and "username" in r.get_json()["errors"], r.get_json()
    code = declare(client, token)["project_code"]
    [window] = [t for t in client.get("/api/v1/tasks", headers=token("window"),
                                      query_string={"project_code": code}).get_json()["items"]]
    before = counts(platform)
    r = client.post(f"/api/v1/tasks/{window['id']}/complete", headers=token("window"), json={
        "data": {"window_decision": "dispatch", "departments": ["drc\x00"]}, "version": window["version"]})
    assert r.status_code == 422 and "data.departments.0" in r.get_json()["errors"], r.get_json()
    r = client.post(f"/api/v1/tasks/{window['id']}/complete", headers=token("window"), json={
        "data": {"window_decision": "dispatch", "departments": ["drc"], "note\x07": 1}, "version": window["version"]})
    assert r.status_code == 422 and "data.note\x07" in r.get_json()["errors"], r.get_json()
    assert counts(platform) == before


@pytest.mark.parametrize(("depth", "status"), [(40, 422), (100_000, 400)],
                         ids=["deeper than a form", "deeper than the parser"])
def test_json_nested_too_deep_is_refused(client, token, platform, depth, status):
    before = counts(platform)
    r = client.post("/api/v1/projects", data="[" * depth + "]" * depth, content_type="application/json",
                    headers=token("applicant"))
    assert r.status_code == status, r.get_data(as_text=True)
    assert "32" in r.get_json()["message"] or "32" in str(r.get_json().get("errors")), r.get_json()
    assert counts(platform) == before



def test_a_json_integer_python_will_not_read_is_refused_naming_the_body(client, token, platform):
    before = counts(platform)
    r = client.post("/api/v1/projects", data='{"investment": ' + "9" * 5000 + "}", content_type="application/json",
                    headers=token("applicant"))
    assert r.status_code == 400 and "body" in r.get_json()["errors"], r.get_json()
    assert counts(platform) == before


@pytest.mark.parametrize(("field", "value"), [
    ("name", "\u200b"), ("name", "\ufeff\u2060"), ("location", "\u00ad \u3164"),  # shows nothing
    ("name", "厂房\u202e项目"), ("name", "\u2066厂房\u2069"),  # reorders what a reader sees
    ("industry_code", "３０"), ("region_code", "５１０４１１"),  # full-width digits
])
def test_declaration_text_a_reader_cannot_see_as_typed_is_refused_by_name(client, token, platform, field, value):
    before = counts(platform)
    r = client.post("/api/v1/projects", headers=token("applicant"), json={**declaration(), field: value})
    assert r.status_code == 422 and field in r.get_json()["errors"], r.get_json()
    assert counts(platform) == before


@pytest.mark.parametrize(("schedule", "problem"), [
    ("year 0000\n", "outside"), ("year 9999\n", "outside"), ("year ２０３１\n2031-01-01 holiday 元旦\n", "line 1"),
    ("year 2031\n2031-01-01 holiday 元\u0000旦\n", "invisible"), ("year 2031\n2031-01-01 holiday 元\u200b旦\n", "invisible"),
])
def test_a_calendar_file_with_an_impossible_year_or_hidden_characters_is_refused_by_name(client, token, platform, schedule, problem):
    import io

    before = counts(platform)
    r = client.post("/api/v1/admin/calendar/years", data={"file": (io.BytesIO(schedule.encode()), "year.txt")},
                    headers=token("operator"), content_type="multipart/form-data")
    assert r.status_code == 422 and problem in str(r.get_json()["errors"]["file"]), r.get_json()
    assert counts(platform) == before



def test_a_calendar_note_may_hold_a_tab(client, token):
    import io

    r = client.post("/api/v1/admin/calendar/years", headers=token("operator"), content_type="multipart/form-data",
                    data={"file": (io.BytesIO("year 2031\n2031-01-01 holiday 元旦\t放假一天\n".encode()), "2031.txt")})
    assert r.status_code == 201, r.get_json()

def test_a_procedure_file_name_is_stored_as_plain_text(client, token):
    import io
    from pathlib import Path

    xml = Path("bpmn/matters.dmn").read_bytes().replace(b"</definitions>", b"<!-- v2 --></definitions>", 1)
    r = client.post("/api/v1/procedures", headers=token("operator"), content_type="multipart/form-data",
                    data={"file": (io.BytesIO(xml), "../a\x00b.dmn")})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["filename"] == "a_b.dmn"

def test_tabs_and_line_breaks_in_free_text_still_pass(client, token):
    """Only control characters nobody types are refused: a construction content written
    in paragraphs, with a tab, is a declaration like any other."""
    r = client.post("/api/v1/projects", headers=token("applicant"),
                    json={**declaration(), "construction_content": "一、厂房\t两栋\r\n二、仓库\n一座"})
    assert r.status_code == 201, r.get_json()
    listed = client.get("/api/v1/tasks", headers=token("window"), query_string={"project_code": r.get_json()["project_code"]})
    assert listed.status_code == 200 and listed.get_json()["total"] == 1


def test_the_manual_clock_stays_within_the_platforms_years(client, token, platform):
    before = platform.clock.now()
    for instant in ("9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+00:00"):
        r = client.post("/api/v1/admin/clock", json={"now": instant}, headers=token("operator"))
        assert r.status_code == 422 and "now" in r.get_json()["errors"], r.get_json()
    assert platform.clock.now() == before


def test_a_user_for_a_unit_id_beyond_the_column_is_refused_by_name(client, token, platform):
    before = counts(platform)
    r = client.post("/api/v1/users", headers=token("operator"), json={
        "username": "unit-user", "password": "Str0ng!Passw0rd-2026", "display_name": "单位用户", "roles": ["applicant"],
        "project_unit_id": 2**31})
    assert r.status_code == 422 and "project_unit_id" in r.get_json()["errors"], r.get_json()
    assert counts(platform) == before


@pytest.mark.parametrize(("investment", "problem"), [
    ("1200.00005", "小数位数不得超过4位 (at most 4 decimal places)"),
    ("1200.000000000000000000000000001", "小数位数不得超过4位 (at most 4 decimal places)"),
    ("1e999999999", "格式无效 (Not a valid number.)"),
], ids=["five places", "beyond 28 digits", "a huge exponent"])
def test_more_decimal_places_than_a_field_keeps_are_refused_not_rounded(client, token, platform, investment, problem):
    before = counts(platform)
    r = client.post("/api/v1/projects", headers=token("applicant"), json={**declaration(), "investment": investment})
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["errors"]["investment"] == [problem]
    assert counts(platform) == before
    assert client.post("/api/v1/projects", headers=token("applicant"),
                       json={**declaration(), "investment": "1200.50000"}).status_code == 201  # trailing zeros keep nothing


def test_a_lone_surrogate_in_a_json_body_is_refused_by_name(client, token, platform):
    """``"\\ud800"`` is valid JSON but decodes to text no UTF-8 encoder writes: the
    database driver failed on it (500), and under a script it errored the instance."""
    before = counts(platform)
    body = json.dumps({**declaration(), "name": "\ud800项目"})  # ensure_ascii: the body carries the escape
    r = client.post("/api/v1/projects", data=body, content_type="application/json", headers=token("applicant"))
    assert r.status_code == 422 and "name" in r.get_json()["errors"], r.get_json()
    r = client.post("/api/v1/auth/token", data=json.dumps({"username": "\udfff", "password": "x"}),
                    content_type="application/json")
    assert r.status_code == 422 and "username" in r.get_json()["errors"], r.get_json()
    assert counts(platform) == before


def _filing_check(client, token):
    """A filing project brought to its filing_check task (drc's), returned."""
    code = declare(client, token, regime="filing", industry_code="13", new_land_use=False, building_works=False,
                   environment_sensitive=False, water_soil_impact=False)["project_code"]
    supply_all_materials(client, token, code)

    def only(user, name):
        [task] = [t for t in client.get("/api/v1/tasks", headers=token(user), query_string={"project_code": code})
                  .get_json()["items"] if t["name"] == name]
        return task

    window = only("window", "window_review")
    assert client.post(f"/api/v1/tasks/{window['id']}/complete", headers=token("window"), json={
        "data": {"window_decision": "dispatch", "departments": window["context"]["departments"]},
        "version": window["version"]}).status_code == 200
    reply = only("drc", "department_reply")
    assert client.post(f"/api/v1/tasks/{reply['id']}/complete", headers=token("drc"), json={
        "data": {"reply_outcome": "accepted", "reply_comment": "受理"}, "version": reply["version"]}).status_code == 200
    return only("drc", "filing_check")


@pytest.mark.parametrize("number", ["\u200b", "\ufeff \u00ad", "\u3164", "备\u202e〔2026〕1号"])
def test_a_task_forms_text_that_shows_nothing_is_refused_by_name(client, token, platform, number):
    """A zero-width space passes the form's ``\\S`` pattern; it would be published as the
    备案编号. A bidirectional override would publish it reordered."""
    check = _filing_check(client, token)
    before = counts(platform)
    r = client.post(f"/api/v1/tasks/{check['id']}/complete", headers=token("drc"), json={"data": {
        "filing_decision": "file", "filing_comment": "符合", "document_number": number, "document_date": "2026-03-02"},
        "version": check["version"]})
    assert r.status_code == 422 and "data.document_number" in r.get_json()["errors"], r.get_json()
    assert counts(platform) == before



def test_an_empty_optional_comment_sent_as_a_line_break_still_passes(client, token):
    """White space alone is the form's business: a text area left empty may send a line break."""
    code = declare(client, token)["project_code"]
    [window] = client.get("/api/v1/tasks", headers=token("window"), query_string={"project_code": code}).get_json()["items"]
    r = client.post(f"/api/v1/tasks/{window['id']}/complete", headers=token("window"), json={"data": {
        "window_decision": "dispatch", "departments": window["context"]["departments"], "window_comment": "\n"},
        "version": window["version"]})
    assert r.status_code == 200, r.get_json()


def test_a_password_is_not_read_as_text_shown_to_others(client):
    """Bidirectional controls are refused where text is shown, not in a password: a wrong
    one is the same 401 as any."""
    r = client.post("/api/v1/auth/token", json={"username": "applicant", "password": "密码\u202e\u200b"})
    assert r.status_code == 401, r.get_json()

@pytest.mark.parametrize("day", ["2026-03-03", "2026-03-01"], ids=["tomorrow", "before the declaration"])
def test_a_decisions_document_date_lies_between_the_declaration_and_today(client, token, platform, day):
    """datesSinceDeclaration on filing_check (the diagram's guard): a 备案 document dated
    tomorrow, or before the project existed, would be published as such."""
    check = _filing_check(client, token)
    before = counts(platform)
    r = client.post(f"/api/v1/tasks/{check['id']}/complete", headers=token("drc"), json={"data": {
        "filing_decision": "file", "filing_comment": "符合", "document_number": "备〔2026〕1号", "document_date": day},
        "version": check["version"]})
    assert r.status_code == 422 and "2026-03-02" in r.get_json()["errors"]["data.document_date"][0], r.get_json()
    assert counts(platform) == before


@pytest.mark.parametrize("day", ["1999-12-31", "2100-01-01", "0001-01-01"])
def test_a_task_forms_date_lies_within_the_platforms_years(client, token, platform, day):
    """The forms bound their dates as the API does (``forms/filing_check.schema.json``)."""
    check = _filing_check(client, token)
    before = counts(platform)
    r = client.post(f"/api/v1/tasks/{check['id']}/complete", headers=token("drc"), json={"data": {
        "filing_decision": "file", "filing_comment": "符合", "document_number": "备〔2026〕1号", "document_date": day},
        "version": check["version"]})
    assert r.status_code == 422 and "data.document_date" in r.get_json()["errors"], r.get_json()
    assert counts(platform) == before


def test_a_host_header_the_router_cannot_read_is_refused_by_name(client, app):
    """Over-long labels, and labels IDNA cannot decode (“xn--”): the public feeds link to
    themselves. The test client cannot build a request for the latter, so the WSGI app
    is called as a server calls it."""
    import io
    import json

    r = client.get("/api/v1/health", headers={"Host": "a" * 300})
    assert r.status_code == 400 and r.get_json()["errors"] == {"Host": ["主机名无效 (invalid Host header)"]}, r.get_json()
    for host in ("xn--", "xn--a.example"):
        answer = {}
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/api/v1/portal/disclosure/approvals.atom", "QUERY_STRING": "",
                   "SERVER_NAME": "localhost", "SERVER_PORT": "80", "HTTP_HOST": host, "wsgi.url_scheme": "http",
                   "wsgi.input": io.BytesIO(b""), "wsgi.errors": io.StringIO(), "SERVER_PROTOCOL": "HTTP/1.1"}
        body = b"".join(app.wsgi_app(environ, lambda status, headers, *_: answer.update(status=status)))
        assert answer["status"].startswith("400"), (host, answer, body)
        assert json.loads(body)["errors"] == {"Host": ["主机名无效 (invalid Host header)"]}


def test_every_error_answer_has_the_shape_api_md_gives(client, token):
    """{code, status, message, errors}: integrators read ``errors`` without checking for it."""
    answers = [
        client.get("/api/v1/tasks"),  # 401
        client.get("/api/v1/users", headers=token("supervisor")),  # 403
        client.get("/api/v1/projects/2026-510411-44-03-999999", headers=token("supervisor")),  # 404
        client.delete("/api/v1/health"),  # 405
        client.post("/api/v1/projects", json={"name": 1}, headers=token("applicant")),  # 422
    ]
    assert [r.status_code for r in answers] == [401, 403, 404, 405, 422]
    for r in answers:
        body = r.get_json()
        assert set(body) == {"code", "status", "message", "errors"} and body["code"] == r.status_code, body
        assert isinstance(body["errors"], dict) and (body["errors"] != {}) == (r.status_code == 422), body


def test_every_field_message_and_refusal_says_it_in_chinese_first(client, token):
    """A form shows the field messages beside its fields: the libraries' English ones are
    given in Chinese too, as every message of the platform is."""
    body = {k: v for k, v in declaration().items() if k != "name"} | {"regime": "other", "start_year": "soon", "extra": 1}
    errors = client.post("/api/v1/projects", headers=token("applicant"), json=body).get_json()["errors"]
    assert errors["name"] == ["缺少必填字段 (Missing data for required field.)"]
    assert errors["extra"] == ["未知字段 (Unknown field.)"]
    assert errors["start_year"] == ["格式无效 (Not a valid integer.)"]
    assert all(re.search(r"[\u4e00-\u9fff]", message) for messages in errors.values() for message in messages), errors
    r = client.delete("/api/v1/projects", headers=token("applicant"))
    assert r.status_code == 405 and r.get_json()["message"] == "不支持该请求方法 (method not allowed)"


# --- from the fuzz review of session 10: what is accepted must be what it says ------------------

LAND = "land_pre_review"


def _guide_body(client) -> dict:
    body = client.get(f"/api/v1/portal/guides/{LAND}").get_json()
    out = {k: body[k] for k in ("name", "legal_basis", "content", "acceptance_conditions", "process", "promised_working_days",
                                "statutory_working_days", "fees", "supervision_requirements", "contact", "regimes")}
    out["department_code"] = "land"
    out["materials"] = [{k: m[k] for k in ("code", "name", "required", "gap_tolerable", "template", "description")}
                        for m in body["materials"]]
    return out


@pytest.mark.parametrize(("field", "value"), [
    ("name", "\u200b"), ("contact", "0812-\u202e7654321"), ("fees", "\u2066不收费\u2069"), ("materials.0.name", "\ufeff\u2060"),
], ids=["invisible name", "reversed contact number", "isolates in fees", "invisible material name"])
def test_a_guide_whose_text_would_not_read_as_typed_on_the_portal_is_refused(client, token, platform, field, value):
    body = _guide_body(client)
    if field.startswith("materials.0."):
        body["materials"][0][field.rsplit(".", 1)[1]] = value
    else:
        body[field] = value
    before = counts(platform)
    r = client.post(f"/api/v1/guides/{LAND}", headers=token("operator"), json=body)
    assert r.status_code == 422 and field in r.get_json()["errors"], r.get_json()
    assert counts(platform) == before


@pytest.mark.parametrize(("user", "path", "query"), [
    ("applicant", "/api/v1/projects", {"status": "conclude"}),
    ("supervisor", "/api/v1/alerts", {"department": "Land"}),
    ("supervisor", "/api/v1/alerts", {"matter_code": "land-pre-review"}),
    ("land", "/api/v1/tasks", {"matter_code": "land-pre-review"}),
    ("applicant", "/api/v1/projects/{code}/materials", {"matter_code": "land-pre-review"}),
], ids=["project status", "alerts department", "alerts matter", "tasks matter", "materials matter"])
def test_a_filter_that_names_nothing_is_refused_not_an_empty_list(client, token, user, path, query):
    """A supervisor filtering alerts by a mistyped department must not read "no red light"."""
    code = declare(client, token)["project_code"]
    r = client.get(path.replace("{code}", code), query_string=query, headers=token(user))
    assert r.status_code == 422 and set(query) <= set(r.get_json()["errors"]), r.get_json()


@pytest.mark.parametrize(("field", "value"), [
    ("classified", 0), ("new_land_use", "yes"), ("building_works", "on"), ("investment", "１２０００"),
    ("investment", " 12000 "), ("investment", True),
], ids=["int for bool", "yes for bool", "on for bool", "full-width investment", "padded investment", "bool investment"])
def test_a_declaration_field_of_another_type_than_documented_is_refused(client, token, platform, field, value):
    before = counts(platform)
    r = client.post("/api/v1/projects", headers=token("applicant"), json={**declaration(), field: value})
    assert r.status_code == 422 and field in r.get_json()["errors"], r.get_json()
    assert counts(platform) == before
    assert client.post("/api/v1/projects", headers=token("applicant"),
                       json={**declaration(), "investment": 12000}).status_code == 201  # a JSON number is a number
