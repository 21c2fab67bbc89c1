"""What a diagram must satisfy before it is deployed, read from its XML and its code.

SpiffWorkflow accepts much that can only fail after an officer has acted: a clock kind
misspelt, a condition reading a name nothing sets, a message thrown that nothing
receives. These checks read the diagram as text (lxml and Python's ``ast``), without
SpiffWorkflow: ``engine.spiff_adapter.validate_bpmn`` calls them beside the library's
own parse, and every refusal is a ``Problem`` naming the element to fix, in Chinese with
the English gloss.
"""
from __future__ import annotations

import ast
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from engine import scripting
from engine.clocks import CLOCK_KINDS, MAX_WORKING_DAYS
from engine.notices import NOTICE_KINDS
from engine.projects import FACT_FIELDS

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
NS = {"bpmn": BPMN_NS, "spiffworkflow": SPIFF_NS}
#: The SpiffWorkflow ecosystem's user-task properties naming a task's JSON Schema form
#: and its UI schema (spiff-arena's modeler opens a diagram with its forms through them).
FORM_PROPERTY = "formJsonSchemaFilename"
UI_FORM_PROPERTY = "formUiSchemaFilename"


@dataclass(frozen=True)
class Problem:
    """One reason a diagram is refused; ``element_id`` names the BPMN/DMN element."""

    element_id: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.element_id}: {self.message}" if self.element_id else self.message


# --- reading the XML ---------------------------------------------------------------

def parse_xml(xml: bytes) -> tuple[Any, Problem | None]:
    """Parse untrusted XML: no DTD loading, no entity expansion, no network."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(xml, parser)
    except (etree.XMLSyntaxError, ValueError, TypeError) as exc:
        return None, Problem(None, f"不是合法的 XML 文件 (not XML: {exc})")
    if root is None:
        return None, Problem(None, "XML 文件为空 (not XML: empty document)")
    return root, None


def local_name(element: Any) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def text(element: Any) -> str:
    return (element.text or "") if element is not None else ""


def ancestor_id(element: Any, *local_names: str) -> str | None:
    current = element.getparent()
    while current is not None:
        if not local_names or local_name(current) in local_names:
            if current.get("id"):
                return current.get("id")
        current = current.getparent()
    return None


ACTIVITIES = (
    "task", "userTask", "manualTask", "scriptTask", "serviceTask", "sendTask", "receiveTask",
    "businessRuleTask", "callActivity", "subProcess", "transaction",
)
EVENTS = ("startEvent", "endEvent", "boundaryEvent", "intermediateCatchEvent", "intermediateThrowEvent")


# --- what a diagram's code asks of the platform ---------------------------------------

#: Data the platform itself gives an instance when it starts it (engine.runtime:
#: ``start_project`` for the master, ``_launch_matters`` for a matter's procedure). Both
#: sets are allowed in every diagram: which process a file holds is the deploy's concern.
PLATFORM_START_DATA = frozenset({
    "project_code", "name", "regime", "region_code", "industry_code", "investment", *FACT_FIELDS,
    "matters_notice", "departments", "matter_code",
})


def form_fields_reader(directory: Path) -> Callable[[str], Mapping[str, Any] | None]:
    """A ``form_fields`` hook for ``validate_bpmn`` over a forms directory: the JSON
    Schema ``properties`` of a form file named directly in it (no paths), or None when
    there is no such readable form."""
    def form_fields(name: str) -> Mapping[str, Any] | None:
        if not name or "/" in name or "\\" in name or name.startswith("."):
            return None
        try:
            schema = json.loads((directory / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return _schema_properties(schema)
    return form_fields


def _schema_properties(schema: Any) -> dict[str, Any]:
    """A form's top-level fields: its ``properties`` and those of the branches of its
    ``allOf``/``anyOf``/``oneOf``/``if``/``then``/``else`` (conditional parts of a form)."""
    if not isinstance(schema, Mapping):
        return {}
    found: dict[str, Any] = {}
    for branch in [schema.get(k) for k in ("if", "then", "else")] + [
            b for k in ("allOf", "anyOf", "oneOf") for b in (schema.get(k) or [])]:
        for key, value in _schema_properties(branch).items():
            found.setdefault(key, value)
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        found.update(properties)
    return found


def _field_values(field_schema: Any) -> set[Any] | None:
    """The values a form field may take when its schema lists them (``enum``, ``const``,
    or ``oneOf``/``anyOf`` of those), else None (any value)."""
    if not isinstance(field_schema, Mapping):
        return None
    if isinstance(field_schema.get("enum"), list):
        return {json.dumps(v) for v in field_schema["enum"]}
    if "const" in field_schema:
        return {json.dumps(field_schema["const"])}
    for key in ("oneOf", "anyOf"):
        branches = field_schema.get(key)
        if isinstance(branches, list) and branches:
            values: set[Any] = set()
            for branch in branches:
                listed = _field_values(branch)
                if listed is None:
                    return None
                values |= listed
            return values
    return None


@dataclass
class _Code:
    """A piece of diagram code: whose it is, what it is, its parsed tree."""

    owner: str | None
    what: str  # "script", "condition", "timer", "expression"
    tree: Any


def diagram_code(root: Any) -> list[_Code]:
    """Every script and expression the engine would run, parsed (those that do not parse
    are already refused by ``_expression_problems``)."""
    found: list[_Code] = []

    def add(owner: str | None, what: str, text: str, mode: str) -> None:
        try:
            found.append(_Code(owner, what, ast.parse(text.strip() if mode == "eval" else text, mode=mode)))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            pass

    for element in root.iter():
        name = local_name(element)
        ns = etree.QName(element).namespace if isinstance(element.tag, str) else None
        if ns == BPMN_NS and name == "script" and local_name(element.getparent()) == "scriptTask":
            add(element.getparent().get("id"), "script", text(element), "exec")
        elif ns == SPIFF_NS and name in ("preScript", "postScript"):
            add(ancestor_id(element), "script", text(element), "exec")
        elif ns == BPMN_NS and name == "conditionExpression":
            add(ancestor_id(element, "sequenceFlow"), "condition", text(element), "eval")
        elif ns == BPMN_NS and name in ("timeDate", "timeDuration", "timeCycle"):
            add(ancestor_id(element, *EVENTS), "timer", text(element), "eval")
        elif ns == BPMN_NS and name in ("loopCardinality", "completionCondition", "loopCondition"):
            add(ancestor_id(element, *ACTIVITIES), "expression", text(element), "eval")
        elif (ns == BPMN_NS and name == "condition") or (ns == SPIFF_NS and name in ("messagePayload", "payloadExpression")):
            add(ancestor_id(element), "expression", text(element), "eval")
    return found


def _assigned_names(tree: Any) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def free_names(tree: Any) -> set[str]:
    """Names an expression reads that it does not bind itself (comprehension targets and
    lambda arguments are its own)."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.comprehension):
            bound |= {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Lambda):
            args = node.args
            bound |= {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
            bound |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
        elif isinstance(node, ast.NamedExpr):
            bound.add(node.target.id)
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - bound


_CLOCK_READERS = ("clock_due", "clock_yellow", "stop_clock", "pause_clock", "resume_clock", "record_light")


def _argument(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    if len(call.args) > position and not any(isinstance(a, ast.Starred) for a in call.args[:position + 1]):
        return call.args[position]
    return next((k.value for k in call.keywords if k.arg == keyword), None)


def _constant(node: ast.expr | None) -> tuple[bool, Any]:
    """(True, value) when ``node`` is a literal (a negative number included)."""
    if node is None:
        return False, None
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _calls(code: list[_Code], function: str) -> Iterator[tuple[_Code, ast.Call]]:
    for piece in code:
        for node in ast.walk(piece.tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == function:
                yield piece, node


def literal_clock_days(code: list[_Code]) -> Iterator[tuple[str | None, str, float]]:
    """Every ``start_clock(kind, working_days=N)`` whose kind and days are both literal:
    (the element, the kind, the days)."""
    for piece, call in _calls(code, "start_clock"):
        kind_known, kind = _constant(_argument(call, 0, "kind"))
        days_known, days = _constant(_argument(call, 1, "working_days"))
        if kind_known and days_known and isinstance(kind, str) and isinstance(days, (int, float)) \
                and not isinstance(days, bool):
            yield piece.owner, kind, float(days)


def platform_call_problems(code: list[_Code], functions: set[str]) -> list[Problem]:
    """Literal arguments of the platform functions, checked against what the platform
    has: clock kinds (``engine.clocks.CLOCK_KINDS``: ``start_clock`` of any other kind
    fails when the officer acts), working-day counts (``clocks.start`` takes more than 0
    and at most ``MAX_WORKING_DAYS``; ``working_days`` 0 to that), and notice kinds
    (``engine.notices.NOTICE_KINDS``). A clock is read by the instance that started it,
    so reading a kind (``clock_due`` ...) this diagram never starts finds no clock and its
    timer never fires: refused, unless some ``start_clock`` here takes its kind from data."""
    problems: list[Problem] = []
    kinds = ", ".join(CLOCK_KINDS)
    started: set[str] = set()
    dynamic_start = False
    for piece, call in _calls(code, "start_clock") if "start_clock" in functions else ():
        literal, kind = _constant(_argument(call, 0, "kind"))
        if not literal:
            dynamic_start = True
        elif kind not in CLOCK_KINDS:
            problems.append(Problem(piece.owner, f"计时种类 {kind!r} 不存在，可用：{kinds} (start_clock: unknown clock kind {kind!r}; known: {kinds})"))
        else:
            started.add(kind)
        literal, days = _constant(_argument(call, 1, "working_days"))
        if literal and (isinstance(days, bool) or not isinstance(days, (int, float)) or not 0 < days <= MAX_WORKING_DAYS):
            problems.append(Problem(piece.owner, f"计时时限须大于 0 且不超过 {MAX_WORKING_DAYS} 个工作日，而非 {days!r} "
                                                 f"(start_clock: working_days must be > 0 and at most {MAX_WORKING_DAYS}, not {days!r})"))
        literal, origin = _constant(_argument(call, 2, "from_clock"))
        if literal and origin is not None and origin not in CLOCK_KINDS:
            problems.append(Problem(piece.owner, f"起算计时种类 {origin!r} 不存在，可用：{kinds} (start_clock: unknown from_clock kind {origin!r})"))
    for reader in _CLOCK_READERS:
        for piece, call in _calls(code, reader) if reader in functions else ():
            literal, kind = _constant(_argument(call, 0, "kind"))
            if not literal:
                continue
            if kind not in CLOCK_KINDS:
                problems.append(Problem(piece.owner, f"计时种类 {kind!r} 不存在，可用：{kinds} ({reader}: unknown clock kind {kind!r}; known: {kinds})"))
            elif kind not in started and not dynamic_start:
                problems.append(Problem(piece.owner, f"本流程未启动 {kind!r} 计时，{reader} 找不到它 "
                                                     f"({reader}: this diagram never starts a {kind!r} clock, so there is none to read)"))
    for piece, call in _calls(code, "working_days") if "working_days" in functions else ():
        literal, days = _constant(_argument(call, 0, "n"))
        if literal and (isinstance(days, bool) or not isinstance(days, (int, float)) or not 0 <= days <= MAX_WORKING_DAYS):
            problems.append(Problem(piece.owner, f"工作日数须在 0 至 {MAX_WORKING_DAYS} 之间，而非 {days!r} "
                                                 f"(working_days takes 0 to {MAX_WORKING_DAYS}, not {days!r})"))
    notice_kinds = ", ".join(NOTICE_KINDS)
    for piece, call in _calls(code, "issue_notice") if "issue_notice" in functions else ():
        literal, kind = _constant(_argument(call, 0, "kind"))
        if literal and kind not in NOTICE_KINDS:
            problems.append(Problem(piece.owner, f"文书种类 {kind!r} 不存在，可用：{notice_kinds} "
                                                 f"(issue_notice: unknown notice kind {kind!r}; known: {notice_kinds})"))
    return problems


def _form_names(root: Any) -> list[tuple[str | None, str]]:
    """(user task id, form file) for every user task naming a form."""
    found = []
    for task in root.iterfind(".//bpmn:userTask", NS):
        for prop in task.iterfind("bpmn:extensionElements/spiffworkflow:properties/spiffworkflow:property", NS):
            if prop.get("name") == FORM_PROPERTY and prop.get("value"):
                found.append((task.get("id"), prop.get("value")))
    return found


def _diagram_data_names(root: Any) -> set[str]:
    """Names the diagram's own structure puts in the data: multi-instance collections and
    items, message variables (the master's ``matter_stage`` receives ``matter_result`` so),
    data objects."""
    names: set[str] = set()
    for element in root.iter():
        name = local_name(element)
        if name in ("loopDataInputRef", "loopDataOutputRef", "messageVariable"):
            names.add(text(element).strip())
        elif name in ("inputDataItem", "outputDataItem", "dataObject", "dataInput", "dataOutput"):
            names.update(v for v in (element.get("name"), element.get("id")) if v)
    return names - {""}


def name_problems(root: Any, code: list[_Code], functions: set[str],
                   form_fields: Callable[[str], Mapping[str, Any] | None],
                   decision_outputs: set[str]) -> list[Problem]:
    """Names conditions, timers and ``$variable`` lanes read that nothing sets, and
    conditions comparing a form field with a value its form does not offer.

    A name is known when it is: a platform function or safe builtin; assigned by a script
    of the diagram (script task, pre/postScript); a field of a form of one of its user
    tasks; data the platform starts an instance with (``PLATFORM_START_DATA``); a
    multi-instance collection or item, a message variable or a data object of the
    diagram (what a matter's procedure returns reaches the master as ``matter_result``,
    its receive task's message variable); an output of a decision table given. Allowed
    without a look, because their origin is out of sight: every name, in a diagram with
    a call activity calling a process of another file (the child's data comes back), or
    one of whose forms cannot be read (its missing form is refused on its own).
    """
    if any(c.get("calledElement") not in {p.get("id") for p in root.iterfind("bpmn:process", NS)}
           for c in root.iterfind(".//bpmn:callActivity", NS)):
        return []
    fields: dict[str, list[Any]] = {}
    for _, form in _form_names(root):
        properties = form_fields(form)
        if properties is None:
            return []
        for field_name, schema in properties.items():
            fields.setdefault(field_name, []).append(schema)
    assigned = set().union(*(_assigned_names(c.tree) for c in code if c.what == "script"))
    structural = _diagram_data_names(root) | PLATFORM_START_DATA | decision_outputs
    known = set(functions) | set(scripting.SAFE_BUILTINS) | assigned | structural | set(fields)
    problems: list[Problem] = []
    user_tasks = {task.get("id") for task in root.iterfind(".//bpmn:userTask", NS)}
    for piece in code:
        if piece.what not in ("condition", "timer"):
            continue
        for unknown in sorted(free_names(piece.tree) - known):
            where = "条件" if piece.what == "condition" else "定时器"
            english = "condition" if piece.what == "condition" else "timer (write ISO 8601 text in quotes)"
            problems.append(Problem(piece.owner, f"{where}中的 {unknown} 不是表单字段、脚本赋值的变量或平台提供的数据 "
                                                 f"({english} reads {unknown!r}, which no form, script or platform data sets)"))
        if piece.what == "condition":
            problems += _enum_problems(piece, fields, assigned | structural)
    for lane in root.iterfind(".//bpmn:lane", NS):
        lane_name = lane.get("name") or ""
        if not lane_name.startswith("$") or ":" not in lane_name:
            continue
        variable = lane_name[1:].split(":", 1)[0]
        if variable in known - set(functions) - set(scripting.SAFE_BUILTINS):
            continue
        for ref in lane.iterfind("bpmn:flowNodeRef", NS):
            target = text(ref).strip()
            if target in user_tasks:
                problems.append(Problem(target, f"泳道 {lane_name} 的部门变量 {variable} 没有表单、脚本或平台数据提供 "
                                                f"(lane {lane_name!r}: nothing sets the variable {variable!r})"))
    return problems


def _enum_problems(piece: _Code, fields: dict[str, list[Any]], other_sources: set[str]) -> list[Problem]:
    """``field == 'value'`` (``!=``, ``in``, ``not in``) where every form offering the
    field lists its values and 'value' is not among them: the branch never (or always)
    runs. A field some script or the platform also sets may hold other values: skipped."""
    problems: list[Problem] = []
    for node in ast.walk(piece.tree):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for op, left, right in zip(node.ops, operands, operands[1:]):
            if not isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)):
                continue
            if isinstance(right, ast.Name) and isinstance(op, (ast.Eq, ast.NotEq)):
                left, right = right, left
            if not isinstance(left, ast.Name) or left.id not in fields or left.id in other_sources:
                continue
            allowed = [_field_values(schema) for schema in fields[left.id]]
            if any(a is None for a in allowed):
                continue
            offered = set().union(*allowed)
            if isinstance(op, (ast.In, ast.NotIn)) and isinstance(right, (ast.List, ast.Tuple, ast.Set)):
                candidates = right.elts
            else:
                candidates = [right]
            for candidate in candidates:
                literal, value = _constant(candidate)
                if literal and json.dumps(value) not in offered:
                    shown = ", ".join(sorted(offered))
                    problems.append(Problem(piece.owner, f"表单字段 {left.id} 的取值只有 {shown}，没有 {value!r} "
                                                         f"(the form offers {left.id} only {shown}, never {value!r})"))
    return problems


_THROWN_DEFINITIONS = ("messageEventDefinition", "signalEventDefinition")
_REFERENCES = {"messageRef": "message", "signalRef": "signal", "errorRef": "error", "escalationRef": "escalation"}


def structure_problems(root: Any) -> list[Problem]:
    """Elements the platform cannot run as drawn: a script in another language; a
    message or signal thrown (an intermediate throw or end event, a send task), which
    nothing would receive — the platform delivers only its own message, a matter's
    conclusion (``matter_concluded``) to the master's ``matter_stage``, when the matter's
    procedure ends; a reference to a message, signal, error or escalation the file does
    not define (SpiffWorkflow's parser fails on it with an internal error)."""
    problems: list[Problem] = []
    ids = {e.get("id") for e in root.iter() if isinstance(e.tag, str) and e.get("id")}
    for element in root.iter():
        name = local_name(element)
        if etree.QName(element).namespace != BPMN_NS if isinstance(element.tag, str) else True:
            continue
        element_id = element.get("id")
        if name == "scriptTask":
            language = (element.get("scriptFormat") or "python").strip().lower()
            if language not in ("python", "python3", "text/python", "text/x-python", "application/x-python"):
                problems.append(Problem(element_id, f"只支持 Python 脚本，而非 {element.get('scriptFormat')} "
                                                    f"(only Python scripts are supported, not {element.get('scriptFormat')!r})"))
        elif name == "sendTask":
            problems.append(Problem(element_id, "不支持发送任务：平台不投递流程发出的消息 (send tasks are not supported: "
                                                "no one receives a message a procedure sends)"))
        elif name in ("intermediateThrowEvent", "endEvent"):
            thrown = [local_name(d) for d in element if local_name(d) in _THROWN_DEFINITIONS]
            if thrown:
                problems.append(Problem(element_id, "不支持抛出消息或信号：没有接收方，会被静默丢弃；事项办结由平台通知总流程 "
                                                    "(throwing a message or signal is not supported: nothing receives it and it "
                                                    "would be dropped; the platform itself tells the master a matter concluded)"))
        for attribute, what in _REFERENCES.items():
            ref = element.get(attribute)
            if ref and ref not in ids:
                owner = element_id if name not in ("messageEventDefinition", "signalEventDefinition", "errorEventDefinition",
                                                   "escalationEventDefinition") else ancestor_id(element, *EVENTS, *ACTIVITIES)
                zh = {"message": "消息", "signal": "信号", "error": "错误", "escalation": "升级"}[what]
                problems.append(Problem(owner or element_id, f"引用的{zh} {ref} 在文件中没有定义 "
                                                             f"({attribute} {ref!r} names no {what} defined in this file)"))
    return problems
