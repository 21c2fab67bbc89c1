"""Notice PDFs (issue #5): Chinese text that extracts as text, in STSong-Light, wrapped by
width onto lines and pages, and the same bytes for the same notice."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from io import BytesIO

import pytest
from pypdf import PdfReader

from engine import pdf

CODE = "2026-510411-13-01-000001"
ISSUED = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)


def document(kind="acceptance", particulars=None, **overrides) -> pdf.NoticeDocument:
    fields = dict(
        kind=kind, title="受理通知书", number=f"{CODE}-land_pre_review-{kind}-01", project_code=CODE,
        project_name="仁和区新能源材料产业园项目", unit_name="攀枝花仁和示范建设有限公司",
        department_name="仁和区自然资源局", issued_at=ISSUED, particulars=particulars or {"accepted_as": "notice"},
        matter_code="land_pre_review", matter_name="建设项目用地预审与选址意见书",
    )
    fields.update(overrides)
    return pdf.NoticeDocument(**fields)


def reader(data: bytes) -> PdfReader:
    return PdfReader(BytesIO(data))


def text_of(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in reader(data).pages)


def test_an_acceptance_notice_is_a_pdf_whose_chinese_text_extracts():
    data = pdf.render(document())
    assert data.startswith(b"%PDF-")
    text = text_of(data)
    for expected in ("受理通知书", f"编号：{CODE}-land_pre_review-acceptance-01", f"项目代码：{CODE}",
                     "项目名称：仁和区新能源材料产业园项目", "审批事项：建设项目用地预审与选址意见书",
                     "攀枝花仁和示范建设有限公司：", "受理方式：出具受理通知书", "仁和区自然资源局", "2026年3月2日",
                     "第 1 页，共 1 页", "本通知书由投资项目在线审批监管平台生成"):
        assert expected in text, expected


def test_a_deemed_acceptance_says_so():
    text = text_of(pdf.render(document(particulars={"accepted_as": "deemed"})))
    assert "受理方式：逾期视为受理" in text
    assert "视为受理" in text.replace("\n", "")


def test_the_issue_date_is_the_shanghai_calendar_day():
    assert pdf.issued_on(datetime(2026, 3, 2, 16, 30, tzinfo=timezone.utc)) == "2026年3月3日"
    assert pdf.issued_on(datetime(2026, 3, 2, 15, 59, tzinfo=timezone.utc)) == "2026年3月2日"


def test_a_correction_notice_lists_each_material_on_its_numbered_line():
    items = [{"material": "red_line_map", "name": "用地红线图", "note": "加盖公章"},
             {"material": "site_photos", "name": "现场照片", "note": "补充四至照片"}]
    text = text_of(pdf.render(document("correction", {"correction_items": items}, title="补正通知书")))
    assert "补正通知书" in text
    assert "1. 用地红线图（red_line_map）：加盖公章" in text
    assert "2. 现场照片（site_photos）：补充四至照片" in text
    assert pdf.correction_lines(items) == ["1. 用地红线图（red_line_map）：加盖公章", "2. 现场照片（site_photos）：补充四至照片"]


def test_a_correction_given_as_plain_text_or_without_names_still_prints():
    text = text_of(pdf.render(document("correction", {"correction_items": "补充用地红线图"}, title="补正通知书")))
    assert "补充用地红线图" in text
    assert pdf.correction_lines([{"material": "red_line_map", "note": "加盖公章"}]) == ["1. red_line_map：加盖公章"]
    assert pdf.correction_lines("  ") == [] and pdf.correction_lines(None) == []


def test_a_refusal_gives_its_reason():
    doc = document("refusal", {"refusal_reason": "不属于本部门受理范围"}, title="初审不予通过告知书")
    text = text_of(pdf.render(doc))
    assert "初审不予通过告知书" in text and "理由：不属于本部门受理范围" in text
    assert "决定初审不予通过。" in text.replace("\n", "")


@pytest.mark.parametrize("decision,label", [("approved", "同意（准予）"), ("denied", "不予批准"), ("filed", "予以备案"),
                                            ("refused", "不予受理")])
def test_a_decision_prints_its_outcome_and_document(decision, label):
    result = {"matter_code": "land_pre_review", "decision": decision, "document_number": "攀仁自然资预〔2026〕1号",
              "document_title": "用地预审意见", "document_date": "2026-03-05", "main_content": "同意选址",
              "reason": "不符合规划" if decision == "denied" else ""}
    text = text_of(pdf.render(document("decision", {"matter_result": result}, title="审批决定通知书")))
    for expected in (f"审批结果：{label}", "文件文号：攀仁自然资预〔2026〕1号", "文件标题：用地预审意见",
                     "文件日期：2026-03-05", "主要内容：同意选址"):
        assert expected in text, expected
    assert ("理由：不符合规划" in text) is (decision == "denied")


def test_a_conclusion_lists_every_matter_with_its_decision_and_number():
    results = [{"matter_code": "enterprise_filing", "decision": "filed", "document_number": "川投资备〔2026〕1号"},
               {"matter_code": "land_pre_review", "decision": "refused", "document_number": ""}]
    doc = document("conclusion", {"matter_results": results}, title="办结告知书", matter_code=None, matter_name=None,
                   department_name="仁和区政务服务中心综合窗口",
                   matter_names={"enterprise_filing": "企业投资项目备案", "land_pre_review": "建设项目用地预审与选址意见书"})
    text = text_of(pdf.render(doc))
    assert "办结告知书" in text and "审批事项" not in text
    assert "1. 企业投资项目备案：予以备案，文号：川投资备〔2026〕1号" in text
    assert "2. 建设项目用地预审与选址意见书：不予受理" in text
    assert "仁和区政务服务中心综合窗口" in text


def test_a_conclusion_says_all_concluded_only_when_every_notified_matter_was_decided():
    names = {"enterprise_filing": "企业投资项目备案", "land_pre_review": "建设项目用地预审与选址意见书",
             "eia_approval": "环境影响评价审批"}
    matters = [{"matter_code": "enterprise_filing", "status": "concluded", "decision": "filed", "document_number": "备1号"},
               {"matter_code": "land_pre_review", "status": "terminated", "decision": "terminated", "document_number": ""},
               {"matter_code": "eia_approval", "status": "no_matter", "decision": "", "document_number": ""}]
    text = text_of(pdf.render(document("conclusion", {"notified_matters": matters}, title="办结告知书", matter_code=None,
                                       matter_name=None, matter_names=names)))
    assert "办理情况如下" in text and "已全部办结" not in text
    assert "1. 企业投资项目备案：予以备案，文号：备1号" in text
    assert "2. 建设项目用地预审与选址意见书：终止办理" in text
    assert "3. 环境影响评价审批：本阶段无需办理（部门答复或逾期视为无应办事项）" in text and "terminated" not in text
    ended = text_of(pdf.render(document("conclusion", {"notified_matters": matters[:2]}, title="办结告知书",
                                        matter_code=None, matter_name=None, matter_names=names)))
    assert "办理情况如下" in ended  # a terminated matter was ended, not concluded
    decided = text_of(pdf.render(document("conclusion", {"notified_matters": matters[:1]}, title="办结告知书",
                                          matter_code=None, matter_name=None, matter_names=names)))
    assert "事前告知的应办事项已全部办结" in decided


def test_long_text_wraps_by_width_onto_several_pages_and_still_extracts():
    reason = "该项目选址与国土空间规划确定的用途管制要求不符，且未能提供有效的用地审批手续。" * 60
    data = pdf.render(document("refusal", {"refusal_reason": reason}, title="不予受理通知书"))
    pages = reader(data).pages
    assert len(pages) >= 3
    text = text_of(data)
    footer = ("通知书编号：", "第 ", "本通知书由")
    body = "".join(line for line in text.splitlines() if not line.startswith(footer))
    assert reason in body
    assert f"第 1 页，共 {len(pages)} 页" in text and f"第 {len(pages)} 页，共 {len(pages)} 页" in text
    assert text.count(f"通知书编号：{CODE}-land_pre_review-refusal-01") == len(pages)  # the footer on every page
    lines = pdf.wrap("理由：" + reason, pdf.BODY_SIZE, pdf.TEXT_WIDTH)
    assert len(lines) > 40 and "".join(lines) == "理由：" + reason
    hang = pdf.pdfmetrics.stringWidth("，", pdf.FONT, pdf.BODY_SIZE)
    assert all(pdf.pdfmetrics.stringWidth(line, pdf.FONT, pdf.BODY_SIZE) <= pdf.TEXT_WIDTH + hang for line in lines)


def test_wrapping_keeps_codes_whole_and_never_starts_a_line_with_a_closing_mark():
    width = pdf.pdfmetrics.stringWidth("汉" * 10, pdf.FONT, pdf.BODY_SIZE)
    wide = pdf.pdfmetrics.stringWidth(CODE, pdf.FONT, pdf.BODY_SIZE) + 1
    assert pdf.wrap(f"项目代码为{CODE}的项目", pdf.BODY_SIZE, wide) == ["项目代码为", CODE, "的项目"]
    assert pdf.wrap("一二三四五六七八九十，十一", pdf.BODY_SIZE, width) == ["一二三四五六七八九十，", "十一"]
    long_run = "x" * 200
    assert "".join(pdf.wrap(long_run, pdf.BODY_SIZE, width)) == long_run
    assert pdf.wrap("第一段\n第二段", pdf.BODY_SIZE, width) == ["第一段", "第二段"]


def test_the_same_notice_gives_the_same_bytes():
    assert pdf.render(document()) == pdf.render(document())
    assert pdf.render(document()) != pdf.render(replace(document(), number=f"{CODE}-land_pre_review-acceptance-02"))


def test_the_text_is_set_in_the_standard_cjk_font_stsong_light():
    data = pdf.render(document("refusal", {"refusal_reason": "理由" * 2000}, title="不予受理通知书"))
    for page in reader(data).pages:
        fonts = [f.get_object() for f in page["/Resources"]["/Font"].values()]
        cjk = [f for f in fonts if f["/BaseFont"] == "/STSong-Light"]
        assert cjk and cjk[0]["/Subtype"] == "/Type0" and cjk[0]["/Encoding"] == "/UniGB-UCS2-H"
        assert cjk[0]["/DescendantFonts"][0].get_object()["/CIDSystemInfo"]["/Ordering"] == "GB1"


def test_any_text_a_form_allows_prints_as_plain_text():
    reason = "生僻字𠀀与符号Ω\x07，第一行\n第二行 <b>&amp;</b>"
    text = text_of(pdf.render(document("refusal", {"refusal_reason": reason}, title="不予受理通知书")))
    assert "理由：生僻字〔U+20000〕与符号Ω，第一行" in text and "第二行 <b>&amp;</b>" in text and "\x07" not in text


def test_a_character_the_font_cannot_draw_is_printed_as_its_code_point_never_dropped():
    """𠀾 (CJK Extension B) and 한 (Hangul) have no glyph in STSong-Light: the notice says
    which character stood there; text the font draws (GBK, Extension A 㐀) is unchanged."""
    data = pdf.render(document(project_name="𠀾山钒钛㐀项目", unit_name="한중合作有限公司"))
    text = text_of(data)
    assert "项目名称：〔U+2003E〕山钒钛㐀项目" in text
    assert "〔U+D55C〕〔U+C911〕合作有限公司：" in text
    assert "𠀾" not in text and "한" not in text  # nothing is written that the font would leave blank
    assert pdf.printable("仁和区，ABC-01") == "仁和区，ABC-01"
