"""SQLAlchemy models: the platform's tables.

Names follow ../shared/GLOSSARY.md. The schema changes only through alembic
migrations (migrations/); a test checks that these models and the migrations agree.
Instants are stored as UTC (timezone-aware columns).
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
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


#: The largest value of an id column (INTEGER, 32 bits, on PostgreSQL): a larger id names
#: no row, and PostgreSQL refuses the query rather than find nothing.
MAX_ID = 2**31 - 1

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
#: A region's level, top down (GB/T 2260: 省级, 地级, 县级).
REGION_LEVELS = ("province", "city", "district")
#: A department's kind (Jilin 第九条: 综合窗口, 应用管理部门, 综合管理部门, 电子监察, 建设运维部门).
DEPARTMENT_KINDS = ("general_window", "approving", "coordinating", "supervision", "operator")
#: A project's statuses: declared → dispatched → concluded; superseded (re-coded) and
#: cancelled (by the general window) end it.
PROJECT_STATUSES = ("declared", "dispatched", "concluded", "superseded", "cancelled")


class Region(Base):
    """An administrative division (6-digit code) in the province → city → district tree."""

    __tablename__ = "regions"

    code: Mapped[str] = mapped_column(String(6), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("regions.code"), index=True)
    level: Mapped[str] = mapped_column(String(16))  # REGION_LEVELS


class Department(Base):
    __tablename__ = "departments"
    #: a step reads it again by key: held for the transaction (``engine.db._hold_loaded``)
    held_for_transaction = True

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # DEPARTMENT_KINDS

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
    #: carried in each token; raised when the account is disabled or its password reset,
    #: so every token issued before is refused (``accounts.user_for_token``)
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

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
    #: declared → dispatched → concluded; superseded (re-coded) and cancelled (by the
    #: general window) end it. Suspension is a flag beside the status.
    status: Mapped[str] = mapped_column(String(16), default="declared")
    #: 暂停 (第十四条(一)): no new matter until resumed; clocks pause.
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    declared_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: 重新赋码 (第十二条): the new code's project points back to the old one.
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    #: the project unit's ``Idempotency-Key`` for the declaration and the SHA-256 of what it
    #: declared: a retry after a lost answer finds this project instead of declaring twice
    declaration_key: Mapped[str | None] = mapped_column(String(64))
    declaration_sha256: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)

    project_unit: Mapped[ProjectUnit] = relationship(lazy="joined")
    region: Mapped[Region] = relationship(lazy="joined")
    supersedes: Mapped["Project | None"] = relationship(foreign_keys=[supersedes_id], remote_side=[id])
    superseded_by: Mapped["Project | None"] = relationship(foreign_keys=[superseded_by_id], remote_side=[id])
    matters: Mapped[list["ProjectMatter"]] = relationship(order_by="ProjectMatter.id", viewonly=True)
    clocks: Mapped[list["Clock"]] = relationship(order_by="Clock.id", viewonly=True)
    notices: Mapped[list["Notice"]] = relationship(order_by="Notice.id", viewonly=True)
    holds: Mapped[list["Hold"]] = relationship(order_by="Hold.id", viewonly=True)

    __mapper_args__ = {"version_id_col": version}
    #: one key, one declaration of a project unit (two requests racing with one key: one 409s)
    __table_args__ = (Index("uq_projects_declaration_key", "project_unit_id", "declaration_key", unique=True),)


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


class Matter(Base):
    """A matter of the published catalogue (审批事项目录): one department's approval item.

    A matter outside the catalogue cannot be added to a project.
    """

    __tablename__ = "matters"
    #: a step reads it again by key: held for the transaction (``engine.db._hold_loaded``)
    held_for_transaction = True

    matter_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    department_code: Mapped[str] = mapped_column(ForeignKey("departments.code"), index=True)
    promised_working_days: Mapped[int] = mapped_column(Integer)
    legal_basis: Mapped[str] = mapped_column(Text, default="")
    regimes: Mapped[list[str]] = mapped_column(JSON, default=list)


class ProcedureVersion(Base):
    """One deployed version of a BPMN procedure or DMN table.

    The XML is kept as deployed; ``spec_json`` is the parsed spec serialized once per
    version (never per instance). Identical content is one version; new content for
    the same process id becomes version N+1. Both texts are deferred (read only when
    asked for): every instance load joins its version, and the parsed spec is cached
    by ``sha256``, so a step never needs the 100 KB of XML and spec again.
    """

    __tablename__ = "procedure_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    process_id: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # bpmn | dmn
    version: Mapped[int] = mapped_column(Integer)
    department_code: Mapped[str | None] = mapped_column(ForeignKey("departments.code"))
    filename: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    xml: Mapped[str] = mapped_column(Text, deferred=True)
    spec_json: Mapped[str | None] = mapped_column(Text, deferred=True)
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deployed_by: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("process_id", "version", name="uq_procedure_version"),
        UniqueConstraint("process_id", "sha256", name="uq_procedure_content"),
    )


class ProjectMatter(Base):
    """One matter of a project's matters notice (应办事项告知) and how far it has got."""

    __tablename__ = "project_matters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    matter_code: Mapped[str] = mapped_column(ForeignKey("matters.matter_code"))
    department_code: Mapped[str] = mapped_column(ForeignKey("departments.code"))
    #: notified → dispatched → handling → concluded | refused | no_matter | cancelled
    status: Mapped[str] = mapped_column(String(16), default="notified")
    light: Mapped[str] = mapped_column(String(8), default="green")
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: the service guide version the project unit was told (a project keeps it)
    guide_version: Mapped[int | None] = mapped_column(Integer)
    #: progress instants for the portal and e-supervision: received by the department,
    #: accepted (the promised clock's start, the pre-check instant when deemed), concluded
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    concluded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: 办理用时: working days from acceptance to conclusion outside the promised clock's
    #: pauses (``engine.handling``), stored when the matter ends so e-supervision reads it
    #: instead of computing it for every matter of a province; NULL until then, and again
    #: after a calendar load changed a day it spans (the sweep computes it again)
    handling_days: Mapped[float | None] = mapped_column(Float)
    #: the calendar revision it was computed on
    handling_revision: Mapped[str | None] = mapped_column(String(32))

    matter: Mapped[Matter] = relationship(lazy="joined")

    __table_args__ = (
        UniqueConstraint("project_id", "matter_code", name="uq_project_matter"),
        Index("ix_project_matters_received_at", "received_at"),
        Index("ix_project_matters_accepted_at", "accepted_at"),
        Index("ix_project_matters_concluded_at", "concluded_at"),
        Index("ix_project_matters_department_concluded", "department_code", "concluded_at"),
        #: the public approvals list, newest first (engine.portal.approvals)
        Index("ix_project_matters_disclosed", text("coalesce(concluded_at, updated_at)"), "id",
              postgresql_where=text("status = 'concluded'"), sqlite_where=text("status = 'concluded'")),
        #: what the sweep still has to compute (engine.handling)
        Index("ix_project_matters_handling_pending", "id",
              postgresql_where=text("handling_days IS NULL AND accepted_at IS NOT NULL AND concluded_at IS NOT NULL"),
              sqlite_where=text("handling_days IS NULL AND accepted_at IS NOT NULL AND concluded_at IS NOT NULL")),
    )


class ProcessInstance(Base):
    """A running procedure: SpiffWorkflow's serialized state plus the columns a query needs.

    ``version`` is the optimistic lock: two writers of one instance cannot both win.
    The master process and each matter run as separate instances, so departments
    working on one project never write the same row.
    """

    __tablename__ = "process_instances"
    #: a step reads it again by key: held for the transaction (``engine.db._hold_loaded``)
    held_for_transaction = True

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    procedure_version_id: Mapped[int] = mapped_column(ForeignKey("procedure_versions.id"))
    kind: Mapped[str] = mapped_column(String(8))  # master | matter
    matter_code: Mapped[str | None] = mapped_column(String(64))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"))
    parent_task_id: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | completed | error
    state: Mapped[str] = mapped_column(Text)
    serializer_version: Mapped[str] = mapped_column(String(96))
    next_timer_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    error_element: Mapped[str | None] = mapped_column(String(128))
    error_message: Mapped[str | None] = mapped_column(Text)
    #: what to re-apply when an operator retries an errored instance
    pending_action: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer, default=1)

    procedure_version: Mapped[ProcedureVersion] = relationship(lazy="joined")
    #: every step needs its project: loaded with the instance (locks name the instances table only)
    project: Mapped["Project"] = relationship(lazy="joined", innerjoin=True, viewonly=True)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (Index("ix_process_instances_status", "status"),)


class Task(Base):
    """A READY user task projected out of the workflow state, so a task list is a query.

    Written in the same transaction as the instance's state; never read back into
    the engine. ``version`` guards against two officers completing one task.
    """

    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), index=True)
    element_id: Mapped[str] = mapped_column(String(128))
    #: the (sub)process instance it belongs to: its clocks are the ones with this scope
    scope_id: Mapped[str | None] = mapped_column(String(36))
    title: Mapped[str] = mapped_column(String(200))
    lane: Mapped[str] = mapped_column(String(128))
    department_code: Mapped[str | None] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(32))
    project_unit_id: Mapped[int | None] = mapped_column(Integer)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    project_code: Mapped[str] = mapped_column(String(24), index=True)
    matter_code: Mapped[str | None] = mapped_column(String(64))
    form: Mapped[str | None] = mapped_column(String(200))
    ui_form: Mapped[str | None] = mapped_column(String(200))
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="ready")  # ready | completed | cancelled
    read_only: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    light: Mapped[str] = mapped_column(String(8), default="green")
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_by: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        Index("ix_tasks_dept_list", "status", "department_code", "role", "due_at"),
        Index("ix_tasks_unit_list", "status", "project_unit_id", "due_at"),
    )


class Delivery(Base):
    """A message from one instance to another, recorded in the sender's transaction.

    A concluded matter tells the master process through here instead of writing the
    master's row itself, so matters concluding at the same moment never conflict.
    Delivered after commit and by the sweep; ``delivered_at`` makes it idempotent.
    """

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target_instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"))
    target_task_id: Mapped[str] = mapped_column(String(36))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_deliveries_pending", "delivered_at", "id"),)


class CalendarYear(Base):
    """A year whose official schedule (国务院办公厅节假日安排) is loaded."""

    __tablename__ = "calendar_years"

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(200))
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CalendarDay(Base):
    """A day that differs from the weekday rule: a holiday on a weekday, or a 调休 working weekend day."""

    __tablename__ = "calendar_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    workday: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str] = mapped_column(String(64), default="")


class Clock(Base):
    """A running clock (督办计时 / 效能计时): a row so supervision and task lists are queries.

    ``yellow_at`` and ``due_at`` are recomputed whenever a pause starts or ends; the
    sweep reads only rows whose next light change has come due.
    """

    __tablename__ = "clocks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    project_code: Mapped[str] = mapped_column(String(24))
    matter_code: Mapped[str | None] = mapped_column(String(64))
    department_code: Mapped[str | None] = mapped_column(String(32))
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"), index=True)
    #: which (sub)process instance started it: each dispatched department has its own reply clock
    scope_id: Mapped[str | None] = mapped_column(String(36))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    limit_days: Mapped[Decimal] = mapped_column(Numeric(8, 3))
    yellow_fraction: Mapped[Decimal] = mapped_column(Numeric(4, 3), default=Decimal("0.8"))
    pauses: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    yellow_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: running | paused | stopped
    state: Mapped[str] = mapped_column(String(16), default="running")
    light: Mapped[str] = mapped_column(String(8), default="green")
    #: the next instant at which the sweep must look at this clock (yellow, then due)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    calendar_provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    #: the calendar's revision its instants were computed on (``engine.calendar``): a clock
    #: a step computed while a year was being loaded is found and computed again
    calendar_revision: Mapped[str | None] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        Index("ix_clocks_next_check", "next_check_at"),
        Index("ix_clocks_instance_kind", "instance_id", "kind"),
        Index("ix_clocks_project_matter_kind", "project_id", "matter_code", "kind", "id"),
        Index("ix_clocks_department_due", "department_code", "due_at"),
        Index("ix_clocks_open_revision", "calendar_revision", postgresql_where=text("state <> 'stopped'"),
              sqlite_where=text("state <> 'stopped'")),
    )


class Alert(Base):
    """A yellow warning or red overdue record; red is kept even after the matter concludes."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    clock_id: Mapped[int] = mapped_column(ForeignKey("clocks.id"), index=True)
    light: Mapped[str] = mapped_column(String(8))
    clock_kind: Mapped[str] = mapped_column(String(16))
    project_code: Mapped[str] = mapped_column(String(24), index=True)
    matter_code: Mapped[str | None] = mapped_column(String(64))
    department_code: Mapped[str | None] = mapped_column(String(32), index=True)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: the instant the light changed: when a sweep runs late, still the instant it came due
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    calendar_provisional: Mapped[bool] = mapped_column(Boolean, default=False)

    #: the alerts list, newest first (read backwards)
    __table_args__ = (Index("ix_alerts_at", "at", "id"),)


class Notice(Base):
    """A numbered notice to the project unit: acceptance, refusal, correction, decision, conclusion."""

    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    project_code: Mapped[str] = mapped_column(String(24))
    matter_code: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    number: Mapped[str] = mapped_column(String(64), unique=True)
    content: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: the rendered PDF in the file store (content-addressed)
    sha256: Mapped[str | None] = mapped_column(ForeignKey("stored_files.sha256"))

    #: a project's conclusion notice (e-supervision, the risk warnings, the exports)
    __table_args__ = (Index("ix_notices_conclusion", "project_id", postgresql_where=text("kind = 'conclusion'"),
                            sqlite_where=text("kind = 'conclusion'")),)


class StoredFile(Base):
    """Bytes kept outside the database under the configured folder, once per content.

    Materials, notice PDFs and signed-document scans all point here by SHA-256, so the
    same bytes uploaded twice are stored once.
    """

    __tablename__ = "stored_files"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    media_type: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ServiceGuide(Base):
    """One version of a matter's service guide (办事指南); a project keeps the version it was told.

    ``content`` holds the guide's sections (legal basis, content, acceptance conditions,
    materials, process, promised working days, fees, supervision requirements, contact,
    regimes); its shape is checked by ``engine.guides``.
    """

    __tablename__ = "service_guides"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    matter_code: Mapped[str] = mapped_column(ForeignKey("matters.matter_code"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime())
    published_by: Mapped[str] = mapped_column(String(64))

    __table_args__ = (UniqueConstraint("matter_code", "version", name="uq_service_guide_version"),)


class Material(Base):
    """A submitted material (申报材料) of a project's matter: one file under one guide item."""

    __tablename__ = "materials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    project_code: Mapped[str] = mapped_column(String(24))
    matter_code: Mapped[str] = mapped_column(String(64))
    #: the material's code on the guide's list (or ``signed_document`` for a decision's scan)
    material: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(ForeignKey("stored_files.sha256"))
    size: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    media_type: Mapped[str] = mapped_column(String(128))
    uploaded_by: Mapped[str] = mapped_column(String(64))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: submitted → accepted (taken at acceptance) | replaced (a newer file for the same item)
    status: Mapped[str] = mapped_column(String(16), default="submitted")

    __table_args__ = (Index("ix_materials_project_matter", "project_id", "matter_code"),)


class MaterialCommitment(Base):
    """The project unit's commitment (承诺) to supply a tolerated-gap material by a deadline.

    The matter ends if the deadline passes with the material still missing.
    """

    __tablename__ = "material_commitments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_matter_id: Mapped[int] = mapped_column(ForeignKey("project_matters.id"), index=True)
    project_code: Mapped[str] = mapped_column(String(24))
    matter_code: Mapped[str] = mapped_column(String(64))
    material: Mapped[str] = mapped_column(String(64))
    commitment: Mapped[str] = mapped_column(Text)
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime())
    committed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_by: Mapped[str] = mapped_column(String(64))
    #: open → fulfilled | lapsed | ended (its matter ended without a grant: nothing is owed)
    state: Mapped[str] = mapped_column(String(16), default="open")
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_material_commitments_open_deadline", "state", "deadline_at"),)


class IntermediaryService(Base):
    """A commissioned intermediary service (中介服务); its time is not counted on the matter's clock."""

    __tablename__ = "intermediary_services"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_matter_id: Mapped[int] = mapped_column(ForeignKey("project_matters.id"), index=True)
    project_code: Mapped[str] = mapped_column(String(24))
    matter_code: Mapped[str] = mapped_column(String(64))
    department_code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    qualification: Mapped[str] = mapped_column(String(200))
    service: Mapped[str] = mapped_column(String(200))
    deadline: Mapped[date] = mapped_column(Date)
    #: commissioned → accepted → handling → completed
    status: Mapped[str] = mapped_column(String(16), default="commissioned")
    #: one entry per recorded stage: {stage, at, by, note}
    events: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    result: Mapped[str] = mapped_column(Text, default="")
    commissioned_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class ImplementationReport(Base):
    """The project unit's implementation report (实施情况): start, progress or completion."""

    __tablename__ = "implementation_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    project_code: Mapped[str] = mapped_column(String(24))
    #: start | progress | completion
    kind: Mapped[str] = mapped_column(String(16))
    #: the reporting period (YYYY-MM) for progress; the day it happened for start and completion
    period: Mapped[str] = mapped_column(String(16))
    percent_complete: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    investment_completed: Mapped[Decimal | None] = mapped_column(Numeric(18, 4))
    content: Mapped[str] = mapped_column(Text, default="")
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reported_by: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_implementation_reports_project_kind", "project_id", "kind", "reported_at"),)


class SupervisionRecord(Base):
    """A monitoring department's record on a project: inspection, rectification order, penalty.

    A rectification order's deadline is a clock of kind ``rectification`` with yellow and
    red lights; public records feed the disclosure lists.
    """

    __tablename__ = "supervision_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    project_code: Mapped[str] = mapped_column(String(24))
    region_code: Mapped[str] = mapped_column(String(6))
    department_code: Mapped[str] = mapped_column(ForeignKey("departments.code"), index=True)
    #: inspection | rectification | penalty
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    content: Mapped[str] = mapped_column(Text)
    #: penalty particulars (decision number, amount, legal basis) or inspection findings
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    clock_id: Mapped[int | None] = mapped_column(ForeignKey("clocks.id"))
    #: open (a rectification not yet done) | closed
    state: Mapped[str] = mapped_column(String(16), default="closed")
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_by: Mapped[str] = mapped_column(String(64))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_supervision_records_public", "public", "recorded_at"),)


class BackfilledAct(Base):
    """An act entered later with an earlier effective date (补录, handled offline first).

    Allowed only with a reason; e-supervision lists the departments that have them.
    """

    __tablename__ = "backfilled_acts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_code: Mapped[str] = mapped_column(String(24), index=True)
    matter_code: Mapped[str | None] = mapped_column(String(64))
    department_code: Mapped[str | None] = mapped_column(String(32), index=True)
    act: Mapped[str] = mapped_column(String(200))
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime())
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(64))


class RateWindow(Base):
    """Requests per client address in the current window: the portal's rate limit, shared
    by every server process through the database."""

    __tablename__ = "rate_windows"

    client: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    count: Mapped[int] = mapped_column(Integer, default=0)


class Hold(Base):
    """Time not counted on a project's or a matter's clocks (容缺, 中介服务, 暂停, 等待前置),
    from its start to its end.

    A hold is a row, not only pauses on clock rows, so that a clock a diagram starts
    while the hold is open starts paused for it, and a clock that two holds overlap
    counts on only when the last of them ends.
    """

    __tablename__ = "holds"
    __table_args__ = (Index("ix_holds_open", "ended_at", "project_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    #: None: the whole project (a suspension); else one matter of it
    matter_code: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(80))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
