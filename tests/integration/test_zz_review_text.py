"""Review scratch (CHINESE TEXT AND DOCUMENTS): reproductions and checks, over HTTP.

Each test either checks an area that is fine or reproduces a finding (named ``test_finding_*``)."""
from __future__ import annotations

import csv
import io
import re
import unicodedata
from io import BytesIO
from urllib.parse import quote, unquote

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from stdnum.cn import uscc as _uscc

from engine.sweep import sweep
from tests.integration.helpers import TINY_PDF, declaration, declare

RARE = "𠀾𬌗"  # U+2003E (Ext B), U+2C317 (Ext E, 通用规范汉字表)
NAME = f"仁和区{RARE}新材料产业园（一期）ＡＢＣ项目"
LAND_PROJECT = {"regime": "filing", "industry_code": "13", "building_works": False, "new_land_use": True}
REPLY_ACCEPTED = {"reply_outcome": "accepted", "reply_comment": "本部门有应办事项，已受理"}
PRE_CHECK_FAIL = {"precheck_result": "fail", "code_verified": True, "within_competence": False,
                  "precheck_comment": f"不属于本部门受理范围{RARE}"}
CJK = re.compile(r"[\u3400-\u9fff]")
LATIN = re.compile(r"[A-Za-z]{3,}")


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


def credit_code(body17: str) -> str:
    return body17 + _uscc.calc_check_digit(body17)


# --- JSON, storage, lengths ----------------------------------------------------------------------

def test_rare_and_full_width_text_round_trips_as_utf8_json(client, token, platform):
    body = declaration(name=NAME, location=f"攀枝花市仁和区{RARE}镇　前进村", construction_content="新建厂房２万平方米😀")
    r = client.post("/api/v1/projects", json=body, headers=token("applicant"))
    assert r.status_code == 201, r.get_json()
    assert NAME.encode("utf-8") in r.data  # ensure_ascii off: no \\u escapes
    assert b"\\u" not in r.data
    assert r.headers["Content-Type"].startswith("application/json")
    code = r.get_json()["project_code"]
    got = client.get(f"/api/v1/projects/{code}", headers=token("applicant")).get_json()
    assert (got["name"], got["location"], got["construction_content"]) == (body["name"], body["location"], body["construction_content"])
    portal = client.get(f"/api/v1/portal/projects/{code}")
    assert portal.status_code == 200 and portal.get_json()["name"] == NAME and NAME.encode() in portal.data
    hist = client.get(f"/api/v1/projects/{code}/history", headers=token("applicant")).get_json()
    assert any(e["summary"].get("name") == NAME for e in hist["items"])
    # the audit chain still verifies with astral-plane text in it
    from engine import audit
    with platform.session_factory() as s:
        result = audit.verify(s)
    print("audit verify:", result)


@pytest.mark.parametrize("char", ["名", "𠀾", "é"])
def test_length_limits_count_characters_on_both_databases(client, token, char):
    ok = client.post("/api/v1/projects", json=declaration(name=char * 200, location=char * 200), headers=token("applicant"))
    assert ok.status_code == 201, ok.get_json()
    assert ok.get_json()["name"] == char * 200
    over = client.post("/api/v1/projects", json=declaration(name=char * 201), headers=token("applicant"))
    assert over.status_code == 422 and "name" in over.get_json()["errors"], over.get_json()
    unit = client.post("/api/v1/units", headers=token("operator"),
                       json={"name": char * 200, "credit_code": credit_code("91510411MA6" + "ABCDEF"[:6]),
                             "contact_name": char * 64})
    assert unit.status_code == 201, unit.get_json()
    user = client.post("/api/v1/users", headers=token("operator"), json={
        "username": "clerk1", "password": "Clerk-pass-2026", "display_name": char * 64, "roles": ["officer"],
        "department_code": client.get("/api/v1/reference/departments", headers=token("operator")).get_json()[1]["code"]})
    assert user.status_code == 201, user.get_json()
    assert user.get_json()["display_name"] == char * 64


def test_nfd_name_is_stored_as_typed_and_counts_code_points(client, token):
    nfd = unicodedata.normalize("NFD", "é") * 100  # 200 code points, 100 characters as read
    r = client.post("/api/v1/projects", json=declaration(name=nfd), headers=token("applicant"))
    print("NFD name of 200 code points:", r.status_code)


# --- normalisation of codes ------------------------------------------------------------------------

def test_credit_codes_typed_full_width_or_spaced_are_one_unit(client, token):
    code = credit_code("91510411MA6" + "CDEFGH"[:6])
    r = client.post("/api/v1/units", headers=token("operator"), json={"name": "甲公司", "credit_code": code})
    assert r.status_code == 201, r.get_json()
    full = unicodedata.normalize("NFKC", code).translate({ord(c): ord(c) + 0xFEE0 for c in code})
    again = client.post("/api/v1/units", headers=token("operator"), json={"name": "甲公司", "credit_code": full})
    assert again.status_code == 422 and "credit_code" in again.get_json()["errors"], again.get_json()
    lower = client.post("/api/v1/units", headers=token("operator"), json={"name": "甲公司", "credit_code": " " + code.lower()[:9] + " " + code.lower()[9:]})
    assert lower.status_code == 422 and "已登记" in lower.get_json()["errors"]["credit_code"][0], lower.get_json()


def test_legacy_and_project_codes_typed_full_width_find_the_project(client, token):
    legacy_full = "川发改备［２０１９］ａｂｃ－１２"
    created = declare(client, token, legacy_code=legacy_full)
    code = created["project_code"]
    proj = client.get(f"/api/v1/projects/{code}", headers=token("applicant")).get_json()
    print("stored legacy code:", proj["legacy_code"])
    half = unicodedata.normalize("NFKC", legacy_full).upper()
    for typed in (legacy_full, half, half.lower()):
        r = client.get(f"/api/v1/portal/projects/{quote(typed, safe='')}")
        assert r.status_code == 200 and r.get_json()["project_code"] == code, (typed, r.get_json())
        v = client.get(f"/api/v1/codes/{quote(typed, safe='')}/verify", headers=token("drc"))
        assert v.status_code == 200 and v.get_json()["result"] == "valid", (typed, v.get_json())
    dup = client.post("/api/v1/projects", json=declaration(legacy_code=half.lower()), headers=token("applicant"))
    assert dup.status_code == 422 and "legacy_code" in dup.get_json()["errors"], dup.get_json()
    full_code = code.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789-"})
    r = client.get(f"/api/v1/projects/{quote(full_code, safe='')}", headers=token("applicant"))
    assert r.status_code == 200 and r.get_json()["project_code"] == code


def test_usernames_typed_full_width_or_capitalised_at_sign_in(client):
    for typed in ("applicant", "Applicant", "ａｐｐｌｉｃａｎｔ", " applicant"):
        r = client.post("/api/v1/auth/token", json={"username": typed, "password": "demo-password"})
        print("sign-in as", repr(typed), "->", r.status_code, r.get_json().get("message"))


# --- search ---------------------------------------------------------------------------------------

def test_guide_search_with_chinese(client):
    everything = client.get("/api/v1/portal/guides", query_string={"page_size": 200}).get_json()["items"]
    names = [g["name"] for g in everything]
    print("guide names:", names)
    for q in ("环境", "用地", "预审与选址", "%", "_"):
        r = client.get("/api/v1/portal/guides", query_string={"q": q, "page_size": 200})
        assert r.status_code == 200, r.get_json()
        got = sorted(g["name"] for g in r.get_json()["items"])
        assert got == sorted(n for n in names if q in n), (q, got)


# --- notices: PDFs ---------------------------------------------------------------------------------

def _f2_codes(data: bytes) -> list[tuple[int, str]]:
    """Every 2-byte code drawn with the CID font (Type0, UniGB-UCS2-H) on every page, and the text it was."""
    from pypdf.generic import ContentStream
    reader = PdfReader(BytesIO(data))
    out = []
    for page in reader.pages:
        fonts = {name: f.get_object() for name, f in page["/Resources"]["/Font"].items()}
        cid_fonts = {name for name, f in fonts.items() if f.get("/Subtype") == "/Type0"}
        assert {fonts[n]["/Encoding"] for n in cid_fonts} == {"/UniGB-UCS2-H"}
        current = None
        for operands, op in ContentStream(page.get_contents(), reader).operations:
            if op == b"Tf":
                current = operands[0]
            elif op == b"Tj" and current in cid_fonts:
                raw = bytes(operands[0].original_bytes if hasattr(operands[0], "original_bytes") else operands[0])
                text = raw.decode("utf-16-be", "replace")
                out += [(int.from_bytes(raw[i:i + 2], "big"), text) for i in range(0, len(raw), 2)]
    return out


def _unit_and_applicant(client, token, unit_name: str, username: str):
    unit = client.post("/api/v1/units", headers=token("operator"),
                       json={"name": unit_name, "credit_code": credit_code("91510411MA6" + "GHJKLM"[:6])})
    assert unit.status_code == 201, unit.get_json()
    user = client.post("/api/v1/users", headers=token("operator"), json={
        "username": username, "password": "Rare-pass-2026", "display_name": "申报员", "roles": ["applicant"],
        "project_unit_id": unit.get_json()["id"]})
    assert user.status_code == 201, user.get_json()


def _refused_at_pre_check(client, token, user="applicant", name=NAME):
    code = declare(client, token, user=user, name=name, **LAND_PROJECT)["project_code"]
    window = find(client, token, "window", "window_review", code)
    r = client.post(f"/api/v1/tasks/{window['id']}/complete", headers=token("window"), json={
        "data": {"window_decision": "dispatch", "departments": window["context"]["departments"]},
        "version": window["version"]})
    assert r.status_code == 200, r.get_json()
    for department in window["context"]["departments"]:
        work(client, token, department, "department_reply", code, REPLY_ACCEPTED)
    work(client, token, "land", "pre_check", code, PRE_CHECK_FAIL)
    notices = client.get(f"/api/v1/projects/{code}", headers=token(user)).get_json()["notices"]
    return code, [n for n in notices if n["kind"] == "refusal"][0]


def test_finding_notice_pdf_drops_characters_outside_the_bmp(client, token):
    """The notice is drawn in STSong-Light through the UniGB-UCS2-H CMap, which maps UCS-2 codes
    (the BMP) only: a character beyond U+FFFF is written as its two UTF-16 surrogates, which the
    CMap maps to no glyph (CID 0, .notdef). pypdf's extract_text() decodes the bytes as UTF-16
    and so still "finds" the text; the printed page does not show it."""
    _unit_and_applicant(client, token, f"攀枝花{RARE}建设有限公司", "rareapp")
    code, notice = _refused_at_pre_check(client, token, user="rareapp")
    r = client.get(f"/api/v1/notices/{notice['id']}/pdf", headers=token("rareapp"))
    assert r.status_code == 200
    extracted = "\n".join(p.extract_text() for p in PdfReader(BytesIO(r.data)).pages)
    assert NAME in extracted and f"攀枝花{RARE}建设有限公司" in extracted  # text extraction is fooled
    surrogates = [(hex(c), t) for c, t in _f2_codes(r.data) if 0xD800 <= c <= 0xDFFF]
    assert not surrogates, f"codes UniGB-UCS2-H cannot map (drawn as .notdef): {surrogates}"


# --- downloads: Content-Disposition ----------------------------------------------------------------

def _disposition_name(header: str) -> str:
    """What a browser saves the file as: RFC 6266 filename* (RFC 5987) first, as werkzeug parses it."""
    from werkzeug.http import parse_options_header
    kind, options = parse_options_header(header)
    assert kind == "attachment", header
    return options["filename"]


@pytest.mark.parametrize("filename", [
    "环评报告（盖章版）.pdf", f"{RARE}公司营业执照.pdf", '说明 “最终”;版 %20 50%.pdf', "ＰＤＦ全角名称.pdf",
    "unicode\u0301-nfd-é.pdf",
])
def test_material_download_keeps_the_chinese_file_name(client, token, filename):
    code = declare(client, token)["project_code"]
    guide = client.get("/api/v1/portal/guides/enterprise_filing").get_json()
    material = [m for m in guide["materials"] if m["required"]][0]["code"]
    up = client.post(f"/api/v1/projects/{code}/materials", headers=token("applicant"), content_type="multipart/form-data",
                     data={"matter_code": "enterprise_filing", "material": material,
                           "file": (BytesIO(TINY_PDF), filename)})
    assert up.status_code == 201, up.get_json()
    stored = up.get_json()["filename"]
    assert stored == unicodedata.normalize("NFC", filename).replace('"', "_"), stored
    r = client.get(f"/api/v1/projects/{code}/materials/{up.get_json()['id']}/file", headers=token("applicant"))
    assert r.status_code == 200
    header = r.headers["Content-Disposition"]
    assert header.isascii(), header
    assert _disposition_name(header) == stored, header
    assert "filename*=UTF-8''" in header


# --- exports ---------------------------------------------------------------------------------------

def test_exports_open_in_excel_with_chinese(client, token, platform):
    declare(client, token, name=NAME)
    declare(client, token, name="农业服务项目", industry_code="05")
    r = client.get("/api/v1/supervision/projects.csv", headers=token("supervisor"))
    assert r.status_code == 200, r.get_json()
    assert r.data.startswith(b"\xef\xbb\xbf"), r.data[:10]
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert _disposition_name(r.headers["Content-Disposition"]) == "投资项目清单.csv"
    rows = list(csv.reader(io.StringIO(r.data.decode("utf-8-sig"))))
    print(rows)
    assert any(NAME in row for row in rows)
    x = client.get("/api/v1/supervision/projects.xlsx", headers=token("supervisor"))
    assert x.status_code == 200
    sheet = load_workbook(BytesIO(x.data)).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert any(NAME in row for row in values), values
    s = client.get("/api/v1/supervision/summary.csv", headers=token("supervisor"))
    assert s.status_code == 200 and s.data.startswith(b"\xef\xbb\xbf")
    print(s.headers["Content-Disposition"], _disposition_name(s.headers["Content-Disposition"]))
    for path in ("/api/v1/supervision/summary.xlsx",):
        x = client.get(path, headers=token("supervisor"))
        assert x.status_code == 200
        book = load_workbook(BytesIO(x.data))
        print(book.sheetnames)


def test_finding_csv_industry_code_loses_its_leading_zero_in_excel(client, token):
    """Excel reads a CSV field of digits as a number: 行业 '05' shows as 5 (GB/T 4754 大类 are
    two digits). The XLSX export writes it as text and is right."""
    declare(client, token, name="农业服务项目", industry_code="05")
    r = client.get("/api/v1/supervision/projects.csv", headers=token("supervisor"))
    rows = list(csv.reader(io.StringIO(r.data.decode("utf-8-sig"))))
    header = rows[0]
    col = header.index("行业 industry")
    cell = rows[1][col]
    # what Excel would keep as text: a cell it does not convert (="05" or a leading apostrophe/tab)
    assert not re.fullmatch(r"\d+", cell), f"industry code cell {cell!r} is read by Excel as the number {int(cell)}"


# --- error messages: Chinese and English ------------------------------------------------------------

def _bilingual(text: str) -> bool:
    return bool(CJK.search(text)) and bool(LATIN.search(text))


def test_finding_4xx_field_messages_are_english_only(client, token):
    """Every refusal a user meets: is the message (and each field's) in Chinese and English?"""
    code = declare(client, token)["project_code"]
    cases = {
        "missing field": client.post("/api/v1/projects", json={k: v for k, v in declaration().items() if k != "name"}, headers=token("applicant")),
        "unknown field": client.post("/api/v1/projects", json=declaration(colour="red"), headers=token("applicant")),
        "wrong type": client.post("/api/v1/projects", json=declaration(start_year="2026"), headers=token("applicant")),
        "too long": client.post("/api/v1/projects", json=declaration(name="名" * 201), headers=token("applicant")),
        "not one of": client.post("/api/v1/projects", json=declaration(regime="其他"), headers=token("applicant")),
        "bad boolean": client.post("/api/v1/projects", json=declaration(classified="是"), headers=token("applicant")),
        "classified": client.post("/api/v1/projects", json=declaration(classified=True), headers=token("applicant")),
        "bad json": client.post("/api/v1/projects", data="{", content_type="application/json", headers=token("applicant")),
        "not json": client.post("/api/v1/projects", data="name=x", content_type="application/x-www-form-urlencoded", headers=token("applicant")),
        "bad date": client.get("/api/v1/supervision/summary", query_string={"from": "2026-13-01"}, headers=token("supervisor")),
        "bad page": client.get("/api/v1/projects", query_string={"page": "一"}, headers=token("applicant")),
        "unknown param": client.get("/api/v1/projects", query_string={"名称": "x"}, headers=token("applicant")),
        "no token": client.get("/api/v1/projects"),
        "bad token": client.get("/api/v1/projects", headers={"Authorization": "Bearer x"}),
        "forbidden": client.post("/api/v1/projects", json=declaration(), headers=token("drc")),
        "not found": client.get("/api/v1/projects/2026-510411-30-03-999999", headers=token("applicant")),
        "no route": client.get("/api/v1/nothing", headers=token("applicant")),
        "method": client.delete(f"/api/v1/projects/{code}", headers=token("applicant")),
        "stale": client.post("/api/v1/tasks/1/complete", json={"data": {}, "version": 999}, headers=token("window")),
        "bad version value": client.post("/api/v1/tasks/1/complete", json={"data": {}, "version": "x"}, headers=token("window")),
        "portal unknown": client.get("/api/v1/portal/projects/不存在的代码"),
        "verify malformed": client.get("/api/v1/codes/２０２６－abc/verify", headers=token("drc")),
        "upload no file": client.post(f"/api/v1/projects/{code}/materials", headers=token("applicant"),
                                      content_type="multipart/form-data", data={"matter_code": "enterprise_filing", "material": "x"}),
        "upload html": client.post(f"/api/v1/projects/{code}/materials", headers=token("applicant"), content_type="multipart/form-data",
                                   data={"matter_code": "enterprise_filing", "material": "x", "file": (BytesIO(b"<html></html>"), "a.html")}),
        "login wrong": client.post("/api/v1/auth/token", json={"username": "applicant", "password": "x"}),
        "weak password": client.post("/api/v1/users", headers=token("operator"), json={
            "username": "newbie", "password": "short", "display_name": "新人", "roles": ["officer"], "department_code": "x"}),
        "bad credit": client.post("/api/v1/units", headers=token("operator"), json={"name": "乙", "credit_code": "91510411MA6ABCDEF0"}),
        "guide q": client.get("/api/v1/portal/guides", query_string={"q": "<b>"}),
        "repeated": client.get("/api/v1/projects", query_string=[("status", "a"), ("status", "b")], headers=token("applicant")),
    }
    report = []
    for name, r in cases.items():
        body = r.get_json(silent=True)
        if body is None:
            report.append((name, r.status_code, "NOT JSON", r.data[:80]))
            continue
        if r.status_code < 400:
            report.append((name, r.status_code, "ok", "(not a refusal)", body))
            continue
        bad = [] if _bilingual(body["message"]) else [("message", body["message"])]
        for field, messages in (body.get("errors") or {}).items():
            for m in messages:
                if not _bilingual(m):
                    bad.append((field, m))
        report.append((name, r.status_code, "ok" if not bad else bad))
    for line in report:
        print(*line)
    not_bilingual = [line for line in report if line[2] != "ok"]
    assert not not_bilingual, not_bilingual


# --- a decided filing: decision notice, portal, Atom -------------------------------------------------

FILE = {"filing_decision": "file", "filing_comment": "备案信息齐全", "document_number": f"川投资备〔2026〕{RARE}1号",
        "document_date": "2026-03-02"}


def _filed(client, token, platform, name=NAME):
    code = declare(client, token, name=name, regime="filing", industry_code="13", building_works=False,
                   new_land_use=False)["project_code"]
    window = find(client, token, "window", "window_review", code)
    r = client.post(f"/api/v1/tasks/{window['id']}/complete", headers=token("window"), json={
        "data": {"window_decision": "dispatch", "departments": window["context"]["departments"]},
        "version": window["version"]})
    assert r.status_code == 200, r.get_json()
    for department in window["context"]["departments"]:
        work(client, token, department, "department_reply", code, REPLY_ACCEPTED)
    work(client, token, "drc", "filing_check", code, FILE)
    sweep(platform)
    return code


def test_portal_and_atom_carry_rare_characters(client, token, platform):
    code = _filed(client, token, platform)
    p = client.get(f"/api/v1/portal/projects/{code}")
    assert p.status_code == 200 and p.get_json()["name"] == NAME
    results = [m["result"] for m in p.get_json()["matters"] if m["result"]]
    assert results and results[0]["document_number"] == FILE["document_number"], p.get_json()
    a = client.get("/api/v1/portal/disclosure/approvals", query_string={"page_size": 200})
    assert a.status_code == 200 and NAME.encode() in a.data, a.get_json()
    feed = client.get("/api/v1/portal/disclosure/approvals.atom")
    assert feed.status_code == 200, feed.data[:200]
    print(feed.headers["Content-Type"], feed.data[:60])
    import xml.etree.ElementTree as ET
    root = ET.fromstring(feed.data)
    text = "".join(root.itertext())
    assert NAME in text, text[:500]
    notices = client.get(f"/api/v1/projects/{code}", headers=token("applicant")).get_json()["notices"]
    print([(n["kind"], n["number"], n["title"]) for n in notices])
    for n in notices:
        r = client.get(f"/api/v1/notices/{n['id']}/pdf", headers=token("applicant"))
        assert r.status_code == 200
        print(r.headers["Content-Disposition"])
        assert _disposition_name(r.headers["Content-Disposition"]) == f"{n['number']}.pdf"


# --- filters: a code typed two ways -----------------------------------------------------------------

FULL_WIDTH = {ord(c): ord(c) + 0xFEE0 for c in "0123456789-"}


def test_finding_task_and_alert_filters_do_not_normalise_the_project_code(client, token):
    """GET /projects/{code}, /portal/projects/{code} and /codes/{code}/verify read a code typed in
    full-width digits (pasted from a Word document) or as the project's legacy code; the task list's
    and the alerts' ``project_code`` filters compare the text as typed and answer an empty list."""
    legacy = "川发改备〔2019〕12号"
    code = declare(client, token, legacy_code=legacy)["project_code"]
    full = code.translate(FULL_WIDTH)
    assert client.get(f"/api/v1/projects/{quote(full, safe='')}", headers=token("window")).status_code == 200
    assert client.get(f"/api/v1/projects/{quote(legacy, safe='')}", headers=token("window")).status_code == 200
    plain = client.get("/api/v1/tasks", headers=token("window"), query_string={"project_code": code}).get_json()
    assert plain["total"] == 1, plain
    answers = {}
    for typed in (full, legacy, f" {code} "):
        r = client.get("/api/v1/tasks", headers=token("window"), query_string={"project_code": typed})
        answers[typed] = (r.status_code, r.get_json().get("total"))
    print(answers)
    assert all(a == (200, 1) for a in answers.values()), answers


def test_error_and_openapi_json_are_utf8_not_escaped(client, token):
    r = client.post("/api/v1/projects", json=declaration(classified=True), headers=token("applicant"))
    assert r.status_code == 422 and "涉密".encode() in r.data and b"\\u" not in r.data, r.data
    assert r.headers["Content-Type"] == "application/json"
    doc = client.get("/api/v1/openapi.json")
    print("openapi escaped:", b"\\u" in doc.data, "utf-8 Chinese:", "投资项目".encode() in doc.data, doc.headers["Content-Type"])


def test_long_and_rare_notice_renders_on_pages(client, token):
    from datetime import datetime, timezone
    from engine import pdf
    doc = pdf.NoticeDocument(kind="correction", title="补正通知书", number="N-2", project_code="2026-510411-30-03-000001",
                             project_name="𠀾" * 200, unit_name="单" * 200, department_name="仁和区发展和改革局",
                             issued_at=datetime(2026, 3, 2, tzinfo=timezone.utc),
                             particulars={"correction_items": [{"material": "m" * 64, "name": "材料" * 100, "note": "A" * 900}] * 30})
    data = pdf.render(doc)
    reader = PdfReader(BytesIO(data))
    print("pages:", len(reader.pages))
    assert "A" * 50 in "".join(p.extract_text() for p in reader.pages).replace("\n", "")


def test_finding_legacy_code_with_a_slash_is_accepted_but_never_found(client, token):
    legacy = "川发改投资〔2019〕12号/补"
    created = client.post("/api/v1/projects", json=declaration(legacy_code=legacy), headers=token("applicant"))
    print("declared with a slash:", created.status_code)
    assert created.status_code == 201
    answers = {path: client.get(path, headers=token("drc")).status_code for path in (
        f"/api/v1/portal/projects/{quote(legacy, safe='')}", f"/api/v1/codes/{quote(legacy, safe='')}/verify",
        f"/api/v1/projects/{quote(legacy, safe='')}")}
    print(answers)
    assert all(s == 200 for s in answers.values()), answers


def test_finding_everyday_text_refused_as_markup(client, token):
    answers = {}
    for text in ("新建厂房2万平方米——配套设施", "装机容量≥10MW；年产《标准》产品", "容积率<2.0，建筑高度>24米",
                 "一期--二期", "　　", "项目（一期）　", "厂房；Update 仓库"):
        r = client.post("/api/v1/projects", json=declaration(construction_content=text), headers=token("applicant"))
        answers[text] = (r.status_code, (r.get_json().get("errors") or {}).get("construction_content"))
    for k, v in answers.items():
        print(repr(k), v)
    # 建设规模及内容 with an ordinary comparison is refused as "markup or SQL"
    assert answers["容积率<2.0，建筑高度>24米"][0] == 201, answers
