"""办事指南 (service guides): one versioned guide per matter of the catalogue.

Hunan 第八条 (and Jilin 第八条, Shenzhen, Inner Mongolia 第八条) make each approving
department compile, publish and keep current a guide for each of its matters: legal
basis, content, acceptance conditions, required materials, process, time limit, fees,
supervision requirements and contact. Projects are declared "根据在线平台所公开的办事
指南" (第十四条(一)), so a project keeps the version it was told: a published version is
never edited, a change becomes version N+1, and every version stays readable.

The department's admin publishes its own department's guides; the operator any.
Identical content is a no-op (like deploying a procedure). The guide does not change
the catalogue (``Matter``): the catalogue says which matters exist, the guide tells
the applicant how to apply.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session

from engine import audit, organisation, text
from engine.access import Actor, require_role
from engine.db import transaction_memo
from engine.errors import Forbidden, NotFound, Problems
from engine.models import REGIMES, Department, Matter, ProjectMatter, ServiceGuide

SEED_FILE = Path(__file__).resolve().parent / "data" / "guides.json"
SEED_ACTOR = "seed"

MATERIAL_CODE = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
MIN_DAYS, MAX_DAYS = 1, 2500
MAX_MATERIALS = 100

#: Text fields of a guide and their maximum lengths (characters).
TEXT_FIELDS = {
    "name": 200,
    "legal_basis": 4000,
    "content": 4000,
    "acceptance_conditions": 4000,
    "process": 4000,
    "fees": 1000,
    "supervision_requirements": 4000,
    "contact": 1000,
}
#: A material's text fields: (maximum length, may be empty).
MATERIAL_TEXT_FIELDS = {"name": (200, False), "description": (1000, True)}
DEPARTMENT_CODE_MAX = 32
TEMPLATE_MAX = 500

#: Tab, line feed and carriage return are allowed (a process has steps on lines);
#: any other control character, and markup brackets, are not: guides are shown on
#: the public portal and copied into notices.
_NOT_PLAIN = re.compile(r"[<>\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_URL = re.compile(r"^https?://[^\s<>\"']+$")
_FILE_NAME = re.compile(r"^[^/\\\s<>:\"|?*]([^/\\<>:\"|?*]*[^/\\\s<>:\"|?*])?\.[A-Za-z0-9]{1,8}$")

GUIDE_KEYS = frozenset({
    "name", "department_code", "legal_basis", "content", "acceptance_conditions", "materials", "process",
    "promised_working_days", "statutory_working_days", "fees", "supervision_requirements", "contact", "regimes",
})
MATERIAL_KEYS = frozenset({"code", "name", "required", "gap_tolerable", "template", "description"})


def text_problem(value: Any, max_length: int, *, allow_empty: bool = False) -> str | None:
    """Why a value is not acceptable plain text, or None (shared with the API schema
    so both layers refuse exactly the same strings)."""
    if not isinstance(value, str):
        return "须为字符串 (must be a string)"
    if len(value) > max_length:
        return f"不得超过{max_length}个字符 (at most {max_length} characters)"
    if _NOT_PLAIN.search(value):
        return "不得包含标记或控制字符 (markup or control characters are not allowed)"
    if not allow_empty and text.is_blank(value):
        return "不能为空 (must not be blank)"
    return text.unreadable(value)  # published on the portal: it must read as typed


def template_problem(value: Any) -> str | None:
    """A material's template is "" (none), a file name, or an http(s) address."""
    problem = text_problem(value, TEMPLATE_MAX, allow_empty=True)
    if problem or value == "":
        return problem
    if _URL.match(value) or _FILE_NAME.match(value):
        return None
    return "须为空、文件名（含扩展名）或 http(s) 地址 (empty, a file name with extension, or an http(s) URL)"


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(content: Any, *, department_code: str, catalogue_days: int) -> dict[str, Any]:
    """Check a guide's content; return it normalised (JSON round-trip) or raise
    Invalid naming each field path (``materials.2.code``) and its problem.
    ``catalogue_days``: the matter's promised limit in the catalogue, which a guide may
    shorten (第十五条) and never lengthen."""
    problems = Problems("办事指南内容有误 (the guide's content is invalid)")
    if not isinstance(content, dict):
        problems.add("_schema", "须为 JSON 对象 (must be a JSON object)")
        problems.raise_if_any()
    for key in sorted(set(content) - GUIDE_KEYS):
        problems.add(str(key), "未知字段 (unknown field)")
    for key in sorted(GUIDE_KEYS - set(content)):
        problems.add(key, "必填 (required)")
    for key, max_length in TEXT_FIELDS.items():
        if key in content:
            problems.add(key, text_problem(content[key], max_length))
    if "department_code" in content:
        code = content["department_code"]
        problem = text_problem(code, DEPARTMENT_CODE_MAX)
        if problem is None and code != department_code:
            problem = f"须为本事项的办理部门 (must be the matter's department): {department_code}"
        problems.add("department_code", problem)
    _check_days(content, problems, catalogue_days)
    if "regimes" in content:
        check_regimes(content["regimes"], problems)
    if "materials" in content:
        _check_materials(content["materials"], problems)
    problems.raise_if_any()
    return json.loads(json.dumps(content, ensure_ascii=False))


def days_problem(value: Any) -> str | None:
    """Why a number of working days is not one a limit may have (a guide's, the catalogue's)."""
    if _integer(value) and MIN_DAYS <= value <= MAX_DAYS:
        return None
    return f"须为{MIN_DAYS}至{MAX_DAYS}的整数 (an integer {MIN_DAYS}..{MAX_DAYS})"


def _check_days(content: dict, problems: Problems, catalogue_days: int) -> None:
    promised = content.get("promised_working_days")
    problem = days_problem(promised) if "promised_working_days" in content else None
    if problem:
        problems.add("promised_working_days", problem)
        promised = None
    elif _integer(promised) and promised > catalogue_days:
        problems.add("promised_working_days", f"承诺时限不得超过事项目录的{catalogue_days}个工作日 (the promised limit may "
                                              f"not exceed the catalogue's {catalogue_days} working days)")
    statutory = content.get("statutory_working_days")
    if statutory is None:
        return
    if days_problem(statutory):
        problems.add("statutory_working_days", f"须为空或{MIN_DAYS}至{MAX_DAYS}的整数 (null or an integer {MIN_DAYS}..{MAX_DAYS})")
    elif _integer(promised) and promised > statutory:
        problems.add("promised_working_days", "承诺时限不得超过法定时限 (the promised limit may not exceed the statutory one)")


def check_regimes(regimes: Any, problems: Problems, path: str = "regimes") -> None:
    """A non-empty list of regimes, each once (a guide's, a catalogue matter's)."""
    if not isinstance(regimes, list) or not regimes:
        problems.add(path, f"须为非空列表，取值 {', '.join(REGIMES)} (a non-empty list of {', '.join(REGIMES)})")
        return
    seen: set[str] = set()
    for index, regime in enumerate(regimes):
        if not isinstance(regime, str) or regime not in REGIMES:
            problems.add(f"{path}.{index}", f"须为 {', '.join(REGIMES)} 之一 (one of {', '.join(REGIMES)})")
        elif regime in seen:
            problems.add(f"{path}.{index}", "重复 (duplicate)")
        else:
            seen.add(regime)


def _check_materials(materials: Any, problems: Problems) -> None:
    if not isinstance(materials, list) or not materials:
        problems.add("materials", "须为非空列表 (a non-empty list)")
        return
    if len(materials) > MAX_MATERIALS:
        problems.add("materials", f"至多{MAX_MATERIALS}项 (at most {MAX_MATERIALS} items)")
        return
    codes: set[str] = set()
    any_required = False
    for index, item in enumerate(materials):
        path = f"materials.{index}"
        if not isinstance(item, dict):
            problems.add(path, "须为 JSON 对象 (must be a JSON object)")
            continue
        for key in sorted(set(item) - MATERIAL_KEYS):
            problems.add(f"{path}.{key}", "未知字段 (unknown field)")
        for key in sorted(MATERIAL_KEYS - set(item)):
            problems.add(f"{path}.{key}", "必填 (required)")
        code = item.get("code")
        if "code" in item:
            if not isinstance(code, str) or not MATERIAL_CODE.match(code):
                problems.add(f"{path}.code", "须为小写字母开头的2至64位小写字母、数字或下划线 (^[a-z][a-z0-9_]{1,63}$)")
            elif code in codes:
                problems.add(f"{path}.code", f"与前面的材料编码重复 (duplicate material code): {code}")
            else:
                codes.add(code)
        for key, (max_length, allow_empty) in MATERIAL_TEXT_FIELDS.items():
            if key in item:
                problems.add(f"{path}.{key}", text_problem(item[key], max_length, allow_empty=allow_empty))
        if "template" in item:
            problems.add(f"{path}.template", template_problem(item["template"]))
        for key in ("required", "gap_tolerable"):
            if key in item and not isinstance(item[key], bool):
                problems.add(f"{path}.{key}", "须为 true 或 false (a boolean)")
        if item.get("gap_tolerable") is True and item.get("required") is False:
            problems.add(f"{path}.gap_tolerable", "只有必交材料才可容缺 (only a required material can be tolerated missing)")
        any_required = any_required or item.get("required") is True
    if not any_required:
        problems.add("materials", "至少须有一项必交材料 (at least one material must be required)")


# --- reading -------------------------------------------------------------------------


def current(session: Session, matter_code: str) -> ServiceGuide | None:
    """The newest version of a matter's guide."""
    return session.scalar(
        select(ServiceGuide).where(ServiceGuide.matter_code == matter_code).order_by(ServiceGuide.version.desc()).limit(1)
    )


def get(session: Session, matter_code: str, version: int) -> ServiceGuide | None:
    """One version of a matter's guide. A published version never changes, so a
    transaction reads each once (a project unit's materials are checked against it one
    by one)."""
    memo = transaction_memo(session).setdefault("guides", {})
    guide = memo.get((matter_code, version))
    if guide is None:  # an absent version may be published later in the transaction: not kept
        guide = session.scalar(
            select(ServiceGuide).where(ServiceGuide.matter_code == matter_code, ServiceGuide.version == version))
        if guide is not None:
            memo[matter_code, version] = guide
    return guide


def current_versions(session: Session, matter_codes: Iterable[str]) -> dict[str, int]:
    """The newest guide version of each matter named (matters with no guide are absent)."""
    codes = sorted(set(matter_codes))
    if not codes:
        return {}
    rows = session.execute(
        select(ServiceGuide.matter_code, func.max(ServiceGuide.version))
        .where(ServiceGuide.matter_code.in_(codes)).group_by(ServiceGuide.matter_code)
    ).all()
    return {code: version for code, version in rows}


def for_project_matter(session: Session, pm: ProjectMatter) -> ServiceGuide | None:
    """The guide a project's matter is handled under: the version the project was told,
    else (not told yet) the newest."""
    if pm.guide_version is not None:
        return get(session, pm.matter_code, pm.guide_version)
    return current(session, pm.matter_code)


def promised_working_days(session: Session, pm: ProjectMatter) -> int:
    """承诺时限 the project was told for the matter: its guide's (a department may promise
    less than the catalogue's limit, 第十五条: 根据…事项办理时限要求进行计时), else the
    catalogue's. The promised clock runs on it and the project shows it."""
    guide = get(session, pm.matter_code, pm.guide_version) if pm.guide_version is not None else None  # told none: the catalogue
    promised = guide.content.get("promised_working_days") if guide is not None else None
    return int(promised) if promised is not None else pm.matter.promised_working_days


def material(guide: ServiceGuide, code: str) -> dict[str, Any] | None:
    """One material of a guide's list by its code."""
    return next((m for m in guide.content.get("materials", ()) if m.get("code") == code), None)


def public_guide(session: Session, matter_code: str, version: int | None = None) -> ServiceGuide:
    """A guide for the portal: 404 for an unknown matter, an unpublished guide or version."""
    if session.get(Matter, matter_code) is None:
        raise NotFound(f"目录中没有此事项 (no such matter): {matter_code}")
    guide = current(session, matter_code) if version is None else get(session, matter_code, version)
    if guide is None:
        raise NotFound(f"此事项没有该版本的办事指南 (no such guide version): {matter_code}")
    return guide


def _newest_guides():
    """A subquery of each matter's newest version number."""
    return (
        select(ServiceGuide.matter_code, func.max(ServiceGuide.version).label("version"))
        .group_by(ServiceGuide.matter_code).subquery()
    )


@dataclass(frozen=True)
class GuideFilter:
    regime: str | None = None
    department: str | None = None
    matter_code: str | None = None
    q: str | None = None


def list_current(session: Session, flt: GuideFilter, *, page: int, page_size: int) -> tuple[list[tuple[ServiceGuide, Department]], int]:
    """The newest guide of every matter, filtered, by department then matter code.

    ``regime`` is matched on the serialised ``regimes`` array (``"filing"`` with its
    quotes): the vocabulary is closed and validated, no value is inside another, and
    the same expression works on SQLite's and PostgreSQL's JSON.
    """
    organisation.check_filter(session, department=flt.department, matter_code=flt.matter_code)
    newest = _newest_guides()
    query = (
        select(ServiceGuide, Department)
        .join(newest, (ServiceGuide.matter_code == newest.c.matter_code) & (ServiceGuide.version == newest.c.version))
        .join(Matter, Matter.matter_code == ServiceGuide.matter_code)
        .join(Department, Department.code == Matter.department_code)
    )
    if flt.regime:
        query = query.where(cast(ServiceGuide.content["regimes"], String).contains(f'"{flt.regime}"'))
    if flt.department:
        query = query.where(Matter.department_code == flt.department)
    if flt.matter_code:
        query = query.where(ServiceGuide.matter_code == flt.matter_code)
    if flt.q:
        query = query.where(ServiceGuide.content["name"].as_string().contains(flt.q, autoescape=True))
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.execute(
        query.order_by(Matter.department_code, ServiceGuide.matter_code).offset((page - 1) * page_size).limit(page_size)
    ).all()
    return [(guide, department) for guide, department in rows], total


def versions(session: Session, matter_code: str, *, page: int, page_size: int) -> tuple[list[ServiceGuide], int]:
    """Every published version of a matter's guide, newest first (404 for an unknown matter)."""
    if session.get(Matter, matter_code) is None:
        raise NotFound(f"目录中没有此事项 (no such matter): {matter_code}")
    where = ServiceGuide.matter_code == matter_code
    total = session.scalar(select(func.count()).select_from(ServiceGuide).where(where))
    rows = session.scalars(
        select(ServiceGuide).where(where).order_by(ServiceGuide.version.desc()).offset((page - 1) * page_size).limit(page_size)
    ).all()
    return list(rows), total


# --- publishing ----------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    guide: ServiceGuide
    created: bool


def publish_version(session: Session, *, actor: Actor, matter_code: str, content: Any, now: datetime) -> Published:
    """Publish a guide: identical content to the newest version is a no-op returning it;
    other content becomes version N+1. The matter's department admin or the operator."""
    require_role(actor, "dept_admin", "operator")
    matter = session.get(Matter, matter_code)
    if matter is None:
        raise NotFound(f"目录中没有此事项 (no such matter): {matter_code}")
    if not actor.has("operator") and actor.department_code != matter.department_code:
        raise Forbidden("只能发布本部门事项的办事指南 (a department admin publishes only its own department's guides)")
    normalised = validate(content, department_code=matter.department_code, catalogue_days=matter.promised_working_days)
    newest = current(session, matter_code)
    if newest is not None and newest.content == normalised:
        return Published(newest, False)
    guide = ServiceGuide(
        matter_code=matter_code, version=(newest.version if newest else 0) + 1, content=normalised,
        published_at=now, published_by=actor.username,
    )
    session.add(guide)
    session.flush()
    digest = hashlib.sha256(json.dumps(normalised, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()
    audit.record(
        session, at=now, actor=actor.username, action="guide.publish", target=f"guide:{matter_code}",
        summary={"version": guide.version, "department": matter.department_code, "sha256": digest},
    )
    return Published(guide, True)


def publish(session: Session, *, actor: Actor, matter_code: str, content: Any, now: datetime) -> ServiceGuide:
    """The published (or, for identical content, the existing) version."""
    return publish_version(session, actor=actor, matter_code=matter_code, content=content, now=now).guide


def load_seed(session: Session, now: datetime) -> list[str]:
    """Version 1 of the demo guide of every matter that has none (engine/data/guides.json);
    return the matters seeded. A guide naming a matter outside the catalogue is an
    error in the data file, so it is refused rather than skipped."""
    session.flush()
    actor = Actor.system(SEED_ACTOR)
    seeded = []
    for matter_code, content in json.loads(SEED_FILE.read_text(encoding="utf-8"))["guides"].items():
        if current(session, matter_code) is None:
            publish(session, actor=actor, matter_code=matter_code, content=content, now=now)
            seeded.append(matter_code)
    return seeded
