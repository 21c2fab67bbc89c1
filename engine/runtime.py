"""The runtime: start procedures, complete tasks, fire timers, deliver between instances.

Each operation loads one instance, runs it through the SpiffWorkflow adapter to its
next wait, and writes back — in the caller's transaction — the state (optimistic
lock on ``version``), the READY user tasks projected into ``tasks``, the clock rows
the diagram started or paused, notices, deliveries and audit events. The master
process and each matter run as separate instances: a department completing its
task writes only its own matter's row; a concluded matter tells the master through
a ``Delivery`` row, so matters concluding at the same moment never conflict.
"""
from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import jsonschema
from sqlalchemy import and_, bindparam, func, inspect, select, update
from sqlalchemy.orm import Session, object_session
from sqlalchemy.orm.attributes import set_committed_value

from engine import (audit, calendar, clocks, forms, guides, handling, holds, notices, organisation, procedures, projects, spiff_adapter,
                    task_guards, text)
from engine.access import Actor, require_role
from engine.db import transaction_memo
from engine.errors import Conflict, Forbidden, Invalid, NotFound
from engine.models import (BackfilledAct, Clock, Delivery, Matter, MaterialCommitment, ProcedureVersion, ProcessInstance,
                           Project, ProjectMatter, Task, User)
from engine.projects import FACT_FIELDS, ensure_accepts_matters
from engine.workcal import WorkCalendar

MASTER_PROCESS = "project_master"
MATTER_STAGE = "matter_stage"
_TICK = timedelta(microseconds=1)
#: Task data shown with a task on the list (what the officer needs to act on it).
TASK_CONTEXT_KEYS = (
    "department", "departments", "matters_notice", "matter_code", "consulted_department", "consultation_question",
    "correction_items", "window_comment",
)
#: A timer whose clock is paused with no end waits "forever" until re-armed on resume.
FAR_FUTURE = "9999-12-31T00:00:00+00:00"
#: The clock that starts at acceptance (受理): its start is when the matter was accepted.
ACCEPTED_CLOCK = "promised"
#: The clocks whose start is the matter's acceptance: the promised clock, and a filing's
#: (备案 has no acceptance step: its examination clock starts when the filing is taken in).
ACCEPTED_CLOCKS = (ACCEPTED_CLOCK, "filing")
#: transaction memo keys: the clocks and ready tasks ``lock_for_steps`` read, by instance, for the step that follows
_LOCKED_CLOCKS = "locked_clocks"
_LOCKED_TASKS = "locked_tasks"
_LOCKED_MATTERS = "locked_matters"
#: Instances a cancellation ends: running ones, and errored ones waiting for an operator's retry.
_NOT_ENDED = ("running", "error")


# --- forms ------------------------------------------------------------------------------

#: The form of a task that takes no answer (a copied document, a notice to read): no
#: field. Every task carries a form (API.md), so a client renders any task alike.
NO_FORM = {"type": "object", "properties": {}, "additionalProperties": False}


@lru_cache(maxsize=256)
def form_schema(name: str | None) -> dict | None:
    """A form's JSON Schema from forms/ (read once per process)."""
    if not name or not procedures.form_exists(name):
        return None
    return json.loads((procedures.FORMS_DIR / name).read_text(encoding="utf-8"))


def served_form(session: Session, task: Task) -> tuple[dict[str, Any], dict[str, Any]]:
    """The task's form and UI schema as a client renders them (``engine.forms.served``)."""
    return forms.served(session, (task.form, task.ui_form), form_schema(task.form) or NO_FORM, form_schema(task.ui_form) or {})


def validate_form(session: Session, name: str | None, data: dict[str, Any]) -> None:
    """The submitted data against the task's form: 422 naming each field and problem."""
    schema = form_schema(name)
    if schema is None:
        return
    validator = jsonschema.Draft202012Validator(schema, format_checker=forms.format_checker(session))
    errors: dict[str, list[str]] = {}
    for error in sorted(validator.iter_errors(data), key=lambda e: list(e.path)):
        if error.validator == "required" or error.validator == "additionalProperties":
            names = [n for n in _names_in(error.message)] or ["data"]
            for n in names:
                errors.setdefault(f"data.{n}", []).append(error.message)
        else:
            path = ".".join(str(p) for p in error.path) or "data"
            message = (f"{forms.NOT_A_HANDLING_DEPARTMENT}: {error.instance!r}"
                       if error.validator == "format" and error.validator_value == forms.DEPARTMENT_FORMAT else error.message)
            errors.setdefault(f"data.{path}" if path != "data" else "data", []).append(message)
    for path, problem in _unreadable_texts(data, "data"):
        errors.setdefault(path, []).append(problem)
    if errors:
        raise Invalid("表单数据有误 (the form data is invalid)", errors)


def _unreadable_texts(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Where the data holds text that would not read as typed (a zero-width space passes
    a form's ``\\S`` pattern, then shows as an empty document number on the portal)."""
    if isinstance(value, str):
        problem = text.unreadable(value)
        if problem:
            yield path, problem
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _unreadable_texts(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unreadable_texts(item, f"{path}.{index}")


def _names_in(message: str) -> list[str]:
    """The property names quoted in a jsonschema required/additionalProperties message."""
    return re.findall(r"'([^']+)'", message)


# --- the run context: what the diagram's functions act on -----------------------------------

@dataclass
class Run:
    """One operation on one instance, inside the caller's transaction."""

    session: Session
    now: datetime
    row: ProcessInstance
    project: Project
    actor: str
    rearm: bool = False
    #: the real instant the step is taken at, when ``now`` is an earlier one it is dated at (a
    #: limit met late): holds recorded since are part of what a clock it starts does not count
    as_of: datetime | None = None
    notices: list[str] = field(default_factory=list)
    #: the instance's clocks, newest last, loaded once per operation (scripts ask often)
    _clocks: list[Clock] | None = None
    _calendar: WorkCalendar | None = None

    def forget_clocks(self) -> None:
        """After a rollback the loaded clocks may be gone; read them again when asked."""
        self._clocks = None

    @property
    def calendar(self) -> WorkCalendar:
        """The official calendar, read only when a script needs working time."""
        if self._calendar is None:
            self._calendar = calendar.current(self.session)
        return self._calendar

    def functions(self, scope: spiff_adapter.ScriptScope) -> dict[str, Any]:
        """The platform functions for one script or expression, bound to its scope."""
        return {
            "working_days": self._working_days,
            "clock_due": lambda kind: self._instant(kind, scope, "due_at"),
            "clock_yellow": lambda kind: self._instant(kind, scope, "yellow_at"),
            "start_clock": lambda kind, working_days, from_clock=None: self._start_clock(scope, kind, working_days, from_clock),
            "stop_clock": lambda kind: self._with_clock(scope, kind, lambda c: clocks.stop(self.session, c, now=self.now)),
            "pause_clock": lambda kind, reason: self._with_clock(
                scope, kind, lambda c: clocks.pause(c, self.calendar, now=self.now, reason=str(reason))),
            "resume_clock": lambda kind: self._resume(scope, kind),
            "issue_notice": lambda kind: self._issue_notice(scope, kind),
            "record_light": lambda kind: self._record_light(scope, kind),
            "promised_days": self._promised_days,
        }

    def _promised_days(self) -> int:
        """The matter's promised working days as the project was told them."""
        pm = self.project_matter()
        if pm is None:
            raise ValueError("promised_days() is for a matter's procedure: this instance handles no matter")
        return guides.promised_working_days(self.session, pm)

    def _working_days(self, n) -> str:
        days = float(n)
        if not 0 <= days <= clocks.MAX_WORKING_DAYS:
            raise ValueError(f"working_days takes 0 to {clocks.MAX_WORKING_DAYS} days, not {n!r}")
        return self.calendar.add_working_days(self.now, days).instant.isoformat()

    def all_clocks(self) -> list[Clock]:
        if self._clocks is None:
            self._clocks = _take_locked(self.session, _LOCKED_CLOCKS, self.row.id)
        if self._clocks is None:
            with self.session.no_autoflush:
                self._clocks = list(self.session.scalars(select(Clock).where(Clock.instance_id == self.row.id).order_by(Clock.id)))
        return self._clocks

    def _clock(self, scope: spiff_adapter.ScriptScope, kind: str, *, running_only: bool = True) -> Clock | None:
        """The newest clock of this kind that this (sub)process instance started."""
        for clock in reversed(self.all_clocks()):
            if clock.kind == kind and clock.scope_id == scope.scope_id and not (running_only and clock.state == "stopped"):
                return clock
        return None

    def _instant(self, kind: str, scope, attr: str) -> str:
        clock = self._clock(scope, kind)
        value = getattr(clock, attr) if clock is not None else None
        return value.isoformat() if value is not None else FAR_FUTURE

    def _department(self, scope) -> str | None:
        """Whose clock a script starts: a matter's procedure's clocks are its matter's
        department's, whatever its data says (a department deploys its own procedures, and
        may not charge its time to another); the master's are the department it runs for
        (``department`` in its data: a reply), else its lane's (the general window's
        dispatch clock). Alerts and e-supervision count a clock against this department."""
        if self.row.kind == "matter":
            matter = self.session.get(Matter, self.row.matter_code) if self.row.matter_code else None
            return matter.department_code if matter else None
        if scope.data.get("department"):
            return str(scope.data["department"])
        department, _ = _lane_owner(scope.lane, scope.data)
        return department

    def _start_clock(self, scope, kind: str, working_days, from_clock: str | None) -> None:
        if kind == ACCEPTED_CLOCK and self.row.kind == "matter":  # 受理: before the promised clock looks for holds
            self.rearm |= holds.end_at_acceptance(self.session, self.project.id, self.row.matter_code, self.all_clocks(),
                                                  self.calendar, now=self.now)
        previous = self._clock(scope, kind)
        if previous is not None:
            clocks.stop(self.session, previous, now=self.now)
        started_at = self.now
        if from_clock:
            origin = self._clock(scope, from_clock, running_only=False)
            if origin is not None:
                started_at = origin.started_at
        clock = clocks.start(
            self.session, self.calendar, now=self.now, kind=kind, project_id=self.project.id,
            project_code=self.project.project_code, working_days=float(working_days), matter_code=self.row.matter_code,
            department_code=self._department(scope), instance_id=self.row.id, started_at=started_at,
            scope_id=scope.scope_id, pauses=holds.pauses_for_new_clock(
                self.session, project_id=self.project.id, matter_code=self.row.matter_code, started_at=started_at,
                now=self.as_of or self.now),
        )
        self.all_clocks().append(clock)
        if kind in ACCEPTED_CLOCKS and self.row.kind == "matter":
            self._accepted(clock.started_at)

    def _accepted(self, at: datetime) -> None:
        """The promised time limit runs from acceptance: its start is the matter's acceptance
        instant (the pre-check instant when acceptance was deemed). A filing's clock starts
        with its instance, before the launch points the matter at it."""
        pm = projects.project_matter(self.session, self.project, self.row.matter_code) if self.row.matter_code else None
        if pm is not None and pm.instance_id in (None, self.row.id) and pm.accepted_at is None:
            pm.accepted_at = at

    def project_matter(self) -> ProjectMatter | None:
        """The project's matter this instance handles (none for the master, or for an
        instance the matter no longer points at)."""
        pm = projects.project_matter(self.session, self.project, self.row.matter_code) if self.row.matter_code else None
        return pm if pm is not None and pm.instance_id == self.row.id else None

    def _with_clock(self, scope, kind: str, action) -> None:
        clock = self._clock(scope, kind)
        if clock is not None:
            action(clock)
            self.rearm = True

    def _resume(self, scope, kind: str) -> None:
        """The diagram's own pause ends (a special procedure, a correction); a hold still
        open on the clock (an intermediary, a suspension) keeps it from counting."""
        def resume(clock: Clock) -> None:
            clocks.resume(clock, self.calendar, now=self.now)
            holds.hold_if_open(self.session, clock, self.calendar, now=self.now)
        self._with_clock(scope, kind, resume)

    def _record_light(self, scope, kind: str) -> str:
        """黄灯预警 / 红灯: a diagram's non-interrupting timer at ``clock_yellow(kind)`` or
        ``clock_due(kind)`` records the light of this instance's clock, at the instant the
        threshold passed, on the clock, its tasks and its matter. Recording twice is a
        no-op, so the sweep's own light changes (for clocks no diagram watches) and a
        timer never record one threshold twice. Returns the clock's light."""
        clock = self._clock(scope, str(kind))
        if clock is None:
            return "green"
        if clocks.fire_due_lights(self.session, clock, self.now):
            clocks.show_on_matter_at_commit(self.session, clock)  # the step's task projection shows it on the tasks
        return clock.light

    def _issue_notice(self, scope, kind: str) -> str:
        if self.row.kind == "master":  # a notice states the matters as they stand: this step's replies count
            _record_replies(self, scope.data.get("replies") or [])
        notice = notices.issue(
            self.session, project=self.project, matter_code=self.row.matter_code, kind=str(kind),
            particulars=dict(scope.data), now=self.now,
        )
        self.notices.append(notice.number)
        return notice.number


# --- loading and saving instances ------------------------------------------------------------

def _load(row: ProcessInstance) -> spiff_adapter.Instance:
    return spiff_adapter.restore(procedures.SPECS.get(row.procedure_version), row.state)


def _lane_owner(lane: str | None, data: dict[str, Any]) -> tuple[str | None, str]:
    """Lane → (department, role): `<dept>:<role>`, `$<variable>:<role>`, or `applicant`."""
    if not lane or lane == "system":
        return None, "system"
    if lane == "applicant":
        return None, "applicant"
    department, _, role = lane.partition(":")
    if department.startswith("$"):
        department = str(data.get(department[1:]) or "")
    return department or None, role


def _project_tasks(run: Run, instance: spiff_adapter.Instance) -> None:
    """Write the READY user tasks as rows; tasks no longer ready are closed."""
    session, row = run.session, run.row
    ready = {t.id: t for t in spiff_adapter.ready_user_tasks(instance)}
    locked = _take_locked(session, _LOCKED_TASKS, row.id)
    if locked is None:
        locked = session.scalars(select(Task).where(Task.instance_id == row.id, Task.status == "ready"))
    existing = {t.id: t for t in locked if t.status == "ready"}  # the step may have completed one
    for task_id, task in existing.items():
        if task_id not in ready:
            task.status = "cancelled"
            task.completed_at = run.now
    moved = []
    for task_id, ready_task in ready.items():
        running = [c for c in run.all_clocks() if c.scope_id == ready_task.scope_id and c.state != "stopped"]
        clock = min(running, key=lambda c: (c.due_at is None, c.due_at or run.now), default=None)
        if task_id in existing:  # a pause or a loaded calendar year may have moved its deadline
            task = existing[task_id]
            if clock is not None and (task.due_at, task.light) != (clock.due_at, clock.light):
                moved.append((task, clock.due_at, clock.light))
            continue
        department, role = _lane_owner(ready_task.lane, ready_task.data)
        session.add(Task(
            id=task_id, instance_id=row.id, element_id=ready_task.element_id, scope_id=ready_task.scope_id,
            title=(ready_task.title or ready_task.element_id)[:200], lane=ready_task.lane or "",
            department_code=department, role=role,
            project_unit_id=run.project.project_unit_id if role == "applicant" else None,
            project_code=run.project.project_code, matter_code=row.matter_code,
            form=ready_task.form, ui_form=ready_task.properties.get(spiff_adapter.UI_FORM_PROPERTY),
            context={k: v for k, v in ready_task.data.items() if k in TASK_CONTEXT_KEYS},
            status="ready", created_at=run.now, due_at=clock.due_at if clock else None,
            light=clock.light if clock else "green",
        ))
    _show_clocks_on_tasks(session, moved)


def _show_clocks_on_tasks(session: Session, moved: list[tuple[Task, datetime | None, str]]) -> None:
    """Each task shows its clock's due instant and light, its version unchanged.

    The version guards what the officer answers (the task, its form, who holds it): a
    claim, a delegation, a completion or a cancellation moves it on; a pause moving the
    deadline or a threshold lighting the task does not change the answer, and an officer
    who listed the task and answers in time must not be refused because of it. The
    versioned ORM flush would move it on, so stored tasks are written with one UPDATE
    of their own and their objects told the values as loaded (nothing left to flush); a
    task still pending insertion (added by an earlier step of this transaction) takes
    them as its first values."""
    stored = [(task, due_at, light) for task, due_at, light in moved if inspect(task).persistent]
    if stored:
        table = Task.__table__
        session.execute(update(table).where(table.c.id == bindparam("b_id")).values(
            due_at=bindparam("b_due_at"), light=bindparam("b_light")),
            [{"b_id": task.id, "b_due_at": due_at, "b_light": light} for task, due_at, light in stored])
    for task, due_at, light in moved:
        if inspect(task).persistent:
            set_committed_value(task, "due_at", due_at)
            set_committed_value(task, "light", light)
        else:
            task.due_at, task.light = due_at, light


def _after_step(run: Run, instance: spiff_adapter.Instance) -> None:
    """Everything that follows a step: re-arm, launch matters, conclude, project tasks, save."""
    if run.rearm:
        run.rearm = False
        spiff_adapter.rearm_timers(instance, now=run.now, functions=run.functions)
    row = run.row
    if row.kind == "master":
        data = spiff_adapter.instance_data(instance)
        if run.project.status == "declared" and data.get("window_decision") == "dispatch":
            run.project.status = "dispatched"
        _launch_matters(run, instance)
        _record_replies(run, spiff_adapter.recorded_values(instance, "reply"))
    _project_tasks(run, instance)
    row.state = spiff_adapter.dump(instance)
    row.serializer_version = spiff_adapter.SERIALIZER_VERSION
    row.next_timer_at = spiff_adapter.next_timer_at(instance)
    row.updated_at = run.now
    if spiff_adapter.is_completed(instance) and row.status != "completed":
        row.status = "completed"
        _on_completed(run, instance)


def _launch_matters(run: Run, instance: spiff_adapter.Instance) -> None:
    """Start a matter instance for every waiting `matter_stage` that has none yet."""
    session = run.session
    stages = spiff_adapter.waiting_receive_tasks(instance, MATTER_STAGE)
    if not stages:
        return
    launched = set(session.scalars(select(ProcessInstance.parent_task_id).where(ProcessInstance.parent_id == run.row.id)))
    for stage in stages:
        if stage.id in launched:
            continue
        matter_code = stage.data.get("matter_code")
        matter = session.get(Matter, matter_code) if matter_code else None
        if matter is None:
            raise spiff_adapter.ProcedureError(MATTER_STAGE, f"matter {matter_code!r} is not in the published catalogue")
        # The matter row first, locked: a commitment (容缺) being made for it commits its hold
        # before the matter's first clock starts and looks for holds.
        project_matter = session.scalar(select(ProjectMatter).where(
            ProjectMatter.project_id == run.project.id, ProjectMatter.matter_code == matter_code)
            .with_for_update(of=ProjectMatter).execution_options(populate_existing=True))
        child = _start_instance(
            session, project=run.project, process_id=f"matter_{matter_code}", kind="matter", matter_code=matter_code,
            data={"project_code": run.project.project_code, "matter_code": matter_code, "regime": run.project.regime},
            now=run.now, actor=run.actor, parent=(run.row.id, stage.id),
        )
        if project_matter is not None:
            project_matter.status, project_matter.instance_id, project_matter.updated_at = "handling", child.id, run.now
            project_matter.received_at = run.now


def _record_replies(run: Run, replies: list) -> None:
    """Departments that replied "no matter at this stage" (or were auto-replied overdue):
    their notified matters are marked so as soon as each replied, while the other
    departments' stages may still be running."""
    silent = {r.get("department"): r["outcome"] for r in replies
              if isinstance(r, dict) and r.get("outcome") in ("no_matter", "overdue_no_reply")}
    if not silent:
        return
    for pm in run.session.scalars(select(ProjectMatter).where(
            ProjectMatter.project_id == run.project.id, ProjectMatter.department_code.in_(silent),
            ProjectMatter.status == "notified")):
        pm.status, pm.updated_at = "no_matter", run.now
        holds.end_all(run.session, pm.project_id, matter_code=pm.matter_code, now=run.now)
        _end_commitments(run.session, pm, run.project.project_code, now=run.now, actor=run.actor)
        # an automatic reply (逾期未回复) is said as such: the department's own reply has its task's event
        audit.record(run.session, at=run.now, actor=run.actor, action="matter.no_matter", project_code=run.project.project_code,
                     target=f"matter:{pm.matter_code}", summary={"department": pm.department_code,
                                                                  "reply": silent[pm.department_code]})


def _on_completed(run: Run, instance: spiff_adapter.Instance) -> None:
    session, row, data = run.session, run.row, spiff_adapter.instance_data(instance)
    for clock in run.all_clocks():
        if clock.state != "stopped":
            clocks.stop(session, clock, now=run.now)
    if row.kind == "matter":
        result = data.get("matter_result") or {}
        pm = run.project_matter()
        if pm is not None:
            pm.status = "refused" if result.get("decision") == "refused" else "concluded"
            pm.result, pm.updated_at, pm.concluded_at = result, run.now, run.now
            if result.get("decision") not in projects.GRANTED:
                _end_commitments(session, pm, run.project.project_code, now=run.now, actor=run.actor)
        holds.end_all(session, row.project_id, matter_code=row.matter_code, now=run.now)
        if pm is not None:
            handling.record(session, pm, run.calendar)
        for department in result.get("copy_to") or []:
            _read_only_task(run, f"抄送：{result.get('document_title') or row.matter_code}", department, "officer",
                            {"matter_result": result})
        if row.parent_id is not None:
            session.add(Delivery(target_instance_id=row.parent_id, target_task_id=row.parent_task_id,
                                 payload=result, created_at=run.now))
        audit.record(session, at=run.now, actor=run.actor, action="matter.concluded", project_code=run.project.project_code,
                     target=f"matter:{row.matter_code}", summary={"decision": result.get("decision"),
                                                                  "document_number": result.get("document_number")})
        return
    outcome = data.get("declaration_outcome")
    run.project.status = "cancelled" if outcome == "cancelled" else "concluded"
    holds.end_all(session, row.project_id, now=run.now)
    for pm in session.scalars(select(ProjectMatter).where(ProjectMatter.project_id == run.project.id,
                                                          ProjectMatter.status == "notified")):
        pm.status, pm.updated_at = "no_matter" if outcome != "cancelled" else "cancelled", run.now
        _end_commitments(session, pm, run.project.project_code, now=run.now, actor=run.actor)
    if run.project.status == "concluded":
        _read_only_task(run, "办结告知：项目所有应办事项已办结", None, "applicant", {"notices": run.notices})
    audit.record(session, at=run.now, actor=run.actor, action=f"project.{run.project.status}",
                 project_code=run.project.project_code, target=f"project:{run.project.project_code}",
                 summary={"notices": run.notices})


def _read_only_task(run: Run, title: str, department: str | None, role: str, context: dict[str, Any]) -> None:
    """A read-only item on a list: 抄送 (a concluded matter's document copied to a
    department) or the project unit being told its project concluded."""
    run.session.add(Task(
        id=str(uuid.uuid4()), instance_id=run.row.id, element_id="copy" if role != "applicant" else "conclusion_notice",
        title=title[:200], lane=f"{department}:{role}" if department else role, department_code=department, role=role,
        project_unit_id=run.project.project_unit_id if role == "applicant" else None,
        project_code=run.project.project_code, matter_code=run.row.matter_code, context=context, status="ready",
        read_only=True, created_at=run.now, light="green",
    ))


def _start_instance(session, *, project, process_id, kind, matter_code, data, now, actor, parent) -> ProcessInstance:
    procedure = procedures.latest(session, process_id)
    row = ProcessInstance(
        project_id=project.id, procedure_version_id=procedure.id, kind=kind, matter_code=matter_code,
        parent_id=parent[0] if parent else None, parent_task_id=parent[1] if parent else None, status="running",
        state="", serializer_version=spiff_adapter.SERIALIZER_VERSION, created_at=now, updated_at=now,
    )
    row.procedure_version = procedure
    session.add(row)
    session.flush()
    run = Run(session, now, row, project, actor, _clocks=[])  # a new instance has no clocks or tasks to read
    transaction_memo(session).setdefault(_LOCKED_TASKS, {})[row.id] = []
    error = _attempt(run, lambda: spiff_adapter.start(procedures.SPECS.get(procedure), data, now=now, functions=run.functions))
    if error is not None:
        _mark_error(row, error, now, actor=actor, pending={"action": "start", "data": data})
    return row


def _attempt(run: Run, action: Callable[[], spiff_adapter.Instance], *,
             isolated: bool = True) -> spiff_adapter.ProcedureError | None:
    """Run one engine step and everything that follows it inside a savepoint. A failure
    undoes the step's effects — notices, clocks, launched matters, audit events — so
    only the error mark remains, and a retry starts from a clean state.

    ``isolated=False``: no savepoint; a failure propagates, and the caller rolls back
    its whole transaction and does the work again isolated (the sweep's chunks)."""
    if not isolated:
        _after_step(run, action())
        return None
    session = run.session
    position = audit.mark(session)
    savepoint = session.begin_nested()
    try:
        _after_step(run, action())
    except spiff_adapter.ProcedureError as exc:
        savepoint.rollback()
        audit.rollback_to(session, position)
        run.forget_clocks()
        # PostgreSQL releases the row locks taken inside the savepoint: matters locked
        # there must be locked again, not remembered as locked.
        transaction_memo(session).pop(_LOCKED_MATTERS, None)
        return exc
    savepoint.commit()
    return None


#: A procedure that fails stops its clocks until an operator's retry: its departments
#: cannot act on it meanwhile, and the platform's failure is not counted against them (a
#: reply given on time but applied at the retry is on time; a silent department's limit
#: moves by the time the procedure stood still).
PLATFORM_FAILURE = "platform_failure"


def _mark_error(row: ProcessInstance, exc: spiff_adapter.ProcedureError, now: datetime, *, actor: str,
                pending: dict) -> None:
    """The instance failed at run time (``actor``'s act or the platform's timer set it off):
    kept errored with what to apply again at the retry, its clocks stopped, and said in the
    trail (the element and message are for operators: ``GET /instances?status=error``)."""
    row.status, row.error_element, row.error_message, row.updated_at = "error", exc.element_id, exc.message, now
    row.pending_action = pending
    session = object_session(row)
    audit.record(session, at=now, actor=actor, action="instance.error", project_code=row.project.project_code,
                 target=f"instance:{row.id}", summary={"pending": pending.get("action"), "kind": row.kind,
                                                       "matter_code": row.matter_code})
    running = list(session.scalars(select(Clock).where(Clock.instance_id == row.id, Clock.state == "running")))
    if running:
        cal = calendar.current(session)
        for clock in running:
            clocks.pause(clock, cal, now=now, reason=PLATFORM_FAILURE)
        # no limit runs meanwhile (the retry's projection shows the moved one); the tasks keep their version
        _show_clocks_on_tasks(session, [(task, None, task.light) for task in session.scalars(
            select(Task).where(Task.instance_id == row.id, Task.status == "ready"))])


def _count_on_after_failure(session: Session, row: ProcessInstance, now: datetime) -> None:
    """The clocks the failure stopped count on from the retry (a hold still open holds them)."""
    paused = list(session.scalars(select(Clock).where(Clock.instance_id == row.id, Clock.state == "paused")))
    if paused:
        holds.count_on(session, paused, (PLATFORM_FAILURE,), calendar.current(session), now)


# --- declaring: the matters notice and the master instance ----------------------------------

def matters_notice(session: Session, project: Project) -> list[Matter]:
    """应办事项告知: the decision table's matters for this declaration, in the catalogue."""
    table = procedures.latest(session, procedures.MATTERS_DECISION, kind="dmn")
    inputs = {
        "regime": project.regime, "industry_code": project.industry_code, "investment": float(project.investment),
        **{f: getattr(project, f) for f in FACT_FIELDS},
    }
    try:
        rows = procedures.evaluate_decision(table, procedures.MATTERS_DECISION, inputs)
    except (spiff_adapter.ProcedureError, spiff_adapter.DiagramRefused) as exc:
        # a table deployed before a check that now refuses it: the declaration waits for a fixed table
        raise Conflict(f"应办事项决策表（第{table.version}版）无法求值，请运维人员部署可用的决策表 "
                       f"(the matters notice table, version {table.version}, does not evaluate: {exc})") from None
    codes = list(dict.fromkeys(r["matter_code"] for r in rows if r.get("matter_code")))
    catalogue = {m.matter_code: m for m in session.scalars(select(Matter).where(Matter.matter_code.in_(codes)))}
    missing = [c for c in codes if c not in catalogue]
    if missing:
        raise Conflict(f"应办事项不在公布的目录中 (matters outside the catalogue): {missing}")
    return [catalogue[c] for c in codes]


def declare(session: Session, *, actor: Actor, scope, now: datetime, fields: dict[str, Any],
            key: str | None = None) -> Project:
    """项目申报 as one use case: the project and its code, the matters notice, the master process."""
    project = projects.declare(session, actor=actor, scope=scope, now=now, fields=fields, key=key)
    start_project(session, project=project, now=now, actor=actor)
    return project


def declare_once(session: Session, *, actor: Actor, scope, now: datetime, fields: dict[str, Any],
                 key: str | None) -> tuple[Project, bool]:
    """A declaration that may be a retry of one already made with the same Idempotency-Key:
    (the project, whether it was declared before)."""
    if key is not None and (project := projects.declared_before(session, actor, key, fields)) is not None:
        return project, True
    return declare(session, actor=actor, scope=scope, now=now, fields=fields, key=key), False


def start_project(session: Session, *, project: Project, now: datetime, actor: Actor) -> ProcessInstance:
    """After a declaration: record the matters notice and start the master process."""
    ensure_accepts_matters(project)
    notice = matters_notice(session, project)
    told = guides.current_versions(session, [m.matter_code for m in notice])  # a project keeps the guide it was told
    for matter in notice:
        session.add(ProjectMatter(project_id=project.id, matter_code=matter.matter_code, guide_version=told.get(matter.matter_code),
                                  department_code=matter.department_code, status="notified", updated_at=now))
    data = {
        "project_code": project.project_code, "name": project.name, "regime": project.regime,
        "region_code": project.region_code, "industry_code": project.industry_code,
        "investment": float(project.investment),
        **{f: getattr(project, f) for f in FACT_FIELDS},
        "matters_notice": [{"matter_code": m.matter_code, "department": m.department_code} for m in notice],
        "departments": list(dict.fromkeys(m.department_code for m in notice)),
    }
    row = _start_instance(session, project=project, process_id=MASTER_PROCESS, kind="master", matter_code=None,
                          data=data, now=now, actor=actor.username, parent=None)
    audit.record(session, at=now, actor=actor.username, action="project.matters_notice", project_code=project.project_code,
                 target=f"project:{project.project_code}", summary={"matters": [m.matter_code for m in notice]})
    return row


def lock_clocks(session: Session, *instance_ids: int) -> None:
    """Take the instances' clocks (after the instances) before touching anything else, so
    a concurrent light sweep (SKIP LOCKED) passes them by instead of racing this write
    (PostgreSQL; SQLite serializes writers, and the same read takes no lock). The rows
    read are kept for the steps that follow in this transaction (``Run.all_clocks``): the
    lock is also each step's read of its clocks."""
    _read_locked(session, _LOCKED_CLOCKS, instance_ids,
                 select(Clock).where(Clock.instance_id.in_(instance_ids)).order_by(Clock.instance_id, Clock.id))


def instance_lock(query):
    """``FOR NO KEY UPDATE`` on instance rows: a writer's lock that still lets another
    transaction insert a row referring to the instance (a concluded matter's ``Delivery``
    to its master takes ``KEY SHARE`` on the master), which ``FOR UPDATE`` would block,
    turning master-then-matter and matter-then-master into a deadlock."""
    return query.with_for_update(key_share=True, of=ProcessInstance)


def lock_instance(session: Session, instance_id: int) -> datetime | None:
    """An instance and its clocks, first in the lock order every writer keeps (then its
    tasks, its matter row, hold rows): for a write beside the workflow (materials, an
    intermediary) that may pause or resume the instance's clocks. Returns when its next
    timer is due if it runs (the lock's own read: whether ``catch_up`` has work costs no
    statement)."""
    status, next_timer_at = session.execute(instance_lock(
        select(ProcessInstance.status, ProcessInstance.next_timer_at).where(ProcessInstance.id == instance_id))).one()
    lock_clocks(session, instance_id)
    return next_timer_at if status == "running" else None


def _lock_master(session: Session, project_id: int) -> None:
    """The project's master instance: matters are launched under its lock, so once it is
    held the project's instances, and which matter has one, stay as they are."""
    session.execute(instance_lock(select(ProcessInstance.id).where(
        ProcessInstance.project_id == project_id, ProcessInstance.kind == "master")))


def lock_project_instances(session: Session, project_id: int) -> dict[int, datetime | None]:
    """Every instance of a project, its master first in a statement of its own, so that
    no instance can appear that the second statement does not see and lock (in id order,
    as everyone). Returns each one's next timer, if it runs (for ``catch_up``)."""
    _lock_master(session, project_id)
    return {instance_id: next_timer_at if status == "running" else None
            for instance_id, status, next_timer_at in session.execute(instance_lock(
                select(ProcessInstance.id, ProcessInstance.status, ProcessInstance.next_timer_at)
                .where(ProcessInstance.project_id == project_id).order_by(ProcessInstance.id)))}


def lock_matter(session: Session, pm: ProjectMatter, *, now: datetime) -> None:
    """Serialise writers beside the workflow on one matter (materials, commitments and
    their lapse, intermediaries, waits) in the lock order every writer keeps: the
    project's master instance while the matter is not received (the master launches it),
    the matter's instance and its clocks, then the matter row, read again under the lock,
    so that what the caller checks next (its status) is what it writes on. The matter's
    limits already passed are met first (``catch_up``): a check made after an acceptance
    limit sees the matter deemed accepted. Once per transaction: the locks are held to
    its end, so nobody else changes them."""
    locked = transaction_memo(session).setdefault(_LOCKED_MATTERS, set())
    if pm.id in locked:
        return
    locked.add(pm.id)
    if pm.instance_id is None:
        _lock_master(session, pm.project_id)
        session.refresh(pm, ["instance_id"])  # read under the master's lock: the launch is settled
    if pm.instance_id is not None:
        catch_up(session, {pm.instance_id: lock_instance(session, pm.instance_id)}, now=now)
    session.scalars(select(ProjectMatter).where(ProjectMatter.id == pm.id).with_for_update(of=ProjectMatter)
                    .execution_options(populate_existing=True)).one()


def lock_for_steps(session: Session, *instance_ids: int) -> None:
    """Before stepping instances (already locked): their clocks, then their ready tasks,
    in the lock order every writer keeps. A step then reads nothing before it writes
    (``_project_tasks`` takes the tasks read here), so the writes of a run of steps reach
    the database together, at commit, in a few batched statements."""
    lock_clocks(session, *instance_ids)
    _read_locked(session, _LOCKED_TASKS, instance_ids, select(Task).where(
        Task.instance_id.in_(instance_ids), Task.status == "ready").order_by(Task.instance_id, Task.id))


def _read_locked(session: Session, key: str, instance_ids, query) -> None:
    locked = transaction_memo(session).setdefault(key, {})
    for instance_id in instance_ids:
        locked[instance_id] = []
    for item in session.scalars(query.with_for_update()):
        locked[item.instance_id].append(item)


def _take_locked(session: Session, key: str, instance_id: int) -> list | None:
    """What ``lock_for_steps`` read for this instance, once: a later step of the same
    transaction reads the rows again (the first may have added some)."""
    return transaction_memo(session).get(key, {}).pop(instance_id, None)


# --- officers and applicants working their tasks ---------------------------------------------

@dataclass(frozen=True)
class Backfill:
    """补录: an act handled offline first and entered later, with its effective instant."""

    effective_at: datetime
    reason: str

    def check(self, task: Task, now: datetime) -> None:
        if self.effective_at > now:
            raise Invalid.field("effective_at", "补录的办理时间不能晚于现在 (effective instant in the future)")
        if self.effective_at < task.created_at:
            raise Invalid.field("effective_at", "补录的办理时间不能早于任务产生的时间 (before the task existed)")
        if not self.reason.strip():
            raise Invalid.field("backfill_reason", "补录须说明理由 (a back-filled act needs a reason)")

    def record(self, session: Session, task: Task, username: str, now: datetime) -> dict[str, str]:
        session.add(BackfilledAct(project_code=task.project_code, matter_code=task.matter_code,
                                  department_code=task.department_code, act=f"task:{task.element_id}",
                                  effective_at=self.effective_at, entered_at=now, reason=self.reason, actor=username))
        return self.kept()

    def kept(self) -> dict[str, str]:
        """As an errored instance keeps it for the retry (``pending_action``), and the event says it."""
        return {"effective_at": self.effective_at.isoformat(), "reason": self.reason}

    @classmethod
    def from_kept(cls, kept: dict[str, str] | None) -> "Backfill | None":
        return cls(datetime.fromisoformat(kept["effective_at"]), kept["reason"]) if kept else None


def _may_work(actor: Actor, task: Task) -> bool:
    if task.role == "applicant":
        return actor.has("applicant") and actor.project_unit_id == task.project_unit_id
    return actor.has(task.role) and actor.department_code == task.department_code


def visible_task(session: Session, actor: Actor, task_id: str) -> Task:
    task = session.get(Task, task_id)
    if task is None or not (_may_work(actor, task) or actor.has("operator")):
        raise NotFound("任务不存在 (no such task)")
    return task


def _locked_task(session: Session, task_id: str) -> Task | None:
    """The task, locked after its instance, the instance's clocks and its other ready
    tasks: every writer takes instance → clocks → tasks in that order (the sweep too), so
    none deadlocks (PostgreSQL; SQLite serializes writers, and the same reads take no
    lock). The rows read serve the step that follows."""
    instance = session.scalars(instance_lock(select(ProcessInstance).where(
        ProcessInstance.id == select(Task.instance_id).where(Task.id == task_id).scalar_subquery()))
        ).one_or_none()  # held: the get() that follows reads no row
    if instance is None:
        return None
    lock_for_steps(session, instance.id)
    return session.get(Task, task_id)  # a ready task was just read; a done one is read now


def complete_task(session: Session, *, actor: Actor, task_id: str, data: dict[str, Any], version: int,
                  now: datetime, backfill: Backfill | None = None) -> tuple[Task, ProcessInstance]:
    """Validate against the form, complete, run to the next wait; all in one transaction.

    The instance's timers already due fire first, each at its own instant, as the sweep
    would have fired them: an answer given after a limit meets the automatic outcome
    (a department's reply deemed given, an acceptance deemed made) and is refused, not
    taken as on time because no sweep had run yet (攀仁府办〔2018〕77号 三（五）).

    ``backfill``: the act happened earlier, offline (补录); recorded with its effective
    instant and reason and flagged for e-supervision. The procedure's clocks still run
    on the platform's time: a back-filled act is flagged, never used to rewrite them.
    """
    task = _locked_task(session, task_id)
    if task is None:
        raise NotFound("任务不存在 (no such task)")
    if not _may_work(actor, task):
        if task.role == "applicant" or not actor.is_official:
            raise NotFound("任务不存在 (no such task)")
        raise Forbidden("只能办理本部门本岗位的任务 (another department's task)")
    if task.read_only:
        raise Conflict("抄送件只读，无需办理 (a copied document is read-only)")
    if task.status != "ready" or task.version != version:
        raise Conflict("任务已办理或已变更，请刷新 (task already done or changed)")
    if task.assignee_id is not None and task.assignee_id != actor.user_id:
        raise Conflict("任务已由他人签收 (claimed by someone else)")
    validate_form(session, task.form, data)
    row = session.get(ProcessInstance, task.instance_id)
    if row.status == "running" and fire_timers(session, row, until=now) and task.status != "ready":
        raise Conflict("办理时限已过，平台已按规定自动处理，此任务已结束 (the time limit passed: the platform applied "
                       "the automatic outcome and the task has ended)")
    if row.status != "running":
        raise Conflict(f"流程实例状态为 {row.status}，暂不能办理 (instance is {row.status})")
    project = session.get(Project, row.project_id)
    if project.suspended:  # the unit suspended it (中止): nothing is handled until it resumes, as its clocks stand still
        raise Conflict("项目已暂停，恢复后方可办理 (the project is suspended: it is handled again when it resumes)")
    run = Run(session, now, row, project, actor.username)

    if backfill is not None:
        backfill.check(task, now)

    def step() -> spiff_adapter.Instance:
        instance = _load(row)
        _complete_in_step(run, instance, task, data, backfill=backfill)
        return instance

    error = _attempt(run, step)
    if error is not None:
        _mark_error(row, error, now, actor=actor.username, pending={
            "action": "complete", "task_id": task_id, "data": data, "actor": actor.username, "submitted_at": now.isoformat(),
            "backfill": backfill.kept() if backfill is not None else None})
    return task, row


def _complete_in_step(run: Run, instance: spiff_adapter.Instance, task: Task, data: dict[str, Any], *,
                      backfill: Backfill | None, retried_by: dict[str, str] | None = None) -> None:
    """Completing a task, inside its step: its checks (``task_guards``), the task done by
    whoever submitted it (``run.actor``), its 补录, its event, the workflow moved on. The
    same whether the officer's request applies it or, after the step failed, the
    operator's retry (``retried_by``): the trail names the officer's act, with its data."""
    session = run.session
    checked = task_guards.apply(session, properties=spiff_adapter.user_task_properties(instance, task.id),
                                project=run.project, matter_code=task.matter_code, data=data, now=run.now, actor=run.actor)
    task.status, task.completed_at, task.completed_by = "completed", run.now, run.actor
    summary = {"task_id": task.id, "matter_code": task.matter_code, "data": checked}
    if backfill is not None:
        summary["backfilled"] = backfill.record(session, task, run.actor, run.now)
    if retried_by is not None:
        summary["applied_at_retry"] = retried_by
    audit.record(session, at=run.now, actor=run.actor, action="task.complete", project_code=run.project.project_code,
                 target=f"task:{task.element_id}", summary=summary)
    spiff_adapter.complete_user_task(instance, task.id, checked, now=run.now, functions=run.functions)


#: What the project unit is told when the procedure fails after its submission: which
#: element failed and the script's message are for officials and operators.
FAILURE_TOLD_TO_APPLICANT = "已提交；平台处理时出现问题，运维人员将处理 (submitted; the platform hit a problem that its operators will handle)"


def failure_for(actor: Actor, row: ProcessInstance) -> dict[str, str | None] | None:
    """The run-time failure of the instance a completed task belongs to, as the actor may
    read it: none while it runs; the element and message for an official; a plain
    sentence for the project unit (a diagram's code and data are not its to read)."""
    if row.status != "error":
        return None
    if actor.is_official:
        return {"element": row.error_element, "message": row.error_message}
    return {"element": None, "message": FAILURE_TOLD_TO_APPLICANT}


def claim(session: Session, *, actor: Actor, task_id: str, now: datetime) -> Task:
    task = _ready_task_for(session, actor, task_id)
    if task.assignee_id not in (None, actor.user_id):
        raise Conflict("任务已由他人签收 (claimed by someone else)")
    task.assignee_id = actor.user_id
    _assignment_changed(session, actor.username, task, "task.claim", now)
    return task


def unclaim(session: Session, *, actor: Actor, task_id: str, now: datetime) -> Task:
    """Release a claim: one's own, or (a department admin) any of the department's."""
    admin = actor.has("dept_admin")
    task = _locked_task(session, task_id)
    if task is None or not (_may_work(actor, task) or (admin and task.department_code == actor.department_code)):
        raise NotFound("任务不存在 (no such task)")
    if task.status != "ready":
        raise Conflict("任务已办理 (task already done)")
    if task.assignee_id != actor.user_id and not admin:
        raise Conflict("只能退回自己签收的任务 (not claimed by you)")
    task.assignee_id = None
    _assignment_changed(session, actor.username, task, "task.unclaim", now)
    return task


def delegate(session: Session, *, actor: Actor, task_id: str, to_username: str, now: datetime) -> Task:
    """Hand a task to a colleague of the same department and role."""
    task = _ready_task_for(session, actor, task_id)
    if task.assignee_id not in (None, actor.user_id):
        raise Conflict("任务已由他人签收 (claimed by someone else)")
    colleague = session.scalar(select(User).where(User.username == to_username))
    if colleague is None or not colleague.active or not _may_work(Actor.of(colleague), task):
        raise Invalid.field("to", "须转交给本部门同岗位的人员 (delegate within the department and role)")
    task.assignee_id = colleague.id
    _assignment_changed(session, actor.username, task, "task.delegate", now, {"to": to_username})
    return task


def release_claims(session: Session, user: User, *, now: datetime, actor: str) -> int:
    """The ready tasks an account claimed and can no longer work (it was disabled, or its
    role or department changed) go back to their department's list; none stays held by
    someone who cannot complete it. Returns how many. The instances are locked first, in
    the lock order every writer keeps: a step working one of them goes first, and a task it
    completed is not released."""
    worker = Actor.of(user)
    instance_ids = sorted(set(session.scalars(select(Task.instance_id).where(
        Task.assignee_id == user.id, Task.status == "ready"))))
    if not instance_ids:
        return 0
    # instance → clocks → tasks, the lock order every writer keeps
    session.execute(instance_lock(select(ProcessInstance.id).where(ProcessInstance.id.in_(instance_ids))
                                  .order_by(ProcessInstance.id)))
    lock_clocks(session, *instance_ids)
    released = 0
    for task in session.scalars(select(Task).where(Task.instance_id.in_(instance_ids), Task.assignee_id == user.id,
                                                   Task.status == "ready").order_by(Task.instance_id, Task.id)
                                .with_for_update()):
        if user.active and _may_work(worker, task):
            continue
        task.assignee_id = None
        _assignment_changed(session, actor, task, "task.unclaim", now,
                            {"released_from": user.username, "reason": "account changed"})
        released += 1
    return released


def _ready_task_for(session: Session, actor: Actor, task_id: str) -> Task:
    task = _locked_task(session, task_id)
    if task is None or not _may_work(actor, task):
        raise NotFound("任务不存在 (no such task)")
    if task.status != "ready":
        raise Conflict("任务已办理 (task already done)")
    return task


def _assignment_changed(session, username: str, task: Task, action: str, now: datetime, extra: dict | None = None) -> None:
    """Audited, and written now: the answer carries the task's new version, which the
    officer sends back to complete it."""
    audit.record(session, at=now, actor=username, action=action, project_code=task.project_code,
                 target=f"task:{task.element_id}", summary={"task_id": task.id, **(extra or {})})
    session.flush()


# --- what the sweep and the operators drive -------------------------------------------------

def deliver(session: Session, row: ProcessInstance, deliveries: list[Delivery], *, now: datetime) -> int:
    """Complete the master's waiting `matter_stage` tasks with the concluded matters'
    results: every pending delivery to this master in one restore and one save. Returns
    how many were delivered: none while the master is errored (they wait for an
    operator's retry, and a delivery whose step fails waits with them); a master that
    has ended takes them as delivered, with nothing left to tell."""
    if row.status == "running":
        fire_timers(session, row, until=now)  # each limit passed before now is met at its own instant, not at now
    if row.status == "error":
        return 0
    for delivery in deliveries:
        delivery.delivered_at = now
    if row.status != "running":
        return len(deliveries)
    project = session.get(Project, row.project_id)
    run = Run(session, now, row, project, "platform")

    def step() -> spiff_adapter.Instance:
        instance = _load(row)
        for delivery in deliveries:
            try:
                spiff_adapter.complete_receive_task(instance, delivery.target_task_id, delivery.payload, now=now,
                                                    functions=run.functions)
            except spiff_adapter.TaskUnavailable:
                continue  # the stage is gone (cancelled): nothing left to tell
        return instance

    error = _attempt(run, step)
    if error is None:
        return len(deliveries)
    _mark_error(row, error, now, actor="platform", pending={"action": "advance"})
    for delivery in deliveries:
        delivery.delivered_at = None
    return 0


def fire_timers(session: Session, row: ProcessInstance, *, until: datetime, isolated: bool = True) -> int:
    """Fire the instance's timers due up to ``until``, each at the instant it came due.

    SpiffWorkflow fires a timer once the time is strictly past its instant, so the
    engine steps a microsecond after it; what the platform does in that step (a clock
    stopped or resumed, a light, a notice) is dated at the instant itself, so a pause a
    timer ends leaves no stray microsecond on the clock; a clock the step starts still does
    not count the holds recorded since (``Run.as_of``). ``isolated``: see ``_attempt``.
    """
    project = session.get(Project, row.project_id)
    fired = 0
    while row.status == "running" and row.next_timer_at is not None and row.next_timer_at <= until:
        due = row.next_timer_at
        at = due + _TICK
        run = Run(session, due, row, project, "platform", as_of=until)

        def step(at=at, run=run) -> spiff_adapter.Instance:
            instance = _load(row)
            spiff_adapter.advance(instance, now=at, functions=run.functions)
            return instance

        error = _attempt(run, step, isolated=isolated)
        if error is not None:
            _mark_error(row, error, due, actor="platform", pending={"action": "advance"})
            break
        fired += 1
        if row.next_timer_at is not None and row.next_timer_at <= due:
            _mark_error(row, spiff_adapter.ProcedureError(None, f"a timer due at {due.isoformat()} did not fire"), due,
                        actor="platform", pending={"action": "advance"})
            break
    return fired


def catch_up(session: Session, next_timers: Mapping[int, datetime | None], *, now: datetime) -> None:
    """Before a write beside the workflow changes instances' clocks (a hold, a pause
    ending): their timers already due fire first, each at its own instant, as the sweep
    would have fired them, so a limit passed before the write is met before it, not at
    it. ``next_timers``: each instance's next timer as its lock read it (``lock_instance``,
    ``lock_project_instances``; None unless it runs), so nothing is read when none is due.
    The instances are locked already (instance → clocks → tasks, as every writer)."""
    for instance_id, next_timer_at in sorted(next_timers.items()):
        if next_timer_at is not None and next_timer_at <= now:
            lock_for_steps(session, instance_id)
            fire_timers(session, session.get(ProcessInstance, instance_id), until=now)


def rearm(session: Session, row: ProcessInstance, *, now: datetime) -> None:
    """Re-evaluate the instance's timers after its clocks moved (calendar year loaded, pause
    ended); a limit moved to an instant already past is met at that instant, as the sweep
    meets every limit (``fire_timers``), not at ``now``."""
    project = session.get(Project, row.project_id)
    run = Run(session, now, row, project, "platform")
    instance = _load(row)
    spiff_adapter.rearm_timers(instance, now=now, functions=run.functions, fire=False)
    _after_step(run, instance)
    _meet_passed_limits(session, row, now)


def _meet_passed_limits(session: Session, row: ProcessInstance, now: datetime) -> None:
    """The limits re-arming moved to an instant already past are met there, each at its own
    instant, as the sweep meets every limit (what the step starts sees the holds as they stand)."""
    if row.next_timer_at is not None and row.next_timer_at <= now:
        fire_timers(session, row, until=now)


#: A matter_result's keys (bpmn/CONVENTIONS.md), for results the platform itself gives.
RESULT_KEYS = ("document_number", "document_title", "document_date", "main_content", "accepted_as")


def _cancel_instance(session: Session, row: ProcessInstance, now: datetime) -> None:
    """Stop an instance (locked) where it stands: its running clocks and ready tasks end
    with it, taken in the lock order (clocks, then tasks) before anything is written."""
    lock_for_steps(session, row.id)
    row.status, row.next_timer_at, row.updated_at = "cancelled", None, now
    for clock in _take_locked(session, _LOCKED_CLOCKS, row.id):
        if clock.state != "stopped":
            clocks.stop(session, clock, now=now)
    for task in _take_locked(session, _LOCKED_TASKS, row.id):
        task.status, task.completed_at = "cancelled", now


def _end_commitments(session: Session, pm: ProjectMatter, project_code: str, *, now: datetime, actor: str) -> None:
    """容缺: a matter ended without a grant (refused, no matter at this stage, cancelled,
    closed at a re-coding, terminated) is owed nothing any more: its commitments still open
    end with it (``ended``) and do not lapse later as the project unit's failure. A granted
    matter's stay open: the material is still owed (``materials.lapse``)."""
    for commitment in session.scalars(select(MaterialCommitment).where(
            MaterialCommitment.project_matter_id == pm.id, MaterialCommitment.state == "open").order_by(MaterialCommitment.id)):
        commitment.state, commitment.closed_at = "ended", max(now, commitment.committed_at)  # a step dated before it
        audit.record(session, at=now, actor=actor, action="material.commitment_ended", project_code=project_code,
                     target=f"commitment:{commitment.id}",
                     summary={"matter_code": pm.matter_code, "material": commitment.material, "matter_status": pm.status})


def terminate_matter(session: Session, pm: ProjectMatter, *, reason: str, now: datetime, actor: str) -> None:
    """End a matter the platform must end (a tolerated-gap commitment lapsed: 容缺材料逾期未补):
    its instance is cancelled, and the master hears a ``terminated`` result so the
    project can still conclude."""
    lock_matter(session, pm, now=now)  # the status checked next is the one written on
    if pm.status != "handling" or pm.instance_id is None:
        return
    row = session.get(ProcessInstance, pm.instance_id)
    if row.status not in _NOT_ENDED:
        return
    _cancel_instance(session, row, now)
    result = {"matter_code": pm.matter_code, "decision": "terminated", "stage": "handling", "reason": reason,
              **{k: "" for k in RESULT_KEYS}, "copy_to": [], "consultations": []}
    pm.status, pm.result, pm.updated_at, pm.concluded_at = "terminated", result, now, now
    holds.end_all(session, pm.project_id, matter_code=pm.matter_code, now=now)
    handling.record(session, pm, calendar.current(session))
    if row.parent_id is not None:
        session.add(Delivery(target_instance_id=row.parent_id, target_task_id=row.parent_task_id, payload=result, created_at=now))
    project = session.get(Project, pm.project_id)
    _end_commitments(session, pm, project.project_code, now=now, actor=actor)
    audit.record(session, at=now, actor=actor, action="matter.terminated", project_code=project.project_code,
                 target=f"matter:{pm.matter_code}", summary={"reason": reason})


def close_project(session: Session, project: Project, *, reason: str, now: datetime, actor: str) -> None:
    """A re-coded project's procedures stop: every running instance is cancelled and each open
    matter closed with the reason; concluded matters stay as they were (their documents stand)."""
    lock_project_instances(session, project.id)  # a matter launched meanwhile is among them
    for row in session.scalars(select(ProcessInstance).where(
            ProcessInstance.project_id == project.id, ProcessInstance.status.in_(_NOT_ENDED)).order_by(ProcessInstance.id)):
        _cancel_instance(session, row, now)
    for pm in session.scalars(select(ProjectMatter).where(ProjectMatter.project_id == project.id,
                                                          ProjectMatter.status.in_(("notified", "dispatched", "handling")))):
        pm.status, pm.updated_at, pm.result = "closed", now, {"matter_code": pm.matter_code, "decision": "closed", "reason": reason}
        _end_commitments(session, pm, project.project_code, now=now, actor=actor)
    holds.end_all(session, project.id, now=now)
    audit.record(session, at=now, actor=actor, action="project.procedures_closed", project_code=project.project_code,
                 target=f"project:{project.project_code}", summary={"reason": reason})


def retry(session: Session, *, actor: Actor, instance_id: int, now: datetime, on_newest: bool = True,
          discard: bool = False) -> ProcessInstance:
    """Retry an errored instance on the newest version of its procedure (after a fix was
    deployed), or, ``on_newest=False``, on the version it runs on (the failure lay outside
    the diagram, or the newest version was restructured and cannot hold its state).

    ``discard``: the officer's completion that failed is not applied but dropped, and the
    task is the officer's to do again (the officer's answer itself was the trouble, or its
    checks now refuse it). The trail keeps what was dropped. A project unit's submission
    is never dropped: it was told its answer is submitted."""
    row = session.get(ProcessInstance, instance_id)
    if row is None:
        raise NotFound("流程实例不存在 (no such instance)")
    if row.status != "error":
        raise Conflict("只有出错的流程实例可以重试 (only errored instances are retried)")
    if discard:
        pending_task = session.get(Task, (row.pending_action or {}).get("task_id") or "")
        if (row.pending_action or {}).get("action") != "complete" or pending_task is None or pending_task.role == "applicant":
            # the project unit was told its answer was submitted: it is applied (after a fix), never dropped
            raise Conflict("只有办理人提交失败的办理可以放弃 (only an officer's failed completion can be discarded; "
                           "the project unit's submission is applied at the retry)")
    version = procedures.latest(session, row.procedure_version.process_id) if on_newest else row.procedure_version
    pending, project = row.pending_action or {}, session.get(Project, row.project_id)
    restored = None
    if pending.get("action") != "start":
        try:
            restored = spiff_adapter.restore(procedures.SPECS.get(version), row.state)
        except spiff_adapter.StateFormatError as exc:
            raise Conflict(f"流程实例的状态不能在第 {version.version} 版流程上继续：请部署与其结构相容的修正版本，或在其原版本上重试 "
                           f"(the instance's state does not fit version {version.version}: deploy a compatible fix, or retry "
                           f"on its own version with {{\"version\": \"current\"}}: {exc})") from exc
    row.procedure_version_id, row.procedure_version = version.id, version
    # what the retry applies is the submitter's act (the officer's decision and what follows
    # from it); the operator's part is the retry, in its own event and in the act's
    completion = pending if pending.get("action") == "complete" and not discard else None
    run = Run(session, now, row, project, completion["actor"] if completion else actor.username)
    row.status = "running"  # before its clocks count on: a hold still open takes them over, not the failure
    _count_on_after_failure(session, row, now)

    def step() -> spiff_adapter.Instance:
        row.status, row.error_element, row.error_message, row.pending_action = "running", None, None, None
        summary = {"procedure_version": version.version}
        if discard:
            summary["discarded"] = {k: pending.get(k) for k in ("task_id", "actor", "data", "submitted_at", "backfill")}
        audit.record(session, at=now, actor=actor.username, action="instance.retry", project_code=project.project_code,
                     target=f"instance:{row.id}", summary=summary)
        if pending.get("action") == "start":
            return spiff_adapter.start(procedures.SPECS.get(version), pending["data"], now=now, functions=run.functions)
        instance = restored
        # the limits moved with the clocks (the failure, a hold that came or went, a calendar
        # load meanwhile) are evaluated again but not met here: the act applied was given when
        # it was submitted, in time or met late before it then; a limit passed since is met
        # at its own instant by the sweep, after the act
        spiff_adapter.rearm_timers(instance, now=now, functions=run.functions, fire=False)
        if completion is not None:
            task = session.get(Task, completion["task_id"])
            if task is None or task.status != "ready":
                raise spiff_adapter.ProcedureError(None, f"the task {completion['task_id']} the retry was to complete is gone")
            _complete_in_step(run, instance, task, completion["data"], backfill=Backfill.from_kept(completion.get("backfill")),
                              retried_by={"by": actor.username, "submitted_at": completion.get("submitted_at")})
        elif not discard:  # a discarded completion's task is left ready, as before it was submitted
            spiff_adapter.advance(instance, now=now, functions=run.functions)
        return instance

    error = _attempt(run, step)
    if error is not None:
        _mark_error(row, error, now, actor=actor.username, pending=pending)
    return row


# --- lists -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TaskFilter:
    mine: bool = False
    project_code: str | None = None
    matter_code: str | None = None
    light: str | None = None
    due_before: datetime | None = None
    include_read_only: bool = True


def task_list(session: Session, actor: Actor, flt: TaskFilter, *, page: int, page_size: int):
    """One indexed query: the ready tasks the actor may work, soonest due first."""
    if actor.has("applicant") and not actor.is_official:
        where = and_(Task.status == "ready", Task.role == "applicant", Task.project_unit_id == actor.project_unit_id)
    else:
        roles = [r for r in actor.roles if r != "applicant"]
        where = and_(Task.status == "ready", Task.department_code == actor.department_code, Task.role.in_(roles))
    conditions = [where]
    if flt.mine:
        conditions.append(Task.assignee_id == actor.user_id)
    if flt.project_code:
        conditions.append(projects.named_by(Task.project_code, flt.project_code))
    if flt.matter_code:
        organisation.check_filter(session, matter_code=flt.matter_code)
        conditions.append(Task.matter_code == flt.matter_code)
    if flt.light:
        conditions.append(Task.light == flt.light)
    if flt.due_before:
        conditions.append(Task.due_at < flt.due_before)
    if not flt.include_read_only:
        conditions.append(Task.read_only.is_(False))
    query = select(Task).where(*conditions)
    total = session.scalar(select(func.count()).select_from(Task).where(*conditions))
    rows = session.scalars(
        query.order_by(Task.due_at.asc().nulls_last(), Task.id)
        .offset((page - 1) * page_size).limit(page_size)
    ).all()
    return rows, total


def instances(session: Session, actor: Actor, *, status: str | None, process_id: str | None, page: int,
              page_size: int):
    """Process instances, newest first, as their procedures' people may read them: the
    operator every one; an analyst every one (analysts write the diagrams and must see
    where a version fails); a department admin those of its own department's procedures
    (the versions it deploys and fixes). The rows carry the element and message of a
    failure, never the project's data."""
    require_role(actor, "operator", "analyst", "dept_admin")
    query = select(ProcessInstance)
    if not actor.has("operator", "analyst"):
        query = query.where(ProcessInstance.procedure_version_id.in_(
            select(ProcedureVersion.id).where(ProcedureVersion.department_code == actor.department_code)))
    if process_id:
        query = query.where(ProcessInstance.procedure_version_id.in_(
            select(ProcedureVersion.id).where(ProcedureVersion.process_id == process_id)))
    if status:
        query = query.where(ProcessInstance.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.scalars(query.order_by(ProcessInstance.id.desc()).offset((page - 1) * page_size).limit(page_size)).all()
    return rows, total
