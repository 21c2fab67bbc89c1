"""What a change request does to a project's procedures (第十四条(一), 第十二条).

``engine.projects`` records the change itself; this module carries it into the
running procedures: a suspended project's clocks stop counting until it resumes,
and a major change that re-codes the project closes the old code's open matters
with that reason and starts the new code's declaration flow, so its matters restart
under the new code.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from engine import holds, projects, runtime
from engine.access import Actor
from engine.errors import Invalid
from engine.models import Project

SUSPENSION = "suspension"
#: The changes that reach the running procedures (their clocks, or all of them).
_REACHING_PROCEDURES = ("suspension", "resumption", "major_change")


def request_change(session: Session, *, actor: Actor, scope, now: datetime, project: Project, kind: str, reason: str,
                   changes: dict[str, Any]) -> Project:
    if kind in _REACHING_PROCEDURES:
        # The instances before the project row the change writes: a master step holds
        # its instance and then writes the project row (dispatched, concluded).
        runtime.lock_project_instances(session, project.id)
    notice_before = _notice(session, project) if kind in ("adjustment", "extension") else None
    result = projects.request_change(session, actor=actor, scope=scope, now=now, project=project, kind=kind,
                                     reason=reason, changes=changes)
    if notice_before is not None:
        _keeps_the_matters_notice(notice_before, _notice(session, project))
    if kind == "suspension":
        holds.hold_project(session, project.id, SUSPENSION, now=now)
    elif kind == "resumption":
        holds.release_project(session, project.id, SUSPENSION, now=now)
    elif kind == "major_change":
        runtime.close_project(session, project, reason=f"重新赋码为 {result.project_code}：{reason}", now=now,
                              actor=actor.username)
        runtime.start_project(session, project=result, now=now, actor=actor)
    return result


def _notice(session: Session, project: Project) -> set[str]:
    return {matter.matter_code for matter in runtime.matters_notice(session, project)}


def _keeps_the_matters_notice(before: set[str], after: set[str]) -> None:
    """An adjustment keeps the code only while the project still goes through the same
    matters (第十二条: 调整 keeps the code; a change that needs new approval is 重新赋码):
    one that changes the matters notice (an investment crossing a threshold, say) is
    refused, naming the major change to request instead, and the request writes nothing.
    Both notices come from the decision table in force, so a table deployed since the
    declaration refuses no adjustment that changes nothing it decides on."""
    if before != after:
        added, dropped = sorted(after - before), sorted(before - after)
        raise Invalid.field("changes", "此变更将改变应办事项，请申请重大变更（重新赋码） (this change alters the matters "
                                       f"the project must go through: request a major_change; adds {added}, drops {dropped})")
