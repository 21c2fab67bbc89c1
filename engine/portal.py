"""门户 (portal) and 信息公开 (disclosure): what anyone may read without signing in.

Everything here is built from an allow-list: each answer is a fresh dict holding only
the fields named below, never a model object, so a column added to a table later is
never published by accident. Trade secrets stay out: no investment, location,
construction content, materials, contacts, credit code, internal comments, refusal
reasons or workflow data; supervision records only when marked public.

Looking up a project by code does the same work whether the code exists or not (the
same statements, the same joins, the view built either way) so the answer's timing
does not tell which codes exist; an unknown code is 404.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, literal_column, select
from sqlalchemy.orm import Session

from engine import codes, organisation, projects
from engine.access import region_subtree
from engine.clock import SHANGHAI
from engine.errors import Invalid, NotFound
from engine.models import Department, Matter, Project, ProjectMatter, ProjectUnit, Region, SupervisionRecord

#: The parts of a matter's result (matter_result) that are public: the decision and the
#: document that carries it. ``main_content`` and ``reason`` (a refusal's reasons) are not.
PUBLIC_RESULT_FIELDS = ("decision", "document_number", "document_title", "document_date")
#: Matters whose decision is published: concluded with a decision (approved, filed,
#: denied). A matter refused at acceptance (不予受理) has no document and is shown only
#: on its project's progress view. The status is SQL text, not a parameter: the
#: disclosure index (``ix_project_matters_disclosed``) is partial on ``status =
#: 'concluded'``, and a planner uses it only for a query holding that very constant.
_DECIDED = ProjectMatter.status == literal_column("'concluded'")
SUPERVISION_KINDS = ("inspection", "rectification")
PENALTY_KINDS = ("penalty",)
#: Particulars of a public supervision record that may be shown (a penalty's decision
#: number, amount and legal basis); anything else in ``details`` stays internal.
PUBLIC_PARTICULARS = ("decision_number", "amount", "legal_basis")
#: A code that cannot be a project code or a legacy code (those are never empty): an
#: unparseable input still runs the lookup, so it costs what a real lookup costs.
_NO_CODE = ""
#: No project has id 0 (ids start at 1): the unknown path still runs the same queries.
_NO_PROJECT_ID = 0


def _department(code: str | None, name: str | None) -> dict[str, Any] | None:
    return {"code": code, "name": name} if code is not None else None


def _public_result(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """The allow-listed part of a matter's result, or None when there is no decision yet.
    Only plain values are copied: a nested object could carry anything."""
    if not isinstance(result, dict) or not result.get("decision"):
        return None
    return {key: (result.get(key) if isinstance(result.get(key), (str, int, float)) else None)
            for key in PUBLIC_RESULT_FIELDS}


def _particulars(details: dict[str, Any] | None) -> dict[str, Any]:
    if not isinstance(details, dict):
        return {}
    return {key: details[key] for key in PUBLIC_PARTICULARS
            if isinstance(details.get(key), (str, int, float)) and not isinstance(details.get(key), bool)}


def shanghai_date(instant: datetime) -> date:
    """Calendar days are Asia/Shanghai (a 23:30 UTC conclusion is the next day's)."""
    return instant.astimezone(SHANGHAI).date()


# --------------------------------------------------------------------------- one project

def _project_query(code: str):
    try:
        normalised = codes.normalize_legacy_code(code)
    except ValueError:
        normalised = _NO_CODE
    return projects.by_code(
        select(Project.id, Project.project_code, Project.name, Project.regime, Project.status, Project.declared_at,
               ProjectUnit.name, Region.code, Region.name)
        .join(ProjectUnit, ProjectUnit.id == Project.project_unit_id)
        .join(Region, Region.code == Project.region_code), normalised)


def _matters(session: Session, project_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(ProjectMatter.matter_code, Matter.name, ProjectMatter.department_code, Department.name,
               ProjectMatter.status, ProjectMatter.light, ProjectMatter.received_at, ProjectMatter.accepted_at,
               ProjectMatter.concluded_at, ProjectMatter.result)
        .join(Matter, Matter.matter_code == ProjectMatter.matter_code)
        .join(Department, Department.code == ProjectMatter.department_code)
        .where(ProjectMatter.project_id == project_id)
        .order_by(ProjectMatter.id)
    ).all()
    return [
        {"matter_code": code, "matter_name": name, "department": _department(dept, dept_name), "status": status,
         "light": light, "received_at": received, "accepted_at": accepted, "concluded_at": concluded,
         "result": _public_result(result)}
        for code, name, dept, dept_name, status, light, received, accepted, concluded, result in rows
    ]


def _record_conditions(kinds: tuple[str, ...]):
    return (SupervisionRecord.public.is_(True), SupervisionRecord.kind.in_(kinds))


def _records(session: Session, conditions, *, secret: str, order=None, offset: int = 0, limit: int | None = None):
    query = (
        select(SupervisionRecord.id, SupervisionRecord.project_code, Project.name, SupervisionRecord.region_code,
               Region.name, SupervisionRecord.department_code, Department.name, SupervisionRecord.kind,
               SupervisionRecord.title, SupervisionRecord.content, SupervisionRecord.details, SupervisionRecord.state,
               SupervisionRecord.recorded_at, SupervisionRecord.closed_at)
        .join(Project, Project.id == SupervisionRecord.project_id)
        .outerjoin(Region, Region.code == SupervisionRecord.region_code)
        .join(Department, Department.code == SupervisionRecord.department_code)
        .where(*conditions)
        .order_by(*(order or (SupervisionRecord.recorded_at.desc(), SupervisionRecord.id.desc())))
        .offset(offset)
    )
    if limit is not None:
        query = query.limit(limit)
    return [
        {"reference": record_reference(secret, rid), "project_code": code, "project_name": pname,
         "region": {"code": rcode, "name": rname}, "department": _department(dcode, dname), "kind": kind,
         "title": title, "content": content, "particulars": _particulars(details), "state": state,
         "recorded_at": recorded, "closed_at": closed}
        for rid, code, pname, rcode, rname, dcode, dname, kind, title, content, details, state, recorded, closed
        in session.execute(query).all()
    ]


def record_reference(secret: str, record_id: int) -> str:
    """An opaque, stable reference for a public supervision record: the row id would tell
    how many non-public records exist between two public ones."""
    return hmac.new(secret.encode(), f"supervision-record:{record_id}".encode(), hashlib.sha256).hexdigest()[:20]


def project_view(session: Session, code: str, *, secret: str) -> dict[str, Any]:
    """门户查询: a project's public progress and results by project code or legacy code.

    Three statements whatever the input: the project, its matters, its public supervision
    records. A code that is not stored (or not even well-formed) runs all three against
    a project that cannot exist and is 404 only at the end."""
    row = session.execute(_project_query(code)).first()
    project_id = row[0] if row is not None else _NO_PROJECT_ID
    matters = _matters(session, project_id)
    records = _records(session, (SupervisionRecord.project_id == project_id, SupervisionRecord.public.is_(True)),
                       secret=secret)
    if row is None:
        raise NotFound("项目不存在 (no such project)")
    _, project_code, name, regime, status, declared_at, unit_name, region_code, region_name = row
    return {
        "project_code": project_code,
        "name": name,
        "project_unit": {"name": unit_name},
        "regime": regime,
        "region": {"code": region_code, "name": region_name},
        "status": status,
        "declared_at": shanghai_date(declared_at),
        "matters": matters,
        "supervision": [{k: v for k, v in r.items() if k not in ("project_code", "project_name", "region")}
                        for r in records],
    }


# --------------------------------------------------------------------------- disclosure lists

@dataclass(frozen=True)
class DisclosureFilter:
    """Filters of the disclosure lists; dates are Asia/Shanghai calendar days, inclusive."""

    region: str | None = None
    department: str | None = None
    matter_code: str | None = None
    date_from: date | None = None
    date_to: date | None = None


def _checked(session: Session, flt: DisclosureFilter) -> None:
    """An unknown region, department or matter is a mistake to name, not an empty list."""
    problems = organisation.filter_problems(session, region=flt.region, department=flt.department,
                                            matter_code=flt.matter_code)
    if flt.date_from and flt.date_to and flt.date_to < flt.date_from:
        problems["to"] = ["结束日期早于开始日期 (to is before from)"]
    if problems:
        raise Invalid("筛选条件有误 (invalid filter)", problems)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=SHANGHAI)


def _date_conditions(column, flt: DisclosureFilter) -> list:
    conditions = []
    if flt.date_from:
        conditions.append(column >= _day_start(flt.date_from))
    if flt.date_to:
        conditions.append(column < _day_start(flt.date_to + timedelta(days=1)))
    return conditions


#: The disclosure order's key, written as the index's expression.
_DISCLOSED_AT = func.coalesce(ProjectMatter.concluded_at, ProjectMatter.updated_at)


def _approval_conditions(session: Session, flt: DisclosureFilter) -> list:
    """Conditions on project_matters alone: a region filter is a subquery of its projects."""
    conditions = [_DECIDED]
    if flt.region:
        conditions.append(ProjectMatter.project_id.in_(
            select(Project.id).where(Project.region_code.in_(region_subtree(session, flt.region)))))
    if flt.department:
        conditions.append(ProjectMatter.department_code == flt.department)
    if flt.matter_code:
        conditions.append(ProjectMatter.matter_code == flt.matter_code)
    return conditions + _date_conditions(_DISCLOSED_AT, flt)


def approvals(session: Session, flt: DisclosureFilter, *, offset: int, limit: int,
              count: bool = True) -> tuple[list[dict[str, Any]], int | None]:
    """审批结果公开: concluded matters with their decision and document, newest first.

    The date filter and the order use the conclusion instant (for rows concluded before
    it was recorded, the last update, which is when the matter concluded). The page is
    chosen on project_matters alone (down the disclosure index, newest first) and only
    its rows are joined to their project, region, matter and department names; the total
    counts project_matters alone too. ``count=False`` (the Atom feed) skips the total."""
    _checked(session, flt)
    conditions = _approval_conditions(session, flt)
    total = session.scalar(select(func.count()).select_from(ProjectMatter).where(*conditions)) if count else None
    page = (
        select(ProjectMatter.id, _DISCLOSED_AT.label("at"))
        .where(*conditions)
        .order_by(_DISCLOSED_AT.desc(), ProjectMatter.id.desc())
        .offset(offset).limit(limit)
    ).subquery()
    rows = session.execute(
        select(Project.project_code, Project.name, Region.code, Region.name, ProjectMatter.matter_code, Matter.name,
               ProjectMatter.department_code, Department.name, ProjectMatter.status, ProjectMatter.result, page.c.at)
        .select_from(page)
        .join(ProjectMatter, ProjectMatter.id == page.c.id)
        .join(Project, Project.id == ProjectMatter.project_id)
        .join(Region, Region.code == Project.region_code)
        .join(Matter, Matter.matter_code == ProjectMatter.matter_code)
        .join(Department, Department.code == ProjectMatter.department_code)
        .order_by(page.c.at.desc(), page.c.id.desc())
    ).all()
    items = []
    for code, name, rcode, rname, mcode, mname, dcode, dname, status, result, at in rows:
        public = _public_result(result) or dict.fromkeys(PUBLIC_RESULT_FIELDS)
        items.append({
            "project_code": code, "project_name": name, "region": {"code": rcode, "name": rname},
            "matter_code": mcode, "matter_name": mname, "department": _department(dcode, dname), "status": status,
            **public, "concluded_at": at,
        })
    return items, total


def supervision_records(
    session: Session, flt: DisclosureFilter, *, kinds: tuple[str, ...], secret: str, offset: int, limit: int,
    count: bool = True,
) -> tuple[list[dict[str, Any]], int | None]:
    """监管信息 / 处罚结果公开: public supervision records of the given kinds, newest first.
    Records carry no matter, so ``matter_code`` is not a filter here. ``count=False``
    (the Atom feeds) skips the total."""
    if flt.matter_code:
        raise Invalid.field("matter_code", "监管记录不按事项筛选 (records are not filtered by matter)")
    _checked(session, flt)
    conditions = list(_record_conditions(kinds))
    if flt.region:
        conditions.append(SupervisionRecord.region_code.in_(region_subtree(session, flt.region)))
    if flt.department:
        conditions.append(SupervisionRecord.department_code == flt.department)
    conditions += _date_conditions(SupervisionRecord.recorded_at, flt)
    total = session.scalar(select(func.count()).select_from(SupervisionRecord).where(*conditions)) if count else None
    return _records(session, conditions, secret=secret, offset=offset, limit=limit), total
