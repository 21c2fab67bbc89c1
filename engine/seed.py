"""The demo data of ../shared/API.md, seeded idempotently by `tzxm seed-demo`.

A production start seeds no account: the operator seeds the organisation (regions,
departments, the published catalogue of matters and their guides: `tzxm
seed-organisation`) and creates real accounts. The region (510000 四川省 › 510400
攀枝花市 › 510411 仁和区) is the one of the Renhe work plan.
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import accounts, audit, guides
from engine.models import Department, Matter, ProjectUnit, Region, User

CATALOGUE = Path(__file__).resolve().parent / "data" / "matters.json"

REGIONS = (
    ("510000", "四川省", None, "province"),
    ("510400", "攀枝花市", "510000", "city"),
    ("510411", "仁和区", "510400", "district"),
)

DEPARTMENTS = (
    ("window", "仁和区政务服务中心综合窗口", "general_window"),
    ("drc", "仁和区发展和改革局", "coordinating"),
    ("land", "仁和区自然资源局", "approving"),
    ("env", "攀枝花市仁和生态环境局", "approving"),
    ("housing", "仁和区住房和城乡建设局", "approving"),
    ("water", "仁和区水利局", "approving"),
    ("supervision", "仁和区电子监察室", "supervision"),
    ("operator", "仁和区投资项目在线平台建设运维", "operator"),
)

UNITS = (
    ("攀枝花仁和示范建设有限公司", "91510411MA62111112", "张工", "0812-0000001"),
    ("攀枝花钒钛新材料科技有限公司", "91510400MA6222222W", "李工", "0812-0000002"),
)

#: username, display name, roles, department, project unit index
USERS = (
    ("applicant", "示范建设有限公司申报人", ["applicant"], None, 0),
    ("applicant2", "钒钛新材料科技申报人", ["applicant"], None, 1),
    ("window", "综合窗口工作人员", ["window_officer"], "window", None),
    ("drc", "发改局经办人", ["officer"], "drc", None),
    ("land", "自然资源局经办人", ["officer"], "land", None),
    ("env", "生态环境局经办人", ["officer"], "env", None),
    ("housing", "住建局经办人", ["officer"], "housing", None),
    ("water", "水利局经办人", ["officer"], "water", None),
    ("drc_admin", "发改局系统管理员", ["dept_admin"], "drc", None),
    ("analyst", "流程分析员", ["analyst"], "drc", None),
    ("supervisor", "电子监察员", ["supervisor"], "supervision", None),
    ("operator", "平台运维管理员", ["operator"], "operator", None),
)

DEMO_USERNAMES = tuple(u[0] for u in USERS)


def seed_organisation(session: Session, *, now: datetime) -> None:
    """The regions, departments, catalogue of matters and service guides, without any
    account (idempotent: what exists is left alone)."""
    for code, name, parent, level in REGIONS:
        if session.get(Region, code) is None:
            session.add(Region(code=code, name=name, parent_code=parent, level=level))
            session.flush()
    for code, name, kind in DEPARTMENTS:
        if session.get(Department, code) is None:
            session.add(Department(code=code, name=name, region_code="510411", kind=kind))
    seed_catalogue(session)
    guides.load_seed(session, now)


def demo_accounts(session: Session) -> list[str]:
    """The demo accounts this database holds (none on a production start)."""
    return list(session.scalars(select(User.username).where(User.username.in_(DEMO_USERNAMES)).order_by(User.id)))


def seed_demo(session: Session, *, now: datetime, password: str) -> list[str]:
    """The organisation and the demo units and accounts: create what is missing; return
    the usernames created (empty on a second run)."""
    seed_organisation(session, now=now)
    unit_ids = []
    for name, credit_code, contact, phone in UNITS:
        unit = session.scalar(select(ProjectUnit).where(ProjectUnit.credit_code == credit_code))
        if unit is None:
            unit = ProjectUnit(name=name, credit_code=credit_code, contact_name=contact, contact_phone=phone)
            session.add(unit)
            session.flush()
        unit_ids.append(unit.id)
    session.flush()
    created = []
    shared_hash = accounts.hash_password(password)
    for username, display, roles, dept, unit_index in USERS:
        if session.scalar(select(User.id).where(User.username == username)) is not None:
            continue
        accounts.create_user(
            session, now=now, actor="seed-demo", username=username, password=password, display_name=display,
            roles=roles, department_code=dept,
            project_unit_id=unit_ids[unit_index] if unit_index is not None else None,
            check_strength=False, password_hash=shared_hash,
        )
        created.append(username)
    if created:
        audit.record(session, at=now, actor="seed-demo", action="seed.demo", target="platform", summary={"users": created})
    return created


def seed_catalogue(session: Session) -> None:
    """The published catalogue of matters (审批事项目录) from engine/data/matters.json."""
    session.flush()
    for item in json.loads(CATALOGUE.read_text(encoding="utf-8"))["matters"]:
        if session.get(Matter, item["code"]) is None:
            session.add(Matter(
                matter_code=item["code"], name=item["name"], department_code=item["department"],
                promised_working_days=item["promised_working_days"], legal_basis=item["legal_basis"],
                regimes=item["regimes"],
            ))
