"""The only module that touches SpiffWorkflow.

SpiffWorkflow's API and serialization format change between minor versions, so the
platform talks to one small, stable surface defined here: validate a diagram at deploy
time, compile it to a stored spec, start/restore/dump instances, list and complete the
tasks people (or the platform) work, move timers, and evaluate DMN tables.

Decisions that shape this module:

* Time is an argument. Every call that may run the engine takes ``now``; SpiffWorkflow's
  timer module reads the clock through ``datetime.now``, which is routed (once, at
  import) to a context variable set from that argument for the duration of the call.
  Engine work without a ``now`` raises ``ClockNotSet`` instead of reading the wall clock.
* All diagram code runs in ``engine.scripting``'s restricted environment, with the
  platform's functions injected per call. Between calls an instance holds an engine with
  no functions at all, so nothing can fall back to SpiffWorkflow's unrestricted
  ``PythonScriptEngine``.
* The spec is stored once per procedure version (``CompiledProcedure.spec_json``) and
  left out of each instance's state; ``load_spec`` turns it into a ``LoadedSpec`` that
  the runtime caches and shares between instances and threads (read-only).
* Platform functions are passed per call, either as one mapping or as a factory given
  the ``ScriptScope`` of each evaluation (task, (sub)process instance, live data), so
  clocks can belong to the (sub)process instance whose script started them.
* Matters: the master's ``matter_stage`` receive task waits once per matter inside a
  parallel multi-instance. ``complete_receive_task`` delivers the message to exactly
  that task, never to a sibling waiting on the same message.
"""
from __future__ import annotations

import ast
import copy
import functools
import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

import SpiffWorkflow
from lxml import etree
from SpiffWorkflow.bpmn import BpmnEvent, BpmnWorkflow
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.bpmn.serializer.workflow import VERSION as SPIFF_SERIALIZER_VERSION
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.event_definitions import timer as _timer_module
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import ReceiveTask as ReceiveTaskMixin
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask as UserTaskMixin
from SpiffWorkflow.dmn.engine.DMNEngine import DMNEngine
from SpiffWorkflow.dmn.specs.model import HitPolicy
from SpiffWorkflow.exceptions import SpiffWorkflowException, WorkflowException
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskState
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from engine import diagram_checks, scripting
from engine.diagram_checks import (  # noqa: F401 - Problem and the form properties are part of the adapter's interface
    BPMN_NS, FORM_PROPERTY, NS as _NS, SPIFF_NS, UI_FORM_PROPERTY, Problem,
    ancestor_id as _ancestor_id, local_name as _local_name, parse_xml as _parse_xml, text as _text,
    ACTIVITIES as _ACTIVITIES, EVENTS as _EVENTS,
)

#: Format of ``spec_json`` and of instance states. Both depend on the SpiffWorkflow
#: version and on the spec-less layout, so the runtime stores this next to them and
#: recompiles specs (from the stored XML) when it changes.
SERIALIZER_VERSION = f"spiffworkflow-{SpiffWorkflow.__version__}/serializer-{SPIFF_SERIALIZER_VERSION}/specless-1"

DMN_NAMESPACES = frozenset({
    "http://www.omg.org/spec/DMN/20151101/dmn.xsd",
    "http://www.omg.org/spec/DMN/20180521/MODEL/",
    "https://www.omg.org/spec/DMN/20191111/MODEL/",
})


#: Lane names CONVENTIONS.md allows: ``dept:role``, ``$variable:role``, ``applicant``, ``system``.
_LANE = re.compile(r"^(applicant|system|\$?[^\s:$]+:[^\s:]+)$")
#: An ISO 8601 value written without quotes: the engine would read it as Python.
_BARE_ISO = re.compile(r"^(R\d*/)?(P[0-9TYMWDHS.,]+|\d{4}-\d{2}-\d{2}\S*)$", re.IGNORECASE)
#: Bounds how often ``_settle`` re-polls timers that are already due.
_MAX_SETTLE_ROUNDS = 1000
#: Engine tasks (scripts, gateways, events) one call may run: a diagram that loops
#: without waiting for anyone is stopped instead of holding a request thread forever.
MAX_ENGINE_TASKS = 10_000
#: SpiffWorkflow's task iterators stop 1000 levels down the task tree, after which an
#: instance silently looks finished; past this depth the procedure is stopped instead.
MAX_TASK_DEPTH = 900
#: Dict keys task data may not use: SpiffWorkflow's serializer reads any dict with a
#: "typename" key as one of its own objects, and such an instance could not be restored.
RESERVED_DATA_KEYS = frozenset({"typename"})
#: Largest loopCardinality a multi-instance may evaluate to.
MAX_INSTANCES = 1_000


# --- errors and value types -----------------------------------------------------------

class DiagramRefused(ValueError):
    """``compile_bpmn`` refused the diagram; ``problems`` says why."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


class ProcedureError(Exception):
    """The procedure failed while running (a script raised, an expression in a new
    version does not evaluate, a timer expression gave no instant ...). ``element_id``
    names the diagram element when known. The instance passed in is left in an
    undefined state: do not dump it."""

    def __init__(self, element_id: str | None, message: str):
        super().__init__(f"{element_id}: {message}" if element_id else message)
        self.element_id = element_id
        self.message = message


class ClockNotSet(RuntimeError):
    """SpiffWorkflow asked for the time outside a call that was given ``now``."""


class StateFormatError(ValueError):
    """A stored spec or state was written by another format (see ``SERIALIZER_VERSION``),
    belongs to another process, or does not fit the spec it is restored with (a version
    whose diagram was restructured)."""


class TaskUnavailable(LookupError):
    """No task with that id is waiting for this kind of completion (unknown id, already
    completed, cancelled by a timer, or not that kind of task)."""


@dataclass(frozen=True)
class ScriptScope:
    """Which task a script or expression runs for, given to a functions factory.

    ``scope_id`` identifies the (sub)process instance the task runs in: None for the
    instance itself, else the id of the task that runs the subprocess instance (each
    branch of a multi-instance subprocess has its own), stable across dump/restore. A
    clock "belongs to the instance whose script started it" is keyed by it. ``data`` is
    the task's data, live: while a script runs it holds the script's variables as they
    stand (a notice takes its particulars from them).
    """

    task_id: str
    element_id: str
    process_id: str
    scope_id: str | None
    data: Mapping[str, Any] = field(repr=False, compare=False)
    lane: str | None = None  # the name of the lane the task lies in


#: The platform functions for a call: one mapping for every task, or a factory called
#: with the ``ScriptScope`` of each script/expression evaluation.
Functions = Mapping[str, Callable[..., Any]] | Callable[[ScriptScope], Mapping[str, Callable[..., Any]]]


@dataclass(frozen=True)
class TaskMeta:
    """A user task of the diagram, for the runtime's task catalogue."""

    element_id: str
    process_id: str
    title: str | None
    lane: str | None
    form: str | None
    ui_form: str | None
    properties: dict[str, str]


@dataclass(frozen=True)
class CompiledProcedure:
    """What ``compile_bpmn`` produces: store ``spec_json`` once per procedure version."""

    process_id: str
    spec_json: str
    user_tasks: list[TaskMeta]


@dataclass(frozen=True, eq=False)
class LoadedSpec:
    """A deserialized spec. Cache one per procedure version and share it; never modify."""

    process_id: str
    spec: Any = field(repr=False)
    subprocess_specs: dict[str, Any] = field(repr=False)


class Instance:
    """A running procedure instance; use the module's functions on it. Not thread-safe:
    one request works an instance at a time (the runtime loads it per request)."""

    __slots__ = ("_workflow", "spec")

    def __init__(self, workflow: BpmnWorkflow, spec: LoadedSpec):
        self._workflow = workflow
        self.spec = spec

    def __repr__(self) -> str:
        return f"<Instance of {self.spec.process_id}>"


@dataclass(frozen=True)
class ReadyTask:
    """A user task ready to be worked. ``data`` is a copy of the task's data (for a
    multi-instance task it includes the item, e.g. ``department`` or ``matter_code``)."""

    id: str
    element_id: str
    process_id: str
    scope_id: str | None
    title: str | None
    lane: str | None
    properties: dict[str, str]
    data: dict[str, Any]

    @property
    def form(self) -> str | None:
        return self.properties.get(FORM_PROPERTY)


@dataclass(frozen=True)
class WaitingTask:
    """A receive task waiting for the platform (e.g. one matter's ``matter_stage``)."""

    id: str
    element_id: str
    scope_id: str | None
    data: dict[str, Any]


@dataclass(frozen=True)
class WaitingTimer:
    """A timer event waiting for ``at`` (aware, UTC)."""

    element_id: str
    task_id: str
    scope_id: str | None
    at: datetime


# --- clock routing --------------------------------------------------------------------

_NOW: ContextVar[datetime | None] = ContextVar("spiff_adapter_now", default=None)


class _PlatformDatetime(datetime):
    """Replaces ``datetime`` in SpiffWorkflow's timer module, the one place where the
    library reads the clock (timer expiry is computed when a timer is entered and
    compared when timers are refreshed). ``now()`` is the ``now`` of the adapter call in
    progress; everything else is plain ``datetime``."""

    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        instant = _NOW.get()
        if instant is None:
            raise ClockNotSet("SpiffWorkflow read the clock outside an adapter call given `now`")
        return instant.astimezone(tz) if tz is not None else instant


def _route_timer_clock() -> None:
    if _timer_module.datetime is not _PlatformDatetime:
        _timer_module.datetime = _PlatformDatetime


_route_timer_clock()


def _as_utc(now: datetime) -> datetime:
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise ValueError("`now` must be an aware datetime")
    return now.astimezone(timezone.utc)


# --- the script engine ----------------------------------------------------------------

def _timer_value_problem(definition: TimerEventDefinition, value: Any) -> str | None:
    """Why a timer expression's value is not what its timer needs, or None.

    SpiffWorkflow would otherwise fail deep inside a state update with a bare
    ``ValueError`` that names no element.
    """
    if isinstance(definition, TimeDateEventDefinition):
        wanted = "instant with a UTC offset, e.g. 2024-05-06T09:00:00+08:00"
    elif isinstance(definition, DurationTimerEventDefinition):
        wanted = "duration, e.g. PT72H"
    else:
        wanted = "recurring interval, e.g. R3/PT1H"
    if not isinstance(value, str):
        return f"gave a {type(value).__name__}, not an ISO 8601 {wanted}"
    try:
        if isinstance(definition, TimeDateEventDefinition):
            valid = datetime.fromisoformat(value).tzinfo is not None
        elif isinstance(definition, DurationTimerEventDefinition):
            valid = bool(TimerEventDefinition.parse_iso_duration(value))
        else:
            TimerEventDefinition.parse_iso_recurring_interval(value)
            valid = True
    except ClockNotSet:
        raise
    except Exception:  # the library's parsers raise bare Exception, ValueError, AttributeError
        valid = False
    return None if valid else f"{value!r} is not an ISO 8601 {wanted}"


def _script_line(script: str, error: BaseException) -> tuple[int | None, str | None]:
    tb = error.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == scripting.SCRIPT_FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    if line is None:
        return None, None
    lines = script.splitlines()
    return line, lines[line - 1] if 0 < line <= len(lines) else None


def _scope_id(task: Any) -> str | None:
    parent = getattr(task.workflow, "parent_task_id", None)
    return str(parent) if parent is not None else None


class _DataView(Mapping[str, Any]):
    """Live, read-only view of a task's data without the builtins, guards and functions
    a running script has in its namespace."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]):
        self._data = data

    @staticmethod
    def _visible(key: str, value: Any) -> bool:
        return not key.startswith("_") and not callable(value)

    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        if not self._visible(key, value):
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return (key for key, value in list(self._data.items()) if self._visible(key, value))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _script_scope(task: Any) -> ScriptScope:
    return ScriptScope(str(task.id), task.task_spec.bpmn_id or task.task_spec.name, task.workflow.spec.name,
                       _scope_id(task), _DataView(task.data), getattr(task.task_spec, "lane", None))


#: The database failing under a platform function for reasons of its own (a deadlock, a
#: lost connection, a row changed meanwhile, an outage) is not the procedure's fault and
#: never becomes an instance's error: it goes to whoever owns the transaction, which
#: rolls it back and answers 409 or 503 (or the sweep retries), leaving the instance as
#: it was. A value the database refuses (too long, a constraint) came from the
#: procedure's data: that is the instance's error, listed for operators.
_REFUSED_VALUES = (DataError, IntegrityError)


def _not_the_procedures(exc: BaseException) -> bool:
    return isinstance(exc, SQLAlchemyError) and not isinstance(exc, _REFUSED_VALUES)


def _failure(exc: BaseException) -> str:
    """How a failure under a script is told on the instance (and to whoever completed the
    task): a refused value by the database's first line only, never the statement or the
    values bound to it."""
    if isinstance(exc, _REFUSED_VALUES) and exc.orig is not None:
        return f"{type(exc).__name__}: {str(exc.orig).strip().splitlines()[0]}"
    return f"{type(exc).__name__}: {exc}"


class _ScriptEngine(PythonScriptEngine):
    """SpiffWorkflow's engine interface over ``scripting.RestrictedEnvironment``.

    The platform functions are handed to each evaluation (bound to its task when a
    factory is given). Error messages carry the underlying error (SpiffWorkflow's own
    wrapper drops it), and timer expression values are checked where the timer's task
    is known.
    """

    def __init__(self, functions: Functions | None = None, *, max_total_seconds: float | None = None):
        super().__init__(environment=scripting.RestrictedEnvironment(
            reserved_keys=RESERVED_DATA_KEYS, max_total_seconds=max_total_seconds))
        self._functions = functions

    def _names(self, task: Any, external_context: Mapping[str, Any] | None) -> dict[str, Any]:
        functions = self._functions(_script_scope(task)) if callable(self._functions) else self._functions
        return {**(functions or {}), **(external_context or {})}

    def validate(self, expression: str) -> None:
        # The DMN engine probes cell texts with this and expects SyntaxError.
        try:
            scripting.compile_expression(expression)
        except scripting.ScriptRefused as exc:
            if exc.syntax:
                raise SyntaxError(exc.message) from None
            raise

    def evaluate(self, task: Any, expression: str, external_context: Mapping[str, Any] | None = None) -> Any:
        try:
            value = self.environment.evaluate(expression, task.data, self._names(task, external_context))
        except SpiffWorkflowException:
            raise
        except Exception as exc:
            if _not_the_procedures(exc):
                raise
            raise WorkflowTaskException(f"expression {expression!r} failed: {_failure(exc)}", task=task, exception=exc) from exc
        if expression == getattr(task.task_spec, "cardinality", None):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_INSTANCES:
                raise WorkflowTaskException(
                    f"loop cardinality {expression!r} gave {value!r}, not a count from 0 to {MAX_INSTANCES}", task=task
                )
        definition = getattr(task.task_spec, "event_definition", None)
        if isinstance(definition, TimerEventDefinition) and expression == definition.expression:
            problem = _timer_value_problem(definition, value)
            if problem is not None:
                raise WorkflowTaskException(f"timer expression {expression!r}: {problem}", task=task)
        return value

    def execute(self, task: Any, script: str, external_context: Mapping[str, Any] | None = None) -> bool:
        try:
            return self.environment.execute(script, task.data, self._names(task, external_context))
        except SpiffWorkflowException:
            raise
        except Exception as exc:
            if _not_the_procedures(exc):
                raise
            line, text = _script_line(script, exc)
            where = f" on line {line} ({text.strip()!r})" if line and text else ""
            raise WorkflowTaskException(
                f"script failed{where}: {_failure(exc)}",
                task=task, exception=exc, line_number=line, error_line=text,
            ) from exc

    def call_service(self, task: Any, **kwargs: Any) -> Any:
        raise WorkflowTaskException("service tasks are not supported", task=task)


#: The engine an instance holds between calls: restricted, and without platform functions.
_INERT_ENGINE = _ScriptEngine()


def _describe(exc: BaseException) -> str:
    """The error's message with SpiffWorkflow's notes ("Did you mean ...", the DMN row)."""
    if isinstance(exc, SpiffWorkflowException):
        parts = [str(exc.args[0]) if exc.args else type(exc).__name__, *exc.notes]
        return "; ".join(part.strip() for part in parts if part and part.strip())
    return str(exc) or type(exc).__name__


def _error_element(exc: BaseException) -> str | None:
    task = getattr(exc, "task", None)
    spec = getattr(task, "task_spec", None) or getattr(exc, "task_spec", None)
    if spec is None:
        return None
    return getattr(spec, "bpmn_id", None) or getattr(spec, "name", None)


#: The time all the scripts and expressions one engine call runs may take together (a
#: multi-instance task runs its script once per copy, each within its own second).
MAX_CALL_SCRIPT_SECONDS = 5.0


@contextmanager
def _running(instance: Instance, now: datetime, functions: Functions | None) -> Iterator[BpmnWorkflow]:
    """Scope of one engine call: ``now`` for the timer clock, the platform functions in
    the script engine, and run-time failures turned into ``ProcedureError``."""
    token = _NOW.set(_as_utc(now))
    workflow = instance._workflow
    workflow.script_engine = _ScriptEngine(functions, max_total_seconds=MAX_CALL_SCRIPT_SECONDS)
    try:
        yield workflow
    except (ProcedureError, ClockNotSet, TaskUnavailable):
        raise
    except Exception as exc:
        if _not_the_procedures(exc):
            raise
        raise ProcedureError(_error_element(exc), _describe(exc)) from exc
    finally:
        workflow.script_engine = _INERT_ENGINE
        _NOW.reset(token)


def _settle(workflow: BpmnWorkflow) -> None:
    """Run engine steps and poll timers until only people, messages or future timers
    are left to wait for."""
    ran = 0

    def count(task: Any) -> None:
        nonlocal ran
        ran += 1
        if ran > MAX_ENGINE_TASKS:
            raise ProcedureError(
                task.task_spec.bpmn_id,
                f"more than {MAX_ENGINE_TASKS} engine tasks in one step: the diagram loops without waiting",
            )
        if task.depth > MAX_TASK_DEPTH:
            raise ProcedureError(
                task.task_spec.bpmn_id,
                f"the instance's history is more than {MAX_TASK_DEPTH} tasks deep: does the diagram loop without waiting?",
            )

    for _ in range(_MAX_SETTLE_ROUNDS):
        workflow.refresh_timers()
        workflow.do_engine_steps(did_complete_task=count)
        if workflow.get_next_task(state=TaskState.READY, manual=False) is None:
            return
    raise ProcedureError(None, f"the procedure did not come to rest after {_MAX_SETTLE_ROUNDS} rounds")


# --- serialization --------------------------------------------------------------------

class _SpeclessWorkflowConverter(BpmnWorkflowConverter):
    """``BpmnWorkflow`` converter that leaves the specs out of the state and takes them,
    already deserialized, when restoring: an instance's state is its tasks and data."""

    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["process_id"] = workflow.spec.name
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct: dict[str, Any], spec: Any = None, subprocess_specs: dict[str, Any] | None = None) -> BpmnWorkflow:
        if spec is None or dct.get("process_id") != spec.name:
            raise StateFormatError(f"state of process {dct.get('process_id')!r} cannot be restored with this spec")
        workflow = self.target_class(spec, subprocess_specs, script_engine=_INERT_ENGINE, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


_local = threading.local()


def _serializer() -> BpmnWorkflowSerializer:
    """One serializer per thread: ``serialize_json`` toggles a flag on its registry."""
    serializer = getattr(_local, "serializer", None)
    if serializer is None:
        config = dict(SPIFF_CONFIG)
        config[BpmnWorkflow] = _SpeclessWorkflowConverter
        registry = BpmnWorkflowSerializer.configure(config)
        serializer = _local.serializer = BpmnWorkflowSerializer(registry, version=SERIALIZER_VERSION)
    return serializer


def load_spec(spec_json: str) -> LoadedSpec:
    """Deserialize a stored ``spec_json`` (cache the result per procedure version)."""
    stored = json.loads(spec_json)
    if stored.get("format") != SERIALIZER_VERSION:
        raise StateFormatError(f"spec format {stored.get('format')!r} is not {SERIALIZER_VERSION!r}: recompile it")
    serializer = _serializer()
    return LoadedSpec(
        process_id=stored["process_id"],
        spec=serializer.from_dict(stored["spec"]),
        subprocess_specs={name: serializer.from_dict(sub) for name, sub in stored["subprocess_specs"].items()},
    )


def dump(instance: Instance) -> str:
    """The instance's state as JSON, without the spec."""
    return _serializer().serialize_json(instance._workflow)


def restore(spec: LoadedSpec, state_json: str) -> Instance:
    """Rebuild an instance from ``dump``'s output and its (cached) spec."""
    serializer = _serializer()
    dct = json.loads(state_json)
    version = dct.pop(serializer.VERSION_KEY, None)
    if version != SERIALIZER_VERSION:
        raise StateFormatError(f"state format {version!r} is not {SERIALIZER_VERSION!r}")
    try:
        workflow = serializer.from_dict(dct, spec=spec.spec, subprocess_specs=spec.subprocess_specs)
    except StateFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - SpiffWorkflow fails in many ways on a state its spec cannot hold
        raise StateFormatError(f"the state does not fit this version of {spec.spec.name!r}: {_describe(exc)}") from exc
    return Instance(workflow, spec)


# --- validation -----------------------------------------------------------------------

def _timer_problem(kind: str, text: str, function_names: Iterable[str] | None) -> str | None:
    text = text.strip()
    if not text:
        return "timer without an expression"
    if _BARE_ISO.match(text):
        return f"write ISO 8601 values quoted ({text!r} is read as Python): \"{text}\""
    problem = scripting.check_expression(text, function_names)
    if problem is not None:
        return problem
    constant = _literal(text)
    if isinstance(constant, str):
        definition_class = {
            "timeDate": TimeDateEventDefinition,
            "timeDuration": DurationTimerEventDefinition,
            "timeCycle": CycleTimerEventDefinition,
        }[kind]
        token = _NOW.set(datetime(2000, 1, 1, tzinfo=timezone.utc))  # cycles without a start read the clock
        try:
            return _timer_value_problem(definition_class(kind, text), constant)
        finally:
            _NOW.reset(token)
    return None


def _literal(text: str) -> Any:
    """The value of ``text`` when it is a plain literal (e.g. ``"PT72H"``), else None."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # refused as an expression on its own
        return None
    return node.value if isinstance(node, ast.Constant) else None


#: Chinese for the kinds of code ``_expression_problems`` checks.
_WHAT = {
    "script": "脚本", "preScript": "前置脚本", "postScript": "后置脚本", "condition": "连线条件",
    "event condition": "条件事件的条件", "loopCardinality": "多实例数量", "completionCondition": "多实例完成条件",
    "loopCondition": "循环条件", "correlation expression": "消息关联表达式", "messagePayload": "消息内容表达式",
    "payloadExpression": "消息内容表达式",
}


def _expression_problems(root: Any, known_process_ids: set[str], decision_ids: set[str],
                         function_names: Iterable[str] | None) -> list[Problem]:
    """Element-by-element checks on the XML, where element ids are exact: every piece of
    code the engine would run, and element kinds the platform cannot run."""
    problems: list[Problem] = []
    executable_ids = {p.get("id") for p in root.iterfind("bpmn:process", _NS) if p.get("isExecutable") == "true"}
    functions = list(function_names) if function_names is not None else None

    def expression(element_id: str | None, text: str, what: str) -> None:
        if not text.strip():
            problems.append(Problem(element_id, f"{_WHAT.get(what, what)}为空 (empty {what})"))
            return
        problem = scripting.check_expression(text, functions)
        if problem is not None:
            problems.append(Problem(element_id, f"{_WHAT.get(what, what)}有误 ({what}: {problem})"))

    def script(element_id: str | None, text: str, what: str) -> None:
        problem = scripting.check_script(text, functions) if text.strip() else "empty script"
        if problem is not None:
            problems.append(Problem(element_id, f"{_WHAT.get(what, what)}有误 ({what}: {problem})"))

    for element in root.iter():
        name = _local_name(element)
        ns = etree.QName(element).namespace if isinstance(element.tag, str) else None
        element_id = element.get("id")
        if ns == BPMN_NS:
            if name == "callActivity":
                called = element.get("calledElement")
                if not called:
                    problems.append(Problem(element_id, "调用活动未指定被调用的流程 (call activity without calledElement)"))
                elif called not in executable_ids and called not in known_process_ids:
                    problems.append(Problem(element_id, f"被调用的流程 {called} 既不在本文件中也未部署 (calls process {called!r}, which is neither in this file nor deployed)"))
            elif name == "serviceTask":
                problems.append(Problem(element_id, "不支持服务任务，请改用调用平台函数的脚本任务 (service tasks are not supported: use a script task calling a platform function)"))
            elif name == "eventBasedGateway":
                problems.append(Problem(element_id, "不支持事件网关：其定时器不会被调度 (event-based gateways are not supported: their timers are not scheduled)"))
            elif name == "manualTask":
                problems.append(Problem(element_id, "不支持手工任务，请改用带表单的用户任务 (manual tasks are not supported: use a user task with a form)"))
            elif name == "receiveTask":
                if not element.get("messageRef") and element.find("bpmn:messageEventDefinition", _NS) is None:
                    problems.append(Problem(element_id, "接收任务须指定消息 (a receive task needs a message (messageRef), or it does not wait)"))
            elif name == "businessRuleTask":
                decision = _text(element.find("bpmn:extensionElements/spiffworkflow:calledDecisionId", _NS)).strip()
                if not decision:
                    problems.append(Problem(element_id, "业务规则任务未指定决策 (business rule task without spiffworkflow:calledDecisionId)"))
                elif decision not in decision_ids:
                    problems.append(Problem(element_id, f"决策 {decision} 未部署 (decision {decision!r} is not among the DMN files given)"))
            elif name == "scriptTask":
                script(element_id, _text(element.find("bpmn:script", _NS)), "script")
            elif name == "conditionExpression":
                expression(_ancestor_id(element, "sequenceFlow"), _text(element), "condition")
            elif name == "condition" and element.getparent() is not None and _local_name(element.getparent()) == "conditionalEventDefinition":
                expression(_ancestor_id(element, *_EVENTS), _text(element), "event condition")
            elif name in ("timeDate", "timeDuration", "timeCycle"):
                problem = _timer_problem(name, _text(element), functions)
                if problem is not None:
                    problems.append(Problem(_ancestor_id(element, *_EVENTS), f"定时器表达式有误 (timer {name}: {problem})"))
            elif name in ("loopCardinality", "completionCondition", "loopCondition"):
                expression(_ancestor_id(element, *_ACTIVITIES), _text(element), name)
            elif name == "formalExpression" and _local_name(element.getparent()) == "correlationPropertyRetrievalExpression":
                expression(_ancestor_id(element, "correlationProperty"), _text(element), "correlation expression")
        elif ns == SPIFF_NS:
            owner = _ancestor_id(element)
            if name in ("preScript", "postScript"):
                script(owner, _text(element), name)
            elif name in ("messagePayload", "payloadExpression"):
                expression(owner, _text(element), name)
            elif name == "expression" and _local_name(element.getparent()) == "processVariableCorrelation":
                expression(owner, _text(element), "correlation expression")
    return problems


def _user_task_problems(specs: Iterable[Any], form_exists: Callable[[str], bool] | None) -> list[Problem]:
    problems: list[Problem] = []
    for spec in specs:
        for task_spec in spec.task_specs.values():
            if not isinstance(task_spec, UserTaskMixin):
                continue
            element_id = task_spec.bpmn_id
            lane = task_spec.lane
            if not lane:
                problems.append(Problem(element_id, "用户任务不在任何泳道中，泳道决定由谁办理 (user task in no lane: lanes say who works a task)"))
            elif not _LANE.match(lane):
                problems.append(Problem(element_id, f"泳道名 {lane} 须为 部门:角色、$变量:角色、applicant 或 system (lane {lane!r} is not <department>:<role>, $<variable>:<role>, applicant or system)"))
            properties = getattr(task_spec, "extensions", {}).get("properties", {})
            form = properties.get(FORM_PROPERTY)
            if not form:
                problems.append(Problem(element_id, f"用户任务未指定表单 (user task without a form (spiffworkflow property {FORM_PROPERTY}))"))
            for prop in (FORM_PROPERTY, UI_FORM_PROPERTY):
                name = properties.get(prop)
                if name and form_exists is not None and not form_exists(name):
                    problems.append(Problem(element_id, f"表单 {name} 不存在 (form {name!r} does not exist)"))
    return problems


def _add_dmn(parser: SpiffBpmnParser, dmn: Sequence[bytes]) -> list[Problem]:
    problems: list[Problem] = []
    for index, document in enumerate(dmn):
        root, problem = _parse_xml(document)
        if problem is not None:
            problems.append(Problem(None, f"第 {index + 1} 个决策表文件：{problem.message}"))
            continue
        try:
            parser.add_dmn_xml(root)
        except (ValidationException, etree.LxmlError) as exc:
            problems.append(Problem(getattr(exc, "id", None) or None, f"第 {index + 1} 个决策表文件：{_bilingual_library_error(exc)}"))
    return problems


def _new_parser() -> SpiffBpmnParser:
    # SpiffBpmnParser keeps spiffworkflow:properties; no validator here because
    # validate_bpmn runs the schema check itself, on a copy (it rewrites the tree).
    return SpiffBpmnParser()


def validate_bpmn(
    xml: bytes,
    *,
    known_process_ids: Iterable[str] = frozenset(),
    form_exists: Callable[[str], bool] | None = None,
    dmn: Sequence[bytes] = (),
    function_names: Iterable[str] | None = None,
    form_fields: Callable[[str], Mapping[str, Any] | None] | None = None,
) -> list[Problem]:
    """Deploy-time check of a diagram; an empty list means it can be compiled.

    ``known_process_ids``: processes already deployed that call activities may call.
    ``form_exists``: whether a form file exists (None skips the check).
    ``dmn``: DMN files whose decisions business rule tasks may use.
    ``function_names``: the platform's script functions; when given, calls to any other
    unknown name are refused too, and the literal arguments of the platform's functions
    are checked (clock and notice kinds, working days: ``_platform_call_problems``).
    ``form_fields``: a form file's fields (``form_fields_reader``); with it and
    ``function_names``, names conditions, timers and ``$variable`` lanes read must come
    from somewhere (``_name_problems``), and a condition may compare a form field only
    with values its form offers.
    Every message is "中文 (English)" and names the element to fix where there is one.
    """
    root, problem = _parse_xml(xml)
    if problem is not None:
        return [problem]
    if root.tag != f"{{{BPMN_NS}}}definitions":
        return [Problem(None, f"不是 BPMN 2.0 文件 (not a BPMN 2.0 document (root element {etree.QName(root).localname!r}))")]
    try:
        VALIDATOR.validate(copy.deepcopy(root))
    except ValidationException as exc:
        return [Problem(None, f"第 {exc.line_number} 行不符合 BPMN 2.0 规范 (not valid BPMN 2.0 (line {exc.line_number}): {exc})")]
    processes = root.findall("bpmn:process", _NS)
    executable = [p.get("id") for p in processes if p.get("isExecutable") == "true"]
    if not executable:
        return [Problem(None, '没有可执行的流程，请将流程标记为 isExecutable="true" (no executable process: mark the procedure\'s process isExecutable="true")')]

    parser = _new_parser()
    problems = _add_dmn(parser, dmn)
    decision_ids = set(parser.dmn_parsers)
    problems += _expression_problems(root, set(known_process_ids), decision_ids, function_names)
    problems += diagram_checks.structure_problems(root)
    if function_names is not None:
        code = diagram_checks.diagram_code(root)
        problems += diagram_checks.platform_call_problems(code, set(function_names))
        if form_fields is not None:
            problems += diagram_checks.name_problems(root, code, set(function_names), form_fields, _decision_outputs(dmn))
    try:
        parser.add_bpmn_xml(root)
    except ValidationException as exc:
        if _library_fault(exc) and problems:  # it tripped on what is refused already
            return _unique(problems)
        return _unique(problems + [Problem(exc.id or None, _bilingual_library_error(exc))])
    specs: dict[str, Any] = {}
    for process_id in executable:
        try:
            specs[process_id] = parser.get_spec(process_id)
            for name, sub in parser.get_subprocess_specs(process_id, require_call_activity_specs=False).items():
                if sub is not None and name not in specs:
                    specs[name] = sub
        except Exception as exc:  # noqa: BLE001 - the parser fails with TypeError, KeyError ... on what it does not expect
            if not (_library_fault(exc) and problems):  # else it tripped on what is refused already
                problems.append(Problem(getattr(exc, "id", None) or process_id, _bilingual_library_error(exc)))
    problems += _user_task_problems(specs.values(), form_exists)
    return _unique(problems)


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def validate_dmn(xml: bytes, *, function_names: Iterable[str] | None = None) -> list[Problem]:
    """Deploy-time check of a DMN file: parseable, one decision table, a supported hit
    policy (UNIQUE or COLLECT), and every expression and cell acceptable to the engine."""
    root, problem = _parse_xml(xml)
    if problem is not None:
        return [problem]
    if etree.QName(root).localname != "definitions" or etree.QName(root).namespace not in DMN_NAMESPACES:
        return [Problem(None, "不是 DMN 决策表文件 (not a DMN document)")]
    parser = _new_parser()
    parser.validator = VALIDATOR  # makes add_dmn_xml check the DMN schema
    try:
        parser.add_dmn_xml(root)
        dmn_parser = next(iter(parser.dmn_parsers.values()))
        dmn_parser.parse()
    except ValidationException as exc:
        return [Problem(exc.id or None, _bilingual_library_error(exc))]
    except (StopIteration, IndexError, KeyError) as exc:
        return [Problem(None, f"无法读取决策 (not a usable DMN decision: {exc or type(exc).__name__})")]
    decision = dmn_parser.decision
    functions = list(function_names) if function_names is not None else None
    problems: list[Problem] = []
    if len(decision.decisionTables) != 1:
        return [Problem(decision.id, "一个决策须恰有一张决策表 (a decision needs exactly one decision table)")]
    table = decision.decisionTables[0]
    if table.hit_policy not in (HitPolicy.UNIQUE.value, HitPolicy.COLLECT.value):
        problems.append(Problem(table.id, f"不支持命中策略 {table.hit_policy}，只支持 UNIQUE 或 COLLECT (hit policy {table.hit_policy} is not supported: UNIQUE or COLLECT)"))
    for item in table.inputs:
        if not (item.expression or "").strip():
            problems.append(Problem(item.id, "输入列没有表达式 (input without an expression)"))
            continue
        found = scripting.check_expression(item.expression, functions)
        if found is not None:
            problems.append(Problem(item.id, f"输入表达式有误 (input expression: {found})"))
    for rule in table.rules:
        for entry in rule.inputEntries:
            found = _dmn_cell_problem(entry.input.expression or "", entry.lhs[0] if entry.lhs else None, functions)
            if found is not None:
                problems.append(Problem(entry.id, f"输入单元格有误 (input entry: {found})"))
        for entry in rule.outputEntries:
            if entry.text and entry.text.strip():
                found = scripting.check_expression(entry.text, functions)
                if found is not None:
                    problems.append(Problem(entry.id, f"输出单元格有误 (output: {found})"))
    return problems


def _dmn_cell_problem(input_expression: str, text: str | None, functions: list[str] | None) -> str | None:
    """Mirror how SpiffWorkflow's DMN engine turns an input cell into an expression:
    ``-`` matches anything, ``?`` stands for the input, a complete expression is compared
    with ``==``, and a fragment like ``>= 5`` is appended to the input expression."""
    if text is None:
        return None
    if not text.strip():
        return "empty input entry (write - for any value)"
    substituted = re.sub(r"(\?)(?=(?:[^'\"]|['\"][^'\"]*['\"])*$)", "dmninputexpr", text)
    if "dmninputexpr" in substituted:
        return scripting.check_expression(substituted, functions)
    try:
        scripting.compile_expression(text)
        candidate = f"({input_expression}) == ({text})"
    except scripting.ScriptRefused as exc:
        if not exc.syntax:
            return exc.message
        candidate = f"{input_expression} {text}"
    return scripting.check_expression(candidate, functions)


# --- compile --------------------------------------------------------------------------

def compile_bpmn(
    xml: bytes,
    *,
    dmn: Sequence[bytes] = (),
    called: Sequence[bytes] = (),
    process_id: str | None = None,
) -> CompiledProcedure:
    """Compile a diagram into the spec stored for a procedure version.

    ``dmn``: DMN files for business rule tasks; ``called``: BPMN files of the (already
    deployed) processes that call activities call — their specs are frozen into this
    version. ``process_id`` picks the process when the file has several top-level ones.
    Raises ``DiagramRefused`` with the problems ``validate_bpmn`` finds (forms are the
    runtime's to check before).
    """
    called_roots = []
    called_ids: set[str] = set()
    for document in called:
        called_root, problem = _parse_xml(document)
        if problem is not None:
            raise DiagramRefused([Problem(None, f"被调用的流程文件：{problem.message}")])
        called_roots.append(called_root)
        called_ids.update(p.get("id") for p in called_root.iterfind("bpmn:process", _NS) if p.get("isExecutable") == "true")
    problems = validate_bpmn(xml, known_process_ids=called_ids, dmn=dmn)
    if problems:
        raise DiagramRefused(problems)
    root, _ = _parse_xml(xml)
    process_id = process_id or _top_level_process(root)
    parser = _new_parser()
    _add_dmn(parser, dmn)
    try:
        parser.add_bpmn_xml(root)
        for called_root in called_roots:
            parser.add_bpmn_xml(called_root)
        spec = parser.get_spec(process_id)
        subprocess_specs = parser.get_subprocess_specs(process_id)
    except ValidationException as exc:
        raise DiagramRefused([Problem(exc.id or None, _bilingual_library_error(exc))]) from exc
    serializer = _serializer()
    spec_json = json.dumps({
        "format": SERIALIZER_VERSION,
        "process_id": process_id,
        "spec": serializer.to_dict(spec),
        "subprocess_specs": {name: serializer.to_dict(sub) for name, sub in subprocess_specs.items()},
    })
    return CompiledProcedure(process_id, spec_json, _task_catalogue([spec, *subprocess_specs.values()]))


def _top_level_process(root: Any) -> str:
    executable = [p.get("id") for p in root.iterfind("bpmn:process", _NS) if p.get("isExecutable") == "true"]
    called = {c.get("calledElement") for c in root.iterfind(".//bpmn:callActivity", _NS)}
    top = [pid for pid in executable if pid not in called]
    if len(top) != 1:
        candidates = top or executable
        raise DiagramRefused([Problem(pid, f"文件中有多个顶层可执行流程（{'、'.join(candidates)}），一个文件只能有一个 "
                                           f"(cannot tell the procedure's process among {candidates}: keep one executable "
                                           f"process per file)") for pid in candidates])
    return top[0]


def _task_catalogue(specs: Iterable[Any]) -> list[TaskMeta]:
    catalogue = []
    for spec in specs:
        for task_spec in spec.task_specs.values():
            if isinstance(task_spec, UserTaskMixin):
                properties = dict(getattr(task_spec, "extensions", {}).get("properties", {}))
                catalogue.append(TaskMeta(
                    element_id=task_spec.bpmn_id,
                    process_id=spec.name,
                    title=task_spec.bpmn_name,
                    lane=task_spec.lane,
                    form=properties.get(FORM_PROPERTY),
                    ui_form=properties.get(UI_FORM_PROPERTY),
                    properties=properties,
                ))
    return catalogue


# --- running --------------------------------------------------------------------------

def _task_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-like copy of data coming in (start data, a form, a message payload)."""
    try:
        return scripting.check_task_data(copy.deepcopy(dict(data)), RESERVED_DATA_KEYS)
    except scripting.ScriptError as exc:
        raise ValueError(str(exc)) from None


def start(spec: LoadedSpec, data: Mapping[str, Any], *, now: datetime, functions: Functions) -> Instance:
    """Start an instance with ``data`` as its initial task data, run it to the first wait."""
    workflow = BpmnWorkflow(spec.spec, spec.subprocess_specs, script_engine=_INERT_ENGINE)
    workflow.task_tree.data.update(_task_data(data))
    instance = Instance(workflow, spec)
    with _running(instance, now, functions):
        _settle(workflow)
    return instance


def _find_task(instance: Instance, task_id: str, state: int, spec_class: type) -> Any:
    try:
        task = instance._workflow.get_task_from_id(UUID(task_id))
    except (ValueError, WorkflowException):
        task = None
    if task is None or task.state != state or not isinstance(task.task_spec, spec_class):
        raise TaskUnavailable(f"no such {spec_class.__name__} waiting: {task_id}")
    return task


def ready_user_tasks(instance: Instance) -> list[ReadyTask]:
    """User tasks ready to be worked, in the diagram's order."""
    ready = []
    for task in instance._workflow.get_tasks(state=TaskState.READY, manual=True):
        spec = task.task_spec
        if isinstance(spec, UserTaskMixin):
            ready.append(ReadyTask(
                id=str(task.id),
                element_id=spec.bpmn_id,
                process_id=task.workflow.spec.name,
                scope_id=_scope_id(task),
                title=spec.bpmn_name,
                lane=spec.lane,
                properties=dict(getattr(spec, "extensions", {}).get("properties", {})),
                data=copy.deepcopy(task.data),
            ))
    return ready


def user_task_properties(instance: Instance, task_id: str) -> dict[str, str]:
    """The ``spiffworkflow:properties`` of a ready user task (its form, its guards)."""
    task = _find_task(instance, task_id, TaskState.READY, UserTaskMixin)
    return dict(getattr(task.task_spec, "extensions", {}).get("properties", {}))


def complete_user_task(instance: Instance, task_id: str, data: Mapping[str, Any], *, now: datetime,
                       functions: Functions) -> None:
    """Merge the submitted ``data`` (top-level keys replace) into a ready user task,
    complete it and run the procedure to its next wait."""
    task = _find_task(instance, task_id, TaskState.READY, UserTaskMixin)
    data = _task_data(data)
    with _running(instance, now, functions) as workflow:
        task.data.update(data)
        task.run()
        _settle(workflow)


def waiting_receive_tasks(instance: Instance, element_id: str = "matter_stage") -> list[WaitingTask]:
    """Receive tasks with this element id that wait for the platform (one per matter
    in the master's parallel matter stage; ``data`` holds its ``matter_code``)."""
    return [
        WaitingTask(str(task.id), task.task_spec.bpmn_id, _scope_id(task), copy.deepcopy(task.data))
        for task in instance._workflow.get_tasks(state=TaskState.WAITING)
        if isinstance(task.task_spec, ReceiveTaskMixin) and task.task_spec.bpmn_id == element_id
    ]


def complete_receive_task(instance: Instance, task_id: str, payload: Any, *, now: datetime,
                          functions: Functions) -> None:
    """Deliver ``payload`` as the message of exactly this waiting receive task, complete
    it and run the procedure to its next wait.

    The payload lands where the diagram says: under its ``spiffworkflow:messageVariable``
    (the master's ``matter_stage`` stores the matter's ``matter_result`` so), or, without
    one, its keys are merged into the task data. Sending the message through the
    workflow could wake sibling stages waiting on the same message; catching it on the
    one task is what SpiffWorkflow's event manager does for each task it matches.
    """
    task = _find_task(instance, task_id, TaskState.WAITING, ReceiveTaskMixin)
    definition = task.task_spec.event_definition
    variable = getattr(definition, "message_var", None)
    if variable is None and not isinstance(payload, Mapping):
        raise TypeError(f"{task.task_spec.bpmn_id} names no message variable: the payload must be a dict")
    payload = _task_data(payload) if variable is None else _task_data({variable: payload})[variable]
    with _running(instance, now, functions) as workflow:
        if variable is None:
            task.data.update(payload)
        task.task_spec.catch(task, BpmnEvent(definition, payload=copy.deepcopy(payload)))
        task.task_spec._update(task)
        _settle(workflow)


def advance(instance: Instance, *, now: datetime, functions: Functions) -> None:
    """Fire the timers due at ``now`` and run the procedure to its next wait."""
    with _running(instance, now, functions) as workflow:
        _settle(workflow)


def _timer_instant(task: Any) -> datetime | None:
    definition = task.task_spec.event_definition
    value = task.internal_data.get("event_value")
    if value is None:
        return None
    if isinstance(definition, TimeDateEventDefinition):
        instant = TimerEventDefinition.parse_time_or_duration(value)
    elif isinstance(definition, DurationTimerEventDefinition):
        instant = TimerEventDefinition.get_datetime(value)
    elif isinstance(definition, CycleTimerEventDefinition):
        if value.get("cycles") == 0:
            return None
        instant = datetime.fromisoformat(value["next"])
    else:
        return None
    return datetime.fromtimestamp(instant.timestamp(), timezone.utc)


def waiting_timers(instance: Instance) -> list[WaitingTimer]:
    """Timer events waiting, soonest first (for the scheduler and the case view)."""
    timers = []
    for task in list(instance._workflow.event_manager.tasks.values()):
        if isinstance(task.task_spec, CatchingEvent) and isinstance(task.task_spec.event_definition, TimerEventDefinition):
            instant = _timer_instant(task)
            if instant is not None:
                timers.append(WaitingTimer(task.task_spec.bpmn_id, str(task.id), _scope_id(task), instant))
    return sorted(timers, key=lambda timer: timer.at)


def next_timer_at(instance: Instance) -> datetime | None:
    """When ``advance`` next needs calling for this instance, or None."""
    timers = waiting_timers(instance)
    return timers[0].at if timers else None


#: The clock a re-evaluation runs at when nothing may fire: before any limit the platform sets.
_BEFORE_ANY_LIMIT = datetime(2000, 1, 1, tzinfo=timezone.utc)


def rearm_timers(instance: Instance, *, now: datetime, functions: Functions, fire: bool = True) -> None:
    """Re-evaluate every waiting timeDate timer's expression (e.g. ``clock_due(kind)``
    after a pause moved the clock) and fire those now due; ``fire=False``: fire none,
    and the caller decides when those already passed are met (``next_timer_at`` says the
    first: a calendar load may move a limit into the past; a retry applies its act first).

    SpiffWorkflow evaluates a timer expression once, when the timer is entered, and keeps
    the value in the task's ``event_value``; dropping it makes the next refresh evaluate
    the expression again. Duration and cycle timers measure from when they were entered,
    so they are left alone.
    """
    with _running(instance, now if fire else _BEFORE_ANY_LIMIT, functions) as workflow:
        for task in list(workflow.event_manager.tasks.values()):
            if isinstance(getattr(task.task_spec, "event_definition", None), TimeDateEventDefinition):
                task.internal_data.pop("event_value", None)
        if fire:
            _settle(workflow)
        else:
            workflow.refresh_timers()


def is_completed(instance: Instance) -> bool:
    """Whether the procedure has ended."""
    return instance._workflow.is_completed()


def recorded_values(instance: Instance, variable: str) -> list[Any]:
    """A copy of every value ``variable`` holds in the completed tasks, in task order.

    A multi-instance's output item (each department's ``reply``) reaches its collection
    only once every instance has ended; this reads each one as soon as a task set it.
    Tasks that follow the one that set it hold copies of it too. Every task is walked:
    filtering ``get_tasks`` by state stops at a task not yet in it (a multi-instance still
    running) and misses the completed ones below."""
    return [copy.deepcopy(task.data[variable]) for task in instance._workflow.get_tasks()
            if task.state == TaskState.COMPLETED and variable in task.data]


def instance_data(instance: Instance) -> dict[str, Any]:
    """A copy of the procedure's data: at the end, the data it ended with; before, the
    data of the most recently completed task."""
    workflow = instance._workflow
    if workflow.is_completed():
        data = workflow.data
    else:
        data = workflow.last_task.data if workflow.last_task is not None else workflow.task_tree.data
    return copy.deepcopy({k: v for k, v in data.items() if k != "data_objects"})


# --- DMN ------------------------------------------------------------------------------

def dmn_decision_ids(xml: bytes) -> list[str]:
    """The ids of the decisions a DMN file defines, in document order ([] if not DMN)."""
    root, problem = _parse_xml(xml)
    if problem is not None or etree.QName(root).namespace not in DMN_NAMESPACES:
        return []
    namespace = etree.QName(root).namespace
    return [d.get("id") for d in root.iterfind(f"{{{namespace}}}decision") if d.get("id")]


def called_process_ids(xml: bytes) -> set[str]:
    """The processes a diagram's call activities name."""
    root, problem = _parse_xml(xml)
    if problem is not None:
        return set()
    return {c.get("calledElement") for c in root.iterfind(".//bpmn:callActivity", _NS) if c.get("calledElement")}


@functools.lru_cache(maxsize=64)
def _decision_engine(dmn_xml: bytes, decision_id: str) -> DMNEngine:
    problems = validate_dmn(dmn_xml)
    if problems:
        raise DiagramRefused(problems)
    root, _ = _parse_xml(dmn_xml)
    parser = _new_parser()
    parser.add_dmn_xml(root)
    dmn_parser = parser.dmn_parsers.get(decision_id)
    if dmn_parser is None:
        raise DiagramRefused([Problem(decision_id, "决策表文件中没有此决策 (no such decision in this DMN file)")])
    dmn_parser.parse()
    return DMNEngine(dmn_parser.decision.decisionTables[0])


def evaluate_decision(dmn_xml: bytes, decision_id: str, inputs: Mapping[str, Any], *,
                      functions: Functions | None = None) -> list[dict[str, Any]]:
    """Evaluate a decision table on ``inputs``: the outputs of every matching row (hit
    policy COLLECT) or of the first one (UNIQUE), each as a dict.

    SpiffWorkflow's DMN engine evaluates rules against a task (it reads ``task.data`` and
    ``task.workflow.script_engine``). The least hacky task is a real one: the root task of
    an empty workflow whose engine is the restricted one. Rows are built with the
    engine's ``decide`` and each rule's outputs, because its COLLECT ``result`` merges the
    rows column by column.
    """
    engine = _decision_engine(bytes(dmn_xml), decision_id)  # parsed once per content (lru_cache)
    context = BpmnProcessSpec(name=decision_id)
    context.start.connect(context.end)
    workflow = BpmnWorkflow(context, script_engine=_ScriptEngine(functions))
    task = workflow.task_tree
    task.data = copy.deepcopy(dict(inputs))
    try:
        return [dict(rule.output_as_dict(task)) for rule in engine.decide(task)]
    except Exception as exc:
        raise ProcedureError(decision_id, _describe(exc)) from exc


@functools.lru_cache(maxsize=64)
def _decision_table(dmn_xml: bytes, decision_id: str) -> Any:
    """The parsed decision table of ``decision_id`` whatever its hit policy (cached per
    content). Nothing is evaluated here; the cells run later in the restricted engine."""
    root, problem = _parse_xml(dmn_xml)
    if problem is not None:
        raise DiagramRefused([problem])
    parser = _new_parser()
    try:
        parser.add_dmn_xml(root)
        dmn_parser = parser.dmn_parsers.get(decision_id)
        if dmn_parser is None:
            raise DiagramRefused([Problem(decision_id, "决策表中没有此决策 (no such decision in this DMN file)")])
        dmn_parser.parse()
    except ValidationException as exc:
        raise DiagramRefused([Problem(exc.id or decision_id, _bilingual_library_error(exc))]) from exc
    tables = dmn_parser.decision.decisionTables
    if len(tables) != 1:
        raise DiagramRefused([Problem(decision_id, "一个决策须恰有一张决策表 (a decision needs exactly one decision table)")])
    return tables[0]


def decision_hit_policy(xml: bytes, decision_id: str) -> str:
    """The decision table's hit policy as written, upper case ("UNIQUE", "FIRST",
    "COLLECT", ...; the DMN default is UNIQUE)."""
    return _decision_table(bytes(xml), decision_id).hit_policy


def dmn_output_names(xml: bytes, decision_id: str) -> list[str]:
    """The keys each hit's dict has: every output's name (its label when unnamed, as
    SpiffWorkflow does), in column order."""
    return [o.name or o.label for o in _decision_table(bytes(xml), decision_id).outputs]


def dmn_input_expressions(xml: bytes, decision_id: str) -> list[str]:
    """Every input column's expression text, in column order ('' when a column has none)."""
    return [(i.expression or "").strip() for i in _decision_table(bytes(xml), decision_id).inputs]


def decision_hits(xml: bytes, decision_id: str, inputs: Mapping[str, Any], *,
                  functions: Functions | None = None) -> list[dict[str, Any]]:
    """The outputs of EVERY rule that matches ``inputs``, in rule order, whatever the hit
    policy: a deploy check sees a UNIQUE table's overlapping rules (which
    ``evaluate_decision`` would cut to the first) and a FIRST table's shadowed ones.

    Each rule is run on its own through SpiffWorkflow's ``DMNEngine`` over a one-rule,
    COLLECT-policy copy of the table (the library is not patched), so a cell that fails
    to evaluate is told as a ``ProcedureError`` naming its rule; a table that does not
    parse, as one naming the decision.
    """
    try:
        table = _decision_table(bytes(xml), decision_id)
    except DiagramRefused as exc:
        raise ProcedureError(exc.problems[0].element_id or decision_id, exc.problems[0].message) from exc
    context = BpmnProcessSpec(name=decision_id)
    context.start.connect(context.end)
    workflow = BpmnWorkflow(context, script_engine=_ScriptEngine(functions))
    task = workflow.task_tree
    task.data = copy.deepcopy(dict(inputs))
    hits = []
    for rule in table.rules:
        single = copy.copy(table)
        single.hit_policy, single.rules = HitPolicy.COLLECT.value, [rule]
        try:
            if DMNEngine(single).decide(task):
                hits.append(dict(rule.output_as_dict(task)))
        except Exception as exc:
            raise ProcedureError(rule.id, f"规则无法求值 (the rule does not evaluate): {_describe(exc)}") from exc
    return hits


#: Chinese for SpiffWorkflow's parser messages (by how they begin): the analyst reads
#: these; the library's English follows in the parentheses.
_LIBRARY_GLOSSES = (
    ("Non-default exclusive outgoing sequence flow without condition", "排他网关的非默认出口连线缺少条件"),
    ("Multiple outgoing flows are not supported", "此类任务不能有多条出口连线，请改用网关"),
    ("No start event found", "流程没有开始事件"),
    ("Exactly one start event is required", "子流程须恰有一个开始事件"),
    ("A SubWorkflow Must contain an End event", "子流程须有结束事件"),
    ("Invalid Script Task", "脚本任务没有脚本"),
    ("Time Specification Error", "定时器表达式有误"),
    ("Unknown Time Specification", "定时器须为 timeDate、timeDuration 或 timeCycle 之一"),
    ("Could not find messageRef", "消息事件引用了未定义的消息"),
    ("Message identifier is missing", "消息没有标识"),
    ("Signal identifier is missing", "信号没有标识"),
    ("Error identifier is missing", "错误没有标识"),
    ("Escalation identifier is missing", "升级没有标识"),
    ("Correlation", "消息关联定义不完整"),
    ("Expected a", "事件引用的定义类型不对"),
    ("Expected an", "事件引用的定义类型不对"),
    ("A multiinstance task must specify", "多实例任务须且只须给出实例数或输入集合之一"),
    ("The loop input data reference is missing", "多实例的输入集合未在输入输出规范中声明"),
    ("The loop output data reference is missing", "多实例的输出集合未在输入输出规范中声明"),
    ("A loopMaximum or loopCondition must be specified", "循环任务须给出最大次数或循环条件"),
    ("Cannot resolve data", "数据关联引用了不存在的数据对象"),
    ("Conditional event definition with missing condition", "条件事件缺少条件"),
    ("Cancel Events may only be used with transactions", "取消事件只能用于事务子流程"),
    ("Ad hoc subprocesses", "不支持此种自由子流程"),
    ("Sequential ordering for ad hoc", "不支持顺序执行的自由子流程"),
    ("Duplicate process ID", "流程标识重复"),
    ("When looking for a task spec, we found two items", "元素标识重复"),
    ("There is no support implemented for this task type", "不支持此类元素"),
    ("A Service Task must have an operator", "不支持服务任务"),
    ("Data Store", "不支持数据存储"),
    ("Multiple decision tables are not current supported", "一个决策只能有一张决策表"),
    ("No decisions found", "DMN 文件中没有决策"),
    ("Unknown type in decision table", "决策表中有无法识别的元素"),
    ("Malformed Output Expression", "输出单元格不是合法的表达式"),
    ("No DMN Diagram available", "引用的决策不存在"),
    ("No \"", "缺少被引用的元素"),
    ("The process '", "被调用的流程不存在"),
    ("Process ", "流程不可执行"),
)


def _library_fault(exc: BaseException) -> bool:
    """Whether the parser failed on its own (a Python error, possibly wrapped in one of
    its exceptions: its task parser re-raises any error as a ``ValidationException`` of
    the error's repr) rather than telling what is wrong with the diagram."""
    if not isinstance(exc, SpiffWorkflowException):
        return True
    inner = exc.__cause__ or exc.__context__
    return inner is not None and not isinstance(inner, SpiffWorkflowException)


def _bilingual_library_error(exc: BaseException) -> str:
    """A SpiffWorkflow parser/validation error as "中文 (English)": a Chinese gloss for the
    messages it is known to give, its English (with its "Did you mean" notes) kept after
    it because it names the element or value concerned. A library fault (a TypeError in
    the parser) is not the analyst's to read: a plain message replaces it."""
    if _library_fault(exc):
        return "流程解析器无法读取此元素，请检查其定义与引用 (the diagram parser could not read this element: check its definition and references)"
    english = _describe(exc).strip().rstrip(".").strip()
    gloss = next((zh for prefix, zh in _LIBRARY_GLOSSES if english.startswith(prefix)), "流程引擎不接受此元素")
    return f"{gloss} ({english})"


def _decision_outputs(dmn: Sequence[bytes]) -> set[str]:
    """The output names of every decision given: what a business rule task puts in the data."""
    names: set[str] = set()
    for document in dmn:
        for decision_id in dmn_decision_ids(document):
            try:  # a dotted output ("result.level") is nested by SpiffWorkflow: the data holds "result"
                names.update(name.split(".")[0] for name in dmn_output_names(document, decision_id))
            except DiagramRefused:
                continue  # refused on its own by _add_dmn
    return names
