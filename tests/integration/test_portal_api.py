"""The public portal and the disclosure lists over HTTP, on SQLite and PostgreSQL (issue #6).

A project is driven through the demo flow to concluded; the portal's answer is then
checked key by key, at every depth, against the allow-list of public fields, and the
private facts of the declaration (investment, location, contacts, comments, reasons)
are looked for in the raw bytes. Unknown codes are 404 after the same SQL statements as
known ones. The rate limit is counted in the database, shared by two app instances
(two server processes), and counts requests that end in 404.
"""
from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, func, select

from api import create_app
from engine import ratelimit
from engine.db import unit_of_work
from engine.models import Project, RateWindow, Region, SupervisionRecord
from engine.settings import ConfigurationError
from engine.sweep import sweep
from tests.conftest import SECRET, START
from tests.integration.helpers import declaration, declare, supply_all_materials
from tests.integration.test_workflow_api import (
    ACCEPT, DECIDE, FILE, PRE_CHECK_PASS, REPLY_ACCEPTED, approve, dispatch, work,
)

SHANGHAI = timezone(timedelta(hours=8))
ATOM = "{http://www.w3.org/2005/Atom}"
PORTAL = "/api/v1/portal"
#: Facts of the declaration, the unit and the officers' work that must never be public.
PRIVATE = {
    "investment": "12000.5",
    "location": "攀枝花市仁和区前进镇",
    "construction_content": "新建厂房2万平方米及配套设施",
    "contact_name": "张工",
    "contact_phone": "0812-0000001",
    "credit_code": "91510411MA62111112",
    "filing_comment": "备案信息齐全",
    "reply_comment": "本部门有应办事项，已受理",
    "handling_opinion": "同意",
    "main_content": "内部审查意见：投资强度核减",
    "reason": "不予理由：涉及商业秘密的产能数据",
    "private_record": "未公开的检查发现",
    "private_particular": "内部备注：涉嫌串标",
}

LEAF = None
RESULT = {"decision": LEAF, "document_number": LEAF, "document_title": LEAF, "document_date": LEAF}
CODE_NAME = {"code": LEAF, "name": LEAF}
RECORD = {
    "reference": LEAF, "department": CODE_NAME, "kind": LEAF, "title": LEAF, "content": LEAF,
    "particulars": {"decision_number": LEAF, "amount": LEAF, "legal_basis": LEAF},
    "state": LEAF, "recorded_at": LEAF, "closed_at": LEAF,
}
#: The allow-list of the portal's project view: no other key may appear at any depth.
PROJECT_VIEW = {
    "project_code": LEAF, "name": LEAF, "project_unit": {"name": LEAF}, "regime": LEAF, "region": CODE_NAME,
    "status": LEAF, "declared_at": LEAF,
    "matters": [{
        "matter_code": LEAF, "matter_name": LEAF, "department": CODE_NAME, "status": LEAF, "light": LEAF,
        "received_at": LEAF, "accepted_at": LEAF, "concluded_at": LEAF, "result": RESULT,
    }],
    "supervision": [RECORD],
}
APPROVAL = {
    "project_code": LEAF, "project_name": LEAF, "region": CODE_NAME, "matter_code": LEAF, "matter_name": LEAF,
    "department": CODE_NAME, "status": LEAF, **RESULT, "concluded_at": LEAF,
}
DISCLOSED_RECORD = {**RECORD, "project_code": LEAF, "project_name": LEAF, "region": CODE_NAME}


def page_of(item):
    return {"items": [item], "page": LEAF, "page_size": LEAF, "total": LEAF}


def allowed_only(value, spec, path="$"):
    """Every key at every depth is on the allow-list; leaves are plain values (a leaf that
    is an object or a list could carry anything)."""
    if spec is LEAF:
        assert value is None or isinstance(value, (str, int, float, bool)), f"{path}: not a plain value: {value!r}"
    elif isinstance(spec, list):
        assert isinstance(value, list), f"{path}: expected a list"
        for i, item in enumerate(value):
            allowed_only(item, spec[0], f"{path}[{i}]")
    else:
        if value is None:
            return
        assert isinstance(value, dict), f"{path}: expected an object"
        extra = set(value) - set(spec)
        assert not extra, f"{path}: keys not on the allow-list: {sorted(extra)}"
        for key, sub in value.items():
            allowed_only(sub, spec[key], f"{path}.{key}")


# --- fixtures and helpers ----------------------------------------------------------------------------

def make_app(database_url, clock, **config):
    return create_app({
        "TESTING": True, "DATABASE_URL": database_url, "SECRET_KEY": SECRET, "TZXM_CLOCK_OBJECT": clock,
        "TZXM_PLATFORM_REGION": "510411", "TZXM_SWEEP_SECONDS": 1, **config,
    })


@pytest.fixture
def app(database_url, clock):
    """The shared app, with a limit no test here reaches except the rate-limit tests' own."""
    app = make_app(database_url, clock, TZXM_PORTAL_RATE="10000/minute")
    yield app
    app.extensions["tzxm_engine"].dispose()


def later(clock, **delta):
    clock.set(clock.now() + timedelta(**delta))


def conclude_filing_and_building(client, token, platform, clock, *, legacy_code=None, deny_housing=False):
    """Declare (filing, new land, building works), dispatch, reply and conclude all three
    matters, an hour between steps so each progress instant is distinct."""
    extra = {"legacy_code": legacy_code} if legacy_code else {}
    code = declare(client, token, regime="filing", industry_code="13", building_works=True, new_land_use=True,
                   **extra)["project_code"]
    supply_all_materials(client, token, code)
    later(clock, hours=1)
    for department in dispatch(client, token, code):
        work(client, token, department, "department_reply", code, REPLY_ACCEPTED)
    later(clock, hours=1)
    declared_on = {"document_date": declared(client, token, code)}  # a document is dated from the declaration on
    work(client, token, "drc", "filing_check", code, FILE | declared_on, "enterprise_filing")
    for department, matter in (("land", "land_pre_review"), ("housing", "construction_permit")):
        work(client, token, department, "pre_check", code, PRE_CHECK_PASS, matter)
        later(clock, hours=1)
        work(client, token, department, "acceptance", code, ACCEPT, matter)
        later(clock, hours=1)
        work(client, token, department, "handling", code, DECIDE, matter)
        decision = approve(department) | {"main_content": PRIVATE["main_content"]} | declared_on
        if deny_housing and department == "housing":
            decision |= {"decision": "deny", "reason": PRIVATE["reason"]}
        work(client, token, department, "decision", code, decision, matter)
    sweep(platform)
    return code


def declared(client, token, code) -> str:
    """The day (China time) the project was declared."""
    at = client.get(f"/api/v1/projects/{code}", headers=token("applicant")).get_json()["declared_at"]
    return datetime.fromisoformat(at).astimezone(timezone(timedelta(hours=8))).date().isoformat()


def add_record(platform, code, *, kind, public, title, content="检查内容", department="land", region="510411",
               details=None, at=None, state="closed", closed_at=None):
    with unit_of_work(platform.session_factory) as s:
        project = s.scalar(select(Project).where(Project.project_code == code))
        s.add(SupervisionRecord(
            project_id=project.id, project_code=code, region_code=region, department_code=department, kind=kind,
            title=title, content=content, details=details or {}, public=public, state=state,
            recorded_at=at or platform.clock.now(), recorded_by="supervisor", closed_at=closed_at,
        ))


def add_region(platform, code, name, parent):
    with unit_of_work(platform.session_factory) as s:
        s.add(Region(code=code, name=name, parent_code=parent, level="district"))


def get(client, path, **params):
    return client.get(f"{PORTAL}{path}", query_string=params)


def items(client, path, **params):
    r = get(client, path, page_size=200, **params)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"]


# --- the project view --------------------------------------------------------------------------------

def test_portal_shows_progress_and_results_and_nothing_private(client, token, platform, clock):
    declared = declare(client, token, regime="filing", industry_code="13", building_works=True, new_land_use=True,
                       legacy_code="RH-2025-0042")
    early = client.get(f"{PORTAL}/projects/{declared['project_code']}")
    assert early.status_code == 200, early.get_json()
    allowed_only(early.get_json(), PROJECT_VIEW)
    assert [(m["status"], m["received_at"], m["accepted_at"], m["concluded_at"], m["result"])
            for m in early.get_json()["matters"]] == [("notified", None, None, None, None)] * 3

    code = conclude_filing_and_building(client, token, platform, clock, legacy_code="川发改备〔2025〕７号",
                                        deny_housing=True)
    add_record(platform, code, kind="inspection", public=True, title="开工前现场检查", content="现场与备案一致")
    add_record(platform, code, kind="inspection", public=False, title="内部核查", content=PRIVATE["private_record"])
    add_record(platform, code, kind="penalty", public=True, title="未批先建行政处罚", content="责令停止建设",
               details={"decision_number": "仁自然资罚〔2026〕3号", "amount": "50000", "legal_basis": "《土地管理法》第七十七条",
                        "internal_note": PRIVATE["private_particular"]})

    r = client.get(f"{PORTAL}/projects/{code}")  # no Authorization header
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    allowed_only(body, PROJECT_VIEW)
    assert set(body) == set(PROJECT_VIEW)
    raw = r.get_data(as_text=True)
    for what, text in PRIVATE.items():
        assert text not in raw, f"{what} is public"

    assert {k: body[k] for k in ("project_code", "name", "project_unit", "regime", "region", "status", "declared_at")} == {
        "project_code": code, "name": declaration()["name"], "project_unit": {"name": "攀枝花仁和示范建设有限公司"},
        "regime": "filing", "region": {"code": "510411", "name": "仁和区"}, "status": "concluded",
        "declared_at": "2026-03-02",
    }
    matters = {m["matter_code"]: m for m in body["matters"]}
    assert list(matters) == ["enterprise_filing", "land_pre_review", "construction_permit"]
    assert {c: (m["department"], m["status"], m["light"]) for c, m in matters.items()} == {
        "enterprise_filing": ({"code": "drc", "name": "仁和区发展和改革局"}, "concluded", "green"),
        "land_pre_review": ({"code": "land", "name": "仁和区自然资源局"}, "concluded", "green"),
        "construction_permit": ({"code": "housing", "name": "仁和区住房和城乡建设局"}, "concluded", "green"),
    }
    assert matters["enterprise_filing"]["matter_name"] and all(m["matter_name"] for m in matters.values())
    assert {c: m["result"] for c, m in matters.items()} == {
        "enterprise_filing": {"decision": "filed", "document_number": "川投资备〔2026〕1号",
                              "document_title": "企业投资项目备案证明", "document_date": "2026-03-02"},
        "land_pre_review": {"decision": "approved", "document_number": "land〔2026〕1号",
                            "document_title": "land批复", "document_date": "2026-03-02"},
        "construction_permit": {"decision": "denied", "document_number": "housing〔2026〕1号",
                                "document_title": "housing批复", "document_date": "2026-03-02"},
    }
    # progress instants: received when the department's reply started the matter, accepted
    # when the promised clock started (a filing: when taken in), concluded at the decision (the
    # flow moved the clock hourly)
    assert {c: (m["received_at"], m["accepted_at"], m["concluded_at"]) for c, m in matters.items()} == {
        "enterprise_filing": ("2026-03-02T02:00:00+00:00", "2026-03-02T02:00:00+00:00", "2026-03-02T03:00:00+00:00"),
        "land_pre_review": ("2026-03-02T02:00:00+00:00", "2026-03-02T04:00:00+00:00", "2026-03-02T05:00:00+00:00"),
        "construction_permit": ("2026-03-02T02:00:00+00:00", "2026-03-02T06:00:00+00:00", "2026-03-02T07:00:00+00:00"),
    }
    assert [(s["kind"], s["title"], s["department"]["code"], s["particulars"]) for s in body["supervision"]] == [
        ("penalty", "未批先建行政处罚", "land",
         {"decision_number": "仁自然资罚〔2026〕3号", "amount": "50000", "legal_basis": "《土地管理法》第七十七条"}),
        ("inspection", "开工前现场检查", "land", {}),
    ]

    # the legacy code finds the same project, whatever its width or case
    for legacy in ("川发改备〔2025〕７号", "川发改备〔2025〕7号", " 川发改备〔2025〕7号 "):
        again = client.get(f"{PORTAL}/projects/{legacy}")
        assert again.status_code == 200 and again.get_json() == body, legacy
    assert client.get(f"{PORTAL}/projects/rh-2025-0042").get_json()["project_code"] == declared["project_code"]


def test_a_classified_project_is_never_stored_so_never_public(client, token, platform):
    """涉密项目不得通过在线平台办理: the declaration is refused with nothing stored, so the
    portal and every disclosure list know nothing of it; the code it would have got is 404."""
    code = declare(client, token)["project_code"]
    r = client.post("/api/v1/projects", json=declaration(name="涉密工程", classified=True), headers=token("applicant"))
    assert r.status_code == 422 and "classified" in r.get_json()["errors"]
    with platform.session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Project).where(Project.name == "涉密工程")) == 0
    next_code = code[:-6] + f"{int(code[-6:]) + 1:06d}"
    assert client.get(f"{PORTAL}/projects/{next_code}").status_code == 404
    for path in ("/disclosure/approvals", "/disclosure/supervision", "/disclosure/penalties"):
        assert "涉密工程" not in get(client, path).get_data(as_text=True)


def count_statements(app, call):
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    engine = app.extensions["tzxm_engine"]
    event.listen(engine, "before_cursor_execute", record)
    try:
        response = call()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return response, statements


def test_unknown_codes_are_404_after_the_same_statements_as_known_ones(app, client, token, platform, clock):
    code = conclude_filing_and_building(client, token, platform, clock, legacy_code="RH-OLD-1")
    add_record(platform, code, kind="inspection", public=True, title="现场检查")
    client.get(f"{PORTAL}/projects/{code}")  # warm the pool: connection set-up is not the request's work
    unknown_serial = code[:-6] + "999999"
    cases = {
        "known": code, "legacy": "RH-OLD-1", "unknown": unknown_serial, "unknown legacy": "RH-OLD-2",
        "malformed": "%E2%80%8B%21", "too long": "X" * 80,  # control characters match no route (test_input_hygiene)
    }
    counted = {}
    for name, path in cases.items():
        response, statements = count_statements(app, lambda: client.get(f"{PORTAL}/projects/{path}"))
        assert response.status_code == (200 if name in ("known", "legacy") else 404), (name, response.get_json())
        if response.status_code == 404:
            assert response.get_json() == {"code": 404, "status": "Not Found", "message": "项目不存在 (no such project)", "errors": {}}
        counted[name] = statements
    # not just as many statements: the same SQL text, in the same order (only parameters differ)
    for name, statements in counted.items():
        assert statements == counted["known"], (name, len(statements), len(counted["known"]))
    # the rate-limit upsert and the three lookups (project, matters, public records)
    assert len(counted["known"]) >= 4


# --- disclosure lists ------------------------------------------------------------------------------

def test_approvals_list_filters_and_pages(client, token, platform, clock):
    first = conclude_filing_and_building(client, token, platform, clock)
    clock.set(datetime(2026, 3, 4, 9, 0, tzinfo=SHANGHAI))
    second = conclude_filing_and_building(client, token, platform, clock, deny_housing=True)
    declare(client, token)  # declared only: nothing to disclose
    add_region(platform, "510402", "东区", "510400")

    listed = items(client, "/disclosure/approvals")
    allowed_only({"items": listed, "page": 1, "page_size": 1, "total": 1}, page_of(APPROVAL))
    assert [(a["project_code"], a["matter_code"]) for a in listed] == [
        (second, "construction_permit"), (second, "land_pre_review"), (second, "enterprise_filing"),
        (first, "construction_permit"), (first, "land_pre_review"), (first, "enterprise_filing")]
    newest = listed[0]
    assert newest == {
        "project_code": second, "project_name": declaration()["name"], "region": {"code": "510411", "name": "仁和区"},
        "matter_code": "construction_permit", "matter_name": newest["matter_name"],
        "department": {"code": "housing", "name": "仁和区住房和城乡建设局"}, "status": "concluded",
        "decision": "denied", "document_number": "housing〔2026〕1号", "document_title": "housing批复",
        "document_date": "2026-03-04", "concluded_at": "2026-03-04T07:00:00+00:00",
    }
    raw = get(client, "/disclosure/approvals", page_size=200).get_data(as_text=True)
    for what, text in PRIVATE.items():
        assert text not in raw, f"{what} is public"

    def pairs(**params):
        return [(a["project_code"], a["matter_code"]) for a in items(client, "/disclosure/approvals", **params)]

    # region: a region includes the regions below it; a sibling has none
    assert len(pairs(region="510000")) == len(pairs(region="510400")) == len(pairs(region="510411")) == 6
    assert pairs(region="510402") == []
    assert pairs(department="land") == [(second, "land_pre_review"), (first, "land_pre_review")]
    assert pairs(matter_code="enterprise_filing") == [(second, "enterprise_filing"), (first, "enterprise_filing")]
    # dates: Asia/Shanghai calendar days of the conclusion, both ends inclusive
    assert {p for p, _ in pairs(**{"from": "2026-03-03"})} == {second}
    assert {p for p, _ in pairs(to="2026-03-02")} == {first}
    assert pairs(**{"from": "2026-03-02", "to": "2026-03-02"}, department="housing") == [(first, "construction_permit")]
    assert pairs(**{"from": "2026-03-05"}) == []

    # pages of two, newest first, the total on every page
    seen = []
    for page in (1, 2, 3, 4):
        r = get(client, "/disclosure/approvals", page=page, page_size=2)
        assert r.status_code == 200
        env = r.get_json()
        assert (env["page"], env["page_size"], env["total"]) == (page, 2, 6)
        seen += [(a["project_code"], a["matter_code"]) for a in env["items"]]
    assert seen == pairs()

    for params, field in (({"region": "51"}, "region"), ({"region": "510499"}, "region"),
                          ({"department": "nope"}, "department"), ({"matter_code": "nope"}, "matter_code"),
                          ({"from": "2026-03-05", "to": "2026-03-01"}, "to"), ({"from": "yesterday"}, "from"),
                          ({"page_size": 0}, "page_size"), ({"project": "x"}, "project")):
        r = get(client, "/disclosure/approvals", **params)
        assert r.status_code == 422, (params, r.get_json())
        assert field in r.get_json()["errors"], (params, r.get_json())


def test_supervision_and_penalty_lists_show_only_public_records(client, token, platform, clock):
    first = declare(client, token)["project_code"]
    second = declare(client, token, name="钒钛新材料深加工项目", user="applicant2")["project_code"]
    add_region(platform, "510402", "东区", "510400")
    day = lambda d, h=10: datetime(2026, 3, d, h, 0, tzinfo=SHANGHAI)  # noqa: E731
    add_record(platform, first, kind="inspection", public=True, title="第一次检查", at=day(2))
    add_record(platform, first, kind="rectification", public=True, title="限期整改", department="env", at=day(3),
               state="closed", closed_at=day(6))
    add_record(platform, second, kind="inspection", public=True, title="东区检查", region="510402", at=day(4))
    add_record(platform, second, kind="inspection", public=False, title="内部核查", content=PRIVATE["private_record"],
               at=day(5))
    add_record(platform, first, kind="penalty", public=True, title="罚款", at=day(5, 23), department="land",
               details={"decision_number": "仁自然资罚〔2026〕3号", "amount": 50000,
                        "internal_note": PRIVATE["private_particular"], "legal_basis": {"nested": "x"}})
    add_record(platform, second, kind="penalty", public=False, title="未公开处罚", at=day(6))

    supervision = items(client, "/disclosure/supervision")
    allowed_only({"items": supervision, "page": 1, "page_size": 1, "total": 1}, page_of(DISCLOSED_RECORD))
    assert [(s["title"], s["kind"], s["project_code"], s["region"]["code"]) for s in supervision] == [
        ("东区检查", "inspection", second, "510402"), ("限期整改", "rectification", first, "510411"),
        ("第一次检查", "inspection", first, "510411")]
    rectification = supervision[1]
    assert rectification | {"reference": None} == {
        "reference": None, "project_code": first, "project_name": declaration()["name"],
        "region": {"code": "510411", "name": "仁和区"}, "department": {"code": "env", "name": "攀枝花市仁和生态环境局"},
        "kind": "rectification", "title": "限期整改", "content": "检查内容", "particulars": {}, "state": "closed",
        "recorded_at": "2026-03-03T02:00:00+00:00", "closed_at": "2026-03-06T02:00:00+00:00",
    }
    references = [s["reference"] for s in supervision]
    assert len(set(references)) == 3 and all(len(r) == 20 and not r.isdigit() for r in references)
    assert [s["reference"] for s in items(client, "/disclosure/supervision")] == references  # stable

    penalties = items(client, "/disclosure/penalties")
    allowed_only({"items": penalties, "page": 1, "page_size": 1, "total": 1}, page_of(DISCLOSED_RECORD))
    assert [(p["title"], p["particulars"]) for p in penalties] == [
        ("罚款", {"decision_number": "仁自然资罚〔2026〕3号", "amount": 50000})]
    for path in ("/disclosure/supervision", "/disclosure/penalties"):
        raw = get(client, path, page_size=200).get_data(as_text=True)
        assert PRIVATE["private_record"] not in raw and PRIVATE["private_particular"] not in raw
        assert "未公开处罚" not in raw and "内部核查" not in raw

    def titles(path="/disclosure/supervision", **params):
        return [s["title"] for s in items(client, path, **params)]

    assert titles(region="510411") == ["限期整改", "第一次检查"]
    assert titles(region="510402") == ["东区检查"]
    assert titles(region="510400") == titles(region="510000") == ["东区检查", "限期整改", "第一次检查"]
    assert titles(department="env") == ["限期整改"]
    assert titles(**{"from": "2026-03-03", "to": "2026-03-04"}) == ["东区检查", "限期整改"]
    # 23:00 on 5 March in Shanghai is 15:00 UTC: still the 5th
    assert titles("/disclosure/penalties", **{"from": "2026-03-05", "to": "2026-03-05"}) == ["罚款"]
    assert titles("/disclosure/penalties", **{"from": "2026-03-06"}) == []
    env = get(client, "/disclosure/supervision", page=2, page_size=2).get_json()
    assert (env["total"], [s["title"] for s in env["items"]]) == (3, ["第一次检查"])
    r = get(client, "/disclosure/supervision", matter_code="land_pre_review")
    assert r.status_code == 422 and "matter_code" in r.get_json()["errors"]
    r = get(client, "/disclosure/penalties", department="nope")
    assert r.status_code == 422 and "department" in r.get_json()["errors"]


# --- Atom ---------------------------------------------------------------------------------------------

def feed(client, name, **params):
    r = get(client, f"/disclosure/{name}.atom", **params)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    root = ET.fromstring(r.get_data())
    assert root.tag == f"{ATOM}feed"
    return root


def test_atom_feeds_are_valid_escaped_and_filtered(client, token, platform, clock):
    code = conclude_filing_and_building(client, token, platform, clock)
    add_record(platform, code, kind="inspection", public=True, title='<b>检查 & "通报"</b>',
               content="第一行\x0b含控制字符 <script>alert(1)</script>", at=datetime(2026, 3, 3, 10, tzinfo=SHANGHAI))
    add_record(platform, code, kind="penalty", public=True, title="罚款", details={"amount": "5000"})
    add_record(platform, code, kind="penalty", public=False, title="未公开处罚")

    root = feed(client, "approvals")
    assert root.find(f"{ATOM}id").text.startswith("tag:localhost,2026:disclosure/approvals")
    assert root.find(f"{ATOM}title").text == "信息公开：审批结果"
    assert root.find(f"{ATOM}author/{ATOM}name").text == "投资项目在线审批监管平台"
    links = {link.get("rel"): link.get("href") for link in root.findall(f"{ATOM}link")}
    assert links["self"].endswith("/api/v1/portal/disclosure/approvals.atom")
    assert links["alternate"].endswith("/api/v1/portal/disclosure/approvals")
    entries = root.findall(f"{ATOM}entry")
    assert [e.find(f"{ATOM}id").text for e in entries] == [
        f"tag:localhost,2026:approval/{code}/{m}" for m in ("construction_permit", "land_pre_review", "enterprise_filing")]
    assert root.find(f"{ATOM}updated").text == entries[0].find(f"{ATOM}updated").text == "2026-03-02T15:00:00+08:00"
    for entry in entries:
        for tag in ("id", "title", "updated", "published", "summary"):
            assert entry.find(f"{ATOM}{tag}") is not None and entry.find(f"{ATOM}{tag}").text, tag
        assert entry.find(f"{ATOM}updated").text.endswith("+08:00")
        assert entry.find(f"{ATOM}link").get("href").endswith(f"/api/v1/portal/projects/{code}")
    summary = entries[2].find(f"{ATOM}summary").text
    assert "文号：川投资备〔2026〕1号" in summary and PRIVATE["filing_comment"] not in summary
    assert [e.find(f"{ATOM}category").get("term") for e in feed(client, "approvals", department="land").findall(f"{ATOM}entry")] == ["land"]
    assert feed(client, "approvals", region="510000", **{"from": "2026-03-03"}).findall(f"{ATOM}entry") == []

    supervision = feed(client, "supervision").findall(f"{ATOM}entry")
    assert len(supervision) == 1
    entry = supervision[0]
    assert entry.find(f"{ATOM}title").text == '<b>检查 & "通报"</b>'
    assert "第一行含控制字符 <script>alert(1)</script>" in entry.find(f"{ATOM}summary").text
    assert entry.find(f"{ATOM}id").text.startswith("tag:localhost,2026:supervision-record/")
    assert entry.find(f"{ATOM}published").text == "2026-03-03T10:00:00+08:00"
    raw = get(client, "/disclosure/supervision.atom").get_data(as_text=True)
    assert "<script>" not in raw and "&lt;script&gt;" in raw
    penalties = feed(client, "penalties").findall(f"{ATOM}entry")
    assert [(e.find(f"{ATOM}title").text, "金额：5000" in e.find(f"{ATOM}summary").text) for e in penalties] == [("罚款", True)]
    assert feed(client, "penalties", department="env").findall(f"{ATOM}entry") == []
    empty = feed(client, "supervision", **{"from": "2027-01-01"})
    assert empty.findall(f"{ATOM}entry") == [] and empty.find(f"{ATOM}updated").text == "2026-03-02T15:00:00+08:00"
    r = get(client, "/disclosure/supervision.atom", matter_code="x")
    assert r.status_code == 422 and r.get_json()["errors"]
    r = get(client, "/disclosure/approvals.atom", page=1)
    assert r.status_code == 422 and "page" in r.get_json()["errors"]


# --- rate limit ------------------------------------------------------------------------------------

def test_every_portal_route_is_rate_limited(app):
    """Every route under /portal, this blueprint's and the service guides' alike."""
    portal_endpoints = {rule.endpoint for rule in app.url_map.iter_rules() if rule.rule.startswith(PORTAL)}
    assert len({e for e in portal_endpoints if e.startswith("portal.")}) == 7
    assert all(getattr(app.view_functions[e], "rate_limited", False) for e in portal_endpoints), portal_endpoints


def test_rate_limit_is_shared_counts_404s_and_says_when_to_retry(database_url, clock, platform, client, token):
    code = declare(client, token)["project_code"]
    clock.set(START + timedelta(seconds=15))
    one = make_app(database_url, clock, TZXM_PORTAL_RATE="4/minute")
    two = make_app(database_url, clock, TZXM_PORTAL_RATE="4/minute")
    try:
        a, b = one.test_client(), two.test_client()
        # two server processes, one count: 404s and bad requests count like the rest
        assert a.get(f"{PORTAL}/projects/{code}").status_code == 200
        assert b.get(f"{PORTAL}/projects/2026-510411-13-03-999999").status_code == 404
        assert a.get(f"{PORTAL}/projects/nope").status_code == 404
        assert b.get(f"{PORTAL}/disclosure/approvals", query_string={"page_size": 0}).status_code == 422
        r = a.get(f"{PORTAL}/projects/{code}")
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "45"
        body = r.get_json()
        assert body["code"] == 429 and body["status"] == "Too Many Requests" and "45" in body["message"]
        assert b.get(f"{PORTAL}/disclosure/penalties.atom").status_code == 429
        # X-Forwarded-For is the client's to write: not trusted unless configured
        assert a.get(f"{PORTAL}/projects/{code}", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 429
        # another address has its own count
        assert a.get(f"{PORTAL}/projects/{code}", environ_base={"REMOTE_ADDR": "198.51.100.7"}).status_code == 200
        with platform.session_factory() as s:
            assert s.get(RateWindow, "127.0.0.1").count == 7
        # the next window starts afresh
        clock.set(START + timedelta(seconds=60))
        assert a.get(f"{PORTAL}/projects/{code}").status_code == 200
    finally:
        one.extensions["tzxm_engine"].dispose()
        two.extensions["tzxm_engine"].dispose()


def test_forwarded_address_is_used_behind_a_configured_proxy(database_url, clock, client, token):
    code = declare(client, token)["project_code"]
    proxied = make_app(database_url, clock, TZXM_PORTAL_RATE="1/minute", TZXM_TRUSTED_PROXY_HOPS=1)
    try:
        c = proxied.test_client()
        # the proxy appends the address it saw: the last entry, not what the client wrote first
        first = {"X-Forwarded-For": "10.9.9.9, 203.0.113.1"}
        assert c.get(f"{PORTAL}/projects/{code}", headers=first).status_code == 200
        assert c.get(f"{PORTAL}/projects/{code}", headers={"X-Forwarded-For": "10.8.8.8, 203.0.113.1"}).status_code == 429
        assert c.get(f"{PORTAL}/projects/{code}", headers={"X-Forwarded-For": "203.0.113.2"}).status_code == 200
        # garbage where the proxy's entry should be: the peer address counts instead
        assert c.get(f"{PORTAL}/projects/{code}", headers={"X-Forwarded-For": "not-an-address"}).status_code == 200
        assert c.get(f"{PORTAL}/projects/{code}").status_code == 429
    finally:
        proxied.extensions["tzxm_engine"].dispose()


def test_malformed_settings_stop_the_server(database_url, clock):
    with pytest.raises(ConfigurationError, match="TZXM_PORTAL_RATE"):
        make_app(database_url, clock, TZXM_PORTAL_RATE="lots")
    with pytest.raises(ConfigurationError, match="TZXM_TRUSTED_PROXY_HOPS"):
        make_app(database_url, clock, TZXM_TRUSTED_PROXY_HOPS="-1")


def test_concurrent_requests_are_each_counted_once(platform):
    """The upsert is atomic: 12 concurrent takes of one client number 1..12."""
    rate = ratelimit.Rate(100, 60)
    counts, errors = [], []

    def take():
        try:
            with unit_of_work(platform.session_factory) as s:
                counts.append(ratelimit.take(s, client="192.0.2.1", now=START, rate=rate).count)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=take) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sorted(counts) == list(range(1, 13))


def test_purge_keeps_only_the_current_windows_clients(platform):
    rate = ratelimit.Rate(10, 60)
    with unit_of_work(platform.session_factory) as s:
        ratelimit.take(s, client="192.0.2.1", now=START, rate=rate)
        ratelimit.take(s, client="192.0.2.2", now=START + timedelta(seconds=61), rate=rate)
    with unit_of_work(platform.session_factory) as s:
        assert ratelimit.purge(s, now=START + timedelta(seconds=90), rate=rate) == 1
    with platform.session_factory() as s:
        assert [r.client for r in s.scalars(select(RateWindow))] == ["192.0.2.2"]
    with unit_of_work(platform.session_factory) as s:
        # an old row restarts at 1 in a new window
        assert ratelimit.take(s, client="192.0.2.2", now=START + timedelta(seconds=200), rate=rate).count == 1
