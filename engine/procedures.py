"""Procedures as versioned diagrams: deploy, validate, list, and the parsed-spec cache.

A department admin deploys its own department's matter procedures; the coordinating
department (综合管理部门) owns the master process and the decision tables; the
operator may deploy anything. A file is parsed and checked before anything is
stored. Identical content is a no-op; new content becomes version N+1. Running
instances keep the version they started on; new instances take the newest.
Each version is parsed once and its spec cached: no request parses XML.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import audit, files, spiff_adapter, task_guards
from engine.access import Actor, require_role
from engine.errors import Conflict, Forbidden, Invalid, NotFound
from engine.models import Department, Matter, ProcedureVersion

ROOT = Path(__file__).resolve().parent.parent
FORMS_DIR = ROOT / "forms"
BPMN_DIR = ROOT / "bpmn"
MAX_FILE_BYTES = 2 * 1024 * 1024
MATTER_PREFIX = "matter_"
#: The decision table of the matters notice (应办事项告知).
MATTERS_DECISION = "matters_notice"
#: The functions the platform gives scripts and expressions (engine.runtime binds them).
PLATFORM_FUNCTIONS = (
    "working_days", "clock_due", "clock_yellow", "start_clock", "stop_clock", "pause_clock", "resume_clock",
    "issue_notice", "record_light", "promised_days",
)


def form_exists(name: str) -> bool:
    """A form named by a user task must be a file directly in forms/ (no paths)."""
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".") and (FORMS_DIR / name).is_file()


def _kind(filename: str, content: bytes) -> str:
    lower = filename.lower()
    if lower.endswith(".dmn"):
        return "dmn"
    if lower.endswith(".bpmn") or lower.endswith(".xml"):
        return "bpmn"
    raise Invalid.field("file", "须为 .bpmn 或 .dmn 文件 (a .bpmn or .dmn file)")


def _problems_error(problems) -> Invalid:
    errors: dict[str, list[str]] = {}
    for p in problems:
        errors.setdefault(p.element_id or "file", []).append(p.message)
    return Invalid("流程文件未通过校验 (the file did not pass validation)", errors)


@dataclass(frozen=True)
class Checked:
    kind: str
    process_id: str
    spec_json: str | None


def check(session: Session, filename: str, content: bytes) -> Checked:
    """Parse and check a file; raise Invalid naming each element and problem."""
    if not content:
        raise Invalid.field("file", "文件为空 (empty file)")
    if len(content) > MAX_FILE_BYTES:
        raise Invalid.field("file", "文件过大 (file larger than 2 MB)")
    kind = _kind(filename, content)
    if kind == "dmn":
        problems = spiff_adapter.validate_dmn(content, function_names=PLATFORM_FUNCTIONS)
        if problems:
            raise _problems_error(problems)
        decision_id = spiff_adapter.dmn_decision_ids(content)[0]
        if decision_id == MATTERS_DECISION:
            _check_catalogue(session, content)
        return Checked("dmn", decision_id, None)
    dmn, deployed = _latest_xml(session, "dmn"), _latest_xml(session, "bpmn")
    problems = spiff_adapter.validate_bpmn(
        content, known_process_ids=set(deployed), form_exists=form_exists, dmn=list(dmn.values()),
        function_names=PLATFORM_FUNCTIONS,
    )
    if problems:
        raise _problems_error(problems)
    # Only the processes this diagram's call activities name are frozen into its spec.
    called = [deployed[pid] for pid in spiff_adapter.called_process_ids(content) if pid in deployed]
    try:
        compiled = spiff_adapter.compile_bpmn(content, dmn=list(dmn.values()), called=called)
    except spiff_adapter.DiagramRefused as exc:
        raise _problems_error(exc.problems) from None
    guard_problems = [spiff_adapter.Problem(t.element_id, p) for t in compiled.user_tasks for p in task_guards.property_problems(t.properties)]
    if guard_problems:
        raise _problems_error(guard_problems)
    return Checked("bpmn", compiled.process_id, compiled.spec_json)


def _check_catalogue(session: Session, content: bytes) -> None:
    """The matters notice may name only matters of the published catalogue: a matter
    outside it cannot be added to a project, so the table is refused, not the
    declarations that would hit it later."""
    known = set(session.scalars(select(Matter.matter_code))) | set(session.scalars(select(Department.code)))
    unknown = {entry: value for entry, value in spiff_adapter.dmn_output_literals(content) if value not in known}
    if unknown:
        raise Invalid("决策表含目录外的事项 (the table names matters outside the catalogue)",
                      {entry or MATTERS_DECISION: [f"目录中没有此事项或部门 (not in the catalogue): {value}"]
                       for entry, value in unknown.items()})


def _latest_xml(session: Session, kind: str) -> dict[str, bytes]:
    """The newest deployed XML of every procedure of a kind (for call activities and decisions)."""
    newest = (
        select(ProcedureVersion.process_id, func.max(ProcedureVersion.version).label("version"))
        .where(ProcedureVersion.kind == kind).group_by(ProcedureVersion.process_id).subquery()
    )
    rows = session.execute(
        select(ProcedureVersion.process_id, ProcedureVersion.xml).join(
            newest, (ProcedureVersion.process_id == newest.c.process_id) & (ProcedureVersion.version == newest.c.version))
    ).all()
    return {pid: xml.encode("utf-8") for pid, xml in rows}


def owner_department(session: Session, process_id: str) -> str | None:
    """Whose procedure this is: a matter's department, else the coordinating department."""
    if process_id.startswith(MATTER_PREFIX):
        matter = session.get(Matter, process_id[len(MATTER_PREFIX):])
        if matter is not None:
            return matter.department_code
    return session.scalar(select(Department.code).where(Department.kind == "coordinating").order_by(Department.code).limit(1))


@dataclass(frozen=True)
class Deployed:
    procedure: ProcedureVersion
    created: bool


def deploy(session: Session, *, actor: Actor, now: datetime, filename: str, content: bytes) -> Deployed:
    require_role(actor, "dept_admin", "operator")
    checked = check(session, filename, content)
    owner = owner_department(session, checked.process_id)
    if not actor.has("operator") and owner != actor.department_code:
        raise Forbidden("只能部署本部门的流程 (a department admin deploys only its own department's procedures)")
    digest = hashlib.sha256(content).hexdigest()
    existing = session.scalar(
        select(ProcedureVersion).where(ProcedureVersion.process_id == checked.process_id, ProcedureVersion.sha256 == digest)
    )
    if existing is not None:
        return Deployed(existing, False)
    latest = session.scalar(select(func.max(ProcedureVersion.version)).where(ProcedureVersion.process_id == checked.process_id)) or 0
    row = ProcedureVersion(
        process_id=checked.process_id, kind=checked.kind, version=latest + 1, department_code=owner,
        filename=files.clean_filename(filename, 200), sha256=digest, xml=content.decode("utf-8"), spec_json=checked.spec_json,
        deployed_at=now, deployed_by=actor.username,
    )
    session.add(row)
    session.flush()
    audit.record(session, at=now, actor=actor.username, action="procedure.deploy", target=f"procedure:{row.process_id}:v{row.version}",
                 summary={"process_id": row.process_id, "version": row.version, "sha256": digest, "filename": row.filename})
    return Deployed(row, True)


def validate_only(session: Session, *, actor: Actor, filename: str, content: bytes) -> Checked:
    """The same checks as deploy; nothing stored."""
    require_role(actor, "analyst", "dept_admin", "operator")
    return check(session, filename, content)


def latest(session: Session, process_id: str) -> ProcedureVersion:
    """The newest version: new instances take it (running ones keep theirs)."""
    row = session.scalar(
        select(ProcedureVersion).where(ProcedureVersion.process_id == process_id).order_by(ProcedureVersion.version.desc()).limit(1)
    )
    if row is None:
        raise Conflict(f"流程尚未部署，请运维人员部署 (procedure not deployed: {process_id})")
    return row


def evaluate_decision(table: ProcedureVersion, decision_id: str, inputs: dict) -> list[dict]:
    """Evaluate a deployed decision table (the adapter parses each content once)."""
    return spiff_adapter.evaluate_decision(table.xml.encode("utf-8"), decision_id, inputs)


def list_versions(session: Session, *, process_id: str | None, page: int, page_size: int):
    query = select(ProcedureVersion)
    if process_id:
        query = query.where(ProcedureVersion.process_id == process_id)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.scalars(
        query.order_by(ProcedureVersion.process_id, ProcedureVersion.version.desc()).offset((page - 1) * page_size).limit(page_size)
    ).all()
    return rows, total


def get_version(session: Session, process_id: str, version: int) -> ProcedureVersion:
    row = session.scalar(
        select(ProcedureVersion).where(ProcedureVersion.process_id == process_id, ProcedureVersion.version == version)
    )
    if row is None:
        raise NotFound("流程版本不存在 (no such procedure version)")
    return row


class SpecCache:
    """Parsed specs by procedure content; a version never changes, so entries never go stale."""

    def __init__(self, size: int = 256):
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, str], object] = OrderedDict()
        self._size = size

    def get(self, procedure: ProcedureVersion):
        key = (procedure.process_id, procedure.sha256)  # content, not row id: ids repeat across databases
        with self._lock:
            spec = self._items.get(key)
            if spec is not None:
                self._items.move_to_end(key)
                return spec
        spec = spiff_adapter.load_spec(procedure.spec_json)
        with self._lock:
            self._items[key] = spec
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return spec


SPECS = SpecCache()


def deploy_directory(session: Session, *, actor: Actor, now: datetime, directory: Path = BPMN_DIR) -> list[Deployed]:
    """Deploy every shipped file (DMN first, then matter procedures, then the master)."""
    files = sorted(directory.glob("*.dmn")) + sorted(
        directory.glob("*.bpmn"), key=lambda p: (not p.name.startswith(MATTER_PREFIX), p.name)
    )
    if not files:
        raise Conflict(f"no .bpmn or .dmn files in {directory}")
    return [deploy(session, actor=actor, now=now, filename=f.name, content=f.read_bytes()) for f in files]
