"""中介服务 (intermediary services, Hunan 第十六条; Jilin 第十六条).

When a department needs an intermediary (an assessment, a survey, an expert review)
to handle a matter, the commission and every stage of it — accepted, handling,
completed with its result — are recorded on the platform, in that order, and the
time the intermediary takes is not counted on the matter's clocks: commissioning
holds them (``engine.holds``, reason ``intermediary``) and the last open
intermediary of the matter to complete releases them.

Commission and completion lock the matter's instance row first (the lock order every
writer keeps: instance, then clocks), so two completions of the same matter's
intermediaries cannot both see the other still open and leave the clocks held.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import audit, holds, projects, runtime
from engine.access import Actor
from engine.clock import SHANGHAI
from engine.errors import Conflict, Forbidden, Invalid, NotFound
from engine.models import IntermediaryService, Project, ProjectMatter

HOLD_REASON = "intermediary"
#: The stages in the order they happen; each may be recorded only after the one before.
STAGES = ("commissioned", "accepted", "handling", "completed")


def _require_department(actor: Actor, pm: ProjectMatter) -> None:
    if not actor.has("officer") or actor.department_code != pm.department_code:
        raise Forbidden("只有事项所属部门的经办人可以办理中介服务 (the matter's department's officers only)")


def commission(session: Session, *, actor: Actor, project: Project, matter_code: str, name: str, qualification: str,
               service: str, deadline: date, now: datetime) -> IntermediaryService:
    """委托: record the intermediary and stop counting the matter's running clocks."""
    pm = projects.require_matter(session, project, matter_code)
    _require_department(actor, pm)
    runtime.lock_matter(session, pm, now=now)  # the matter's status is checked as it stands under the lock
    if pm.status != "handling" or pm.instance_id is None:
        raise Conflict("事项未在办理中，不能委托中介服务 (the matter is not being handled)")
    if deadline < now.astimezone(SHANGHAI).date():
        raise Invalid.field("deadline", "完成期限不得早于今天 (the deadline is in the past)")
    row = IntermediaryService(
        project_matter_id=pm.id, project_code=project.project_code, matter_code=pm.matter_code,
        department_code=pm.department_code, name=name, qualification=qualification, service=service,
        deadline=deadline, status="commissioned", result="", commissioned_at=now,
        events=[{"stage": "commissioned", "at": now.isoformat(), "by": actor.username, "note": ""}],
    )
    session.add(row)
    holds.hold_matter(session, pm, HOLD_REASON, now=now)
    session.flush()
    audit.record(session, at=now, actor=actor.username, action="intermediary.commissioned",
                 project_code=project.project_code, target=f"intermediary:{row.id}",
                 summary={"matter_code": pm.matter_code, "name": name, "qualification": qualification,
                          "service": service, "deadline": deadline.isoformat()})
    return row


def record_stage(session: Session, *, actor: Actor, project: Project, matter_code: str, intermediary_id: int,
                 stage: str, note: str, result: str | None, version: int, now: datetime) -> IntermediaryService:
    """受理, 办理, 办结: the next stage only; completion needs the result and, when no other
    intermediary of the matter is still open, lets the matter's clocks count on."""
    pm = projects.require_matter(session, project, matter_code)
    _require_department(actor, pm)
    if stage not in STAGES[1:]:
        raise Invalid.field("stage", f"须为 {', '.join(STAGES[1:])} 之一 (unknown stage)")
    if stage == "completed" and not result:
        raise Invalid.field("result", "办结须填写中介服务结果 (completion needs the result)")
    if stage != "completed" and result:
        raise Invalid.field("result", "只有办结时填写结果 (a result belongs to completion only)")
    runtime.lock_matter(session, pm, now=now)
    row = session.scalar(select(IntermediaryService).where(IntermediaryService.id == intermediary_id,
                                                           IntermediaryService.project_matter_id == pm.id)
                         .with_for_update())
    if row is None:
        raise NotFound("中介服务不存在 (no such intermediary service)")
    if row.version != version:
        raise Conflict("中介服务已被他人修改，请刷新后重试 (stale version)")
    expected = STAGES.index(row.status) + 1
    if expected >= len(STAGES) or STAGES[expected] != stage:
        following = STAGES[expected] if expected < len(STAGES) else None
        raise Conflict(f"中介服务环节须按顺序办理，当前为 {row.status}，下一环节为 {following or '无'} "
                       f"(stages run in order: now {row.status}, next {following})")
    row.status = stage
    row.events = [*row.events, {"stage": stage, "at": now.isoformat(), "by": actor.username, "note": note}]
    summary = {"matter_code": pm.matter_code, "stage": stage, "note": note}
    if stage == "completed":
        row.result, row.completed_at = result, now
        summary["result"] = result
        if not _others_open(session, pm, row.id):
            holds.release_matter(session, pm, HOLD_REASON, now=now)
    audit.record(session, at=now, actor=actor.username, action=f"intermediary.{stage}",
                 project_code=project.project_code, target=f"intermediary:{row.id}", summary=summary)
    session.flush()  # the answer carries the new version, which the flush assigns
    return row


def _others_open(session: Session, pm: ProjectMatter, except_id: int) -> bool:
    return bool(session.scalar(select(func.count()).select_from(IntermediaryService).where(
        IntermediaryService.project_matter_id == pm.id, IntermediaryService.id != except_id,
        IntermediaryService.status != "completed")))


def list_for_project(session: Session, project: Project, *, matter_code: str | None, page: int, page_size: int):
    """A project's intermediaries (or one matter's), oldest first. The caller already
    established that the actor may see the project (its unit or an official of its region)."""
    where = [IntermediaryService.project_code == project.project_code]
    if matter_code is not None:
        where.append(IntermediaryService.project_matter_id == projects.require_matter(session, project, matter_code).id)
    total = session.scalar(select(func.count()).select_from(IntermediaryService).where(*where))
    rows = session.scalars(select(IntermediaryService).where(*where).order_by(IntermediaryService.id)
                           .offset((page - 1) * page_size).limit(page_size)).all()
    return rows, total
