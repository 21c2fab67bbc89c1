"""Projects and their codes (第三章 项目代码; 第十四条(一) 项目申报).

Declaring assigns the 24-character project code in the same transaction as the
project row, so a failed declaration consumes no serial. A classified project is
refused before anything is stored (涉密项目不得通过在线平台办理).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import case, false, func, or_, select
from sqlalchemy.orm import Session, selectinload

from engine import audit, codes
from engine.access import Actor, project_filter, region_subtree, require_role
from engine.clock import SHANGHAI
from engine.db import dialect_insert, transaction_memo
from engine.errors import Conflict, Invalid, NotFound
from engine.models import REGIMES, CodeSerial, Project, ProjectChange, ProjectMatter, Region

CLASSIFIED_MESSAGE = "涉密项目不得通过在线平台办理"
#: Facts of the declaration that the matters notice reads.
FACT_FIELDS = ("new_land_use", "environment_sensitive", "water_soil_impact", "building_works")
#: Fields a change request may adjust (调整); a major change re-codes instead.
ADJUSTABLE_FIELDS = ("name", "location", "investment", "construction_content", "start_year", "end_year")
#: What only a major change (重新赋码, 第十二条) may change besides: the facts the matters
#: notice is decided from, the regime and the industry (they decide what must be approved anew).
RECODE_FIELDS = (*ADJUSTABLE_FIELDS, "regime", "industry_code", *FACT_FIELDS)
#: 延期: the construction period moves, nothing else.
EXTENSION_FIELDS = ("start_year", "end_year")
CHANGE_KINDS = ("adjustment", "extension", "major_change", "suspension", "resumption")
#: A matter in one of these statuses is still open (notified, dispatched to its
#: department, handled); every other status (concluded, refused, no_matter, terminated,
#: closed, cancelled) has ended it.
OPEN_MATTER_STATUSES = ("notified", "dispatched", "handling")
#: The decisions that grant a matter: a project is built after an approval or a filing,
#: never after a refusal (不予受理, 不予批准, 不予备案) or a matter ended otherwise.
GRANTED = ("approved", "filed")


@dataclass(frozen=True)
class PlatformScope:
    """Which region this platform serves: declarations must fall within it."""

    region_code: str


def _normalised(code: str) -> str | None:
    """A code as stored (project codes and legacy codes alike), or None for input that
    cannot be either (empty, over-long, control characters)."""
    try:
        return codes.normalize_legacy_code(code)
    except ValueError:
        return None


def by_code(query, normalised: str):
    """``query`` narrowed to the one project a code names: by its project code, else by its
    legacy code (原编码, 第十二条). A project code names its own project first (一项一码,
    第十条): codes are no longer issued where a legacy code has the same text
    (``_new_code``), and rows from before that are answered the same way every time."""
    return (query.where(or_(Project.project_code == normalised, Project.legacy_code == normalised))
            .order_by(case((Project.project_code == normalised, 0), else_=1)).limit(1))


def named_by(column, code: str):
    """A condition: ``column`` (a project code column) holds the project a code names, the
    code typed any way a lookup takes it (full-width, spaced, the legacy code): a list
    filtered by a code finds what ``GET /projects/{code}`` finds."""
    normalised = _normalised(code)
    if normalised is None:
        return false()
    return column == by_code(select(Project.project_code), normalised).scalar_subquery()


def find_project(session: Session, code: str) -> Project | None:
    """A project by its project code or its legacy code."""
    normalised = _normalised(code)
    return session.scalar(by_code(select(Project), normalised)) if normalised is not None else None


def visible_project(session: Session, actor: Actor, code: str) -> Project:
    """The project if the actor may see it; otherwise 404, whether absent or not theirs."""
    normalised = _normalised(code)
    project = (session.scalar(by_code(select(Project).where(project_filter(session, actor)), normalised))
               if normalised is not None else None)
    if project is None:
        raise NotFound("项目不存在 (no such project)")
    return project


def project_matter(session: Session, project: Project, matter_code: str) -> ProjectMatter | None:
    """One matter of the project's matters notice (应办事项告知), by its code. A
    transaction looks each up once (a step asks for it from its guards, its notices and
    its clocks): a second query would return the same object anyway, unrefreshed, and a
    project's matters are all written when its matters notice is."""
    memo = transaction_memo(session).setdefault("project_matters", {})
    pm = memo.get((project.id, matter_code))
    if pm is None:
        pm = session.scalar(select(ProjectMatter).where(ProjectMatter.project_id == project.id,
                                                        ProjectMatter.matter_code == matter_code))
        if pm is not None:
            memo[project.id, matter_code] = pm
    return pm


def require_matter(session: Session, project: Project, matter_code: str) -> ProjectMatter:
    """The matter a path names (…/matters/{matter}/…): 404 when the project has none."""
    pm = project_matter(session, project, matter_code)
    if pm is None:
        raise NotFound("项目无此事项 (the project has no such matter)")
    return pm


def list_projects(session: Session, actor: Actor, *, page: int, page_size: int, status: str | None = None):
    """A page of the projects the actor may see, with what the project resource shows
    loaded in one query per collection (not one per project)."""
    query = select(Project).where(project_filter(session, actor))
    if status:
        query = query.where(Project.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.scalars(
        query.options(selectinload(Project.matters), selectinload(Project.clocks), selectinload(Project.notices),
                      selectinload(Project.holds))
        .order_by(Project.id.desc()).offset((page - 1) * page_size).limit(page_size)
    ).all()
    return rows, total


def _next_serial(session: Session, year: int) -> int:
    """Take the year's next serial atomically; the row stays locked until commit, so
    concurrent declarations queue here and a rollback gives the serial back."""
    stmt = (
        dialect_insert(session)(CodeSerial)
        .values(year=year, last_serial=1)
        .on_conflict_do_update(index_elements=[CodeSerial.year], set_={"last_serial": CodeSerial.last_serial + 1})
        .returning(CodeSerial.last_serial)
    )
    return session.execute(stmt).scalar_one()


def _new_code(session: Session, year: int, region_code: str, industry_code: str, regime: str) -> str:
    """The year's next code that no legacy code already names (赋码, 第十一条). A legacy
    code (第十二条) may have the form of this platform's codes, from an earlier platform
    or typed so: the serial it would take is passed over, so one code never names two
    projects (一项一码, 第十条). Legacy codes are checked after the year's serial is
    taken, under its lock, where every declaration of the year queues."""
    while True:
        code = codes.format_code(year, region_code, industry_code, regime, _next_serial(session, year))
        if session.scalar(select(Project.id).where(Project.legacy_code == code)) is None:
            return code


def _check_rules(session: Session, scope: PlatformScope, fields: dict[str, Any]) -> None:
    """Rules of the declaration beyond types and lengths; each problem names its field."""
    problems: dict[str, list[str]] = {}
    if "region_code" in fields:
        region = session.get(Region, fields["region_code"])
        if region is None:
            problems["region_code"] = ["行政区划不存在 (unknown region)"]
        elif region.code not in region_subtree(session, scope.region_code):
            problems["region_code"] = ["行政区划不在本平台管辖范围内 (region not within this platform)"]
    if "industry_code" in fields and codes.industry_name(fields["industry_code"]) is None:
        problems["industry_code"] = ["国民经济行业代码不存在 (unknown industry code)"]
    if "investment" in fields and not Decimal(fields["investment"]) > 0:
        problems["investment"] = ["总投资须大于0 (investment must be > 0)"]
    if "regime" in fields and fields["regime"] not in REGIMES:
        problems["regime"] = [f"须为 {', '.join(REGIMES)} 之一"]
    start, end = fields.get("start_year"), fields.get("end_year")
    if start is not None and end is not None and end < start:
        problems["end_year"] = ["竣工年份不得早于开工年份 (end_year before start_year)"]
    if problems:
        raise Invalid("申报信息有误 (invalid declaration)", problems)


def declaration_digest(fields: dict[str, Any]) -> str:
    """What was declared, as a digest a retry's declaration must equal."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str, ensure_ascii=False).encode()).hexdigest()


def declared_before(session: Session, actor: Actor, key: str, fields: dict[str, Any]) -> Project | None:
    """The project this unit declared with this ``Idempotency-Key`` (a retry after a lost
    answer gets it, not a second project under a new code); 409 when the key was used
    for a different declaration."""
    project = session.scalars(select(Project).where(Project.project_unit_id == actor.project_unit_id,
                                                    Project.declaration_key == key)).one_or_none()
    if project is not None and project.declaration_sha256 != declaration_digest(fields):
        problem = "该幂等键已用于另一份申报 (Idempotency-Key already used for a different declaration)"
        raise Conflict(problem, {"Idempotency-Key": [problem]})
    return project


def declare(
    session: Session, *, actor: Actor, scope: PlatformScope, now: datetime, fields: dict[str, Any], key: str | None = None
) -> Project:
    """项目申报: store the project and assign its code (one transaction). ``key`` is the
    unit's Idempotency-Key (``declared_before``); two requests racing with one key both
    get here, and the unique index turns the later one away (409, and its retry finds
    the project)."""
    require_role(actor, "applicant")
    if fields.get("classified"):
        raise Invalid(CLASSIFIED_MESSAGE, {"classified": [CLASSIFIED_MESSAGE]})
    _check_rules(session, scope, fields)
    legacy = fields.get("legacy_code")
    if legacy:
        try:
            legacy = codes.normalize_legacy_code(legacy)
        except ValueError as exc:
            raise Invalid.field("legacy_code", str(exc)) from None
    year = now.astimezone(SHANGHAI).year
    code = _new_code(session, year, fields["region_code"], fields["industry_code"], fields["regime"])
    if legacy and find_project(session, legacy) is not None:  # under the year's lock: a declaration in flight is seen
        raise Invalid.field("legacy_code", "原编码已对应其他项目或已是项目代码 (legacy code already a project's code or mapped)")
    project = Project(
        project_code=code,
        legacy_code=legacy or None,
        name=fields["name"],
        regime=fields["regime"],
        region_code=fields["region_code"],
        industry_code=fields["industry_code"],
        location=fields["location"],
        investment=Decimal(fields["investment"]),
        construction_content=fields["construction_content"],
        start_year=fields["start_year"],
        end_year=fields["end_year"],
        project_unit_id=actor.project_unit_id,
        status="declared",
        declared_at=now,
        declaration_key=key,
        declaration_sha256=declaration_digest(fields) if key else None,
        **{f: bool(fields.get(f, False)) for f in FACT_FIELDS},
    )
    session.add(project)
    session.flush()
    audit.record(
        session, at=now, actor=actor.username, action="project.declare", project_code=code,
        target=f"project:{code}", summary={"name": project.name, "regime": project.regime, "legacy_code": legacy or None},
    )
    return project


def request_change(
    session: Session,
    *,
    actor: Actor,
    scope: PlatformScope,
    now: datetime,
    project: Project,
    kind: str,
    reason: str,
    changes: dict[str, Any],
) -> Project:
    """变更/暂停申请 (第十四条(一)) and 重新赋码 (第十二条).

    Adjustment and extension keep the code; a major change that needs new approval
    issues a new code linked both ways to the old one. Returns the project that now
    carries the declaration (the new one after a re-code).
    """
    require_role(actor, "applicant")
    if kind not in CHANGE_KINDS:
        raise Invalid.field("kind", f"须为 {', '.join(CHANGE_KINDS)} 之一")
    if project.status in ("superseded", "cancelled"):
        raise Conflict("项目已重新赋码或已撤销，不能再变更 (project superseded or cancelled)")
    allowed = RECODE_FIELDS if kind == "major_change" else EXTENSION_FIELDS if kind == "extension" else ADJUSTABLE_FIELDS
    unknown = sorted(set(changes) - set(allowed))
    if unknown:
        why = ("只能在重大变更（重新赋码）中变更 (only a major change changes it)" if set(unknown) <= set(RECODE_FIELDS)
               else "不可变更 (cannot be changed)")
        raise Invalid("不可变更的字段 (fields that cannot be changed)", {f"changes.{f}": [why] for f in unknown})
    if kind == "extension" and changes.get("end_year", project.end_year) < project.end_year:
        raise Invalid.field("changes.end_year", "延期不能提前竣工年份 (an extension moves the end year later, not earlier)")
    if changes and kind in ("suspension", "resumption"):
        raise Invalid.field("changes", "暂停/恢复不改变项目信息 (suspension carries no changes)")
    if kind in ("adjustment", "extension", "major_change") and not changes:
        raise Invalid.field("changes", "请填写变更内容 (what changes)")
    if kind == "suspension" and project.suspended:
        raise Conflict("项目已暂停 (already suspended)")
    if kind == "resumption" and not project.suspended:
        raise Conflict("项目未暂停 (not suspended)")
    merged = {f: getattr(project, f) for f in RECODE_FIELDS} | changes
    _check_rules(session, scope, merged)
    before = {f: _plain(getattr(project, f)) for f in changes}
    session.add(ProjectChange(project_id=project.id, kind=kind, reason=reason, details={"changes": {k: _plain(v) for k, v in changes.items()}}, at=now, actor_id=actor.user_id))
    summary: dict[str, Any] = {"kind": kind, "reason": reason, "before": before, "after": {k: _plain(v) for k, v in changes.items()}}
    if kind == "major_change":
        new = _recode(session, project=project, now=now, changes=changes)
        summary["new_code"] = new.project_code
        audit.record(session, at=now, actor=actor.username, action="project.recode", project_code=project.project_code, target=f"project:{project.project_code}", summary=summary)
        audit.record(session, at=now, actor=actor.username, action="project.recoded_from", project_code=new.project_code, target=f"project:{new.project_code}", summary={"old_code": project.project_code, "reason": reason})
        return new
    for field, value in changes.items():
        setattr(project, field, Decimal(value) if field == "investment" else value)
    if kind in ("suspension", "resumption"):
        project.suspended = kind == "suspension"
    audit.record(session, at=now, actor=actor.username, action=f"project.{kind}", project_code=project.project_code, target=f"project:{project.project_code}", summary=summary)
    return project


def _recode(session: Session, *, project: Project, now: datetime, changes: dict[str, Any]) -> Project:
    """Issue a new code for a major change; the old project keeps its code, linked both ways."""
    year = now.astimezone(SHANGHAI).year
    fields = {c.key: getattr(project, c.key) for c in Project.__table__.columns}
    for key in ("id", "project_code", "legacy_code", "supersedes_id", "superseded_by_id", "version", "declared_at", "status",
                "suspended", "declaration_key", "declaration_sha256"):  # the key named the declaration request, not the project
        fields.pop(key)
    fields.update({k: Decimal(v) if k == "investment" else v for k, v in changes.items()})
    code = _new_code(session, year, project.region_code, project.industry_code, project.regime)
    new = Project(project_code=code, status="declared", suspended=False, declared_at=now, supersedes_id=project.id, **fields)
    session.add(new)
    session.flush()
    project.superseded_by_id = new.id
    project.status = "superseded"
    return new


def ensure_accepts_matters(project: Project) -> None:
    """A suspended or superseded project accepts no new matter until resumed."""
    if project.suspended:
        raise Conflict("项目已暂停，恢复前不受理新事项 (project suspended)")
    if project.status in ("superseded", "cancelled"):
        raise Conflict("项目已重新赋码或撤销 (project superseded or cancelled)")


def _plain(value: Any) -> Any:
    """JSON-friendly form of a column value for audit summaries."""
    return str(value) if isinstance(value, Decimal) else value


@dataclass(frozen=True)
class Verification:
    """核验项目代码: valid | unknown | superseded (with the new code) | malformed (with what is wrong)."""

    result: str
    project_code: str | None = None
    new_code: str | None = None
    problems: dict[str, str] | None = None
    scheme: str | None = None


def verify_code(session: Session, code: str) -> Verification:
    """Verify a code of either scheme, or a legacy code the platform holds."""
    project = find_project(session, code)
    if project is not None:
        if project.superseded_by_id is not None:
            newest = project
            while newest.superseded_by_id is not None:
                newest = session.get(Project, newest.superseded_by_id)
            return Verification("superseded", project.project_code, new_code=newest.project_code)
        return Verification("valid", project.project_code, scheme=codes.parse_code(project.project_code).scheme)
    try:
        parsed = codes.parse_code(code)
    except codes.MalformedCode as exc:
        return Verification("malformed", problems=dict(exc.problems))
    return Verification("unknown", scheme=parsed.scheme)
