"""Notices as PDFs over HTTP (issue #5): issued by the diagrams, stored under their SHA-256,
listed on the project and downloadable by the project unit and the officials, nobody else."""
from __future__ import annotations

import hashlib
from io import BytesIO
from urllib.parse import quote

from pypdf import PdfReader
from sqlalchemy import select

from engine import notices
from engine.db import unit_of_work
from engine.models import Notice, Project, StoredFile
from engine.sweep import sweep
from tests.integration.helpers import declare

#: a filing-regime project that also needs the land pre-review (new land use)
LAND_PROJECT = {"regime": "filing", "industry_code": "13", "building_works": False, "new_land_use": True}
REPLY_ACCEPTED = {"reply_outcome": "accepted", "reply_comment": "本部门有应办事项，已受理"}
PRE_CHECK_FAIL = {"precheck_result": "fail", "code_verified": True, "within_competence": False,
                  "precheck_comment": "不属于本部门受理范围"}
FILING_REFUSED = {"filing_decision": "refuse", "filing_comment": "不符合备案条件", "refusal_reason": "属于产业政策禁止投资建设的项目"}


def find(client, token, user, name, code):
    r = client.get("/api/v1/tasks", headers=token(user), query_string={"project_code": code, "page_size": 200})
    assert r.status_code == 200, r.get_json()
    found = [t for t in r.get_json()["items"] if t["name"] == name]
    assert len(found) == 1, (user, name, found)
    return found[0]


def work(client, token, user, name, code, data):
    task = find(client, token, user, name, code)
    r = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=token(user),
                    json={"data": data, "version": task["version"]})
    assert r.status_code == 200, (user, name, r.get_json())


def project_notices(client, token, code, user="applicant"):
    r = client.get(f"/api/v1/projects/{code}", headers=token(user))
    assert r.status_code == 200, r.get_json()
    return r.get_json()["notices"]


def download(client, token, notice_id, user):
    return client.get(f"/api/v1/notices/{notice_id}/pdf", headers=token(user) if user else {})


def text_of(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(BytesIO(data)).pages)


def dispatch_all(client, token, code) -> list[str]:
    """The window dispatches to every department the matters notice names; returns them."""
    window = find(client, token, "window", "window_review", code)
    r = client.post(f"/api/v1/tasks/{window['id']}/complete", headers=token("window"), json={
        "data": {"window_decision": "dispatch", "departments": window["context"]["departments"]},
        "version": window["version"]})
    assert r.status_code == 200, r.get_json()
    return window["context"]["departments"]


def test_refusals_and_the_conclusion_are_pdfs_for_the_unit_and_the_officials(client, token, platform, file_store):
    code = declare(client, token, **LAND_PROJECT)["project_code"]
    departments = dispatch_all(client, token, code)
    for department in departments:
        work(client, token, department, "department_reply", code, REPLY_ACCEPTED)
    work(client, token, "land", "pre_check", code, PRE_CHECK_FAIL)
    work(client, token, "drc", "filing_check", code, FILING_REFUSED)
    sweep(platform)  # the master hears that both matters ended and concludes the project

    listed = {n["kind"] + ":" + str(n["matter_code"]): n for n in project_notices(client, token, code)}
    assert set(listed) == {"refusal:land_pre_review", "refusal:enterprise_filing", "conclusion:None"}
    expected = {
        "refusal:land_pre_review": ["初审不予通过告知书", "理由：不属于本部门受理范围", "建设项目用地预审与选址意见书",
                                    "仁和区自然资源局"],
        "refusal:enterprise_filing": ["不予备案告知书", "理由：属于产业政策禁止投资建设的项目", "企业投资项目备案",
                                      "仁和区发展和改革局"],
        "conclusion:None": ["办结告知书", "企业投资项目备案：不予受理", "建设项目用地预审与选址意见书：不予受理",
                            "仁和区政务服务中心综合窗口"],
    }
    with platform.session_factory() as s:
        rows = {n.id: n for n in s.scalars(select(Notice).join(Project).where(Project.project_code == code))}
        media_types = {f.sha256: f.media_type for f in s.scalars(select(StoredFile))}
    for key, notice in listed.items():
        r = download(client, token, notice["id"], "applicant")
        assert r.status_code == 200, r.get_json()
        assert r.mimetype == "application/pdf" and r.data.startswith(b"%PDF-")
        assert r.headers["Content-Disposition"].startswith("attachment;")
        assert f"filename*=UTF-8''{quote(notice['number'] + '.pdf', safe='')}" in r.headers["Content-Disposition"]
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        text = text_of(r.data)
        for phrase in [f"项目代码：{code}", f"编号：{notice['number']}", "攀枝花仁和示范建设有限公司：", *expected[key]]:
            assert phrase in text, (key, phrase)
        # stored once under its SHA-256, the digest recorded on the notice
        digest = rows[notice["id"]].sha256
        assert digest == hashlib.sha256(r.data).hexdigest()
        stored = file_store / digest[:2] / digest
        assert stored.is_file() and stored.read_bytes() == r.data
        assert media_types[digest] == "application/pdf"
        # the officials of the project's region: the matter's officer, another department, the operator
        for official in ("land", "drc", "env", "operator"):
            again = download(client, token, notice["id"], official)
            assert again.status_code == 200 and again.data == r.data, official
        # another project unit, as for a notice that does not exist
        other = download(client, token, notice["id"], "applicant2")
        assert other.status_code == 404 and other.get_json()["message"] == "通知书不存在 (no such notice)"
    for unknown in (max(rows) + 1000, 0, 2**31, 10**30):  # absent, and ids no notice can have
        assert download(client, token, unknown, "applicant").status_code == 404, unknown
    assert download(client, token, max(rows), None).status_code == 401
    history = client.get(f"/api/v1/projects/{code}/history", headers=token("applicant"), query_string={"page_size": 200})
    assert history.status_code == 200
    assert sum(e["action"].startswith("notice.") for e in history.get_json()["items"]) == 3


def test_the_conclusion_accounts_for_every_notified_matter_not_only_the_handled_ones(client, token, platform):
    """事前告知的应办事项全部办结后生成办结告知书: a department that answered “no matter at
    this stage” leaves its matter undecided, and the notice says so instead of calling
    every notified matter concluded."""
    code = declare(client, token, **LAND_PROJECT)["project_code"]
    dispatch_all(client, token, code)
    work(client, token, "drc", "department_reply", code, REPLY_ACCEPTED)
    work(client, token, "land", "department_reply", code, {"reply_outcome": "no_matter", "reply_comment": "本阶段无应办事项"})
    work(client, token, "drc", "filing_check", code, FILING_REFUSED)
    sweep(platform)

    (conclusion,) = [n for n in project_notices(client, token, code) if n["kind"] == "conclusion"]
    with platform.session_factory() as s:
        content = s.get(Notice, conclusion["id"]).content
    assert [(m["matter_code"], m["decision"] or m["status"]) for m in content["notified_matters"]] == [
        ("enterprise_filing", "refused"), ("land_pre_review", "no_matter")]
    text = text_of(download(client, token, conclusion["id"], "applicant").data)
    assert "事前告知的应办事项办理情况如下" in text and "已全部办结" not in text
    flat = text.replace("\n", "")  # a long line wraps
    assert "企业投资项目备案：不予受理" in flat and "建设项目用地预审与选址意见书：本阶段无需办理（部门答复或逾期视为无应办事项）" in flat



def test_the_last_reply_concluding_the_project_is_counted_in_its_conclusion(client, token, platform):
    """drc's matter ends first (it started at drc's reply); land's "no matter" reply then
    concludes the project in the same step: the notice marks land's matter as such, not as
    never dispatched."""
    code = declare(client, token, **LAND_PROJECT)["project_code"]
    dispatch_all(client, token, code)
    work(client, token, "drc", "department_reply", code, REPLY_ACCEPTED)
    work(client, token, "drc", "filing_check", code, FILING_REFUSED)
    sweep(platform)
    assert [n for n in project_notices(client, token, code) if n["kind"] == "conclusion"] == []
    work(client, token, "land", "department_reply", code, {"reply_outcome": "no_matter", "reply_comment": "本阶段无应办事项"})

    (conclusion,) = [n for n in project_notices(client, token, code) if n["kind"] == "conclusion"]
    with platform.session_factory() as s:
        content = s.get(Notice, conclusion["id"]).content
    assert [(m["matter_code"], m["decision"] or m["status"]) for m in content["notified_matters"]] == [
        ("enterprise_filing", "refused"), ("land_pre_review", "no_matter")]

def test_a_correction_notice_lists_the_materials_and_downloads_as_issued(client, token, platform, file_store):
    code = declare(client, token)["project_code"]
    items = [{"material": "red_line_map", "name": "用地红线图", "note": "请提供加盖公章的用地红线图"},
             {"material": "site_plan", "name": "总平面布置图", "note": "比例尺不低于1:500"}]
    with unit_of_work(platform.session_factory) as s:
        p = s.scalar(select(Project).where(Project.project_code == code))
        issued = notices.issue(s, project=p, matter_code="enterprise_filing", kind="correction",
                               particulars={"correction_items": items, "filing_decision": "correction"},
                               now=platform.clock.now())
        s.flush()
        notice_id, number, digest = issued.id, issued.number, issued.sha256
    assert number == f"{code}-enterprise_filing-correction-01"
    [listed] = project_notices(client, token, code)
    assert (listed["id"], listed["kind"], listed["number"]) == (notice_id, "correction", number)
    r = download(client, token, notice_id, "applicant")
    assert r.status_code == 200 and hashlib.sha256(r.data).hexdigest() == digest
    text = text_of(r.data)
    for phrase in ("补正通知书", f"项目代码：{code}", f"编号：{number}", "审批事项：企业投资项目备案",
                   "1. 用地红线图（red_line_map）：请提供加盖公章的用地红线图", "2. 总平面布置图（site_plan）：比例尺不低于1:500",
                   "仁和区发展和改革局", "2026年3月2日"):
        assert phrase in text, phrase
    assert (file_store / digest[:2] / digest).read_bytes() == r.data
    # a file lost from the store is rendered again from the notice's content: the same bytes
    (file_store / digest[:2] / digest).unlink()
    again = download(client, token, notice_id, "applicant")
    assert again.status_code == 200 and again.data == r.data
    assert download(client, token, notice_id, "drc").status_code == 200
    assert download(client, token, notice_id, "applicant2").status_code == 404
