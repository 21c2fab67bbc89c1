"""Writers beside the workflow racing a workflow step, on PostgreSQL row locks: each test
forces one interleaving the review found (one side holds its locks and waits until the
other is blocked on a lock, or done) and checks that neither side deadlocks and that the
rows end consistent. A lapsed commitment against a conclusion or an upload, an
intermediary commissioned against a conclusion, a re-coded project's closing against the
sweep's lights, a suspension against a conclusion, a corrected calendar against a step.

The interleaving is forced through functions present in every version of the engine
(``runtime._load``, ``runtime.lock_instance``, ``runtime.lock_for_steps``, ``clocks.stop``),
so each test also shows the race on code without the lock order."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from bench.engine import ANSWERS  # the shortest answer to each user task of the demo flow
from engine import calendar, clocks, guides, holds, intermediaries, materials, runtime
from engine import sweep as sweep_module
from engine.access import Actor
from engine.db import unit_of_work
from engine.errors import Conflict
from engine.models import (Alert, Clock, Delivery, Hold, IntermediaryService, MaterialCommitment, Notice, ProcessInstance,
                           Project, ProjectMatter, Task, User)
from engine.sweep import sweep
from tests.integration.helpers import declaration, waits_for_a_lock

#: 企业投资项目备案 (drc) and 用地预审 (land): the land matter's guide lets 土地权属 be
#: supplied later (容缺).
LAND_PROJECT = {"regime": "filing", "industry_code": "13", "building_works": False, "new_land_use": True}
LAND = "land_pre_review"
GAP = "land_ownership"
#: A correction of the year already loaded: four working days become holidays.
CORRECTED_YEAR = "year 2026\n2026-01-01 holiday 元旦\n2026-03-03..2026-03-06 holiday 演示更正\n"


@pytest.fixture
def pg(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("lock order is PostgreSQL's; SQLite serializes writers at BEGIN")


# --- the flow, through the engine -------------------------------------------------------------------

def actor(platform, username: str) -> Actor:
    with platform.session_factory() as s:
        return Actor.of(s.scalar(select(User).where(User.username == username)))


def declare(platform, *, gap_deadline=None) -> str:
    """Declare LAND_PROJECT and upload every required material; with ``gap_deadline``, 土地权属
    is not uploaded but committed (容缺) to be supplied by then."""
    applicant, now = actor(platform, "applicant"), platform.clock.now()
    with unit_of_work(platform.session_factory) as s:
        project = runtime.declare(s, actor=applicant, scope=platform.scope, now=now, fields=declaration(**LAND_PROJECT))
        for pm in s.scalars(select(ProjectMatter).where(ProjectMatter.project_id == project.id)):
            for item in guides.for_project_matter(s, pm).content["materials"]:
                if item["required"] and not (gap_deadline and (pm.matter_code, item["code"]) == (LAND, GAP)):
                    materials.upload(s, actor=applicant, project=project, matter_code=pm.matter_code, material=item["code"],
                                     filename=f"{item['name']}.pdf", data=b"%PDF-1.4\n" + item["code"].encode(), now=now)
        if gap_deadline:
            materials.commit(s, actor=applicant, project=project, matter_code=LAND, material=GAP,
                             commitment="承诺在期限内补交土地权属证明", deadline=gap_deadline, now=now)
        return project.project_code


def ready(platform, code) -> list[Task]:
    with platform.session_factory() as s:
        return list(s.scalars(select(Task).where(Task.project_code == code, Task.status == "ready",
                                                 Task.read_only.is_(False)).order_by(Task.created_at, Task.id)))


def complete(platform, task: Task) -> None:
    officer = next(a for a in (actor(platform, u) for u in ("window", "drc", "land")) if a.department_code == task.department_code)
    with unit_of_work(platform.session_factory) as s:
        runtime.complete_task(s, actor=officer, task_id=task.id, data=ANSWERS[task.element_id](dict(task.context)),
                              version=task.version, now=platform.clock.now())


def drive_to(platform, code, name: str, matter_code: str = LAND) -> Task:
    """Complete ready tasks (sweeping when none is ready) until the matter's ``name`` task is ready."""
    for _ in range(50):
        tasks = ready(platform, code)
        hit = [t for t in tasks if t.element_id == name and t.matter_code == matter_code]
        if hit:
            return hit[0]
        if tasks:
            complete(platform, tasks[0])
        else:
            assert any(sweep(platform).fired.values()), "the flow stopped before the task"
    raise AssertionError(f"{name} never became ready")


def land_matter(s, code) -> ProjectMatter:
    return s.scalar(select(ProjectMatter).where(ProjectMatter.matter_code == LAND)
                    .join(Project, Project.id == ProjectMatter.project_id).where(Project.project_code == code))


# --- forcing an interleaving --------------------------------------------------------------------------

class Race:
    """Two named threads. ``first`` runs alone until it calls ``hold()`` (with its locks
    taken); then ``second`` starts, and ``hold()`` returns once ``second`` waits for a
    row lock or has finished, so ``first`` goes on into whatever ``second`` holds."""

    def __init__(self, platform):
        self.platform = platform
        self.holding, self.second_done = threading.Event(), threading.Event()
        self.outcome: dict[str, tuple[str, object]] = {}
        self.second_waited = False  # seen waiting for a row lock while the first held on

    def hold(self) -> None:
        if self.holding.is_set():
            return
        self.holding.set()
        deadline = time.monotonic() + 15
        with self.platform.session_factory() as watcher:
            while not self.second_done.is_set():
                waiting = watcher.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                              "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"))
                watcher.rollback()
                if waiting:
                    self.second_waited = True
                    return
                assert time.monotonic() < deadline, "the second side neither waited for a lock nor finished"
                time.sleep(0.005)

    def run(self, first: tuple[str, Callable], second: tuple[str, Callable]) -> dict[str, tuple[str, object]]:
        def wrap(name, fn, done=None):
            try:
                self.outcome[name] = ("ok", fn())
            except BaseException as exc:  # noqa: BLE001 - asserted by the caller
                self.outcome[name] = ("error", exc)
            finally:
                if done is not None:
                    done.set()

        def later():
            self.holding.wait(15)
            return second[1]()

        threads = [threading.Thread(target=wrap, args=first, name=first[0]),
                   threading.Thread(target=wrap, args=(second[0], later, self.second_done), name=second[0])]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads), "a side never returned"
        assert self.holding.is_set(), "the first side never reached the point it holds at"
        return self.outcome


def in_thread(name: str) -> bool:
    return threading.current_thread().name == name


def hold_at_load(monkeypatch, race: Race, thread: str) -> None:
    """The ``thread`` side stops as it loads its instance's state, its instance, clocks
    and tasks locked, until the race lets it go."""
    load = runtime._load

    def held(row):
        if in_thread(thread):
            race.hold()
        return load(row)

    monkeypatch.setattr(runtime, "_load", held)


def sweep_step(step, platform) -> dict:
    report = sweep_module.SweepReport(at=platform.clock.now().isoformat())
    step(platform, platform.clock.now(), report)
    return report.fired


def failures(outcome: dict) -> dict:
    return {name: repr(value) for name, (status, value) in outcome.items() if status == "error"}


def sweep_errors(caplog) -> list[str]:
    """What the sweep caught and logged (it swallows a failed step to retry it next time)."""
    return [r.getMessage() + repr(r.exc_info[1] if r.exc_info else "") for r in caplog.records
            if r.name == "engine.sweep" and r.levelno >= logging.ERROR]


# --- the races ----------------------------------------------------------------------------------------

def test_a_commitment_lapsing_while_the_matter_concludes_leaves_the_conclusion(pg, platform, clock, monkeypatch, caplog):
    """D1: the sweep finds a commitment past its deadline while the department concludes the
    matter. Read before the matter's lock, the matter still looks 'handling', and the sweep
    would terminate a matter already approved: the decision and its delivery overwritten by
    'terminated', the instance cancelled under a notice the applicant already holds."""
    deadline = clock.now() + timedelta(days=1)
    code = declare(platform, gap_deadline=deadline)
    decision = drive_to(platform, code, "decision")
    clock.set(deadline + timedelta(hours=1))
    race = Race(platform)
    hold_at_load(monkeypatch, race, "officer")

    caplog.set_level(logging.ERROR, logger="engine.sweep")
    outcome = race.run(("officer", lambda: complete(platform, decision)),
                       ("sweeper", lambda: sweep_step(sweep_module._end_lapsed_commitments, platform)))
    assert race.second_waited, "the sweep never waited for the other side's locks: the race was not forced"
    assert not failures(outcome) and not sweep_errors(caplog), (failures(outcome), sweep_errors(caplog))
    with platform.session_factory() as s:
        pm = land_matter(s, code)
        instance = s.get(ProcessInstance, pm.instance_id)
        assert (pm.status, pm.result.get("decision"), pm.result.get("document_number")) == (
            "concluded", "approved", ANSWERS["decision"]({})["document_number"])
        assert instance.status == "completed"
        deliveries = [d.payload for d in s.scalars(select(Delivery).where(Delivery.target_instance_id == instance.parent_id))
                      if d.payload.get("matter_code") == LAND]
        assert [d["decision"] for d in deliveries] == ["approved"]
        assert s.scalar(select(func.count()).select_from(Notice).where(
            Notice.project_code == code, Notice.matter_code == LAND, Notice.kind == "decision")) == 1


def test_a_commitment_lapsing_while_its_material_is_uploaded_ends_one_way(pg, platform, clock, monkeypatch, caplog):
    """D2: the applicant uploads the committed material just as the sweep lapses the
    commitment. The upload holds the matter's instance, then meets the deadline already
    passed (it lapses the commitment itself, as the sweep would have); a sweep that
    claims the commitment first and then asks for the instance closes a deadlock. No
    deadlock and no error: the late upload is refused (the matter has ended), and the
    commitment ends lapsed with the matter terminated, once."""
    deadline = clock.now() + timedelta(days=1)
    code = declare(platform, gap_deadline=deadline)
    drive_to(platform, code, "handling")
    clock.set(deadline + timedelta(minutes=5))
    race, lock_instance = Race(platform), runtime.lock_instance

    def held_lock_instance(session, instance_id):
        next_timer_at = lock_instance(session, instance_id)
        if in_thread("upload"):
            race.hold()  # the upload holds the matter's instance and its clocks
        return next_timer_at

    def upload():
        applicant = actor(platform, "applicant")
        with unit_of_work(platform.session_factory) as s:
            project = s.scalar(select(Project).where(Project.project_code == code))
            materials.upload(s, actor=applicant, project=project, matter_code=LAND, material=GAP, filename="土地权属证明.pdf",
                             data=b"%PDF-1.4\nlate", now=clock.now())

    monkeypatch.setattr(runtime, "lock_instance", held_lock_instance)
    caplog.set_level(logging.ERROR, logger="engine.sweep")
    outcome = race.run(("upload", upload),
                       ("sweeper", lambda: sweep_step(sweep_module._end_lapsed_commitments, platform)))
    assert race.second_waited, "the sweep never waited for the other side's locks: the race was not forced"
    assert failures(outcome) == {"upload": repr(Conflict("事项已结束，不能再提交材料 (the matter has ended: terminated)"))}
    assert not sweep_errors(caplog), sweep_errors(caplog)
    with platform.session_factory() as s:
        [commitment] = s.scalars(select(MaterialCommitment).where(MaterialCommitment.project_code == code)).all()
        pm = land_matter(s, code)
        instance = s.get(ProcessInstance, pm.instance_id)
        assert (commitment.state, pm.status, instance.status) == ("lapsed", "terminated", "cancelled")


def test_an_intermediary_commissioned_while_the_matter_concludes_is_refused(pg, platform, clock, monkeypatch):
    """D3: the department commissions an intermediary (委托中介) while another officer
    concludes the matter. Checked before the matter's lock, the status still says
    'handling': the commission would pause the clocks of a concluded matter with a hold
    nothing ever releases (the conclusion already ended every hold)."""
    code = declare(platform)
    decision = drive_to(platform, code, "decision")
    race = Race(platform)
    hold_at_load(monkeypatch, race, "officer")

    def commission():
        land = actor(platform, "land")
        with unit_of_work(platform.session_factory) as s:
            project = s.scalar(select(Project).where(Project.project_code == code))
            return intermediaries.commission(s, actor=land, project=project, matter_code=LAND, name="某测绘有限公司",
                                             qualification="乙级测绘资质", service="勘测定界",
                                             deadline=(clock.now() + timedelta(days=10)).date(), now=clock.now()).status

    outcome = race.run(("officer", lambda: complete(platform, decision)), ("commission", commission))
    assert race.second_waited, "the commission never waited for the officer's locks: the race was not forced"
    assert outcome["officer"][0] == "ok", failures(outcome)
    status, answer = outcome["commission"]
    assert status == "error" and isinstance(answer, Conflict), outcome["commission"]
    with platform.session_factory() as s:
        pm = land_matter(s, code)
        assert pm.status == "concluded"
        assert s.scalar(select(func.count()).select_from(IntermediaryService).where(IntermediaryService.project_code == code)) == 0
        assert s.scalars(select(Hold).where(Hold.project_id == pm.project_id, Hold.ended_at.is_(None))).all() == []


def test_a_project_closed_while_the_sweep_lights_its_clocks(pg, platform, clock, monkeypatch, caplog):
    """D4: a re-coded project is closed (its instances cancelled) while the sweep turns its
    overdue dispatch clock yellow and red. Closing wrote the tasks before the clocks and the
    lights write the clocks before the tasks: a deadlock, one side rolled back. Both must
    succeed, and each threshold be recorded once."""
    code = declare(platform)
    clock.advance(days=4)  # the dispatch clock (1 working day) is past yellow and red
    race, stop = Race(platform), clocks.stop

    def held_stop(session, clock_row, *, now):
        if in_thread("close"):
            race.hold()  # the close has written (or locked) the instance's tasks
        return stop(session, clock_row, now=now)

    def close():
        with unit_of_work(platform.session_factory) as s:
            project = s.scalar(select(Project).where(Project.project_code == code))
            runtime.close_project(s, project, reason="项目重新赋码 (re-coded)", now=clock.now(), actor="drc")

    monkeypatch.setattr(clocks, "stop", held_stop)
    caplog.set_level(logging.ERROR, logger="engine.sweep")
    outcome = race.run(("close", close), ("lights", lambda: sweep_step(sweep_module._change_lights, platform)))
    assert not failures(outcome) and not sweep_errors(caplog), (failures(outcome), sweep_errors(caplog))
    with platform.session_factory() as s:
        dispatch = s.scalar(select(Clock).where(Clock.project_code == code, Clock.kind == "dispatch"))
        assert (dispatch.state, dispatch.light) == ("stopped", "red")
        lights = s.scalars(select(Alert.light).where(Alert.clock_id == dispatch.id).order_by(Alert.id)).all()
        assert lights == ["yellow", "red"]
        assert s.scalars(select(Task.status).where(Task.project_code == code)).all() == ["cancelled"]
        assert set(s.scalars(select(ProcessInstance.status).join(Project, Project.id == ProcessInstance.project_id)
                             .where(Project.project_code == code))) == {"cancelled"}


def test_a_project_suspended_while_a_matter_concludes(pg, platform, clock, monkeypatch):
    """D5: the project is suspended (every instance locked, the master first) while a
    department concludes its matter, whose delivery to the master takes a key-share lock
    on the master row: master then matter against matter then master, a deadlock that
    loses the suspension or the conclusion. Both must succeed."""
    code = declare(platform)
    decision = drive_to(platform, code, "decision")
    race = Race(platform)
    hold_at_load(monkeypatch, race, "officer")

    def suspend():
        with unit_of_work(platform.session_factory) as s:
            project = s.scalar(select(Project).where(Project.project_code == code))
            return holds.hold_project(s, project.id, "suspension", now=clock.now())

    outcome = race.run(("officer", lambda: complete(platform, decision)), ("suspend", suspend))
    assert race.second_waited, "the suspension never waited for the officer's locks: the race was not forced"
    assert not failures(outcome), failures(outcome)
    with platform.session_factory() as s:
        pm = land_matter(s, code)
        assert (pm.status, s.get(ProcessInstance, pm.instance_id).status) == ("concluded", "completed")
        master = s.get(ProcessInstance, pm.instance_id).parent_id
        assert [d.payload["decision"] for d in s.scalars(select(Delivery).where(Delivery.target_instance_id == master))
                if d.payload.get("matter_code") == LAND] == ["approved"]
        suspension = s.scalars(select(Hold).where(Hold.project_id == pm.project_id, Hold.reason == "suspension",
                                                  Hold.ended_at.is_(None))).all()
        assert len(suspension) == 1


def test_a_calendar_corrected_while_a_matter_steps(pg, platform, clock, monkeypatch):
    """D6: the operator corrects the working calendar (every open clock recomputed, every
    timer re-armed) while an officer accepts a matter. Writing the clocks before the
    instances, against a step's instance then clocks, deadlocks; both must succeed and
    every open clock, including those the step started, must count on the corrected year."""
    code = declare(platform)
    acceptance = drive_to(platform, code, "acceptance")
    race, lock_for_steps = Race(platform), runtime.lock_for_steps

    def held_lock_for_steps(session, *ids):
        if in_thread("officer"):
            race.hold()  # the officer holds the instance, not yet its clocks
        return lock_for_steps(session, *ids)

    def correct():
        with unit_of_work(platform.session_factory) as s:
            calendar.load_year_text(s, CORRECTED_YEAR, now=clock.now(), actor="operator")
            return sweep_module.calendar_loaded(s, clock.now())

    monkeypatch.setattr(runtime, "lock_for_steps", held_lock_for_steps)
    outcome = race.run(("officer", lambda: complete(platform, acceptance)), ("calendar", correct))
    assert race.second_waited, "the calendar never waited for the officer's locks: the race was not forced"
    assert not failures(outcome), failures(outcome)
    assert [t.element_id for t in ready(platform, code) if t.matter_code == LAND] == ["handling"]
    assert every_open_clock_counts_on_the_current_calendar(platform)


def every_open_clock_counts_on_the_current_calendar(platform) -> bool:
    with platform.session_factory() as s:
        year = calendar.current(s)
        open_clocks = s.scalars(select(Clock).where(Clock.state != "stopped")).all()
        assert open_clocks
        for row in open_clocks:
            stored = (row.yellow_at, row.due_at, row.next_check_at, row.calendar_revision)
            clocks.recompute(row, year)
            assert (row.yellow_at, row.due_at, row.next_check_at, row.calendar_revision) == stored, (row.kind, row.matter_code)
        s.rollback()
    return True


def test_a_declaration_in_flight_while_a_year_is_loaded_counts_on_that_year_after_the_next_sweep(pg, platform, clock,
                                                                                                 monkeypatch):
    """A declaration computes its first clock, then the operator corrects the year and
    commits before it: the load's recomputation cannot see a project not yet committed.
    The clock keeps the revision it was computed on, and the next sweep computes it
    again on the corrected year (the due instant moves past the new holidays)."""
    race, start = Race(platform), clocks.start

    def held_start(session, cal, **kw):
        started = start(session, cal, **kw)
        if in_thread("declare"):
            race.hold()  # the clock is computed, the declaration not yet committed
        return started

    def correct():
        with unit_of_work(platform.session_factory) as s:
            calendar.load_year_text(s, CORRECTED_YEAR, now=clock.now(), actor="operator")
            return sweep_module.calendar_loaded(s, clock.now())

    monkeypatch.setattr(clocks, "start", held_start)
    outcome = race.run(("declare", lambda: declare(platform)), ("calendar", correct))
    assert not failures(outcome), failures(outcome)
    with platform.session_factory() as s:
        dispatch = s.scalar(select(Clock).where(Clock.project_code == outcome["declare"][1], Clock.kind == "dispatch"))
        assert dispatch.calendar_revision != calendar.current(s).revision  # computed on the year the load replaced
        assert dispatch.due_at == clock.now() + timedelta(days=1)  # Tuesday 3 March, a holiday since the correction
    assert sweep(platform).fired.get("clocks_recomputed") == 1
    assert every_open_clock_counts_on_the_current_calendar(platform)
    with platform.session_factory() as s:
        assert s.get(Clock, dispatch.id).due_at == clock.now() + timedelta(days=7)  # Monday 9 March


def test_a_project_closed_while_a_reply_launches_a_matter_closes_that_matter_too(pg, platform, clock, monkeypatch):
    """The last department reply holds the master and launches the matters while the
    project is closed (re-coded). The close locks the master first, in a statement of its
    own, so the instances it then locks include the launched ones: no matter is left
    running, with ready tasks, under a closed matter row."""
    code = declare(platform)
    drive_to(platform, code, "department_reply", matter_code=None)
    replies = [t for t in ready(platform, code) if t.element_id == "department_reply"]
    for t in replies:
        if t.department_code != "land":
            complete(platform, t)
    [reply] = [t for t in replies if t.department_code == "land"]
    race = Race(platform)
    hold_at_load(monkeypatch, race, "launch")

    def close():
        with unit_of_work(platform.session_factory) as s:
            project = s.scalar(select(Project).where(Project.project_code == code))
            runtime.close_project(s, project, reason="项目重新赋码", now=clock.now(), actor="drc")

    outcome = race.run(("launch", lambda: complete(platform, reply)), ("close", close))
    assert race.second_waited and not failures(outcome), failures(outcome)
    with platform.session_factory() as s:
        matters = s.execute(select(ProjectMatter.matter_code, ProjectMatter.status, ProcessInstance.status).join(
            ProcessInstance, ProcessInstance.id == ProjectMatter.instance_id, isouter=True).join(
            Project, Project.id == ProjectMatter.project_id).where(Project.project_code == code)).all()
        ready_tasks = s.scalars(select(Task.element_id).where(Task.project_code == code, Task.status == "ready")).all()
    assert {status for _, status, _ in matters} == {"closed"}, matters
    assert all(instance in (None, "cancelled") for _, _, instance in matters) and not ready_tasks, (matters, ready_tasks)


def test_a_calendar_loaded_while_matters_launch_locks_their_instances_before_their_clocks(pg, platform, clock,
                                                                                          monkeypatch):
    """The departments reply, launching the matters and their first clocks, while the
    calendar load is about to lock the instances with open clocks. The load locks those
    instances, new ones included, in one statement in id order before it takes any
    clock, so an officer stepping a new matter (instance, then clocks) waits for it
    instead of deadlocking. The officer may then be told the task changed (its due
    instant moved): that is a 409, not a failure."""
    code = declare(platform)
    drive_to(platform, code, "department_reply", matter_code=None)
    replies = [t for t in ready(platform, code) if t.element_id == "department_reply"]
    race = Race(platform)
    instance_lock, rearm = runtime.instance_lock, runtime.rearm
    launched: list[int] = []

    def hooked_instance_lock(query):
        if in_thread("calendar") and not launched:
            launched.append(1)
            for t in replies:  # the departments reply meanwhile: the matters launch
                complete(platform, t)
        return instance_lock(query)

    def hooked_rearm(session, row, *, now):
        if in_thread("calendar"):
            race.hold()  # the load holds every open clock; the officer steps now
        return rearm(session, row, now=now)

    def load_year():
        with unit_of_work(platform.session_factory) as s:
            calendar.load_year_text(s, CORRECTED_YEAR, now=clock.now(), actor="operator")
            return sweep_module.calendar_loaded(s, clock.now())

    def officer():
        complete(platform, [t for t in ready(platform, code) if t.matter_code == LAND][0])

    monkeypatch.setattr(runtime, "instance_lock", hooked_instance_lock)
    monkeypatch.setattr(runtime, "rearm", hooked_rearm)
    outcome = race.run(("calendar", load_year), ("officer", officer))
    assert race.second_waited
    assert outcome["calendar"][0] == "ok", failures(outcome)
    status, value = outcome["officer"]
    assert status == "ok" or isinstance(value, Conflict), failures(outcome)
    with platform.session_factory() as s:
        [land] = s.scalars(select(ProcessInstance).join(Project, Project.id == ProcessInstance.project_id).where(
            Project.project_code == code, ProcessInstance.matter_code == LAND)).all()
        assert land.status == "running"


def test_a_suspension_waits_for_the_master_before_it_writes_the_project(pg, platform, clock):
    """A master step holds its instance and then writes the project row (dispatched,
    concluded). A suspension therefore locks the project's instances before it writes the
    project row: while a step holds the master, the suspension waits holding nothing, and
    the project row stays free for the step."""
    from engine import changes

    code = declare(platform)
    holder = platform.session_factory()
    holder.execute(runtime.instance_lock(select(ProcessInstance.id).join(Project, Project.id == ProcessInstance.project_id)
                                         .where(Project.project_code == code, ProcessInstance.kind == "master")))
    applicant = actor(platform, "applicant")
    outcome: dict = {}

    def suspend():
        try:
            with unit_of_work(platform.session_factory) as s:
                project = s.scalar(select(Project).where(Project.project_code == code))
                changes.request_change(s, actor=applicant, scope=platform.scope, now=clock.now(), project=project,
                                       kind="suspension", reason="资金未到位，暂停实施", changes={})
            outcome["suspension"] = "ok"
        except BaseException as exc:  # noqa: BLE001 - asserted below
            outcome["suspension"] = repr(exc)

    waiting = threading.Thread(target=suspend, name="suspension")
    waiting.start()
    try:
        with platform.session_factory() as watcher:
            assert waits_for_a_lock(watcher, "%process_instances%FOR NO KEY UPDATE%"), \
                "the suspension never waited for the master"
            free = watcher.execute(text("SELECT id FROM projects WHERE project_code = :code FOR NO KEY UPDATE NOWAIT"),
                                   {"code": code}).scalar()
            assert free is not None  # the waiting suspension holds no lock on the project row
            watcher.rollback()
    finally:
        holder.rollback()
        holder.close()
        waiting.join(30)
    assert outcome == {"suspension": "ok"}
    with platform.session_factory() as s:
        assert s.scalar(select(Project.suspended).where(Project.project_code == code)) is True
