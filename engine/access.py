"""Who may see and do what (Jilin 第九条; MLPS level 3 access control).

The rules live here, not in the API: an applicant sees only its own unit's projects
(another unit's project is "not found"); an official sees the projects of its
department's region and the regions below; an officer acts only for its department;
the operator sees everything.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import Forbidden
from engine.models import Project, Region, User

OFFICIAL_ROLES = frozenset(
    {"window_officer", "officer", "dept_admin", "analyst", "coordinator", "supervisor", "operator"}
)
#: The official roles that work on or watch projects, and so see them (their region and
#: below). An analyst edits diagrams: it is given no project's data (Jilin 第九条: 在依法保护
#: 项目申请人合法权益和商业秘密的前提下 permissions go to applicants, the departments and the
#: supervisors).
PROJECT_ROLES = OFFICIAL_ROLES - {"analyst"}


@dataclass(frozen=True)
class Actor:
    """The signed-in user, as the engine needs it (no Flask objects cross this line)."""

    user_id: int
    username: str
    roles: frozenset[str]
    department_code: str | None
    region_code: str | None
    project_unit_id: int | None

    @classmethod
    def of(cls, user: User) -> "Actor":
        return cls(
            user_id=user.id,
            username=user.username,
            roles=frozenset(user.roles or ()),
            department_code=user.department_code,
            region_code=user.department.region_code if user.department else None,
            project_unit_id=user.project_unit_id,
        )

    @classmethod
    def system(cls, username: str) -> "Actor":
        """The platform acting on the operator's command line (deploy, set-up)."""
        return cls(user_id=0, username=username, roles=frozenset({"operator"}), department_code=None,
                   region_code=None, project_unit_id=None)

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def is_official(self) -> bool:
        return bool(self.roles & OFFICIAL_ROLES)


def require_role(actor: Actor, *roles: str) -> None:
    if not actor.has(*roles):
        raise Forbidden(f"需要以下角色之一 (requires one of the roles): {', '.join(roles)}")


def region_subtree(session: Session, root: str) -> set[str]:
    """A region and every region below it (the tree is small: a breadth-first walk,
    done once per unit of work however often access is checked in it)."""
    cache = session.info.setdefault("tzxm_region_subtrees", {})
    if root not in cache:
        found, frontier = {root}, [root]
        while frontier:
            children = session.scalars(select(Region.code).where(Region.parent_code.in_(frontier))).all()
            frontier = [c for c in children if c not in found]
            found.update(frontier)
        cache[root] = frozenset(found)
    return set(cache[root])


def project_filter(session: Session, actor: Actor):
    """A WHERE clause limiting projects to those the actor may see."""
    if actor.has("operator"):
        return Project.id.is_not(None)
    if actor.has(*PROJECT_ROLES) and actor.region_code:
        return Project.region_code.in_(region_subtree(session, actor.region_code))
    if actor.has("applicant") and actor.project_unit_id is not None:
        return Project.project_unit_id == actor.project_unit_id
    return Project.id.is_(None)

