"""Notices to the project unit (受理通知书, 不予受理通知书, 补正通知书, the decision, 办结告知书).

A notice is numbered and stored with the particulars the diagram gave it, and carries
the project code. Its number is scoped to the project and matter, so departments
issuing notices for one project at the same moment never collide.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import audit
from engine.models import Notice, Project

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


def issue(session: Session, *, project: Project, matter_code: str | None, kind: str, particulars: dict[str, Any],
          now: datetime) -> Notice:
    if kind not in NOTICE_KINDS:
        raise ValueError(f"unknown notice kind {kind!r}; one of {sorted(NOTICE_KINDS)}")
    scope = matter_code or "project"
    count = session.scalar(select(func.count()).select_from(Notice).where(
        Notice.project_id == project.id, Notice.matter_code.is_(matter_code) if matter_code is None else Notice.matter_code == matter_code,
        Notice.kind == kind))
    number = f"{project.project_code}-{scope}-{kind}-{count + 1:02d}"
    content = {"title": NOTICE_KINDS[kind], "project_code": project.project_code, "project_name": project.name,
               **{k: particulars.get(k) for k in PARTICULARS[kind]}}
    notice = Notice(project_id=project.id, project_code=project.project_code, matter_code=matter_code, kind=kind,
                    number=number, content=content, issued_at=now)
    session.add(notice)
    audit.record(session, at=now, actor="platform", action=f"notice.{kind}", project_code=project.project_code,
                 target=f"notice:{number}", summary={"matter_code": matter_code})
    return notice
