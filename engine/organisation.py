"""The organisation as reference data: regions and departments, for forms and pickers, and
the check that a list's filter names one of them."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import Invalid
from engine.models import Department, Matter, Region


def regions(session: Session) -> list[Region]:
    return list(session.scalars(select(Region).order_by(Region.code)))


def region_and_above(session: Session, code: str) -> list[str]:
    """The region and its ancestors, nearest first (the tree is a few levels deep)."""
    chain: list[str] = []
    region = session.get(Region, code)
    while region is not None and region.code not in chain:
        chain.append(region.code)
        region = session.get(Region, region.parent_code) if region.parent_code else None
    return chain


def nearest_department(session: Session, region: str, kind: str) -> Department | None:
    """The department of this kind serving the region: the region's own, else the nearest
    region's above it that has one (of several in one region, the first by code). A
    city's or province's platform serves its districts' projects with its own."""
    chain = region_and_above(session, region)
    found = {d.region_code: d for d in reversed(session.scalars(select(Department).where(
        Department.kind == kind, Department.region_code.in_(chain)).order_by(Department.code)).all())}
    return next((found[code] for code in chain if code in found), None)


def departments(session: Session) -> list[Department]:
    return list(session.scalars(select(Department).order_by(Department.code)))


def filter_problems(session: Session, *, region: str | None = None, department: str | None = None,
                    matter_code: str | None = None) -> dict[str, list[str]]:
    """What a list's filter names that does not exist, by field (see ``check_filter``)."""
    problems: dict[str, list[str]] = {}
    if region and session.get(Region, region) is None:
        problems["region"] = ["行政区划不存在 (unknown region)"]
    if department and session.get(Department, department) is None:
        problems["department"] = ["部门不存在 (unknown department)"]
    if matter_code and session.get(Matter, matter_code) is None:
        problems["matter_code"] = ["事项不在目录中 (unknown matter)"]
    return problems


def check_filter(session: Session, **names: str | None) -> None:
    """A list filtered by a region, department or matter that does not exist is a mistake
    to name (a typo would read as "nothing overdue"), not an empty list: 422 naming it."""
    problems = filter_problems(session, **names)
    if problems:
        raise Invalid("筛选条件有误 (invalid filter)", problems)
