"""Every JSON body the API answers is what the published OpenAPI document says it is.

Integrators generate their clients from the document (API.md): a field answered null
where the document says a string, or an error whose body the document does not
describe, breaks a strict generated client. These tests drive the demo flow and the
project lifecycle over HTTP, record every response (refusals too), and validate each
body against the schema the document gives for its path, method and status.
"""
from __future__ import annotations

import re

from openapi_schema_validator import OAS30Validator
from werkzeug.exceptions import HTTPException

from tests.integration.helpers import declare
from tests.integration.test_implementation_api import concluded_project
from tests.integration.test_intermediaries_api import AGENCY, handling_land_matter, url


def spec(client):
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    return r.get_json()


def _resolve(node, components):
    """The schema with every ``$ref`` replaced by what it names."""
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            kind = node["$ref"].split("/")[2]
            return _resolve(components[kind][name], components)
        return {k: _resolve(v, components) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, components) for v in node]
    return node


def _record(client):
    """Every response the client gets from now on, with its method and path."""
    seen = []
    original = client.open

    def open_(*args, **kwargs):
        r = original(*args, **kwargs)
        request = r.request
        seen.append((request.method, request.path, r))
        return r

    client.open = open_
    return seen


def _problems(app, doc, seen):
    """(how many bodies were checked, what in them the document does not allow)."""
    adapter = app.url_map.bind("localhost")
    problems, checked = [], 0
    for method, path, r in seen:
        if not r.is_json:
            continue
        try:
            rule, _ = adapter.match(path, method=method, return_rule=True)
        except HTTPException:
            continue  # not a route (a 404 for an unknown path)
        template = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        op = doc["paths"].get(template, {}).get(method.lower())
        if op is None:
            continue
        resp = op["responses"].get(str(r.status_code)) or op["responses"].get("default")
        resp = _resolve(resp, doc["components"]) if resp else None
        if resp is None or "content" not in resp:
            problems.append((method, template, r.status_code, "status not documented with a body"))
            continue
        schema = _resolve(resp["content"].get("application/json", {}).get("schema"), doc["components"])
        if schema is None:
            problems.append((method, template, r.status_code, "no JSON schema"))
            continue
        checked += 1
        for err in OAS30Validator(schema).iter_errors(r.get_json()):
            problems.append((method, template, r.status_code, "/".join(map(str, err.absolute_path)), err.message[:120]))
    return checked, sorted(set(problems), key=str)


def test_live_responses_match_the_published_schemas(app, client, token, platform, clock):
    """Drive the demo flow over HTTP, recording every response; each JSON body must validate
    against the OpenAPI document (what integrators generate their clients from)."""
    doc = spec(client)
    seen = _record(client)
    code = concluded_project(client, token, platform)
    other = declare(client, token)["project_code"]
    client.post("/api/v1/admin/clock", headers=token("operator"), json={"now": "2026-03-20T09:00:00+08:00"})
    for user in ("applicant", "drc", "supervisor", "operator"):
        client.get(f"/api/v1/projects/{code}", headers=token(user))
        client.get("/api/v1/projects", headers=token(user))
        client.get(f"/api/v1/projects/{code}/history", headers=token(user), query_string={"page_size": 200})
        client.get("/api/v1/tasks", headers=token(user), query_string={"page_size": 200})
        client.get(f"/api/v1/projects/{code}/materials", headers=token(user))
    for user in ("drc", "supervisor", "land"):
        client.get("/api/v1/alerts", headers=token(user), query_string={"page_size": 200})
    client.get(f"/api/v1/codes/{code}/verify", headers=token("drc"))
    client.get("/api/v1/codes/nonsense/verify", headers=token("drc"))
    client.get(f"/api/v1/portal/projects/{code}")
    client.get(f"/api/v1/portal/projects/{other}")
    client.get("/api/v1/portal/disclosure/approvals")
    client.get("/api/v1/portal/guides")
    client.get("/api/v1/portal/guides/enterprise_filing")
    client.get("/api/v1/supervision/summary", headers=token("supervisor"))
    client.get("/api/v1/supervision/scores", headers=token("supervisor"))
    client.get("/api/v1/supervision/risks", headers=token("supervisor"))
    client.get("/api/v1/procedures", headers=token("operator"))
    client.get("/api/v1/instances", headers=token("operator"))
    client.get("/api/v1/health")
    client.get(f"/api/v1/projects/{code}/implementation", headers=token("applicant"))
    client.get("/api/v1/reference/regions", headers=token("drc"))
    client.get("/api/v1/reference/departments", headers=token("drc"))
    client.get("/api/v1/admin/calendar/years", headers=token("operator"))
    # refusals too: their bodies are the Error schema
    client.get(f"/api/v1/projects/{code}", headers=token("applicant2"))
    client.post("/api/v1/projects", json={}, headers=token("applicant"))
    client.post("/api/v1/auth/token", json={"username": "drc", "password": "bad"})
    client.get("/api/v1/portal/projects/2026-510411-30-01-999999")
    checked, problems = _problems(app, doc, seen)
    assert checked > 40 and any(r.status_code >= 400 for _, _, r in seen)
    assert problems == [], "\n".join(map(str, problems))



def test_live_responses_of_the_lifecycle_match_the_published_schemas(app, client, token, platform, clock):
    """The same check over changes, supervision records, implementation, intermediaries, commitments."""
    doc = spec(client)
    seen = _record(client)
    code = concluded_project(client, token, platform)
    client.post(f"/api/v1/projects/{code}/implementation", headers=token("applicant"),
                json={"kind": "start", "period": "2026-03-02", "content": "主体工程开工"})
    client.get(f"/api/v1/projects/{code}/implementation", headers=token("applicant"))
    client.post(f"/api/v1/projects/{code}/supervision-records", headers=token("land"),
                json={"kind": "rectification", "title": "扬尘整改", "content": "限期整改", "rectification_working_days": 5})
    client.post(f"/api/v1/projects/{code}/supervision-records", headers=token("land"),
                json={"kind": "inspection", "title": "检查", "content": "现场检查"})
    client.post(f"/api/v1/projects/{code}/supervision-records", headers=token("land"), json={"kind": "inspection"})  # 422
    for user in ("land", "applicant", "supervisor"):
        client.get(f"/api/v1/projects/{code}/supervision-records", headers=token(user))
    client.get(f"/api/v1/portal/projects/{code}")
    client.get("/api/v1/portal/disclosure/supervision")
    client.get("/api/v1/portal/disclosure/approvals")
    other = handling_land_matter(client, token)
    r = client.post(url(other), json=AGENCY, headers=token("land"))
    client.get(url(other), headers=token("applicant"))
    client.get(f"/api/v1/projects/{other}/intermediaries", headers=token("land"))
    client.get(f"/api/v1/projects/{other}/materials/commitments", headers=token("applicant"))
    third = declare(client, token)["project_code"]
    client.post(f"/api/v1/projects/{third}/changes", headers=token("applicant"), json={"kind": "suspension", "reason": "资金未落实"})
    client.post(f"/api/v1/projects/{third}/changes", headers=token("applicant"), json={"kind": "resumption", "reason": "资金已落实"})
    new = client.post(f"/api/v1/projects/{third}/changes", headers=token("applicant"),
                      json={"kind": "major_change", "reason": "建设规模重大调整", "changes": {"investment": "50000"}}).get_json()
    client.get(f"/api/v1/projects/{third}", headers=token("applicant"))
    client.get(f"/api/v1/projects/{new['project_code']}", headers=token("drc"))
    client.get(f"/api/v1/codes/{third}/verify", headers=token("drc"))
    client.get(f"/api/v1/portal/projects/{third}")
    client.post("/api/v1/admin/clock", headers=token("operator"), json={"now": "2026-03-20T09:00:00+08:00"})
    client.get("/api/v1/alerts", headers=token("supervisor"), query_string={"page_size": 200})
    client.get("/api/v1/supervision/summary", headers=token("supervisor"))
    client.get("/api/v1/supervision/forecast", headers=token("supervisor"))
    client.get("/api/v1/users", headers=token("operator"))
    checked, problems = _problems(app, doc, seen)
    assert checked > 40 and any(r.status_code >= 400 for _, _, r in seen)
    assert problems == [], "\n".join(map(str, problems))
