"""Yellow and red records (电子监察): who may see which."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from engine import organisation, projects
from engine.access import Actor, region_subtree
from engine.models import Alert, Project, Region


@dataclass(frozen=True)
class AlertFilter:
    project_code: str | None = None
    light: str | None = None
    clock: str | None = None
    department: str | None = None
    matter_code: str | None = None


def list_alerts(session: Session, actor: Actor, flt: AlertFilter, *, page: int, page_size: int):
    """Officials see the alerts of projects in their region and below; an officer (not a
    supervisor or coordinator) sees its own department's; the operator sees all.

    The region scope is a correlated EXISTS on the alert's project, so the page can be
    read newest first down the (at, id) index, stopping at the page's end; when the scope
    is every region (the operator, or an official of the root region) it is left out."""
    organisation.check_filter(session, department=flt.department, matter_code=flt.matter_code)
    conditions = []
    if not actor.has("operator"):
        regions = region_subtree(session, actor.region_code) if actor.region_code else set()
        if not _every_region(session, regions):
            conditions.append(exists().where(Project.project_code == Alert.project_code,
                                             Project.region_code.in_(regions)))
        if not actor.has("supervisor", "coordinator"):
            conditions.append(Alert.department_code == actor.department_code)
    if flt.project_code:
        conditions.append(projects.named_by(Alert.project_code, flt.project_code))
    for column, value in ((Alert.light, flt.light), (Alert.clock_kind, flt.clock),
                          (Alert.department_code, flt.department), (Alert.matter_code, flt.matter_code)):
        if value:
            conditions.append(column == value)
    total = session.scalar(select(func.count()).select_from(Alert).where(*conditions))
    rows = session.scalars(
        select(Alert).where(*conditions).order_by(Alert.at.desc(), Alert.id.desc()).offset((page - 1) * page_size).limit(page_size)
    ).all()
    return rows, total


def _every_region(session: Session, regions: set[str]) -> bool:
    """Whether a region subtree is the whole tree (then it restricts nothing)."""
    return bool(regions) and len(regions) == session.scalar(select(func.count()).select_from(Region))
