"""Procedures as versioned diagrams: deploy, validate, list, and the parsed-spec cache.

A department admin deploys its own department's matter procedures; the coordinating
department (综合管理部门) owns the master process and the decision tables; the
operator may deploy anything. A file is parsed and checked before anything is
stored. Content identical to the newest version is a no-op; any other content
(an older version's included: putting back v1 after a broken v2) becomes version N+1.
Running instances keep the version they started on; new instances take the newest.
Each version is parsed once and its spec cached: no request parses XML.

Beyond what the adapter checks in the diagram itself, a deploy is checked against the
platform: a procedure id keeps its kind (BPMN or DMN), a ``matter_<code>`` id names a
catalogue matter, lanes name real departments and roles that work tasks, and the
matters notice table is run over sample declarations before any project meets it.
"""
from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import audit, diagram_checks, files, guides, matters_table, organisation, spiff_adapter, task_guards
from engine.access import Actor, require_role
from engine.errors import Conflict, Forbidden, Invalid, NotFound
from engine.matters_table import MATTERS_DECISION
from engine.models import Department, Matter, ProcedureVersion, Region

ROOT = Path(__file__).resolve().parent.parent
FORMS_DIR = ROOT / "forms"
BPMN_DIR = ROOT / "bpmn"
MAX_FILE_BYTES = 2 * 1024 * 1024
MATTER_PREFIX = "matter_"
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


def check(session: Session, filename: str, content: bytes, actor: Actor | None = None) -> Checked:
    """Parse and check a file; raise Invalid naming each element and problem.

    ``actor``: who will deploy it (validate gives the answer that person's deploy gets).
    """
    if not content:
        raise Invalid.field("file", "文件为空 (empty file)")
    if len(content) > MAX_FILE_BYTES:
        raise Invalid.field("file", "文件过大 (file larger than 2 MB)")
    kind = _kind(filename, content)
    _check_encoding(content)
    if kind == "dmn":
        problems = spiff_adapter.validate_dmn(content, function_names=PLATFORM_FUNCTIONS)
        if problems:
            raise _problems_error(problems)
        decision_id = spiff_adapter.dmn_decision_ids(content)[0]
        _check_id(session, decision_id, "dmn")
        if decision_id == MATTERS_DECISION:
            try:
                matters_table.check(session, content)
            except spiff_adapter.DiagramRefused as exc:
                raise _problems_error(exc.problems) from None
        return Checked("dmn", decision_id, None)
    dmn, deployed = _latest_xml(session, "dmn"), _latest_xml(session, "bpmn")
    problems = spiff_adapter.validate_bpmn(
        content, known_process_ids=set(deployed), form_exists=form_exists, dmn=list(dmn.values()),
        function_names=PLATFORM_FUNCTIONS, form_fields=diagram_checks.form_fields_reader(FORMS_DIR),
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
    _check_id(session, compiled.process_id, "bpmn")
    platform_problems = _lane_problems(session, compiled, actor) + _limit_problems(session, compiled.process_id, content)
    if platform_problems:
        raise _problems_error(platform_problems)
    return Checked("bpmn", compiled.process_id, compiled.spec_json)


_DECLARED_ENCODING = re.compile(rb"^(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?\bencoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")


def _check_encoding(content: bytes) -> None:
    """Only UTF-8 is stored: the XML is kept as text and served back as UTF-8, so a file
    saved as GB18030 or UTF-16 (or declaring such an encoding) is refused here, by
    validate and deploy alike. A UTF-8 byte order mark is fine."""
    declared = _DECLARED_ENCODING.match(content)
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        ok = False
    else:  # NUL never occurs in XML: UTF-16 without a byte order mark
        ok = b"\x00" not in content and (declared is None or declared.group(1).lower().replace(b"_", b"-") in (b"utf-8", b"utf8"))
    if not ok:
        raise Invalid.field("file", "请以 UTF-8 编码保存 (save the file as UTF-8)")


def _check_id(session: Session, process_id: str, kind: str) -> None:
    """A procedure id names one kind of procedure for good: the runtime starts the newest
    BPMN of an id and evaluates the newest DMN of another, so a DMN deployed as
    ``project_master`` (or a BPMN as ``matters_notice``) would break every declaration.
    A ``matter_<code>`` id is a catalogue matter's procedure: the runtime starts
    ``matter_<code>`` for each notified matter and nothing else, and the matter's
    department owns it."""
    other = session.scalar(select(ProcedureVersion.kind).where(
        ProcedureVersion.process_id == process_id, ProcedureVersion.kind != kind).limit(1))
    if other is not None:
        raise Invalid.field(process_id, f"此编号已用于 {other.upper()} 流程，不能作为 {kind.upper()} 部署 "
                                        f"(the id {process_id} belongs to a {other.upper()} procedure; use another id)")
    if kind == "bpmn" and process_id == MATTERS_DECISION:
        raise Invalid.field(process_id, f"此编号保留给应办事项决策表 (the id {process_id} is the matters notice's DMN decision)")
    if process_id.startswith(MATTER_PREFIX):
        if kind == "dmn":
            raise Invalid.field(process_id, f"matter_ 开头的编号保留给事项流程 (ids starting with matter_ are matter procedures): {process_id}")
        if session.get(Matter, process_id[len(MATTER_PREFIX):]) is None:
            raise Invalid.field(process_id, f"事项目录中没有此事项，平台不会运行此流程 (no catalogue matter "
                                            f"{process_id[len(MATTER_PREFIX):]}: nothing would ever run this procedure)")


#: The roles that work a department's tasks: a task goes to the users holding its lane's
#: role in its lane's department (runtime._may_work). Officers and window officers handle
#: matters; a department admin may sign one off (a second review). Not: the analyst (it
#: edits diagrams and is given no project's data), the supervisor and the coordinator
#: (they watch and chase the work; working it would have them supervise themselves), the
#: operator (it runs the platform and belongs to no department), the applicant (its own
#: `applicant` lane).
TASK_ROLES = ("officer", "window_officer", "dept_admin")


def _lane_problems(session: Session, compiled, actor: Actor | None) -> list[spiff_adapter.Problem]:
    """A lane `<dept>:<role>` must name a department that exists and a role that works
    tasks, or its tasks go to nobody. A department's matter procedure may give work only
    to that department (its clock is that department's): other departments take part
    through `$variable` lanes (a consultation), which the master and the platform route.
    The operator, and the coordinating department deploying the master, are not limited."""
    departments = set(session.scalars(select(Department.code)))
    own = None
    if compiled.process_id.startswith(MATTER_PREFIX) and not (actor is not None and actor.has("operator")):
        matter = session.get(Matter, compiled.process_id[len(MATTER_PREFIX):])
        own = matter.department_code if matter is not None else None
    problems = []
    for task in compiled.user_tasks:
        lane = task.lane or ""
        if lane in ("applicant", "system") or not lane:
            continue
        department, _, role = lane.partition(":")
        if role not in TASK_ROLES:
            problems.append(spiff_adapter.Problem(task.element_id, f"泳道的角色须为 {'、'.join(TASK_ROLES)} 之一，否则任务无人办理 "
                                                                   f"(a lane's role is one that works tasks: {', '.join(TASK_ROLES)}): {lane}"))
        if department.startswith("$"):
            continue  # the department is a task-data variable, checked by the adapter
        if department not in departments:
            problems.append(spiff_adapter.Problem(task.element_id, f"泳道所指的部门不存在，任务无人办理 (the lane names no department): {lane}"))
        elif own is not None and department != own:
            problems.append(spiff_adapter.Problem(task.element_id, f"本部门事项流程的任务只能交给本部门（{own}），其他部门请用 $变量 泳道征求意见 "
                                                                   f"(a department's matter procedure gives its tasks only to {own}): {lane}"))
    return problems


#: The clocks that count a matter's own time limit: a filing's (备案) and the promised
#: limit (承诺时限) from acceptance. The others are the platform's stages, the same for
#: every matter (pre-review 3 working days, acceptance 5: 攀仁府办〔2018〕77号 三（五）).
LIMIT_CLOCKS = ("filing", "promised")


def _limit_problems(session: Session, process_id: str, content: bytes) -> list[spiff_adapter.Problem]:
    """A matter's procedure may not give its own limit more working days than the law does:
    a literal ``start_clock('filing', working_days=30)`` where the matter's service guide
    states 3 statutory working days is refused (the promised limit may be shorter than the
    statutory one, never longer). ``promised_days()`` reads the guide itself."""
    if not process_id.startswith(MATTER_PREFIX):
        return []
    guide = guides.current(session, process_id[len(MATTER_PREFIX):])
    statutory = (guide.content or {}).get("statutory_working_days") if guide is not None else None
    if not isinstance(statutory, int):
        return []
    root, problem = diagram_checks.parse_xml(content)
    if problem is not None:
        return []  # refused by the adapter already
    return [spiff_adapter.Problem(element, f"{kind} 时限 {days:g} 个工作日超过此事项的法定时限 {statutory} 个工作日 "
                                           f"(the {kind} limit of {days:g} working days exceeds the matter's statutory "
                                           f"{statutory}; use promised_days() or at most {statutory})")
            for element, kind, days in diagram_checks.literal_clock_days(diagram_checks.diagram_code(root))
            if kind in LIMIT_CLOCKS and days > statutory]


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


def owner_department(session: Session, process_id: str, region: str) -> str | None:
    """Whose procedure this is: a matter's department, else (the master process, the
    matters notice table: every declaration's) the coordinating department (综合管理部门)
    of the platform's region, or of the nearest region above it that has one; none, and
    only the operator deploys it."""
    if process_id.startswith(MATTER_PREFIX):
        matter = session.get(Matter, process_id[len(MATTER_PREFIX):])
        if matter is not None:
            return matter.department_code
    coordinating = organisation.nearest_department(session, region, "coordinating")
    return coordinating.code if coordinating is not None else None


@dataclass(frozen=True)
class Deployed:
    procedure: ProcedureVersion
    created: bool


def _reinstatement_note(version: int, same_as: int) -> str:
    return f"\n<!-- 第{version}版恢复第{same_as}版的内容 (version {version} reinstates the content of version {same_as}) -->\n"


_REINSTATEMENT_NOTE = re.compile(r"\n<!-- 第\d+版恢复第\d+版的内容 \(version \d+ reinstates the content of version \d+\) -->\n\Z")


def deploy(session: Session, *, actor: Actor, now: datetime, filename: str, content: bytes, region: str,
           reinstate: bool = True) -> Deployed:
    """Check and store a file. Identical to the newest version: a no-op (nothing stored).
    Identical to an older version (putting v1 back after a broken v2): version N+1, so new
    instances and retries on the newest take it. A version's content is unique per
    procedure (uq_procedure_content), so such a version's XML carries a trailing comment
    naming the version it reinstates; its sha256 is that of the XML as stored.

    ``reinstate=False`` (the shipped files deployed at every start): an older version's
    content is a no-op too, so a restart never puts a shipped file back over the newer
    version a department deployed."""
    require_role(actor, "dept_admin", "operator")
    if session.get(Region, region) is None:  # whose procedures these are is decided by the platform's region
        raise Conflict(f"本平台的地区 {region} 不在数据库中，请先初始化或导入组织机构 (the platform's region {region}, "
                       "TZXM_PLATFORM_REGION, is not in the database: seed or import its organisation first)")
    checked = check(session, filename, content, actor)
    owner = owner_department(session, checked.process_id, region)
    if not actor.has("operator") and owner != actor.department_code:
        raise Forbidden("只能部署本部门的流程 (a department admin deploys only its own department's procedures)")
    text = content.decode("utf-8")
    newest = session.scalar(select(ProcedureVersion).where(ProcedureVersion.process_id == checked.process_id)
                            .order_by(ProcedureVersion.version.desc()).limit(1))
    if newest is not None and (newest.sha256 == hashlib.sha256(content).hexdigest() or _REINSTATEMENT_NOTE.sub("", newest.xml) == text):
        return Deployed(newest, False)
    version = (newest.version if newest is not None else 0) + 1
    digest = hashlib.sha256(content).hexdigest()
    same_as = session.scalar(select(ProcedureVersion.version).where(
        ProcedureVersion.process_id == checked.process_id, ProcedureVersion.sha256 == digest))
    if same_as is not None and not reinstate:
        return Deployed(newest, False)
    if same_as is not None:
        text += _reinstatement_note(version, same_as)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    row = ProcedureVersion(
        process_id=checked.process_id, kind=checked.kind, version=version, department_code=owner,
        filename=files.clean_filename(filename, 200), sha256=digest, xml=text, spec_json=checked.spec_json,
        deployed_at=now, deployed_by=actor.username,
    )
    session.add(row)
    session.flush()
    summary = {"process_id": row.process_id, "version": row.version, "sha256": digest, "filename": row.filename}
    if same_as is not None:
        summary["same_content_as"] = same_as
    audit.record(session, at=now, actor=actor.username, action="procedure.deploy", target=f"procedure:{row.process_id}:v{row.version}",
                 summary=summary)
    return Deployed(row, True)


def validate_only(session: Session, *, actor: Actor, filename: str, content: bytes) -> Checked:
    """The same checks as deploy; nothing stored."""
    require_role(actor, "analyst", "dept_admin", "operator")
    return check(session, filename, content, actor)


def latest(session: Session, process_id: str, kind: str = "bpmn") -> ProcedureVersion:
    """The newest version of a kind: new instances take it (running ones keep theirs).
    The kind defaults to BPMN, what the runtime starts: a DMN is never started as a
    process, whatever id it was deployed under."""
    row = session.scalar(
        select(ProcedureVersion).where(ProcedureVersion.process_id == process_id, ProcedureVersion.kind == kind)
        .order_by(ProcedureVersion.version.desc()).limit(1)
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


def deploy_directory(session: Session, *, actor: Actor, now: datetime, region: str,
                     directory: Path = BPMN_DIR) -> list[Deployed]:
    """Deploy every shipped file (DMN first, then matter procedures, then the master); a file
    whose content some version already has is left alone (``reinstate=False``): this runs at
    every start, and must not undo what departments deployed since."""
    files = sorted(directory.glob("*.dmn")) + sorted(
        directory.glob("*.bpmn"), key=lambda p: (not p.name.startswith(MATTER_PREFIX), p.name)
    )
    if not files:
        raise Conflict(f"目录中没有流程文件 (no .bpmn or .dmn files in {directory})")
    return [deploy(session, actor=actor, now=now, filename=f.name, content=f.read_bytes(), region=region, reinstate=False)
            for f in files]
