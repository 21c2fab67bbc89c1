"""SQLAlchemy models: the platform's tables.

Names follow ../shared/GLOSSARY.md. The schema changes only through alembic
migrations (migrations/); a test checks that these models and the migrations agree.
Instants are stored as UTC (timezone-aware columns).
"""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from engine.clock import as_utc
from engine.db import Base


class UTCDateTime(TypeDecorator):
    """An instant: stored in UTC, always read back aware (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


#: Department kinds (Jilin 第九条: 综合管理部门, 应用管理部门, 建设运维部门 …).
DEPARTMENT_KINDS = ("general_window", "approving", "coordinating", "supervision", "operator")

#: Roles checked on every endpoint.
ROLES = (
    "applicant",
    "window_officer",
    "officer",
    "dept_admin",
    "analyst",
    "coordinator",
    "supervisor",
    "operator",
)

#: The three management regimes: 审批 / 核准 / 备案.
REGIMES = ("examination", "approval", "filing")

#: A project's life: declared → dispatched → concluded; superseded (re-coded) and
#: cancelled (by the general window) end it. Suspension is a flag beside the status.
PROJECT_STATUSES = ("declared", "dispatched", "concluded", "superseded", "cancelled")


class Region(Base):
    """An administrative division (6-digit code) in the province → city → district tree."""

    __tablename__ = "regions"

    code: Mapped[str] = mapped_column(String(6), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("regions.code"), index=True)
    level: Mapped[str] = mapped_column(String(16))  # province | city | district


class Department(Base):
    __tablename__ = "departments"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"), index=True)
    kind: Mapped[str] = mapped_column(String(32))

    region: Mapped[Region] = relationship(lazy="joined")


class ProjectUnit(Base):
    """项目单位: the applicant, identified by its 统一社会信用代码."""

    __tablename__ = "project_units"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    credit_code: Mapped[str] = mapped_column(String(18), unique=True)
    contact_name: Mapped[str] = mapped_column(String(64), default="")
    contact_phone: Mapped[str] = mapped_column(String(32), default="")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    display_name: Mapped[str] = mapped_column(String(64))
    department_code: Mapped[str | None] = mapped_column(ForeignKey("departments.code"), index=True)
    project_unit_id: Mapped[int | None] = mapped_column(ForeignKey("project_units.id"), index=True)
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    department: Mapped[Department | None] = relationship(lazy="joined")
    project_unit: Mapped[ProjectUnit | None] = relationship(lazy="joined")


class LoginFailure(Base):
    """A failed sign-in, kept to refuse a username after repeated failures (MLPS level 3)."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_login_failures_username_at", "username", "at"),)


class CodeSerial(Base):
    """The next 6-digit serial of the platform's project codes for one year.

    One row per year, incremented inside the declaring transaction, so serials
    never repeat and never skip (a rolled-back declaration gives its serial back).
    """

    __tablename__ = "code_serials"

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_serial: Mapped[int] = mapped_column(Integer, default=0)


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_code: Mapped[str] = mapped_column(String(24), unique=True)
    legacy_code: Mapped[str | None] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    regime: Mapped[str] = mapped_column(String(16))
    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"), index=True)
    industry_code: Mapped[str] = mapped_column(String(2))
    location: Mapped[str] = mapped_column(String(200))
    investment: Mapped[Decimal] = mapped_column(Numeric(18, 4))
    construction_content: Mapped[str] = mapped_column(Text)
    start_year: Mapped[int] = mapped_column(Integer)
    end_year: Mapped[int] = mapped_column(Integer)
    new_land_use: Mapped[bool] = mapped_column(Boolean, default=False)
    environment_sensitive: Mapped[bool] = mapped_column(Boolean, default=False)
    water_soil_impact: Mapped[bool] = mapped_column(Boolean, default=False)
    building_works: Mapped[bool] = mapped_column(Boolean, default=False)
    project_unit_id: Mapped[int] = mapped_column(ForeignKey("project_units.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="declared")
    #: 暂停 (第十四条(一)): no new matter until resumed; clocks pause.
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    declared_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: 重新赋码 (第十二条): the new code's project points back to the old one.
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    version: Mapped[int] = mapped_column(Integer, default=1)

    project_unit: Mapped[ProjectUnit] = relationship(lazy="joined")
    region: Mapped[Region] = relationship(lazy="joined")
    supersedes: Mapped["Project | None"] = relationship(foreign_keys=[supersedes_id], remote_side=[id])
    superseded_by: Mapped["Project | None"] = relationship(foreign_keys=[superseded_by_id], remote_side=[id])

    __mapper_args__ = {"version_id_col": version}


class ProjectChange(Base):
    """A change or suspension request (第十四条(一)) or a re-code (第十二条), with reason and time."""

    __tablename__ = "project_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class AuditEvent(Base):
    """痕迹管理: one appended event per write, hash-chained so edits are detectable.

    ``seq`` is contiguous; ``hash`` covers the event's content and ``prev_hash``.
    Deleting, inserting or editing any event breaks the chain at that point.
    """

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    project_code: Mapped[str | None] = mapped_column(String(24), index=True)
    target: Mapped[str] = mapped_column(String(200))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's head: one row, locked while an event is appended so seq never forks."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class PlatformState(Base):
    """Small shared facts every server process must agree on (e.g. the last sweep)."""

    __tablename__ = "platform_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
