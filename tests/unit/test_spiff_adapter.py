"""The SpiffWorkflow adapter, driven the way the runtime drives it: diagrams from
tests/fixtures/bpmn, time always passed in (never slept), state round-tripped through
JSON between steps."""
from __future__ import annotations

import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import pytest
from sqlalchemy.exc import DataError, InternalError, OperationalError
from sqlalchemy.orm.exc import StaleDataError

from engine import spiff_adapter as sa

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bpmn"
T0 = datetime(2024, 3, 4, 9, 0, tzinfo=timezone.utc)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def functions(**extra):
    """The platform functions a test diagram calls; working days are calendar days here."""
    def working_days(n):
        return (T0 + timedelta(days=n)).isoformat()

    return {"working_days": working_days, **extra}


@lru_cache(maxsize=None)
def loaded(name: str) -> sa.LoadedSpec:
    return sa.load_spec(sa.compile_bpmn(fixture(name)).spec_json)


def round_trip(instance: sa.Instance) -> sa.Instance:
    return sa.restore(instance.spec, sa.dump(instance))


def only_ready(instance: sa.Instance) -> sa.ReadyTask:
    ready = sa.ready_user_tasks(instance)
    assert len(ready) == 1, ready
    return ready[0]


def submitted_review(materials=({"name": "feasibility report"},)) -> sa.Instance:
    """A review instance whose applicant has submitted: the officer's review is ready
    and its 3-working-day boundary timer is running."""
    instance = sa.start(loaded("review.bpmn"), {"project_code": "2024-110101-04-01-000001"}, now=T0, functions=functions())
    submit = only_ready(instance)
    instance = round_trip(instance)
    sa.complete_user_task(instance, submit.id, {"materials": list(materials)}, now=T0, functions=functions())
    return round_trip(instance)


# --- validation -----------------------------------------------------------------------

REVIEW = fixture("review.bpmn").decode()
MASTER = fixture("master.bpmn").decode()


def with_call_activity(called: str) -> str:
    return REVIEW.replace(
        '<bpmn:scriptTask id="auto_reply" name="Automatic reply">',
        f'<bpmn:callActivity id="auto_reply" name="Automatic reply" calledElement="{called}">',
    ).replace('<bpmn:script>decision = "auto_approved"</bpmn:script>\n    </bpmn:scriptTask>', "</bpmn:callActivity>")


def test_fixture_diagrams_pass_validation():
    for name in ("review.bpmn", "master.bpmn"):
        assert sa.validate_bpmn(fixture(name), form_exists=lambda form: True, function_names=["working_days"]) == []
    assert sa.validate_bpmn(fixture("caller.bpmn"), known_process_ids={"drc_review"}) == []
    assert sa.validate_dmn(fixture("matters.dmn")) == []


REFUSALS = [
    pytest.param(b"\x00 not xml", {}, None, "not XML", id="not-xml"),
    pytest.param(fixture("matters.dmn"), {}, None, "not a BPMN", id="not-bpmn"),
    pytest.param(REVIEW.replace('isExecutable="true"', 'isExecutable="false"'), {}, None, "no executable process", id="not-executable"),
    pytest.param(with_call_activity("auto_reply_process"), {}, "auto_reply", "calls process 'auto_reply_process'", id="missing-called-process"),
    pytest.param(REVIEW.replace("<bpmn:flowNodeRef>review</bpmn:flowNodeRef>", ""), {}, "review", "no lane", id="no-lane"),
    pytest.param(REVIEW.replace('name="drc:officer"', 'name="DRC officer"'), {}, "review", "is not <department>:<role>", id="bad-lane"),
    pytest.param(
        REVIEW.replace('<spiffworkflow:property name="formJsonSchemaFilename" value="review.schema.json" />', ""),
        {}, "review", "without a form", id="no-form",
    ),
    pytest.param(REVIEW, {"form_exists": lambda form: form != "review.schema.json"}, "review", "'review.schema.json' does not exist", id="unknown-form"),
    pytest.param(REVIEW, {"form_exists": lambda form: form != "submit.uischema.json"}, "submit", "'submit.uischema.json' does not exist", id="unknown-ui-form"),
    pytest.param(REVIEW.replace('decision = "auto_approved"', "decision = = 1"), {}, "auto_reply", "syntax error", id="bad-script"),
    pytest.param(REVIEW.replace('decision = "auto_approved"', "decision = __import__('os')"), {}, "auto_reply", "__import__", id="escaping-script"),
    pytest.param(REVIEW.replace("review_due = working_days(3)", "import os"), {}, "prepare", "import", id="import-in-script"),
    pytest.param(REVIEW.replace(">working_days(3)<", ">working_days(3<"), {}, "review_deadline", "syntax error", id="bad-timer"),
    pytest.param(REVIEW.replace(">working_days(3)<", ">PT72H<"), {}, "review_deadline", "quoted", id="unquoted-iso-timer"),
    pytest.param(REVIEW.replace(">working_days(3)<", ">\"soon\"<"), {}, "review_deadline", "not an ISO 8601 instant", id="bad-timer-literal"),
    pytest.param(REVIEW.replace(">working_days(3)<", ">open('x')<"), {}, "review_deadline", '"open" is not allowed', id="escaping-timer"),
    pytest.param(REVIEW.replace('decision == "approve"', 'decision === "approve"'), {}, "flow_approved", "syntax error", id="bad-condition"),
    pytest.param(REVIEW.replace('decision == "reject"', "decision.__class__"), {}, "flow_rejected", "__class__", id="escaping-condition"),
    pytest.param(REVIEW, {"function_names": ["start_clock"]}, "prepare", "unknown function working_days", id="unknown-function"),
    pytest.param(MASTER.replace(' messageRef="matter_concluded"', ""), {}, "matter_stage", "does not wait", id="receive-without-message"),
    pytest.param(
        MASTER.replace("<bpmn:loopDataInputRef>matters</bpmn:loopDataInputRef>", "<bpmn:loopCardinality>len(matters) ** </bpmn:loopCardinality>"),
        {}, "matter_stages", "loopCardinality", id="bad-multi-instance-expression",
    ),
    pytest.param(
        REVIEW.replace('<bpmn:exclusiveGateway id="decide" name="Decision?">', '<bpmn:eventBasedGateway id="decide" name="Decision?">')
        .replace("</bpmn:exclusiveGateway>", "</bpmn:eventBasedGateway>"),
        {}, "decide", "event-based gateways are not supported", id="event-based-gateway",
    ),
    pytest.param(
        REVIEW.replace('<bpmn:scriptTask id="auto_reply" name="Automatic reply">', '<bpmn:serviceTask id="auto_reply" name="Automatic reply">')
        .replace('<bpmn:script>decision = "auto_approved"</bpmn:script>\n    </bpmn:scriptTask>', "</bpmn:serviceTask>"),
        {}, "auto_reply", "service tasks are not supported", id="service-task",
    ),
]


@pytest.mark.parametrize(("xml", "options", "element_id", "fragment"), REFUSALS)
def test_validation_refusals_name_the_element(xml, options, element_id, fragment):
    problems = sa.validate_bpmn(xml.encode() if isinstance(xml, str) else xml, **options)
    assert any(p.element_id == element_id and fragment in p.message for p in problems), problems


def test_a_called_process_that_is_deployed_is_accepted():
    assert sa.validate_bpmn(with_call_activity("auto_reply_process").encode(), known_process_ids={"auto_reply_process"}) == []


def test_compile_refuses_what_validation_refuses():
    with pytest.raises(sa.DiagramRefused) as refused:
        sa.compile_bpmn(REVIEW.replace('decision = "auto_approved"', "decision = __import__('os')").encode())
    assert refused.value.problems[0].element_id == "auto_reply"


def test_compile_lists_user_tasks_with_lanes_and_forms():
    compiled = sa.compile_bpmn(fixture("review.bpmn"))
    assert compiled.process_id == "drc_review"
    assert [(t.element_id, t.lane, t.form, t.ui_form) for t in compiled.user_tasks] == [
        ("submit", "applicant", "submit.schema.json", "submit.uischema.json"),
        ("review", "drc:officer", "review.schema.json", None),
    ]


# --- running --------------------------------------------------------------------------

def test_ready_tasks_carry_lane_properties_and_data():
    instance = sa.start(loaded("review.bpmn"), {"project_code": "P-1"}, now=T0, functions=functions())
    submit = only_ready(instance)
    assert (submit.element_id, submit.title, submit.lane, submit.process_id) == ("submit", "Submit materials", "applicant", "drc_review")
    assert submit.properties == {"formJsonSchemaFilename": "submit.schema.json", "formUiSchemaFilename": "submit.uischema.json"}
    assert submit.form == "submit.schema.json"
    assert submit.data == {"project_code": "P-1"}

    instance = submitted_review([{"name": "site plan"}, {"name": "budget"}])
    review = only_ready(instance)
    assert (review.element_id, review.lane) == ("review", "drc:officer")
    assert review.data["summary"] == {"count": 2, "names": ["budget", "site plan"]}  # the script task ran
    assert review.data["review_due"] == (T0 + timedelta(days=3)).isoformat()


@pytest.mark.parametrize(("decision", "other"), [("approve", "reject"), ("reject", "approve")])
def test_exclusive_gateway_follows_the_officer_decision(decision, other):
    instance = submitted_review()
    sa.complete_user_task(instance, only_ready(instance).id, {"decision": decision}, now=T0, functions=functions())
    instance = round_trip(instance)
    assert sa.is_completed(instance)
    assert sa.instance_data(instance)["decision"] == decision
    assert sa.waiting_timers(instance) == []


def test_state_is_json_without_the_spec_and_round_trips():
    instance = submitted_review()
    state = sa.dump(instance)
    stored = json.loads(state)
    assert "spec" not in stored and "subprocess_specs" not in stored
    assert "working_days(3)" not in state and "review.schema.json" not in state  # no diagram content
    assert len(state) < len(sa.compile_bpmn(fixture("review.bpmn")).spec_json)
    restored = sa.restore(loaded("review.bpmn"), state)
    assert json.loads(sa.dump(restored)) == stored
    assert sa.ready_user_tasks(restored) == sa.ready_user_tasks(instance)
    assert sa.waiting_timers(restored) == sa.waiting_timers(instance)


def test_restore_refuses_another_process_or_format():
    state = sa.dump(submitted_review())
    with pytest.raises(sa.StateFormatError):
        sa.restore(loaded("master.bpmn"), state)
    stale = json.loads(state)
    stale["serializer_version"] = "1.4"
    with pytest.raises(sa.StateFormatError):
        sa.restore(loaded("review.bpmn"), json.dumps(stale))
    spec = json.loads(sa.compile_bpmn(fixture("review.bpmn")).spec_json)
    spec["format"] = "other"
    with pytest.raises(sa.StateFormatError):
        sa.load_spec(json.dumps(spec))


def test_timer_fires_only_once_now_passes_its_instant():
    instance = submitted_review()
    due = T0 + timedelta(days=3)
    [timer] = sa.waiting_timers(instance)
    assert (timer.element_id, timer.at) == ("review_deadline", due)
    assert sa.next_timer_at(instance) == due

    for now in (T0 + timedelta(days=2), due):
        sa.advance(instance, now=now, functions=functions())
        instance = round_trip(instance)
        assert only_ready(instance).element_id == "review"

    sa.advance(instance, now=due + timedelta(seconds=1), functions=functions())
    instance = round_trip(instance)
    assert sa.ready_user_tasks(instance) == []  # the interrupting timer cancelled the review
    assert sa.is_completed(instance)
    assert sa.instance_data(instance)["decision"] == "auto_approved"
    assert sa.next_timer_at(instance) is None


def test_rearm_moves_a_timer_whose_clock_moved():
    clock = {"review": T0 + timedelta(days=3)}

    def clock_due(kind):
        return clock[kind].isoformat()

    xml = REVIEW.replace(">working_days(3)<", '>clock_due("review")<').encode()
    spec = sa.load_spec(sa.compile_bpmn(xml).spec_json)
    fns = functions(clock_due=clock_due)
    instance = sa.start(spec, {}, now=T0, functions=fns)
    sa.complete_user_task(instance, only_ready(instance).id, {"materials": []}, now=T0, functions=fns)
    assert sa.next_timer_at(instance) == T0 + timedelta(days=3)

    clock["review"] = T0 + timedelta(days=5)  # a pause moved the due instant
    sa.advance(instance, now=T0 + timedelta(days=4), functions=fns)
    assert sa.is_completed(instance), "without rearm the old instant still fires"

    instance = sa.start(spec, {}, now=T0, functions=fns)
    clock["review"] = T0 + timedelta(days=3)
    sa.complete_user_task(instance, only_ready(instance).id, {"materials": []}, now=T0, functions=fns)
    clock["review"] = T0 + timedelta(days=5)
    sa.rearm_timers(instance, now=T0 + timedelta(days=1), functions=fns)
    instance = round_trip(instance)
    assert sa.next_timer_at(instance) == T0 + timedelta(days=5)
    sa.advance(instance, now=T0 + timedelta(days=4), functions=fns)
    assert only_ready(instance).element_id == "review"

    clock["review"] = T0 + timedelta(days=2)  # rearmed to an instant already past: fires now
    sa.rearm_timers(instance, now=T0 + timedelta(days=4), functions=fns)
    assert sa.is_completed(instance)


def test_completing_one_matter_leaves_the_others_waiting():
    matters = ["energy_approval", "land_use", "environment"]
    instance = sa.start(loaded("master.bpmn"), {"matters": matters}, now=T0, functions={})
    waiting = sa.waiting_receive_tasks(round_trip(instance))
    assert [(w.element_id, w.data["matter_code"]) for w in waiting] == [("matter_stage", m) for m in matters]
    assert len({w.scope_id for w in waiting}) == 3  # each matter in its own subprocess instance

    land_use = next(w for w in waiting if w.data["matter_code"] == "land_use")
    result = {"matter_code": "land_use", "decision": "approved", "document_number": "NR-2024-7"}
    instance = round_trip(instance)
    sa.complete_receive_task(instance, land_use.id, result, now=T0, functions={})
    instance = round_trip(instance)
    assert sorted(w.data["matter_code"] for w in sa.waiting_receive_tasks(instance)) == ["energy_approval", "environment"]
    assert sa.ready_user_tasks(instance) == []
    with pytest.raises(sa.TaskUnavailable):
        sa.complete_receive_task(instance, land_use.id, result, now=T0, functions={})

    for task in sa.waiting_receive_tasks(instance):
        code = task.data["matter_code"]
        sa.complete_receive_task(instance, task.id, {"matter_code": code, "decision": "approved"}, now=T0, functions={})
    conclude = only_ready(round_trip(instance))
    assert (conclude.element_id, conclude.lane, conclude.scope_id) == ("conclude", "window:window_officer", None)
    assert sorted(r["matter_code"] for r in conclude.data["matter_results"]) == sorted(matters)
    assert result in conclude.data["matter_results"]
    assert "matter_code" not in conclude.data and "matter_result" not in conclude.data


def test_without_a_message_variable_the_payload_is_merged_into_the_task_data():
    xml = MASTER.replace(
        "<bpmn:extensionElements>\n          <spiffworkflow:messageVariable>matter_result</spiffworkflow:messageVariable>\n        </bpmn:extensionElements>",
        "",
    )
    assert "messageVariable" not in xml
    spec = sa.load_spec(sa.compile_bpmn(xml.encode()).spec_json)
    instance = sa.start(spec, {"matters": ["land_use"]}, now=T0, functions={})
    [stage] = sa.waiting_receive_tasks(instance)
    with pytest.raises(TypeError):
        sa.complete_receive_task(instance, stage.id, ["not", "a", "dict"], now=T0, functions={})
    sa.complete_receive_task(instance, stage.id, {"matter_result": {"matter_code": "land_use"}}, now=T0, functions={})
    assert only_ready(instance).data["matter_results"] == [{"matter_code": "land_use"}]


def test_unknown_or_finished_tasks_are_unavailable():
    instance = sa.start(loaded("review.bpmn"), {}, now=T0, functions=functions())
    for task_id in ("not-a-uuid", "6a1f1b9e-0000-4000-8000-000000000000"):
        with pytest.raises(sa.TaskUnavailable):
            sa.complete_user_task(instance, task_id, {}, now=T0, functions=functions())
    submit = only_ready(instance)
    with pytest.raises(sa.TaskUnavailable):
        sa.complete_receive_task(instance, submit.id, {}, now=T0, functions=functions())


def test_data_that_could_not_be_stored_is_refused():
    with pytest.raises(ValueError, match="typename"):
        sa.start(loaded("review.bpmn"), {"extra": {"typename": "BpmnWorkflow"}}, now=T0, functions=functions())
    instance = sa.start(loaded("review.bpmn"), {}, now=T0, functions=functions())
    with pytest.raises(ValueError, match="set"):
        sa.complete_user_task(instance, only_ready(instance).id, {"materials": {1, 2}}, now=T0, functions=functions())
    xml = REVIEW.replace("review_due = working_days(3)", "review_due = {'typename': 'x'}").encode()
    spec = sa.load_spec(sa.compile_bpmn(xml).spec_json)
    instance = sa.start(spec, {}, now=T0, functions=functions())
    with pytest.raises(sa.ProcedureError, match="reserved key") as failed:
        sa.complete_user_task(instance, only_ready(instance).id, {"materials": []}, now=T0, functions=functions())
    assert failed.value.element_id == "prepare"


def test_run_time_failures_name_the_element():
    instance = sa.start(loaded("review.bpmn"), {}, now=T0, functions=functions())
    with pytest.raises(sa.ProcedureError) as failed:
        sa.complete_user_task(instance, only_ready(instance).id, {}, now=T0, functions=functions())  # no materials
    assert failed.value.element_id == "prepare"
    assert "NameError" in failed.value.message and "materials" in failed.value.message


def test_a_timer_expression_giving_no_instant_names_the_timer():
    broken = functions(working_days=lambda n: f"in {n} days")
    instance = sa.start(loaded("review.bpmn"), {}, now=T0, functions=broken)
    with pytest.raises(sa.ProcedureError) as failed:
        sa.complete_user_task(instance, only_ready(instance).id, {"materials": []}, now=T0, functions=broken)
    assert failed.value.element_id == "review_deadline"


def engine_only_diagram(body: str) -> bytes:
    """A process of engine tasks only (no lanes or forms needed): start → body → end."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="d" targetNamespace="http://tzxm.example/bpmn">
  <bpmn:process id="engine_only" isExecutable="true">
    <bpmn:startEvent id="start" />
    {body}
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>""".encode()


def test_a_diagram_looping_without_waiting_is_stopped():
    xml = engine_only_diagram("""
    <bpmn:scriptTask id="count"><bpmn:script>n = n + 1</bpmn:script></bpmn:scriptTask>
    <bpmn:exclusiveGateway id="again" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="count" />
    <bpmn:sequenceFlow id="f2" sourceRef="count" targetRef="again" />
    <bpmn:sequenceFlow id="f3" sourceRef="again" targetRef="count">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">n &gt; 0</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f4" sourceRef="again" targetRef="end">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">n &lt;= 0</bpmn:conditionExpression>
    </bpmn:sequenceFlow>""")
    spec = sa.load_spec(sa.compile_bpmn(xml).spec_json)
    with pytest.raises(sa.ProcedureError, match="loop without waiting") as failed:
        sa.start(spec, {"n": 0}, now=T0, functions={})
    assert failed.value.element_id in {"count", "again"}


def test_multi_instance_cardinality_is_bounded():
    xml = engine_only_diagram("""
    <bpmn:scriptTask id="fan_out">
      <bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>copies</bpmn:loopCardinality></bpmn:multiInstanceLoopCharacteristics>
      <bpmn:script>done = True</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="fan_out" />
    <bpmn:sequenceFlow id="f2" sourceRef="fan_out" targetRef="end" />""")
    spec = sa.load_spec(sa.compile_bpmn(xml).spec_json)
    assert sa.is_completed(sa.start(spec, {"copies": 3}, now=T0, functions={}))
    with pytest.raises(sa.ProcedureError) as failed:
        sa.start(spec, {"copies": 10**9}, now=T0, functions={})
    assert failed.value.element_id == "fan_out"


def test_scripts_run_restricted_at_run_time():
    def leak():
        return leak  # a platform function that (wrongly) returns a callable

    xml = REVIEW.replace('decision = "auto_approved"', "decision = leak().func_globals").encode()
    spec = sa.load_spec(sa.compile_bpmn(xml).spec_json)
    fns = functions(leak=leak)
    instance = sa.start(spec, {}, now=T0, functions=fns)
    sa.complete_user_task(instance, only_ready(instance).id, {"materials": []}, now=T0, functions=fns)
    with pytest.raises(sa.ProcedureError) as failed:
        sa.advance(instance, now=T0 + timedelta(days=4), functions=fns)
    assert failed.value.element_id == "auto_reply"
    assert "attribute access on function" in failed.value.message


def test_time_comes_only_from_the_call():
    from SpiffWorkflow.bpmn.specs.event_definitions import timer

    with pytest.raises(sa.ClockNotSet):
        timer.datetime.now(timezone.utc)
    sa._route_timer_clock()
    assert timer.datetime is sa._PlatformDatetime  # routing is idempotent
    with pytest.raises(ValueError):
        sa.start(loaded("review.bpmn"), {}, now=datetime(2024, 3, 4, 9), functions=functions())


def test_a_functions_factory_is_told_which_task_and_scope_it_serves():
    seen = []

    def factory(scope):
        def working_days(n):
            seen.append((scope.element_id, scope.process_id, scope.scope_id, dict(scope.data)))
            return (T0 + timedelta(days=n)).isoformat()

        return {"working_days": working_days}

    instance = sa.start(loaded("review.bpmn"), {}, now=T0, functions=factory)
    sa.complete_user_task(instance, only_ready(instance).id, {"materials": []}, now=T0, functions=factory)
    (script_call, timer_call) = seen
    assert script_call[:3] == ("prepare", "drc_review", None)
    assert script_call[3]["material_count"] == 0  # set earlier in the same script: the data is live
    assert not any(name.startswith("_") or name == "working_days" for name in script_call[3])
    assert timer_call[:3] == ("review_deadline", "drc_review", None)


def test_call_activity_runs_the_called_process_frozen_into_the_spec():
    compiled = sa.compile_bpmn(fixture("caller.bpmn"), called=[fixture("review.bpmn")])
    assert [t.element_id for t in compiled.user_tasks] == ["submit", "review"]
    spec = sa.load_spec(compiled.spec_json)
    instance = sa.start(spec, {}, now=T0, functions=functions())
    submit = only_ready(instance)
    assert submit.process_id == "drc_review"
    sa.complete_user_task(instance, submit.id, {"materials": []}, now=T0, functions=functions())
    instance = round_trip(instance)
    [timer] = sa.waiting_timers(instance)
    review = only_ready(instance)
    assert timer.element_id == "review_deadline"
    assert timer.scope_id is not None and timer.scope_id == review.scope_id  # both in the called instance
    sa.complete_user_task(instance, review.id, {"decision": "approve"}, now=T0, functions=functions())
    assert sa.is_completed(instance)


def test_instances_sharing_a_spec_run_in_threads():
    def run(index):
        instance = sa.start(loaded("review.bpmn"), {"index": index}, now=T0, functions=functions())
        sa.complete_user_task(instance, only_ready(instance).id, {"materials": []}, now=T0, functions=functions())
        instance = round_trip(instance)
        sa.complete_user_task(instance, only_ready(instance).id, {"decision": "approve"}, now=T0, functions=functions())
        return sa.instance_data(instance)["index"]

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(run, range(16))) == list(range(16))


def test_restore_complete_dump_is_fast():
    spec = loaded("review.bpmn")
    state = sa.dump(sa.start(spec, {}, now=T0, functions=functions()))
    timings = []
    for _ in range(50):
        started = time.perf_counter()
        instance = sa.restore(spec, state)
        sa.complete_user_task(instance, only_ready(instance).id, {"materials": []}, now=T0, functions=functions())
        sa.dump(instance)
        timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 0.05


# --- DMN ------------------------------------------------------------------------------

def test_decision_table_collects_every_matching_row():
    dmn = fixture("matters.dmn")
    assert sa.evaluate_decision(dmn, "matters_notice", {"industry": "energy", "investment": 60000}) == [
        {"matter_code": "energy_approval", "department": "drc"},
        {"matter_code": "land_use", "department": "nr"},
        {"matter_code": "environment", "department": "env"},
    ]
    assert sa.evaluate_decision(dmn, "matters_notice", {"industry": "retail", "investment": 10}) == [
        {"matter_code": "environment", "department": "env"},
    ]


def test_decision_ids_of_a_dmn_file():
    assert sa.dmn_decision_ids(fixture("matters.dmn")) == ["matters_notice"]
    assert sa.dmn_decision_ids(fixture("review.bpmn")) == []


def test_decision_failures_and_refusals():
    dmn = fixture("matters.dmn")
    with pytest.raises(sa.ProcedureError) as failed:
        sa.evaluate_decision(dmn, "matters_notice", {"industry": "energy"})
    assert failed.value.element_id == "matters_notice"
    with pytest.raises(sa.DiagramRefused):
        sa.evaluate_decision(dmn, "no_such_decision", {})

    bad = dmn.replace(b"&gt;= 50000", b'__import__("os")').replace(b'"drc"', b'open("x")').replace(b"COLLECT", b"FIRST")
    problems = {p.element_id: p.message for p in sa.validate_dmn(bad)}
    assert "__import__" in problems["rule_land_investment"]
    assert "open" in problems["rule_energy_department"]
    assert "FIRST" in problems["matters_table"]
    assert sa.validate_dmn(b"<definitions/>")[0].message == "不是 DMN 决策表文件 (not a DMN document)"


@pytest.mark.parametrize("failure", [
    OperationalError("SELECT 1", {}, Exception("deadlock detected")),
    StaleDataError("UPDATE statement on table 'tasks' expected to update 1 row(s); 0 were matched."),
    InternalError("SELECT 1", {}, Exception("current transaction is aborted")),
], ids=["deadlock", "row changed meanwhile", "transaction aborted"])
def test_the_database_failing_under_a_platform_function_is_not_the_procedures_error(failure):
    """A deadlock or a concurrent change met by a platform function the script calls is the
    transaction's to roll back (409/503, or the sweep's retry), not an error to mark on
    the instance: it propagates as it was raised."""
    def failing(n):
        raise failure

    instance = sa.start(loaded("review.bpmn"), {}, now=T0, functions=functions())
    with pytest.raises(type(failure)) as raised:
        sa.complete_user_task(instance, only_ready(instance).id, {"materials": []}, now=T0,
                              functions=functions(working_days=failing))
    assert raised.value is failure


def test_a_value_the_database_refuses_under_a_platform_function_is_the_procedures_error():
    """A value too long for its column (or breaking a constraint) came from the procedure's
    data: the instance is marked errored at the element, for an operator to see and retry."""
    def failing(n):
        raise DataError("INSERT INTO notices (title) VALUES (%(title)s)", {"title": "某单位内部信息"},
                        Exception("value too long for type character varying(200)\nDETAIL: Failing row contains ..."))

    instance = sa.start(loaded("review.bpmn"), {}, now=T0, functions=functions())
    with pytest.raises(sa.ProcedureError) as failed:
        sa.complete_user_task(instance, only_ready(instance).id, {"materials": []}, now=T0,
                              functions=functions(working_days=failing))
    assert failed.value.element_id == "prepare" and "value too long" in failed.value.message
    # told to operators and to whoever completed the task: never the statement, its values or details
    assert not any(leak in failed.value.message for leak in ("INSERT", "某单位内部信息", "DETAIL", "sqlalche.me"))


def test_the_scripts_of_one_engine_call_share_one_time_budget(monkeypatch):
    """A multi-instance task runs its script once per copy, each within its own second:
    together they must not hold the request (and its row locks) for minutes."""
    monkeypatch.setattr(sa, "MAX_CALL_SCRIPT_SECONDS", 0.3)
    xml = engine_only_diagram("""
    <bpmn:scriptTask id="fan_out">
      <bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>1000</bpmn:loopCardinality></bpmn:multiInstanceLoopCharacteristics>
      <bpmn:script>n = 0
while n &lt; 20000:
    n += 1</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="fan_out" />
    <bpmn:sequenceFlow id="f2" sourceRef="fan_out" targetRef="end" />""")
    spec = sa.load_spec(sa.compile_bpmn(xml).spec_json)
    started = time.monotonic()
    with pytest.raises(sa.ProcedureError, match="longer than 0.3 s") as failed:
        sa.start(spec, {}, now=T0, functions={})
    assert failed.value.element_id == "fan_out"
    assert time.monotonic() - started < 2  # not 1,000 copies of up to a second each
