"""等待前置 (waiting for a prerequisite): the matter's running clocks pause until the
prerequisite matter of the same project concludes, or the officer ends the wait.

This is clock mechanism, not procedure: any matter's diagram can be waiting, so the
officer starts the wait on the matter, and the sweep ends it once the prerequisite
has concluded (in its own transaction: the concluding matter never writes the
waiting matter's rows). The wait is a hold (``engine.holds``) whose reason names the
prerequisite; this module holds only the rules of when a wait starts and ends.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import audit, holds, projects, runtime
from engine.access import Actor
from engine.errors import Conflict, Forbidden, Invalid
from engine.models import Hold, Project, ProjectMatter

PREFIX = "prerequisite:"


def start_wait(session: Session, *, actor: Actor, project: Project, matter_code: str, prerequisite: str, now: datetime) -> ProjectMatter:
    pm = projects.require_matter(session, project, matter_code)
    if not actor.has("officer") or actor.department_code != pm.department_code:
        raise Forbidden("只有事项所属部门的经办人可以设置等待前置 (the matter's department only)")
    runtime.lock_matter(session, pm, now=now)  # the matter's status is checked as it stands under the lock
    if pm.status != "handling" or pm.instance_id is None:
        raise Conflict("事项未在办理中 (the matter is not being handled)")
    other = projects.require_matter(session, project, prerequisite) if prerequisite != matter_code else None
    if other is None:
        raise Invalid.field("prerequisite", "前置事项须为本项目的另一事项 (another matter of this project)")
    if other.status not in projects.OPEN_MATTER_STATUSES:
        raise Invalid.field("prerequisite", "前置事项已办结 (the prerequisite has already concluded)")
    if not holds.hold_matter(session, pm, PREFIX + prerequisite, now=now):
        raise Conflict("事项没有正在计时的时钟 (no running clock to pause)")
    audit.record(session, at=now, actor=actor.username, action="matter.wait_prerequisite", project_code=project.project_code,
                 target=f"matter:{matter_code}", summary={"prerequisite": prerequisite})
    return pm


def end_wait_by_officer(session: Session, *, actor: Actor, project: Project, matter_code: str, now: datetime) -> ProjectMatter:
    pm = projects.require_matter(session, project, matter_code)
    if not actor.has("officer") or actor.department_code != pm.department_code:
        raise Forbidden("只有事项所属部门的经办人可以结束等待 (the matter's department only)")
    return end_wait(session, actor=actor.username, project=project, matter_code=matter_code, now=now)


def end_wait(session: Session, *, actor: str, project: Project, matter_code: str, now: datetime,
             ended_at: datetime | None = None) -> ProjectMatter:
    """End the wait: the clocks paused for a prerequisite count on; timers are re-armed.

    ``ended_at``: when the wait ended, if before ``now`` (the sweep ends it after the
    prerequisite concluded): the clocks count on from that instant, as 前置事项完成 则回复计时
    says, however late the sweep came."""
    pm = projects.require_matter(session, project, matter_code)
    runtime.lock_matter(session, pm, now=now)  # an officer and the sweep ending one wait: the second finds none
    waits = [reason for reason in holds.reasons(session, pm) if reason.startswith(PREFIX)]
    if not waits:
        raise Conflict("事项不在等待前置 (the matter is not waiting for a prerequisite)")
    at = now if ended_at is None else min(now, max(ended_at, holds.latest_start(session, pm)))
    for reason in waits:
        holds.release_matter(session, pm, reason, now=at)
    audit.record(session, at=now, actor=actor, action="matter.wait_ended", project_code=project.project_code,
                 target=f"matter:{matter_code}", summary={"counted_from": at.isoformat()})
    return pm


def waits_to_end(session: Session) -> list[tuple[int, str, datetime | None]]:
    """(project id, matter code, when its prerequisite concluded) of every wait whose
    prerequisite has concluded: the open waits, then their prerequisites' states in one
    query."""
    waiting = {(h.project_id, h.matter_code): h.reason[len(PREFIX):] for h in session.scalars(
        select(Hold).where(Hold.ended_at.is_(None), Hold.matter_code.is_not(None), Hold.reason.startswith(PREFIX)))}
    if not waiting:
        return []
    ended = {(project, matter): concluded_at for project, matter, concluded_at in session.execute(
        select(ProjectMatter.project_id, ProjectMatter.matter_code, ProjectMatter.concluded_at).where(
            ProjectMatter.project_id.in_({project for project, _ in waiting}),
            ProjectMatter.status.not_in(projects.OPEN_MATTER_STATUSES)))}  # ended, however: nothing waits on it
    return [(project, matter, ended[project, prerequisite]) for (project, matter), prerequisite in waiting.items()
            if (project, prerequisite) in ended]
