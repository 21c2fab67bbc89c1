"""The shipped procedures as data (bpmn/, forms/, engine/data/matters.json).

Every diagram parses and validates against the BPMN/DMN schemas, every user task lies
in a lane and names an existing form, every form is a valid JSON Schema, scripts stay
inside what the restricted script engine allows, the matters notice answers the
regulation's cases, and the master and matter procedures run end to end in memory on
plain SpiffWorkflow. Time is a fake 'now' that the test advances: SpiffWorkflow's timer
module is given a datetime whose now() is that instant, so nothing sleeps.

The clock functions here are simple stand-ins for the platform's (see
bpmn/CONVENTIONS.md): a working day is 24 hours of calendar time, and a clock belongs
to the (sub)process instance whose script started it. They do check that a diagram uses
clocks coherently (no stop of a clock never started, no resume of a running clock) and
that every clock a procedure starts is closed when it ends.
"""
from __future__ import annotations

import ast
import importlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from jsonschema import Draft202012Validator
from lxml import etree
from RestrictedPython import compile_restricted_eval, compile_restricted_exec
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.spiff.specs.defaults import ReceiveTask, UserTask
from SpiffWorkflow.util.task import TaskState

ROOT = Path(__file__).resolve().parents[2]
BPMN_DIR = ROOT / "bpmn"
FORMS_DIR = ROOT / "forms"
CATALOGUE_FILE = ROOT / "engine" / "data" / "matters.json"

BPMN_FILES = sorted(BPMN_DIR.glob("*.bpmn"))
DMN_FILES = sorted(BPMN_DIR.glob("*.dmn"))
SCHEMA_FILES = sorted(FORMS_DIR.glob("*.schema.json"))
CATALOGUE = json.loads(CATALOGUE_FILE.read_text(encoding="utf-8"))
MATTERS = {m["code"]: m for m in CATALOGUE["matters"]}
NON_FILING = sorted(code for code in MATTERS if code != "enterprise_filing")

#: The platform functions diagrams may call (bpmn/CONVENTIONS.md, "Clocks and timers").
PLATFORM_FUNCTIONS = {
    "working_days", "clock_due", "clock_yellow", "start_clock", "stop_clock",
    "pause_clock", "resume_clock", "issue_notice", "record_light", "promised_days",
}
CLOCK_KINDS = {"dispatch", "reply", "filing", "pre_review", "acceptance", "promised"}
#: Each notice kind and the task-data variable its particulars come from (CONVENTIONS.md, "Notices").
NOTICE_PARTICULARS = {
    "acceptance": "accepted_as", "correction": "correction_items", "refusal": "refusal_reason",
    "decision": "matter_result", "conclusion": "matter_results",
}
NOTICE_KINDS = set(NOTICE_PARTICULARS)
RESULT_KEYS = {
    "matter_code", "decision", "stage", "reason", "document_number", "document_title", "document_date",
    "main_content", "accepted_as", "copy_to", "consultations",
}
DEPARTMENTS = {"drc", "land", "env", "housing", "water"}
LANE_RE = re.compile(r"^(applicant|system|\$?[a-z][a-z_]*:[a-z][a-z_]*)$")
BPMN_NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL"}
T0 = datetime(2025, 3, 3, 1, 0, tzinfo=timezone.utc)  # Monday 09:00 in Shanghai


# -- parsing ---------------------------------------------------------------------------

def parser_for(*paths: Path) -> SpiffBpmnParser:
    parser = SpiffBpmnParser(validator=VALIDATOR)
    for path in paths:
        if path.suffix == ".dmn":
            parser.add_dmn_file(str(path))
        else:
            parser.add_bpmn_file(str(path))
    return parser


def all_specs(parser: SpiffBpmnParser, process_id: str):
    """The process spec and the specs of its embedded subprocesses."""
    return [parser.get_spec(process_id), *parser.get_subprocess_specs(process_id).values()]


def task_specs(path: Path):
    parser = parser_for(path)
    for spec in all_specs(parser, path.stem):
        yield from spec.task_specs.values()


def form_schema(name: str) -> dict:
    return json.loads((FORMS_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


def form_of(task_spec) -> str:
    filename = task_spec.extensions["properties"]["formJsonSchemaFilename"]
    return filename.removesuffix(".schema.json")


@pytest.mark.parametrize("path", BPMN_FILES, ids=lambda p: p.name)
def test_bpmn_parses_and_validates(path):
    parser = parser_for(path)
    assert parser.get_process_ids() == [path.stem], "one executable process per file, named like the file"
    assert parser.get_spec(path.stem) is not None
    tree = etree.parse(str(path))
    assert tree.xpath("//bpmn:process/@isExecutable", namespaces=BPMN_NS) == ["true"]
    # diagram interchange: every flow node and flow is drawn, so the file opens in a modeler
    drawn = set(tree.xpath("//*[local-name()='BPMNShape' or local-name()='BPMNEdge']/@bpmnElement"))
    elements = tree.xpath(
        "//bpmn:process//*[self::bpmn:startEvent or self::bpmn:endEvent or self::bpmn:boundaryEvent"
        " or self::bpmn:userTask or self::bpmn:scriptTask or self::bpmn:receiveTask or self::bpmn:subProcess"
        " or self::bpmn:exclusiveGateway or self::bpmn:sequenceFlow or self::bpmn:lane]/@id",
        namespaces=BPMN_NS,
    )
    assert set(elements) <= drawn


def test_shipped_files():
    assert {p.name for p in BPMN_FILES} == {"project_master.bpmn"} | {f"matter_{c}.bpmn" for c in MATTERS}
    assert [p.name for p in DMN_FILES] == ["matters.dmn"]


@pytest.mark.parametrize("path", DMN_FILES, ids=lambda p: p.name)
def test_dmn_parses_and_validates(path):
    parser = parser_for(path)
    engine = parser.get_engine("matters_notice", None)
    assert engine.decision_table.hit_policy == "COLLECT"


@pytest.mark.parametrize("path", BPMN_FILES, ids=lambda p: p.name)
def test_user_tasks_have_lane_and_existing_form(path):
    user_tasks = [ts for ts in task_specs(path) if isinstance(ts, UserTask)]
    assert user_tasks
    for ts in user_tasks:
        assert ts.lane, f"{ts.bpmn_id} lies in no lane"
        assert LANE_RE.match(ts.lane), f"{ts.bpmn_id}: lane {ts.lane!r} does not follow the lane grammar"
        assert ts.lane != "system", f"{ts.bpmn_id}: nobody works the system lane"
        props = ts.extensions.get("properties", {})
        schema_file = props.get("formJsonSchemaFilename")
        assert schema_file and (FORMS_DIR / schema_file).is_file(), f"{ts.bpmn_id}: form {schema_file!r} missing"
        ui_file = props.get("formUiSchemaFilename")
        assert ui_file is None or (FORMS_DIR / ui_file).is_file(), f"{ts.bpmn_id}: ui schema {ui_file!r} missing"
        if ts.lane.startswith("$"):
            variable = ts.lane[1:].split(":")[0]
            assert variable in {"department", "consulted_department"}


@pytest.mark.parametrize("code", sorted(MATTERS))
def test_matter_lanes_belong_to_its_department(code):
    department = MATTERS[code]["department"]
    lanes = {ts.lane for ts in task_specs(BPMN_DIR / f"matter_{code}.bpmn") if isinstance(ts, UserTask)}
    assert lanes <= {f"{department}:officer", "applicant", "$consulted_department:officer"}
    assert f"{department}:officer" in lanes and "applicant" in lanes


def test_every_form_is_used():
    used = {form_of(ts) for path in BPMN_FILES for ts in task_specs(path) if isinstance(ts, UserTask)}
    shipped = {p.name.removesuffix(".schema.json") for p in SCHEMA_FILES}
    assert shipped - used == {"declaration"}, "a form nobody uses, or the declaration form missing"
    assert used <= shipped


def test_master_matter_stage_is_a_receive_task_in_each_department_stage():
    """A department's matters start when it replies: their stage lies inside its reply stage."""
    parser = parser_for(BPMN_DIR / "project_master.bpmn")
    subprocesses = parser.get_subprocess_specs("project_master")
    assert "matter_stages" in subprocesses["department_replies"].task_specs
    stage = subprocesses["matter_stages"].task_specs["matter_stage"]
    assert isinstance(stage, ReceiveTask) and stage.lane == "$department:officer"  # the department's stage's lane
    assert stage.event_definition.name == "matter_concluded"
    assert stage.event_definition.message_var == "matter_result"


# -- forms -----------------------------------------------------------------------------

def walk_schema(node, path="$"):
    """Yield every (path, subschema) of a schema, following properties, items and conditions."""
    if not isinstance(node, dict):
        return
    yield path, node
    for key, value in node.get("properties", {}).items():
        yield from walk_schema(value, f"{path}.{key}")
    if "items" in node:
        yield from walk_schema(node["items"], f"{path}[]")
    for i, sub in enumerate(node.get("allOf", [])):
        yield from walk_schema(sub, f"{path}.allOf[{i}]")
    for key in ("if", "then", "else"):
        if key in node:
            yield from walk_schema(node[key], f"{path}.{key}")


def is_string(schema) -> bool:
    kind = schema.get("type")
    return kind == "string" or (isinstance(kind, list) and "string" in kind)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_form_is_valid_strict_json_schema(path):
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert set(schema["required"]) <= set(schema["properties"])
    cjk = re.compile(r"[\u4e00-\u9fff]")
    assert cjk.search(schema["title"]) and cjk.search(schema["description"])
    for name, prop in schema["properties"].items():
        assert cjk.search(prop.get("title", "")), f"{name}: title in Chinese"
        assert cjk.search(prop.get("description", "")), f"{name}: description in Chinese"
    for where, sub in walk_schema(schema):
        if is_string(sub):
            assert "maxLength" in sub, f"{where}: string without maxLength"
    for i, cond in enumerate(schema.get("allOf", [])):
        for branch in ("if", "then"):
            mentioned = set(cond[branch].get("properties", {})) | set(cond[branch].get("required", []))
            assert mentioned <= set(schema["properties"]), f"allOf[{i}].{branch} names an unknown field"
    ui_path = path.with_name(path.name.replace(".schema.json", ".uischema.json"))
    ui = json.loads(ui_path.read_text(encoding="utf-8"))
    assert ui["ui:order"] == list(schema["properties"])
    assert {k for k in ui if not k.startswith("ui:")} <= set(schema["properties"])


def test_decision_fields_are_enums():
    for name, field_name in [
        ("window_review", "window_decision"), ("department_reply", "reply_outcome"),
        ("pre_check", "precheck_result"), ("acceptance", "acceptance_decision"),
        ("acceptance_final", "acceptance_decision"), ("handling", "handling_action"),
        ("consultation", "consultation_result"), ("decision", "decision"),
        ("filing_check", "filing_decision"),
    ]:
        schema = form_schema(name)
        assert field_name in schema["required"] and schema["properties"][field_name]["enum"]


def test_gateway_conditions_cover_the_enums():
    """Each exclusive gateway after a form tests exactly the values the form's enum allows."""
    pairs = {
        "window_decision": "window_review", "reply_outcome": "department_reply",
        "precheck_result": "pre_check", "handling_action": "handling", "filing_decision": "filing_check",
    }
    tested: dict[str, set] = {}
    for path in BPMN_FILES:
        for expr in etree.parse(str(path)).xpath("//bpmn:conditionExpression/text()", namespaces=BPMN_NS):
            m = re.fullmatch(r"(\w+) == '(\w+)'", expr.strip())
            assert m, f"{path.name}: condition {expr!r} is not a plain enum test"
            tested.setdefault(m.group(1), set()).add(m.group(2))
    for variable, form in pairs.items():
        if variable in tested:
            assert tested[variable] == set(form_schema(form)["properties"][variable]["enum"]), variable
    assert tested["acceptance_decision"] == set(form_schema("acceptance")["properties"]["acceptance_decision"]["enum"])


VALID_FORM_DATA = {
    "window_review": [{"window_decision": "dispatch", "departments": ["drc", "land"]},
                      {"window_decision": "cancel", "window_comment": "重复申报"}],
    "department_reply": [{"reply_outcome": "no_matter", "reply_comment": "本阶段无事项"}],
    "pre_check": [{"precheck_result": "pass", "code_verified": True, "within_competence": True},
                  {"precheck_result": "fail", "code_verified": True, "within_competence": False,
                   "precheck_comment": "不属于本部门受理范围"}],
    "decision": [{"decision": "approve", "document_number": "仁发改审批〔2025〕12号", "document_title": "关于X项目的批复",
                  "document_date": "2025-03-20", "main_content": "同意建设"}],
    "handling": [{"handling_action": "special_procedure", "handling_opinion": "需组织专家评审",
                  "special_procedure_reason": "专家评审", "special_procedure_days": 30}],
    "declaration": [{"name": "示范项目", "regime": "filing", "region_code": "510411", "industry_code": "31",
                     "location": "仁和区", "investment": 1200.5, "construction_content": "建设厂房",
                     "start_year": 2025, "end_year": 2026, "classified": False, "building_works": True,
                     "legacy_code": None}],
}
INVALID_FORM_DATA = {
    "window_review": [{"window_decision": "dispatch"}, {"window_decision": "return", "window_comment": "  "},
                      {"window_decision": "dispatch", "departments": []},
                      {"window_decision": "dispatch", "departments": ["drc", "drc"]}],  # which exist: engine.forms, at run
    "pre_check": [{"precheck_result": "pass", "code_verified": False, "within_competence": True},
                  {"precheck_result": "fail", "code_verified": True, "within_competence": False}],
    "acceptance": [{"acceptance_decision": "correction"}, {"acceptance_decision": "refuse"}],
    "acceptance_final": [{"acceptance_decision": "correction"}],
    "decision": [{"decision": "deny", "document_number": "1", "document_title": "t", "document_date": "2025-03-20",
                  "main_content": "c"},
                 {"decision": "approve", "document_number": "1", "document_title": "t",
                  "document_date": "20250320", "main_content": "c"}],
    "handling": [{"handling_action": "consult", "handling_opinion": "x"},
                 {"handling_action": "special_procedure", "handling_opinion": "x", "special_procedure_reason": "y",
                  "special_procedure_days": 61}],
    "department_reply": [{"reply_outcome": "accepted", "reply_comment": "ok", "extra": 1},
                         {"reply_outcome": "accepted", "reply_comment": "x" * 1001}],
    "declaration": [{"name": "示范项目", "regime": "filing", "region_code": "5104", "industry_code": "31",
                     "location": "仁和区", "investment": 0, "construction_content": "x", "start_year": 2025,
                     "end_year": 2026, "classified": False}],
}


@pytest.mark.parametrize("name,data", [(n, d) for n, ds in VALID_FORM_DATA.items() for d in ds])
def test_form_accepts(name, data):
    errors = [e.message for e in Draft202012Validator(form_schema(name)).iter_errors(data)]
    assert errors == []


@pytest.mark.parametrize("name,data", [(n, d) for n, ds in INVALID_FORM_DATA.items() for d in ds])
def test_form_refuses(name, data):
    assert not Draft202012Validator(form_schema(name)).is_valid(data)


# -- scripts and expressions -----------------------------------------------------------

def expressions(path: Path):
    """Every script, condition and timer expression in a diagram: (kind, id, text)."""
    tree = etree.parse(str(path))
    for node in tree.xpath("//bpmn:scriptTask", namespaces=BPMN_NS):
        yield "exec", node.get("id"), node.findtext("bpmn:script", namespaces=BPMN_NS)
    for node in tree.xpath("//bpmn:sequenceFlow[bpmn:conditionExpression]", namespaces=BPMN_NS):
        yield "eval", node.get("id"), node.findtext("bpmn:conditionExpression", namespaces=BPMN_NS)
    for node in tree.xpath("//bpmn:timerEventDefinition/*", namespaces=BPMN_NS):
        yield "eval", node.getparent().getparent().get("id"), node.text


@pytest.mark.parametrize("path", BPMN_FILES, ids=lambda p: p.name)
def test_scripts_stay_within_the_restricted_engine(path):
    found = list(expressions(path))
    assert found
    for mode, element, text in found:
        assert text and text.strip(), f"{element}: empty"
        tree = ast.parse(text, mode=mode)
        for node in ast.walk(tree):
            assert not isinstance(node, (ast.Import, ast.ImportFrom, ast.Attribute, ast.Lambda,
                                         ast.FunctionDef, ast.ClassDef, ast.Global, ast.Nonlocal)), \
                f"{element}: {type(node).__name__} is not allowed"
            if isinstance(node, ast.Name):
                assert not node.id.startswith("_"), f"{element}: underscore name {node.id}"
                if isinstance(node.ctx, ast.Store):
                    assert node.id not in PLATFORM_FUNCTIONS, f"{element}: assigns to {node.id}"
            if isinstance(node, ast.Call):
                assert isinstance(node.func, ast.Name) and node.func.id in PLATFORM_FUNCTIONS, \
                    f"{element}: calls {ast.unparse(node.func)}"
                if node.func.id in {"start_clock", "stop_clock", "pause_clock", "resume_clock", "clock_due",
                                    "clock_yellow", "record_light"}:
                    assert node.args[0].value in CLOCK_KINDS, f"{element}: unknown clock {node.args[0].value}"
                if node.func.id == "issue_notice":
                    assert node.args[0].value in NOTICE_KINDS, f"{element}: unknown notice {node.args[0].value}"
        compiled = compile_restricted_exec(text) if mode == "exec" else compile_restricted_eval(text)
        assert not compiled.errors, f"{element}: {compiled.errors}"


@pytest.mark.parametrize("path", BPMN_FILES, ids=lambda p: p.name)
def test_scripts_pass_the_platform_policy(path):
    """The same texts through the platform's own deploy-time checks, where present."""
    scripting = pytest.importorskip("engine.scripting")
    if not all(hasattr(scripting, name) for name in ("check_script", "check_expression")):
        pytest.skip("engine.scripting has no deploy-time checks")
    for mode, element, text in expressions(path):
        check = scripting.check_script if mode == "exec" else scripting.check_expression
        assert check(text, PLATFORM_FUNCTIONS) is None, f"{element}: {check(text, PLATFORM_FUNCTIONS)}"


# -- lights: non-interrupting timers ----------------------------------------------------

#: Which clock runs while each user task waits, read from the procedures themselves
#: (bpmn/README.md, "Clocks and automatic outcomes"), not from the timers drawn on them:
#: the officer's and window's tasks run on a clock; the applicant's and the special
#: procedure's tasks wait with their clock paused.
APPROVAL_CLOCKS = {
    "pre_check": "pre_review", "acceptance": "acceptance", "acceptance_after_correction": "acceptance",
    "handling": "promised", "consultation": "promised", "decision": "promised",
}
CLOCK_DURING = {
    "project_master": {"window_review": "dispatch", "department_reply": "reply"},
    "matter_enterprise_filing": {"filing_check": "filing"},
    **{f"matter_{code}": APPROVAL_CLOCKS for code in NON_FILING},
}
PAUSED_DURING = {"complete_declaration", "supply_materials", "special_procedure"}


def started_clocks(path: Path) -> set[str]:
    scripts = "\n".join(t for mode, _, t in expressions(path) if mode == "exec")
    return set(re.findall(r"start_clock\('(\w+)'", scripts))


def boundary_timers(tree, task_id: str) -> list:
    return tree.xpath(f"//bpmn:boundaryEvent[@attachedToRef='{task_id}'][bpmn:timerEventDefinition]",
                      namespaces=BPMN_NS)


def timer_text(event) -> str:
    return event.findtext("bpmn:timerEventDefinition/bpmn:timeDate", namespaces=BPMN_NS).strip()


def lane_name_of(tree, element_id: str) -> str:
    (lane,) = tree.xpath(f"//bpmn:lane[bpmn:flowNodeRef='{element_id}']/@name", namespaces=BPMN_NS)
    return lane


def follow(tree, element_id: str):
    (flow,) = tree.xpath(f"//bpmn:sequenceFlow[@sourceRef='{element_id}']", namespaces=BPMN_NS)
    (target,) = tree.xpath(f"//*[@id='{flow.get('targetRef')}']")
    return target


@pytest.mark.parametrize("path", BPMN_FILES, ids=lambda p: p.name)
def test_clock_tasks_carry_their_light_timers(path):
    """Yellow and red are non-interrupting timers on every task during which a clock
    runs (bpmn/CONVENTIONS.md, "Clocks and timers"): `clock_yellow(kind)` and, unless an
    interrupting timer at `clock_due(kind)` already ends the task (and its stop_clock
    records the red), `clock_due(kind)`; each leads to a `record_light(kind)` script and
    an end event, all in the task's lane."""
    tree = etree.parse(str(path))
    expected = CLOCK_DURING[path.stem]
    user_tasks = set(tree.xpath("//bpmn:userTask/@id", namespaces=BPMN_NS))
    assert user_tasks == set(expected) | (user_tasks & PAUSED_DURING), "a user task whose clock nobody stated"
    assert set(expected.values()) == started_clocks(path), "a clock the diagram starts that no task watches, or vice versa"
    for task_id in user_tasks & PAUSED_DURING:
        assert not [e for e in boundary_timers(tree, task_id) if e.get("cancelActivity") == "false"], \
            f"{task_id}: its clock is paused, it has no light to record"
    recorded = set()
    for task_id, kind in expected.items():
        timers = boundary_timers(tree, task_id)
        interrupting_due = any(e.get("cancelActivity", "true") == "true" and timer_text(e) == f"clock_due('{kind}')"
                               for e in timers)
        lights = {"yellow": f"clock_yellow('{kind}')", **({} if interrupting_due else {"red": f"clock_due('{kind}')"})}
        watching = {e.get("id"): e for e in timers if e.get("cancelActivity") == "false"}
        assert set(watching) == {f"{task_id}_{light}" for light in lights}, task_id
        lane = lane_name_of(tree, task_id)
        for light, expression in lights.items():
            event = watching[f"{task_id}_{light}"]
            assert timer_text(event) == expression, f"{event.get('id')}: {timer_text(event)}"
            script = follow(tree, event.get("id"))
            assert script.get("id") == f"{task_id}_{light}_light" and etree.QName(script).localname == "scriptTask"
            assert script.findtext("bpmn:script", namespaces=BPMN_NS).strip() == f"record_light('{kind}')"
            end = follow(tree, script.get("id"))
            assert end.get("id") == f"{task_id}_{light}_recorded" and etree.QName(end).localname == "endEvent"
            for node in (event, script, end):
                assert lane_name_of(tree, node.get("id")) == lane, f"{node.get('id')} outside {task_id}'s lane"
            recorded.add(script.get("id"))
    stray = {i for _, i, t in expressions(path) if "record_light" in t} - recorded
    assert not stray, f"record_light outside a light timer's path: {stray}"


# -- catalogue -------------------------------------------------------------------------

def test_catalogue_shape():
    assert len(MATTERS) >= 7
    assert {m["department"] for m in MATTERS.values()} == DEPARTMENTS
    for code, m in MATTERS.items():
        assert set(m) >= {"code", "name", "department", "regimes", "promised_working_days", "legal_basis"}
        assert m["procedure"] == f"matter_{code}"
        assert set(m["regimes"]) <= {"examination", "approval", "filing"} and m["regimes"]
        assert 0 < m["promised_working_days"] <= m["statutory_working_days"]


@pytest.mark.parametrize("code", NON_FILING)
def test_the_promised_clock_runs_on_the_limit_the_project_was_told(code):
    """The limit is the told guide's (else the catalogue's), never a number in the diagram."""
    scripts = "\n".join(t for mode, _, t in expressions(BPMN_DIR / f"matter_{code}.bpmn") if mode == "exec")
    starts = re.findall(r"start_clock\('promised', working_days=(promised_days\(\)|\w+)", scripts)
    assert starts and set(starts) == {"promised_days()"}


def test_filing_clock_matches_the_catalogue():
    scripts = "\n".join(t for mode, _, t in expressions(BPMN_DIR / "matter_enterprise_filing.bpmn"))
    assert set(re.findall(r"start_clock\('filing', working_days=(\d+)", scripts)) == {
        str(MATTERS["enterprise_filing"]["promised_working_days"])}


# -- matters notice (DMN) --------------------------------------------------------------

def matters_notice(**facts) -> list[tuple[str, str]]:
    engine = parser_for(BPMN_DIR / "matters.dmn").get_engine("matters_notice", None)
    data = {"regime": "filing", "industry_code": "13", "investment": 500, "new_land_use": False,
            "environment_sensitive": False, "water_soil_impact": False, "building_works": False, **facts}
    task = SimpleNamespace(data=data, workflow=SimpleNamespace(script_engine=PythonScriptEngine()))
    result = engine.result(task)
    return list(zip(result.get("matter_code", []), result.get("department", [])))


@pytest.mark.parametrize("facts,expected", [
    ({"regime": "filing", "building_works": True}, ["enterprise_filing", "construction_permit"]),
    ({"regime": "filing", "building_works": True, "investment": 25}, ["enterprise_filing"]),
    ({"regime": "filing"}, ["enterprise_filing"]),
    ({"regime": "approval", "new_land_use": True}, ["enterprise_approval", "land_pre_review"]),
    ({"regime": "approval", "industry_code": "31"}, ["enterprise_approval", "eia_approval"]),
    ({"regime": "approval", "industry_code": "31", "environment_sensitive": True}, ["enterprise_approval", "eia_approval"]),
    ({"regime": "examination", "environment_sensitive": True}, ["feasibility_study", "eia_approval"]),
    ({"regime": "examination", "new_land_use": True, "environment_sensitive": True, "water_soil_impact": True,
      "building_works": True, "investment": 30},
     ["feasibility_study", "land_pre_review", "eia_approval", "soil_water_plan", "construction_permit"]),
])
def test_matters_notice(facts, expected):
    notice = matters_notice(**facts)
    assert [code for code, _ in notice] == expected
    for code, department in notice:
        assert MATTERS[code]["department"] == department
        assert facts.get("regime", "filing") in MATTERS[code]["regimes"]


# -- running the procedures ------------------------------------------------------------

@dataclass
class FakeClock:
    kind: str
    start: datetime
    due: datetime
    state: str = "running"
    paused_at: datetime | None = None


@dataclass
class FakePlatform:
    """Stand-ins for the platform functions; `now` is advanced by the test."""

    now: datetime = T0
    clocks: dict = field(default_factory=dict)
    log: list = field(default_factory=list)

    def functions(self, task) -> dict:
        scope = getattr(task.workflow, "parent_task_id", None)

        def clock(kind):
            assert (scope, kind) in self.clocks, f"clock {kind!r} was never started here"
            return self.clocks[(scope, kind)]

        def working_days(n):
            return (self.now + timedelta(days=n)).isoformat()

        def start_clock(kind, working_days, from_clock=None):
            assert kind in CLOCK_KINDS and isinstance(working_days, int) and working_days > 0
            previous = self.clocks.get((scope, kind))
            if previous is not None and previous.state != "stopped":
                previous.state = "stopped"  # a restart closes the old run
            origin = clock(from_clock).start if from_clock else self.now
            self.clocks[(scope, kind)] = FakeClock(kind, origin, origin + timedelta(days=working_days))
            self.log.append(("start_clock", kind, working_days, from_clock))

        def stop_clock(kind):
            c = clock(kind)
            assert c.state in ("running", "paused"), f"stop of a {c.state} {kind} clock"
            c.state = "stopped"
            self.log.append(("stop_clock", kind))

        def pause_clock(kind, reason):
            c = clock(kind)
            assert c.state == "running", f"pause of a {c.state} {kind} clock"
            c.state, c.paused_at = "paused", self.now
            self.log.append(("pause_clock", kind, reason))

        def resume_clock(kind):
            c = clock(kind)
            assert c.state == "paused", f"resume of a {c.state} {kind} clock"
            c.due += self.now - c.paused_at
            c.state, c.paused_at = "running", None
            self.log.append(("resume_clock", kind))

        def clock_due(kind):
            return clock(kind).due.isoformat()

        def clock_yellow(kind):
            c = clock(kind)
            return (c.due - (c.due - c.start) / 5).isoformat()

        def record_light(kind):
            # a light timer fires only while its clock runs, and never before its threshold
            c = clock(kind)
            assert c.state == "running", f"record_light on a {c.state} {kind} clock"
            assert self.now > datetime.fromisoformat(clock_yellow(kind)), f"record_light before {kind}'s yellow"
            self.log.append(("record_light", kind, "red" if self.now > c.due else "yellow"))
            return "red" if self.now > c.due else "yellow"

        def issue_notice(kind):
            assert kind in NOTICE_KINDS
            assert NOTICE_PARTICULARS[kind] in task.data, f"{kind} notice without {NOTICE_PARTICULARS[kind]}"
            self.log.append(("issue_notice", kind))

        return {
            "working_days": working_days, "start_clock": start_clock, "stop_clock": stop_clock,
            "pause_clock": pause_clock, "resume_clock": resume_clock, "clock_due": clock_due,
            "clock_yellow": clock_yellow, "issue_notice": issue_notice, "record_light": record_light,
            "promised_days": lambda: MATTERS[task.data["matter_code"]]["promised_working_days"],
        }

    def open_clocks(self):
        return [c.kind for c in self.clocks.values() if c.state != "stopped"]

    def calls(self, name):
        return [entry[1:] for entry in self.log if entry[0] == name]


class PlatformScriptEngine(PythonScriptEngine):
    """Hands each script and expression the platform functions bound to its task."""

    def __init__(self, platform: FakePlatform):
        super().__init__(environment=TaskDataEnvironment())
        self.platform = platform

    def evaluate(self, task, expression, external_context=None):
        return super().evaluate(task, expression, {**self.platform.functions(task), **(external_context or {})})

    def execute(self, task, script, external_context=None):
        return super().execute(task, script, {**self.platform.functions(task), **(external_context or {})})


@pytest.fixture
def platform(monkeypatch):
    fake = FakePlatform()
    timer_module = importlib.import_module(TimerEventDefinition.__module__)

    class FakeNow(datetime):
        @classmethod
        def now(cls, tz=None):
            return fake.now if tz is None else fake.now.astimezone(tz)

    monkeypatch.setattr(timer_module, "datetime", FakeNow)
    return fake


class Run:
    """One in-memory instance of a shipped procedure."""

    def __init__(self, platform: FakePlatform, process_id: str, **data):
        parser = parser_for(BPMN_DIR / f"{process_id}.bpmn")
        self.platform = platform
        self.workflow = BpmnWorkflow(
            parser.get_spec(process_id), parser.get_subprocess_specs(process_id),
            script_engine=PlatformScriptEngine(platform),
        )
        self.workflow.get_next_task(spec_name="Start").set_data(**data)
        self.workflow.do_engine_steps()

    def ready(self):
        return self.workflow.get_tasks(state=TaskState.READY, manual=True)

    def ready_names(self):
        return sorted(t.task_spec.bpmn_id for t in self.ready())

    @staticmethod
    def lane(task) -> str:
        """The lane with a `$variable` department resolved from the task data."""
        lane = task.task_spec.lane
        if lane.startswith("$"):
            variable, role = lane[1:].split(":")
            return f"{task.data[variable]}:{role}"
        return lane

    def complete(self, name, data, lane=None):
        tasks = [t for t in self.ready() if t.task_spec.bpmn_id == name and (lane is None or self.lane(t) == lane)]
        assert len(tasks) == 1, f"expected one ready {name} in {lane}, have {self.ready_names()}"
        task = tasks[0]
        Draft202012Validator(form_schema(form_of(task.task_spec))).validate(data)
        task.set_data(**data)
        task.run()
        self.workflow.do_engine_steps()
        return task

    def advance(self, **delta):
        """Move the clock like the platform's sweep does: each waiting timer fires a
        microsecond after its own instant, in time order, so a timer cancelled by an
        earlier one (an automatic outcome) never fires late."""
        target = self.platform.now + timedelta(**delta)
        while True:
            self.workflow.refresh_timers()
            self.workflow.do_engine_steps()
            pending = [at for at in self.timer_instants() if at < target]
            if not pending:
                break
            self.platform.now = max(self.platform.now, min(pending) + timedelta(microseconds=1))
        self.platform.now = target
        self.workflow.refresh_timers()
        self.workflow.do_engine_steps()

    def timer_instants(self):
        for task in self.workflow.get_tasks(state=TaskState.WAITING):
            value = task.internal_data.get("event_value")
            if isinstance(task.task_spec.event_definition if hasattr(task.task_spec, "event_definition") else None,
                          TimerEventDefinition) and value is not None:
                yield TimerEventDefinition.parse_time_or_duration(value)

    def waiting(self, name):
        return [t for t in self.workflow.get_tasks(state=TaskState.WAITING) if t.task_spec.bpmn_id == name]

    def conclude_matter(self, matter_code, result):
        (stage,) = [t for t in self.waiting("matter_stage") if t.data["matter_code"] == matter_code]
        self.workflow.send_event(BpmnEvent(stage.task_spec.event_definition, payload=result, target=stage.workflow))
        self.workflow.do_engine_steps()

    @property
    def data(self):
        assert self.workflow.completed
        data = self.workflow.last_task.data
        if "matter_result" in data:  # a matter procedure: its result has every key, always
            assert set(data["matter_result"]) == RESULT_KEYS
        return data


NOTICE = [
    {"matter_code": "enterprise_filing", "department": "drc"},
    {"matter_code": "construction_permit", "department": "housing"},
    {"matter_code": "land_pre_review", "department": "land"},
    {"matter_code": "eia_approval", "department": "env"},
]


def start_master(platform):
    return Run(platform, "project_master", project_code="2025-510411-31-03-000001",
               matters_notice=NOTICE, departments=["drc", "housing", "land", "env"])


def test_master_return_dispatch_replies_overdue_and_conclusion(platform):
    run = start_master(platform)
    assert run.ready_names() == ["window_review"]
    assert run.lane(run.ready()[0]) == "window:window_officer"
    assert platform.calls("start_clock") == [("dispatch", 1, None)]

    run.complete("window_review", {"window_decision": "return", "window_comment": "请补充建设内容"})
    assert run.ready_names() == ["complete_declaration"] and run.lane(run.ready()[0]) == "applicant"
    assert platform.calls("pause_clock") == [("dispatch", "completion")]
    run.advance(hours=30)
    run.complete("complete_declaration", {"completion_note": "已补充"})
    run.complete("window_review", {"window_decision": "dispatch", "departments": ["drc", "housing", "land", "env"]})

    replies = run.ready()
    assert sorted(run.lane(t) for t in replies) == ["drc:officer", "env:officer", "housing:officer", "land:officer"]
    assert {t.task_spec.bpmn_id for t in replies} == {"department_reply"}
    run.complete("department_reply", {"reply_outcome": "accepted", "reply_comment": "受理企业投资项目备案"},
                 lane="drc:officer")
    # drc's matter starts at drc's reply, while the other departments have yet to reply (三（五）: its own clock)
    assert [t.data["matter_code"] for t in run.waiting("matter_stage")] == ["enterprise_filing"]
    run.complete("department_reply", {"reply_outcome": "no_matter", "reply_comment": "本阶段无施工许可"},
                 lane="housing:officer")
    run.advance(days=1)
    run.complete("department_reply", {"reply_outcome": "accepted", "reply_comment": "受理环评"}, lane="env:officer")
    run.advance(days=1)
    assert run.ready_names() == ["department_reply"]  # land has not replied and is not yet overdue
    run.advance(days=1, minutes=1)  # 3 working days after dispatch: the automatic reply
    assert run.ready_names() == []
    # land's yellow was recorded by its own timer; its red by the automatic reply's stop, not a second timer
    assert platform.calls("record_light") == [("reply", "yellow")]

    stages = run.waiting("matter_stage")
    assert sorted(t.data["matter_code"] for t in stages) == ["eia_approval", "enterprise_filing"]
    run.conclude_matter("eia_approval", {"matter_code": "eia_approval", "decision": "approved"})
    assert not run.workflow.completed and platform.calls("issue_notice") == []
    run.conclude_matter("enterprise_filing", {"matter_code": "enterprise_filing", "decision": "filed"})

    data = run.data
    assert data["declaration_outcome"] == "concluded"
    by_department = {r["department"]: r for r in data["replies"]}
    assert by_department["land"]["outcome"] == "overdue_no_reply" and by_department["land"]["overdue"] is True
    assert by_department["drc"] == {"department": "drc", "outcome": "accepted", "comment": "受理企业投资项目备案",
                                    "overdue": False, "matter_results": [{"matter_code": "enterprise_filing", "decision": "filed"}]}
    assert by_department["land"]["matter_results"] == [] and by_department["housing"]["matter_results"] == []
    assert data["matters"] == ["enterprise_filing", "eia_approval"]
    assert sorted(r["matter_code"] for r in data["matter_results"]) == ["eia_approval", "enterprise_filing"]
    assert "department" not in data and "matter_code" not in data  # item variables stay in their instance
    assert platform.calls("issue_notice") == [("conclusion",)]
    assert platform.calls("start_clock").count(("reply", 3, None)) == 4
    assert platform.calls("stop_clock").count(("reply",)) == 4
    assert platform.open_clocks() == []



def test_master_keeps_a_result_that_names_no_matter(platform):
    """A matter diagram that ended without a proper matter_result (the platform delivers
    {}) still lets the project conclude; its result is kept, after the named ones."""
    run = start_master(platform)
    run.complete("window_review", {"window_decision": "dispatch", "departments": ["drc", "env"]})
    run.complete("department_reply", {"reply_outcome": "accepted", "reply_comment": "受理"}, lane="drc:officer")
    run.complete("department_reply", {"reply_outcome": "accepted", "reply_comment": "受理"}, lane="env:officer")
    run.conclude_matter("eia_approval", {})
    run.conclude_matter("enterprise_filing", {"matter_code": "enterprise_filing", "decision": "filed"})
    assert run.data["declaration_outcome"] == "concluded"
    assert run.data["matter_results"] == [{"matter_code": "enterprise_filing", "decision": "filed"}, {}]
    assert run.data["matters"] == ["enterprise_filing"] and "codes" not in run.data and "results" not in run.data

def test_master_cancel(platform):
    run = start_master(platform)
    run.complete("window_review", {"window_decision": "cancel", "window_comment": "重复申报"})
    assert run.data["declaration_outcome"] == "cancelled"
    assert platform.calls("stop_clock") == [("dispatch",)] and platform.open_clocks() == []


def test_master_no_department_accepts(platform):
    run = start_master(platform)
    run.complete("window_review", {"window_decision": "dispatch", "departments": ["housing"]})
    run.complete("department_reply", {"reply_outcome": "no_matter", "reply_comment": "无"})
    assert run.data["matters"] == [] and run.data["matter_results"] == []
    assert platform.calls("issue_notice") == [("conclusion",)]


def copy_to_on_diagram(code):
    script = next(t for _, e, t in expressions(BPMN_DIR / f"matter_{code}.bpmn") if e == "copy_documents")
    return ast.literal_eval(re.search(r"copy_to = (\[.*?\])", script).group(1))


def start_matter(platform, code):
    run = Run(platform, f"matter_{code}", project_code="2025-510411-31-01-000001", matter_code=code)
    assert run.ready_names() == ["pre_check" if code != "enterprise_filing" else "filing_check"]
    return run


PASS = {"precheck_result": "pass", "code_verified": True, "within_competence": True}


@pytest.mark.parametrize("code", NON_FILING)
def test_matter_correction_deemed_acceptance_consultation_special_procedure(platform, code):
    department = MATTERS[code]["department"]
    officer = f"{department}:officer"
    days = MATTERS[code]["promised_working_days"]
    run = start_matter(platform, code)
    assert run.lane(run.ready()[0]) == officer
    run.advance(days=1)
    run.complete("pre_check", PASS)
    assert platform.calls("start_clock")[-1] == ("acceptance", 5, None)

    run.advance(days=2)
    run.complete("acceptance", {"acceptance_decision": "correction", "correction_items": [{"material": "eia_document", "note": "补充环评文件"}]})
    assert run.ready_names() == ["supply_materials"] and run.lane(run.ready()[0]) == "applicant"
    assert platform.calls("pause_clock") == [("acceptance", "correction")]
    assert ("correction",) in platform.calls("issue_notice")
    run.advance(days=10)  # the applicant's time is not on the acceptance clock: no timer fires
    run.complete("supply_materials", {"supplement_note": "已补齐", "materials": ["m-1", "m-2"]})
    materials_completed = platform.now
    assert run.ready_names() == ["acceptance_after_correction"]

    run.advance(days=5, minutes=1)  # nobody acted within 5 working days: deemed accepted
    assert run.ready_names() == ["handling"]
    assert platform.calls("start_clock")[-1] == ("promised", days, "acceptance")
    promised = next(c for c in platform.clocks.values() if c.kind == "promised")
    assert promised.start == materials_completed  # counted from the restarted acceptance clock's start
    assert promised.due == materials_completed + timedelta(days=days)

    run.complete("handling", {"handling_action": "consult", "handling_opinion": "需水利部门意见",
                              "consulted_department": "water", "consultation_question": "是否涉及河道管理范围？"})
    assert run.ready_names() == ["consultation"] and run.lane(run.ready()[0]) == "water:officer"
    run.complete("consultation", {"consultation_result": "conditional", "consultation_opinion": "须避让河道管理范围"},
                 lane="water:officer")

    run.complete("handling", {"handling_action": "special_procedure", "handling_opinion": "组织专家评审",
                              "special_procedure_reason": "专家评审", "special_procedure_days": 30})
    assert run.ready_names() == ["special_procedure"]
    assert platform.calls("pause_clock")[-1] == ("promised", "special_procedure")
    run.advance(days=29)
    assert run.ready_names() == ["special_procedure"]
    run.advance(days=1, minutes=1)  # the pause ran out: the clock resumes, due moved by the pause
    assert run.ready_names() == ["handling"]
    assert platform.calls("resume_clock") == [("promised",)]
    assert promised.due == materials_completed + timedelta(days=days + 30, microseconds=1)  # fired at its instant

    run.complete("handling", {"handling_action": "decide", "handling_opinion": "符合条件"})
    run.complete("decision", {"decision": "approve", "document_number": "仁审批〔2025〕8号",
                              "document_title": "关于示范项目的批复", "document_date": "2025-05-06",
                              "main_content": "同意"})
    result = run.data["matter_result"]
    assert result == {
        "matter_code": code, "decision": "approved", "stage": "decision", "reason": "",
        "document_number": "仁审批〔2025〕8号", "document_title": "关于示范项目的批复", "document_date": "2025-05-06",
        "main_content": "同意", "accepted_as": "deemed", "copy_to": copy_to_on_diagram(code),
        "consultations": [{"department": "water", "question": "是否涉及河道管理范围？", "result": "conditional",
                           "opinion": "须避让河道管理范围"}],
    }
    assert department not in result["copy_to"] and set(result["copy_to"]) <= DEPARTMENTS
    assert platform.calls("issue_notice") == [("correction",), ("acceptance",), ("decision",)]
    assert platform.open_clocks() == []


def test_matter_accepted_by_notice_special_procedure_ended_by_officer_and_denied(platform):
    run = start_matter(platform, "land_pre_review")
    run.complete("pre_check", PASS)
    run.advance(days=4)
    run.complete("acceptance", {"acceptance_decision": "accept"})
    assert platform.calls("start_clock")[-1] == ("promised", MATTERS["land_pre_review"]["promised_working_days"], None)
    run.complete("handling", {"handling_action": "special_procedure", "handling_opinion": "需现场勘验",
                              "special_procedure_reason": "现场勘验", "special_procedure_days": 10})
    run.advance(days=3)
    run.complete("special_procedure", {"special_procedure_result": "勘验完成"})
    assert run.ready_names() == ["handling"]
    run.advance(days=20)  # the special procedure's timer is gone with its task
    assert run.ready_names() == ["handling"]
    run.complete("handling", {"handling_action": "decide", "handling_opinion": "不符合国土空间规划"})
    run.complete("decision", {"decision": "deny", "reason": "不符合国土空间规划", "document_number": "仁自然资〔2025〕3号",
                              "document_title": "不予许可决定书", "document_date": "2025-04-01", "main_content": "不予许可"})
    result = run.data["matter_result"]
    assert result["decision"] == "denied" and result["reason"] == "不符合国土空间规划"
    assert result["accepted_as"] == "notice" and result["consultations"] == []
    assert platform.open_clocks() == []


def test_lights_are_recorded_while_the_officer_keeps_the_task(platform):
    """Yellow and red do not interrupt: the timers record the light and handling stays ready."""
    days = MATTERS["land_pre_review"]["promised_working_days"]
    run = start_matter(platform, "land_pre_review")
    run.complete("pre_check", PASS)
    run.complete("acceptance", {"acceptance_decision": "accept"})
    assert run.ready_names() == ["handling"]
    run.advance(days=days * 0.8 - 0.01)
    assert platform.calls("record_light") == []
    run.advance(days=0.02)
    assert platform.calls("record_light") == [("promised", "yellow")] and run.ready_names() == ["handling"]
    run.advance(days=days * 0.2)
    assert platform.calls("record_light") == [("promised", "yellow"), ("promised", "red")]
    assert run.ready_names() == ["handling"]
    run.complete("handling", {"handling_action": "decide", "handling_opinion": "符合条件"})
    assert run.ready_names() == ["decision"]  # entered after due: its yellow and red timers fire at once (nothing new to record)
    assert platform.calls("record_light")[-2:] == [("promised", "red"), ("promised", "red")]
    run.complete("decision", {"decision": "approve", "document_number": "仁自然资〔2025〕4号", "document_title": "用地预审意见",
                              "document_date": "2025-03-20", "main_content": "同意"})
    assert run.data["matter_result"]["decision"] == "approved" and platform.open_clocks() == []


def test_matter_pre_check_fails(platform):
    run = start_matter(platform, "eia_approval")
    run.complete("pre_check", {"precheck_result": "fail", "code_verified": False, "within_competence": True,
                               "precheck_comment": "项目代码核验未通过"})
    result = run.data["matter_result"]
    assert (result["decision"], result["stage"], result["reason"]) == ("refused", "pre_check", "项目代码核验未通过")
    assert run.data["refusal_reason"] == "项目代码核验未通过"
    assert platform.calls("issue_notice") == [("refusal",)]
    assert platform.open_clocks() == []


@pytest.mark.parametrize("after_correction", [False, True])
def test_matter_refused_at_acceptance(platform, after_correction):
    run = start_matter(platform, "construction_permit")
    run.complete("pre_check", PASS)
    step = "acceptance"
    if after_correction:
        run.complete("acceptance", {"acceptance_decision": "correction", "correction_items": [{"material": "drawing_review", "note": "补充施工图审查合格书"}]})
        run.complete("supply_materials", {"supplement_note": "已补充"})
        step = "acceptance_after_correction"
    run.complete(step, {"acceptance_decision": "refuse", "refusal_reason": "未取得建设工程规划许可证"})
    result = run.data["matter_result"]
    assert (result["decision"], result["stage"], result["reason"]) == ("refused", "acceptance", "未取得建设工程规划许可证")
    assert platform.calls("issue_notice")[-1] == ("refusal",)
    assert platform.open_clocks() == []


def test_filing_correction_stops_the_clock_then_filed(platform):
    run = start_matter(platform, "enterprise_filing")
    assert run.lane(run.ready()[0]) == "drc:officer"
    run.advance(days=1)
    run.complete("filing_check", {"filing_decision": "correction", "filing_comment": "建设内容不完整",
                                  "correction_items": [{"material": "filing_form", "note": "补充建设规模"}]})
    assert run.ready_names() == ["supply_materials"]
    run.advance(days=20)
    run.complete("supply_materials", {"supplement_note": "已补充建设规模"})
    assert platform.calls("start_clock") == [("filing", 3, None), ("filing", 3, None)]
    run.complete("filing_check", {"filing_decision": "file", "filing_comment": "年产1万吨钒钛新材料",
                                  "document_number": "川投资备【2025-510411-31-03-000001】FGQB-0001号",
                                  "document_date": "2025-03-25"})
    result = run.data["matter_result"]
    assert result["decision"] == "filed" and result["copy_to"] == copy_to_on_diagram("enterprise_filing")
    assert result["main_content"] == "年产1万吨钒钛新材料"
    assert platform.calls("issue_notice") == [("correction",), ("decision",)]
    assert platform.open_clocks() == []


def test_filing_refused(platform):
    run = start_matter(platform, "enterprise_filing")
    run.complete("filing_check", {"filing_decision": "refuse", "filing_comment": "应实行核准管理",
                                  "refusal_reason": "属于依法应实行核准管理的项目"})
    assert run.data["matter_result"]["decision"] == "refused"
    assert platform.calls("issue_notice") == [("refusal",)] and platform.open_clocks() == []
