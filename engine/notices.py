"""Notices to the project unit (受理通知书, 不予受理通知书, 补正通知书, the decision, 办结告知书).

A notice is numbered and stored with the particulars the diagram gave it, and carries
the project code. Its number is scoped to the project and matter, so departments
issuing notices for one project at the same moment never collide.

Each notice is rendered to a PDF when it is issued and kept in the file store under
its SHA-256: what the project unit downloads later is byte for byte what was issued,
even if a department or matter is renamed afterwards. The names printed on it are
copied into the notice's content for the same reason.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import audit, files, organisation, pdf, projects, settings
from engine.access import Actor, project_filter
from engine.errors import NotFound
from engine.models import MAX_ID, Department, Matter, Notice, Project, ProjectMatter

NOTICE_KINDS = {
    "acceptance": "受理通知书",
    "refusal": "不予受理通知书",
    "correction": "补正通知书",
    "decision": "审批决定",
    "conclusion": "办结告知书",
}
#: The particulars each kind takes from the task data.
PARTICULARS = {
    "acceptance": ("accepted_as",),
    "refusal": ("refusal_reason",),
    "correction": ("correction_items",),
    "decision": ("matter_result",),
    "conclusion": ("matter_results",),
}


def title(kind: str, particulars: dict[str, Any]) -> str:
    """The notice's title. A refusal at the pre-check is 初审不予通过, a refused filing is
    不予备案 (bpmn/CONVENTIONS.md “Notices”); a decision is titled by its outcome."""
    if kind == "refusal":
        if particulars.get("precheck_result") == "fail":
            return "初审不予通过告知书"
        if particulars.get("filing_decision") == "refuse":
            return "不予备案告知书"
    if kind == "decision":
        result = particulars.get("matter_result")
        decision = result.get("decision") if isinstance(result, dict) else None
        return "备案告知书" if decision == "filed" else "审批决定通知书"
    return NOTICE_KINDS[kind]


def _issuer(session: Session, project: Project, matter_code: str | None, platform: str) -> str:
    """The department that issues: the matter's department, or for the project's own
    notices (the conclusion) the general window serving the project's region: its own, or
    on a city's or province's platform the nearest above it; else the platform itself."""
    if matter_code is not None:
        pm = projects.project_matter(session, project, matter_code)
        matter = session.get(Matter, matter_code) if pm is None else None
        code = pm.department_code if pm is not None else matter.department_code if matter is not None else None
        department = session.get(Department, code) if code else None
        name = department.name if department is not None else None
    else:
        window = organisation.nearest_department(session, project.region_code, "general_window")
        name = window.name if window is not None else None
    return name or platform


def _names(session: Session, project: Project, matter_code: str | None, particulars: dict[str, Any],
           platform: str) -> dict[str, Any]:
    """The Chinese names a notice prints: addressee, issuer, the matter, and for a
    conclusion every concluded matter."""
    codes = {matter_code} if matter_code else set()
    for result in [*(particulars.get("matter_results") or ()), *(particulars.get("notified_matters") or ())]:
        if isinstance(result, dict) and result.get("matter_code"):
            codes.add(str(result["matter_code"]))
    query = select(Matter.matter_code, Matter.name).where(Matter.matter_code.in_(codes))
    names = {code: name for code, name in session.execute(query)} if codes else {}
    return {
        "unit_name": project.project_unit.name,
        "department_name": _issuer(session, project, matter_code, platform),
        "matter_name": names.get(matter_code) if matter_code else None,
        "matter_names": {code: names[code] for code in sorted(names)},
    }


def _notified_matters(session: Session, project: Project) -> list[dict[str, Any]]:
    """应办事项 as the matters notice told them, each with how it ended: the conclusion
    notice accounts for every one, not only the matters a department handled."""
    rows = session.scalars(select(ProjectMatter).where(ProjectMatter.project_id == project.id).order_by(ProjectMatter.id))
    return [{"matter_code": pm.matter_code, "status": pm.status, "decision": (pm.result or {}).get("decision") or "",
             "document_number": (pm.result or {}).get("document_number") or ""} for pm in rows]


def _platform(content: dict[str, Any]) -> str:
    """The platform's title as the notice was issued under (kept in its content since
    TZXM_PLATFORM_NAME; older notices were all issued under the default)."""
    return content.get("platform_name") or settings.DEFAULT_PLATFORM_NAME


def _document(notice: Notice, content: dict[str, Any]) -> pdf.NoticeDocument:
    return pdf.NoticeDocument(
        kind=notice.kind, title=content.get("title") or NOTICE_KINDS[notice.kind], number=notice.number,
        project_code=notice.project_code, project_name=content.get("project_name") or "",
        unit_name=content.get("unit_name") or "", department_name=content.get("department_name") or _platform(content),
        issued_at=notice.issued_at, particulars=content, matter_code=notice.matter_code,
        matter_name=content.get("matter_name"), matter_names=content.get("matter_names") or {},
        platform_name=_platform(content),
    )


def issue(session: Session, *, project: Project, matter_code: str | None, kind: str, particulars: dict[str, Any],
          now: datetime) -> Notice:
    """Number the notice, render its PDF and store it (the notice keeps the SHA-256) in the
    caller's transaction: a rolled-back step leaves at most an unreferenced file."""
    if kind not in NOTICE_KINDS:
        raise ValueError(f"unknown notice kind {kind!r}; one of {sorted(NOTICE_KINDS)}")
    scope = matter_code or "project"
    if kind == "conclusion":
        particulars = {**particulars, "notified_matters": _notified_matters(session, project)}
    count = session.scalar(select(func.count()).select_from(Notice).where(
        Notice.project_id == project.id, Notice.matter_code.is_(matter_code) if matter_code is None else Notice.matter_code == matter_code,
        Notice.kind == kind))
    number = f"{project.project_code}-{scope}-{kind}-{count + 1:02d}"
    platform = settings.platform_name()
    content = {"title": title(kind, particulars), "project_code": project.project_code, "project_name": project.name,
               "platform_name": platform, **_names(session, project, matter_code, particulars, platform),
               **{k: particulars.get(k) for k in PARTICULARS[kind]}}
    if kind == "conclusion":
        content["notified_matters"] = particulars["notified_matters"]
    notice = Notice(project_id=project.id, project_code=project.project_code, matter_code=matter_code, kind=kind,
                    number=number, content=content, issued_at=now)
    notice.sha256 = files.store().put(session, pdf.render(_document(notice, content)), "application/pdf", now=now)
    session.add(notice)
    audit.record(session, at=now, actor="platform", action=f"notice.{kind}", project_code=project.project_code,
                 target=f"notice:{number}", summary={"matter_code": matter_code, "sha256": notice.sha256})
    return notice


def read_pdf(session: Session, actor: Actor, notice_id: int) -> tuple[Notice, bytes]:
    """The notice's PDF for those who may see its project (the project unit, officials of
    its region and above, the operator); anyone else gets 404, as for an absent notice.

    A notice issued before PDFs were kept, or whose file has gone from the store, is
    rendered again from its stored content (rendering is deterministic), writing nothing.
    """
    if not 0 < notice_id <= MAX_ID:  # beyond the integer column: absent (PostgreSQL would refuse the query)
        raise NotFound("通知书不存在 (no such notice)")
    row = session.execute(select(Notice, Project).join(Project, Project.id == Notice.project_id).where(
        Notice.id == notice_id, project_filter(session, actor))).first()
    if row is None:
        raise NotFound("通知书不存在 (no such notice)")
    notice, project = row
    if notice.sha256 is not None:
        try:
            return notice, files.store().read(notice.sha256)
        except FileNotFoundError:
            pass
    content = {**_names(session, project, notice.matter_code, notice.content or {}, _platform(notice.content or {})),
               **(notice.content or {})}
    return notice, pdf.render(_document(notice, content))
