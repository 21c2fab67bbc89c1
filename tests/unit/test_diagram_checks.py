"""Deploy-time checks of diagrams and decision tables (engine.spiff_adapter): the DMN
look-ups a matters-notice check builds on, and the refusals that name the element an
analyst must fix, in Chinese with an English gloss. Diagrams are the shipped ones in
bpmn/, edited the way an analyst's mistake would edit them."""
from __future__ import annotations

import re

import pytest

from engine import diagram_checks, spiff_adapter as sa
from engine.procedures import PLATFORM_FUNCTIONS
from tests.shipped import BPMN, CJK, FORMS, edit, shipped




MATTERS = shipped("matters.dmn").encode("utf-8")
BIG_FILING = {"regime": "filing", "industry_code": "13", "investment": 5000.0, "new_land_use": True,
              "environment_sensitive": False, "water_soil_impact": False, "building_works": True}


# --- DMN look-ups ----------------------------------------------------------------------------------

def test_decision_hits_returns_every_matching_rule_of_a_unique_table():
    unique = edit(shipped("matters.dmn"), 'hitPolicy="COLLECT"', 'hitPolicy="UNIQUE"').encode("utf-8")
    hits = sa.decision_hits(unique, "matters_notice", BIG_FILING)
    assert [h["matter_code"] for h in hits] == ["enterprise_filing", "land_pre_review", "construction_permit"]
    assert hits[0] == {"matter_code": "enterprise_filing", "department": "drc"}
    # evaluate_decision keeps UNIQUE's first hit only: what the deploy check must look past
    assert len(sa.evaluate_decision(unique, "matters_notice", BIG_FILING)) == 1
    assert sa.decision_hits(MATTERS, "matters_notice", BIG_FILING) == sa.evaluate_decision(MATTERS, "matters_notice", BIG_FILING)


def test_decision_hits_names_the_rule_whose_cell_fails():
    broken = edit(shipped("matters.dmn"), "<text>new_land_use</text>", "<text>new_land_usage</text>").encode("utf-8")
    with pytest.raises(sa.ProcedureError) as caught:
        sa.decision_hits(broken, "matters_notice", BIG_FILING)
    assert caught.value.element_id.startswith("rule_") and "new_land_usage" in caught.value.message
    assert CJK.search(caught.value.message)
    with pytest.raises(sa.ProcedureError) as missing:
        sa.decision_hits(MATTERS, "no_such_decision", BIG_FILING)
    assert missing.value.element_id == "no_such_decision"


def test_hit_policy_outputs_and_inputs():
    assert sa.decision_hit_policy(MATTERS, "matters_notice") == "COLLECT"
    first = edit(shipped("matters.dmn"), 'hitPolicy="COLLECT"', 'hitPolicy="first"').encode("utf-8")
    assert sa.decision_hit_policy(first, "matters_notice") == "FIRST"
    assert len(sa.decision_hits(first, "matters_notice", BIG_FILING)) == 3
    default = re.sub(r' hitPolicy="COLLECT"', "", shipped("matters.dmn")).encode("utf-8")
    assert sa.decision_hit_policy(default, "matters_notice") == "UNIQUE"
    assert sa.dmn_output_names(MATTERS, "matters_notice") == ["matter_code", "department"]
    assert sa.dmn_input_expressions(MATTERS, "matters_notice") == [
        "regime", "industry_code", "investment", "new_land_use", "environment_sensitive", "water_soil_impact",
        "building_works"]


# --- diagrams: what an analyst's mistake is told --------------------------------------------------

FILING = "matter_enterprise_filing.bpmn"
LAND = "matter_land_pre_review.bpmn"
FUNCTIONS = ("working_days", "clock_due", "clock_yellow", "start_clock", "stop_clock", "pause_clock", "resume_clock",
             "issue_notice", "record_light", "promised_days")  # engine.procedures.PLATFORM_FUNCTIONS
FORM_FIELDS = diagram_checks.form_fields_reader(FORMS)


def problems(text: str, **overrides) -> dict[str, list[str]]:
    """validate_bpmn as the deploy check calls it, the problems by element."""
    arguments = {"known_process_ids": set(), "form_exists": lambda name: (FORMS / name).is_file(),
                 "dmn": [MATTERS], "function_names": FUNCTIONS, "form_fields": FORM_FIELDS, **overrides}
    found: dict[str, list[str]] = {}
    for problem in sa.validate_bpmn(text.encode("utf-8"), **arguments):
        found.setdefault(problem.element_id or "file", []).append(problem.message)
    return found


def refused(text: str, element: str, *needles: str, **overrides) -> list[str]:
    found = problems(text, **overrides)
    assert element in found, found
    for message in found[element]:
        assert CJK.search(message) and "(" in message, message  # 中文 (English)
    for needle in needles:
        assert any(needle in m for m in found[element]), (needle, found[element])
    return found[element]


@pytest.mark.parametrize("path", sorted(BPMN.glob("*.bpmn")), ids=lambda p: p.name)
def test_every_shipped_diagram_passes_every_check(path):
    assert problems(path.read_text(encoding="utf-8")) == {}


CHECKABLE = {
    "start_clock-unknown-kind": (FILING, "start_clock('filing', working_days=3)", "start_clock('filling', working_days=3)",
                                 "start_filing_clock", "filling"),
    "start_clock-negative-days": (FILING, "start_clock('filing', working_days=3)", "start_clock('filing', working_days=-1)",
                                  "start_filing_clock", "-1"),
    "start_clock-too-many-days": (FILING, "start_clock('filing', working_days=3)", "start_clock('filing', 2501)",
                                  "start_filing_clock", "2501"),
    "working_days-negative": (FILING, "start_clock('filing', working_days=3)",
                              "due = working_days(-2)\nstart_clock('filing', working_days=3)", "start_filing_clock", "-2"),
    "issue_notice-unknown-kind": (FILING, "issue_notice('decision')", "issue_notice('decison')", "filed", "decison"),
    "timer-bare-chinese-text": (FILING, "clock_due('filing')", "三个工作日", "filing_check_red", "三个工作日"),
    "timer-clock-kind-typo": (FILING, "clock_due('filing')", "clock_due('filling')", "filing_check_red", "filling"),
    "timer-clock-never-started": (FILING, "clock_due('filing')", "clock_due('promised')", "filing_check_red", "promised"),
    "condition-variable-typo": (FILING, "filing_decision == 'file'", "filing_decison == 'file'",
                                "flow_filing_gateway_to_filed", "filing_decison"),
    "condition-value-outside-enum": (FILING, "filing_decision == 'file'", "filing_decision == 'filed'",
                                     "flow_filing_gateway_to_filed", "'filed'"),
    "condition-value-outside-enum-reversed": (FILING, "filing_decision == 'file'", "'filed' == filing_decision",
                                              "flow_filing_gateway_to_filed", "'filed'"),
    "condition-in-list-outside-enum": (FILING, "filing_decision == 'file'", "filing_decision in ('file', 'filed')",
                                       "flow_filing_gateway_to_filed", "'filed'"),
    "lane-variable-nothing-sets": (FILING, 'name="drc:officer"', 'name="$reviewing_department:officer"',
                                   "filing_check", "reviewing_department"),
    "groovy-script": (FILING, 'id="copy_documents" name="抄送相关部门" scriptFormat="python"',
                      'id="copy_documents" name="抄送相关部门" scriptFormat="groovy"', "copy_documents", "Python"),
}


@pytest.mark.parametrize("case", list(CHECKABLE))
def test_checkable_mistake_is_refused_naming_the_element(case):
    name, old, new, element, needle = CHECKABLE[case]
    assert element not in problems(shipped(name))  # the edit, not the shipped diagram, is refused
    assert refused(edit(shipped(name), old, new), element, needle)


def test_land_timer_mistakes():
    assert "acceptance_overdue" not in problems(shipped(LAND))
    bare_text = refused(edit(shipped(LAND), "clock_due('acceptance')", "三个工作日"), "acceptance_overdue", "三个工作日")
    bare_iso = refused(edit(shipped(LAND), "clock_due('acceptance')", "PT72H"), "acceptance_overdue", "ISO 8601")
    assert bare_text != bare_iso  # each mistake is told as itself


def message_throw(ref: str, define: bool, element: str = "intermediateThrowEvent") -> str:
    """The filing procedure telling 自然资源 by a message thrown after the copies go out."""
    text = shipped(FILING)
    text = edit(text, '<bpmn:sequenceFlow id="flow_copy_documents_to_matter_concluded" sourceRef="copy_documents" targetRef="matter_concluded" />',
                '<bpmn:sequenceFlow id="flow_copy_documents_to_notify" sourceRef="copy_documents" targetRef="notify_land" />\n'
                '    <bpmn:sequenceFlow id="flow_notify_to_matter_concluded" sourceRef="notify_land" targetRef="matter_concluded" />')
    text = edit(text, "<bpmn:outgoing>flow_copy_documents_to_matter_concluded</bpmn:outgoing>", "<bpmn:outgoing>flow_copy_documents_to_notify</bpmn:outgoing>")
    text = edit(text, "<bpmn:incoming>flow_copy_documents_to_matter_concluded</bpmn:incoming>", "<bpmn:incoming>flow_notify_to_matter_concluded</bpmn:incoming>")
    definition = f'<bpmn:messageEventDefinition id="notify_land_def" messageRef="{ref}" />' if element != "sendTask" else ""
    reference = f' messageRef="{ref}"' if element == "sendTask" else ""
    text = edit(text, '    <bpmn:endEvent id="matter_concluded"', f"""    <bpmn:{element} id="notify_land" name="通知自然资源部门"{reference}>
      <bpmn:incoming>flow_copy_documents_to_notify</bpmn:incoming>
      <bpmn:outgoing>flow_notify_to_matter_concluded</bpmn:outgoing>
      {definition}
    </bpmn:{element}>
    <bpmn:endEvent id="matter_concluded\"""")
    text = edit(text, "<bpmn:flowNodeRef>matter_concluded</bpmn:flowNodeRef>",
                "<bpmn:flowNodeRef>matter_concluded</bpmn:flowNodeRef>\n        <bpmn:flowNodeRef>notify_land</bpmn:flowNodeRef>")
    if define:
        text = edit(text, "  <bpmn:process id=", f'  <bpmn:message id="{ref}" name="{ref}" />\n  <bpmn:process id=')
    return text


def test_a_thrown_message_nothing_receives_is_refused():
    refused(message_throw("land_notified", True), "notify_land", "不支持抛出消息")
    # the bare structural check does not need the platform's vocabulary
    assert "notify_land" in problems(message_throw("land_notified", True), function_names=None, form_fields=None)
    refused(message_throw("land_notified", True, "sendTask"), "notify_land", "发送任务")


def test_an_undefined_message_is_named_not_a_library_type_error():
    messages = refused(message_throw("no_such_message", False), "notify_land", "no_such_message")
    every = [m for ms in problems(message_throw("no_such_message", False)).values() for m in ms]
    assert not any("TypeError" in m or "NodeParser" in m for m in every), every


def test_library_refusals_are_glossed_in_chinese():
    no_conditions = re.sub(
        r"(<bpmn:sequenceFlow id=\"flow_filing_gateway_to_\w+\"[^>]*)>\s*<bpmn:conditionExpression[^<]*</bpmn:conditionExpression>\s*</bpmn:sequenceFlow>",
        r"\1 />", shipped(FILING))
    messages = refused(no_conditions, "flow_filing_gateway_to_request_filing_correction", "排他网关")
    assert any("Non-default exclusive outgoing sequence flow without condition" in m for m in messages)
    no_form = edit(shipped(FILING), '<spiffworkflow:property name="formJsonSchemaFilename" value="filing_check.schema.json" />', "")
    refused(no_form, "filing_check", "未指定表单")


def test_two_top_level_processes_name_each_process():
    two = shipped(FILING).replace("  <bpmndi:BPMNDiagram", """  <bpmn:process id="matter_second" isExecutable="true">
    <bpmn:startEvent id="second_start" />
  </bpmn:process>
  <bpmndi:BPMNDiagram""", 1)
    with pytest.raises(sa.DiagramRefused) as caught:
        sa.compile_bpmn(two.encode("utf-8"))
    named = {p.element_id: p.message for p in caught.value.problems}
    assert set(named) == {"matter_enterprise_filing", "matter_second"}
    assert all(CJK.search(m) for m in named.values())


def test_names_are_checked_only_where_their_sources_are_known():
    typo = edit(shipped(FILING), "filing_decision == 'file'", "filing_decison == 'file'")
    assert problems(typo, form_fields=None) == {}  # without the forms, a name's origin is out of sight
    # a name a script sets, or an unreadable form, is not refused
    scripted = edit(typo, "<bpmn:script>copy_to = ['land', 'env', 'housing', 'water']",
                    "<bpmn:script>filing_decison = 'file'\ncopy_to = ['land', 'env', 'housing', 'water']")
    assert "flow_filing_gateway_to_filed" not in problems(scripted)
    assert problems(typo, form_fields=lambda name: None) == {}
    # a comparison the form allows, and a field a script also sets, pass
    assert problems(edit(shipped(FILING), "filing_decision == 'file'", "filing_decision in ['file', 'refuse']")) == {}


def test_dmn_refusals_are_bilingual():
    unsupported = edit(shipped("matters.dmn"), 'hitPolicy="COLLECT"', 'hitPolicy="FIRST"').encode("utf-8")
    found = {p.element_id: p.message for p in sa.validate_dmn(unsupported)}
    assert CJK.search(found["matters_notice_table"]) and "FIRST" in found["matters_notice_table"]
    assert CJK.search(sa.validate_dmn(b"<definitions/>")[0].message)


GRADE_DMN = b"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="d_grade" name="grade" namespace="urn:x">
  <decision id="grade" name="grade">
    <decisionTable id="grade_table" hitPolicy="UNIQUE">
      <input id="in1" label="regime"><inputExpression id="ie1" typeRef="string"><text>regime</text></inputExpression></input>
      <output id="out1" label="level" name="result.level" typeRef="string"/>
      <rule id="r1"><inputEntry id="r1i"><text>"approval"</text></inputEntry><outputEntry id="r1o"><text>"A"</text></outputEntry></rule>
      <rule id="r2"><inputEntry id="r2i"><text>"filing"</text></inputEntry><outputEntry id="r2o"><text>"B"</text></outputEntry></rule>
    </decisionTable>
  </decision>
</definitions>"""

GRADED_BPMN = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
                  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="d" targetNamespace="http://tzxm.example/bpmn">
  <bpmn:process id="graded" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:businessRuleTask id="grade_it">
      <bpmn:extensionElements><spiffworkflow:calledDecisionId>grade</spiffworkflow:calledDecisionId></bpmn:extensionElements>
    </bpmn:businessRuleTask>
    <bpmn:exclusiveGateway id="gw" default="f4" />
    <bpmn:endEvent id="end_a" />
    <bpmn:endEvent id="end_b" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="grade_it" />
    <bpmn:sequenceFlow id="f2" sourceRef="grade_it" targetRef="gw" />
    <bpmn:sequenceFlow id="f3" sourceRef="gw" targetRef="end_a">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">result['level'] == 'A'</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f4" sourceRef="gw" targetRef="end_b" />
  </bpmn:process>
</bpmn:definitions>"""


def test_a_decision_output_named_with_a_dot_is_known_by_its_first_part():
    """SpiffWorkflow nests an output named ``result.level``: the data holds ``result``, which a
    condition may then read (``result['level'] == 'A'``)."""
    assert sa.evaluate_decision(GRADE_DMN, "grade", {"regime": "approval"}) == [{"result": {"level": "A"}}]
    assert sa.validate_bpmn(GRADED_BPMN, dmn=[GRADE_DMN], function_names=PLATFORM_FUNCTIONS,
                            form_fields=diagram_checks.form_fields_reader(FORMS)) == []
