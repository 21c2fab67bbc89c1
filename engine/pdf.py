"""Render a notice (通知书) to PDF bytes.

The text is set in STSong-Light, one of the standard CJK fonts every PDF viewer ships
(Adobe-GB1 character collection, UniGB-UCS2-H encoding): nothing is embedded, the file
stays small, and the Chinese text extracts as text (search, copy, screen readers),
which a picture of the text would not. Chinese has no spaces, so lines are broken by
measured width, never by words; Latin runs (the project code, document numbers) are
kept whole when they fit on a line. Closing punctuation is never put at the start of a
line (避头点): it hangs in the right margin instead.

A character the font cannot draw (one beyond the Basic Multilingual Plane, e.g. 𠀾 in
a company's name, or one outside GBK and CJK Extension A, e.g. Hangul or an emoji) is
printed as its code point, 〔U+2003E〕, never dropped in silence: a notice is an official
document, and a name with a character missing is another name. The notice's stored
content keeps the text as typed.

The same notice always gives the same bytes (reportlab's ``invariant`` mode fixes the
creation date and document id), so a notice's SHA-256 identifies its content.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from io import BytesIO
from typing import Any

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

from engine.clock import SHANGHAI
from engine.settings import DEFAULT_PLATFORM_NAME

FONT = "STSong-Light"
if FONT not in pdfmetrics.getRegisteredFontNames():
    pdfmetrics.registerFont(UnicodeCIDFont(FONT))

TITLE_SIZE, BODY_SIZE, SMALL_SIZE = 22, 14, 9
LEADING = 1.75  # line height as a multiple of the font size
PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN_X, MARGIN_TOP, MARGIN_BOTTOM = 26 * mm, 30 * mm, 28 * mm
TEXT_WIDTH = PAGE_WIDTH - 2 * MARGIN_X
INDENT = "\u3000\u3000"  # two full-width spaces: a Chinese paragraph's first-line indent

DECISION_LABELS = {"approved": "同意（准予）", "denied": "不予批准", "refused": "不予受理", "filed": "予以备案",
                   "terminated": "终止办理"}
#: How a notified matter ended without a decision (the conclusion notice accounts for each).
UNDECIDED_LABELS = {"no_matter": "本阶段无需办理（部门答复或逾期视为无应办事项）", "notified": "本阶段未分送办理",
                    "closed": "已关闭", "cancelled": "已撤销"}
ACCEPTED_AS_LABELS = {"notice": "出具受理通知书", "deemed": "逾期视为受理", "filing": "备案"}
#: 避头点: marks that must not begin a line
_NO_LINE_START = set("，。、；：？！）》」』】〕…％,.;:?!)]}%")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
#: a run of Latin letters, digits and code punctuation stays whole; anything else is one token
_TOKEN = re.compile(r"[A-Za-z0-9_\-./:#@+]+| +|.", re.S)


@dataclass(frozen=True)
class NoticeDocument:
    """Everything printed on a notice, names already resolved (this module reads no database)."""

    kind: str
    title: str
    number: str
    project_code: str
    project_name: str
    unit_name: str
    department_name: str
    issued_at: datetime
    particulars: Mapping[str, Any]
    matter_code: str | None = None
    matter_name: str | None = None
    #: matter code → Chinese name, for the lines of a conclusion notice
    matter_names: Mapping[str, str] = field(default_factory=dict)
    #: the platform's title when the notice was issued (``TZXM_PLATFORM_NAME``)
    platform_name: str = DEFAULT_PLATFORM_NAME


# --- what a notice says -----------------------------------------------------------------------

def _drawable(ch: str) -> bool:
    """Whether STSong-Light draws the character through UniGB-UCS2-H: two-byte codes only
    (the BMP), and a glyph in Adobe-GB1 (GBK, and CJK Extension A of GB 18030)."""
    if ord(ch) > 0xFFFF:
        return False
    if "\u3400" <= ch <= "\u4dbf":
        return True
    try:
        ch.encode("gbk")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str) -> str:
    """The text as the page can show it: each character the font cannot draw as its code point."""
    try:
        text.encode("gbk")
        return text  # the common case, decided in one call: GBK is all drawn
    except UnicodeEncodeError:
        return "".join(ch if _drawable(ch) else f"〔U+{ord(ch):04X}〕" for ch in text)


def _text(value: Any) -> str:
    """Plain text for the page: control characters dropped, tabs as spaces."""
    return _CONTROL.sub("", str(value if value is not None else "").replace("\t", " ")).strip()


def decision_label(code: Any) -> str:
    return DECISION_LABELS.get(str(code), _text(code) or "—")


def _subject(doc: NoticeDocument) -> str:
    """“your unit's project X (code) matter Y”: the opening every notice shares."""
    matter = f"之“{doc.matter_name}”事项" if doc.matter_name else ""
    return f"你单位申报的“{doc.project_name}”（项目代码：{doc.project_code}）{matter}"


def correction_lines(items: Any) -> list[str]:
    """The materials to supply, one numbered line each (name（code）：note); a plain string
    (the form before materials were listed by code) is printed as it is."""
    if isinstance(items, str):
        return [_text(items)] if _text(items) else []
    lines = []
    for i, item in enumerate(items or (), start=1):
        if isinstance(item, Mapping):
            code, name, note = _text(item.get("material")), _text(item.get("name")), _text(item.get("note"))
            label = f"{name}（{code}）" if name and code else name or code
            lines.append(f"{i}. {label}：{note}" if note else f"{i}. {label}")
        else:
            lines.append(f"{i}. {_text(item)}")
    return lines


def _acceptance(doc: NoticeDocument) -> list[str]:
    accepted_as = str(doc.particulars.get("accepted_as") or "notice")
    if accepted_as == "deemed":
        body = (f"{_subject(doc)}，受理审查期限届满未作处理，依照规定视为受理，受理时间为本次受理审查计时"
                "开始之时（预审核验通过、同意接件之时；补正的，为补正材料补齐之时），承诺办理时限自该时起算。")
    else:
        body = f"{_subject(doc)}，经审查，申请材料齐全、符合法定形式，决定予以受理。"
    return [INDENT + body, f"受理方式：{ACCEPTED_AS_LABELS.get(accepted_as, _text(accepted_as))}"]


def _refusal(doc: NoticeDocument) -> list[str]:
    reason = _text(doc.particulars.get("refusal_reason")) or "—"
    verdict = re.sub(r"(通知书|告知书)$", "", doc.title)  # 不予受理 / 初审不予通过 / 不予备案
    return [INDENT + f"{_subject(doc)}，经审查，决定{verdict}。", f"理由：{reason}"]


def _correction(doc: NoticeDocument) -> list[str]:
    items = correction_lines(doc.particulars.get("correction_items"))
    return [INDENT + f"{_subject(doc)}，经审查，申请材料不齐全或者不符合法定形式。"
            "请一次性补正补齐以下材料，补正后重新计算受理时限：", *items]


def _decision(doc: NoticeDocument) -> list[str]:
    result = doc.particulars.get("matter_result") or {}
    if not isinstance(result, Mapping):
        result = {}
    lines = [INDENT + f"{_subject(doc)}，经审查，决定如下：", f"审批结果：{decision_label(result.get('decision'))}"]
    for key, label in (("document_number", "文件文号"), ("document_title", "文件标题"), ("document_date", "文件日期"),
                       ("main_content", "主要内容"), ("reason", "理由")):
        value = _text(result.get(key))
        if value:
            lines.append(f"{label}：{value}")
    return lines


def _conclusion(doc: NoticeDocument) -> list[str]:
    """Every matter of the matters notice and how it ended: “已全部办结” only when each was
    decided (a terminated matter was ended, not concluded). A notice issued before it
    listed them all names the decided ones only."""
    matters = doc.particulars.get("notified_matters")
    if not isinstance(matters, list):
        matters = doc.particulars.get("matter_results") or []
    matters = [m for m in matters if isinstance(m, Mapping)]
    decided = all(m.get("decision") not in (None, "", "terminated") for m in matters)  # 终止 is not 办结
    lines = [INDENT + f"{_subject(doc)}，" + ("事前告知的应办事项已全部办结，办理结果如下：" if decided
                                              else "事前告知的应办事项办理情况如下：")]
    for i, matter in enumerate(matters):
        code = _text(matter.get("matter_code"))
        name = doc.matter_names.get(code) or code
        number = _text(matter.get("document_number"))
        outcome = (decision_label(matter["decision"]) if matter.get("decision")
                   else UNDECIDED_LABELS.get(str(matter.get("status")), _text(matter.get("status")) or "—"))
        lines.append(f"{i + 1}. {name}：{outcome}" + (f"，文号：{number}" if number else ""))
    return lines


PARAGRAPHS = {"acceptance": _acceptance, "refusal": _refusal, "correction": _correction,
              "decision": _decision, "conclusion": _conclusion}


def issued_on(at: datetime) -> str:
    """The issue date as printed: the Asia/Shanghai calendar day, 2026年3月2日."""
    local = (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).astimezone(SHANGHAI)
    return f"{local.year}年{local.month}月{local.day}日"


# --- layout -------------------------------------------------------------------------------------

def _width(text: str, size: float) -> float:
    return pdfmetrics.stringWidth(text, FONT, size)


def wrap(text: str, size: float, width: float) -> list[str]:
    """Break a paragraph into lines no wider than ``width`` at ``size`` points.

    Any character may end a line except inside a Latin run that fits on a line; a
    closing mark that would start a line hangs at the end of the previous one.
    """
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for token in _TOKEN.findall(paragraph):
            if _width(line + token, size) <= width or (line and token[0] in _NO_LINE_START and len(token) == 1):
                line += token
                continue
            if token.isspace():  # a break at a space eats the space
                lines.append(line.rstrip(" "))
                line = ""
                continue
            if line:
                lines.append(line.rstrip(" "))
                line = ""
            while _width(token, size) > width:  # a run wider than a whole line is broken anywhere
                cut = len(token) - 1
                while cut > 1 and _width(token[:cut], size) > width:
                    cut -= 1
                lines.append(token[:cut])
                token = token[cut:]
            line = token
        lines.append(line.rstrip(" "))
    return lines


@dataclass
class _Line:
    text: str
    size: float
    align: str = "left"  # left | center | right
    space_before: float = 0.0


def _layout(doc: NoticeDocument) -> list[_Line]:
    out: list[_Line] = []

    def para(text: str, size: float = BODY_SIZE, align: str = "left", space_before: float = 0.0) -> None:
        for i, line in enumerate(wrap(printable(text), size, TEXT_WIDTH)):
            out.append(_Line(line, size, align, space_before if i == 0 else 0.0))

    para(doc.title, TITLE_SIZE, "center")
    para(f"编号：{doc.number}", SMALL_SIZE + 1.5, "center", space_before=4)
    para(f"项目代码：{doc.project_code}", space_before=BODY_SIZE)
    para(f"项目名称：{doc.project_name}")
    if doc.matter_name or doc.matter_code:
        para(f"审批事项：{doc.matter_name or doc.matter_code}")
    para(f"{doc.unit_name}：", space_before=BODY_SIZE)
    for paragraph in PARAGRAPHS[doc.kind](doc):
        para(paragraph)
    para(INDENT + "特此通知。", space_before=BODY_SIZE / 2)
    para(doc.department_name, align="right", space_before=BODY_SIZE * 2)
    para(issued_on(doc.issued_at), align="right")
    return out


def _paginate(lines: Sequence[_Line]) -> list[list[_Line]]:
    pages: list[list[_Line]] = [[]]
    room = PAGE_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    used = 0.0
    for line in lines:
        height = line.size * LEADING + line.space_before
        if used + height > room and pages[-1]:
            pages.append([])
            used = 0.0
            height = line.size * LEADING  # no gap at the top of a page
        pages[-1].append(line)
        used += height
    return pages


def render(doc: NoticeDocument) -> bytes:
    """The notice as PDF bytes: A4, STSong-Light, a footer with the number and page on every page."""
    buffer = BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=1, pageCompression=1)
    pdf.setTitle(f"{doc.title} {doc.number}")
    pdf.setAuthor(doc.department_name)
    pdf.setSubject(f"{doc.project_code} {doc.project_name}")
    pdf.setCreator(doc.platform_name)
    pages = _paginate(_layout(doc))
    for page_no, page in enumerate(pages, start=1):
        y = PAGE_HEIGHT - MARGIN_TOP
        for i, line in enumerate(page):
            y -= (line.space_before if i else 0.0) + line.size * LEADING
            pdf.setFont(FONT, line.size)
            if line.align == "center":
                pdf.drawCentredString(PAGE_WIDTH / 2, y, line.text)
            elif line.align == "right":
                pdf.drawRightString(PAGE_WIDTH - MARGIN_X, y, line.text)
            else:
                pdf.drawString(MARGIN_X, y, line.text)
        pdf.setFont(FONT, SMALL_SIZE)
        pdf.line(MARGIN_X, MARGIN_BOTTOM - 6 * mm, PAGE_WIDTH - MARGIN_X, MARGIN_BOTTOM - 6 * mm)
        pdf.drawString(MARGIN_X, MARGIN_BOTTOM - 11 * mm, f"通知书编号：{doc.number}")
        pdf.drawRightString(PAGE_WIDTH - MARGIN_X, MARGIN_BOTTOM - 11 * mm, f"第 {page_no} 页，共 {len(pages)} 页")
        pdf.drawCentredString(PAGE_WIDTH / 2, MARGIN_BOTTOM - 16 * mm, f"本通知书由{doc.platform_name}生成")
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()
