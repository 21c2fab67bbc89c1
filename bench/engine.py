"""Engine throughput: the whole demo flow through the service layer on SQLite and on
PostgreSQL, beside the same flow run purely in memory by SpiffWorkflow, and the task
list at 100,000 open tasks.

    .venv/bin/python -m bench.engine [--projects N] [--runs 3] [--tasks 100000]

Each flow figure is the median of ``--runs`` runs (each on a fresh database), printed
with the range; the ratios are of the medians.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, select

from bench.common import START, median, percentile, postgres, postgres_databases, prepare, timed
from engine import guides, materials, notices, pdf, procedures, runtime, spiff_adapter
from engine.access import Actor
from engine.clock import ManualClock
from engine.db import unit_of_work
from engine.models import Project, ProjectMatter, Task, User
from engine.platform import Platform
from engine.projects import PlatformScope
from engine.runtime import FAR_FUTURE
from engine.settings import DEFAULT_PLATFORM_NAME
from engine.sweep import sweep
from engine.workcal import WorkCalendar

DECLARATION = {
    "name": "基准测试项目", "regime": "filing", "region_code": "510411", "industry_code": "44", "location": "仁和区",
    "investment": "1200", "construction_content": "厂房", "start_year": 2026, "end_year": 2027, "classified": False,
    "new_land_use": True, "environment_sensitive": True, "water_soil_impact": False, "building_works": True,
}
#: What each user task is answered with (the shortest way to a concluded matter).
ANSWERS = {
    "window_review": lambda t: {"window_decision": "dispatch", "departments": t["departments"]},
    "department_reply": lambda t: {"reply_outcome": "accepted", "reply_comment": "受理"},
    "filing_check": lambda t: {"filing_decision": "file", "filing_comment": "符合", "document_number": "备〔2026〕1号",
                               "document_date": "2026-03-02"},
    "pre_check": lambda t: {"precheck_result": "pass", "code_verified": True, "within_competence": True},
    "acceptance": lambda t: {"acceptance_decision": "accept"},
    "handling": lambda t: {"handling_action": "decide", "handling_opinion": "同意"},
    "decision": lambda t: {"decision": "approve", "document_number": "批〔2026〕1号", "document_title": "批复",
                           "document_date": "2026-03-02", "main_content": "同意"},
}


def _actors(factory) -> dict[str, Actor]:
    with factory() as s:
        return {u.username: Actor.of(u) for u in s.scalars(select(User))}


def supply_materials(session, applicant: Actor, project: Project, now) -> None:
    """The project unit uploads every required material of its matters (acceptance needs them)."""
    for pm in session.scalars(select(ProjectMatter).where(ProjectMatter.project_id == project.id)):
        for item in guides.for_project_matter(session, pm).content["materials"]:
            if item["required"]:
                materials.upload(session, actor=applicant, project=project, matter_code=pm.matter_code, material=item["code"],
                                 filename=f"{item['name']}.pdf", data=b"%PDF-1.4\n" + item["code"].encode(), now=now)


def service_flows(factory, actors: dict[str, Actor], platform: Platform, n: int) -> None:
    """n projects from declaration to conclusion notice through engine.runtime, in flight
    together as on a platform: each round completes every ready task of every project
    (a transaction each), and when none is ready one sweep delivers the concluded
    matters of all of them to their master processes."""
    now = platform.clock.now()
    codes = set()
    for _ in range(n):
        with unit_of_work(factory) as s:
            project = runtime.declare(s, actor=actors["applicant"], scope=platform.scope, now=now, fields=dict(DECLARATION))
            codes.add(project.project_code)
            supply_materials(s, actors["applicant"], project, now)
    by_department = {a.department_code: a for a in actors.values() if a.has("officer", "window_officer")}
    while codes:
        with factory() as s:
            ready = s.scalars(select(Task).where(Task.project_code.in_(codes), Task.status == "ready",
                                                 Task.read_only.is_(False))).all()
            work = [(t.id, t.version, t.element_id, t.department_code, dict(t.context)) for t in ready]
        if not work:
            report = sweep(platform)
            with factory() as s:
                concluded = set(s.scalars(select(Project.project_code).where(
                    Project.project_code.in_(codes), Project.status == "concluded")))
            if not concluded and not any(report.fired.values()):
                raise RuntimeError(f"no task ready and nothing to sweep: {sorted(codes)}")
            codes -= concluded
            continue
        for task_id, version, element, department, context in work:
            with unit_of_work(factory) as s:
                runtime.complete_task(s, actor=by_department[department], task_id=task_id, data=ANSWERS[element](context),
                                      version=version, now=now)


def spiff_only_functions(calendar: WorkCalendar, now):
    """The platform functions doing nothing (SpiffWorkflow alone, the lower bound)."""
    due = calendar.add_working_days(now, 3).instant.isoformat()
    return {
        "working_days": lambda n: calendar.add_working_days(now, float(n)).instant.isoformat(),
        "clock_due": lambda kind: due, "clock_yellow": lambda kind: due,
        "start_clock": lambda kind, working_days, from_clock=None: None, "stop_clock": lambda kind: None,
        "pause_clock": lambda kind, reason: None, "resume_clock": lambda kind: None, "issue_notice": lambda kind: kind,
        "record_light": lambda kind: "green", "promised_days": lambda: 10,
    }


def memory_functions(calendar: WorkCalendar, now, project_code: str, promised: dict[str, int]):
    """The platform functions doing in memory the work that is not the database's: a
    clock's yellow and due instants in working time, a notice rendered to its PDF. The
    service layer does the same and stores it; the difference is the database's."""
    running: dict[str, tuple[str, str]] = {}  # clock kind → (yellow, due) of the latest start

    def functions(scope: spiff_adapter.ScriptScope):

        def start_clock(kind, working_days, from_clock=None):
            days = float(working_days)
            running[kind] = (calendar.add_working_days(now, days * 0.8).instant.isoformat(),
                             calendar.add_working_days(now, days).instant.isoformat())

        def issue_notice(kind):
            particulars = {k: scope.data.get(k) for k in notices.PARTICULARS[kind]}
            return pdf.render(pdf.NoticeDocument(
                kind=kind, title=notices.title(kind, scope.data), number=f"{project_code}-{kind}", project_code=project_code,
                project_name=DECLARATION["name"], unit_name="基准测试单位", department_name=DEFAULT_PLATFORM_NAME, issued_at=now,
                particulars=particulars, matter_code=scope.data.get("matter_code"), matter_name=scope.data.get("matter_code"),
            ))

        return {
            "working_days": lambda n: calendar.add_working_days(now, float(n)).instant.isoformat(),
            "clock_due": lambda kind: running.get(kind, ("", FAR_FUTURE))[1],
            "clock_yellow": lambda kind: running.get(kind, (FAR_FUTURE, ""))[0],
            "start_clock": start_clock, "stop_clock": lambda kind: running.pop(kind, None),
            "pause_clock": lambda kind, reason: None, "resume_clock": lambda kind: None, "issue_notice": issue_notice,
            "record_light": lambda kind: "green", "promised_days": lambda: promised[scope.data["matter_code"]],
        }

    return functions


def memory_flow(specs: dict[str, spiff_adapter.LoadedSpec], functions, now, data: dict) -> None:
    """The same flow purely in SpiffWorkflow: master and matters in memory, state dumped
    and restored at every step as the platform does, but no database."""
    master = spiff_adapter.start(specs["project_master"], data, now=now, functions=functions)
    while not spiff_adapter.is_completed(master):
        for task in spiff_adapter.ready_user_tasks(master):
            answer = ANSWERS[task.element_id]({**task.data})
            master = spiff_adapter.restore(specs["project_master"], spiff_adapter.dump(master))
            spiff_adapter.complete_user_task(master, task.id, answer, now=now, functions=functions)
        for stage in spiff_adapter.waiting_receive_tasks(master):
            spec = specs[f"matter_{stage.data['matter_code']}"]
            matter = spiff_adapter.start(spec, {"project_code": data["project_code"], "matter_code": stage.data["matter_code"]},
                                         now=now, functions=functions)
            while not spiff_adapter.is_completed(matter):
                for task in spiff_adapter.ready_user_tasks(matter):
                    matter = spiff_adapter.restore(spec, spiff_adapter.dump(matter))
                    spiff_adapter.complete_user_task(matter, task.id, ANSWERS[task.element_id](task.data), now=now, functions=functions)
            spiff_adapter.complete_receive_task(master, stage.id, spiff_adapter.instance_data(matter)["matter_result"],
                                                now=now, functions=functions)


def bench_flows(url: str, n: int) -> float:
    engine, factory = prepare(url)
    platform = Platform(factory, ManualClock(START), PlatformScope("510411"), "bench-secret" * 4)
    actors = _actors(factory)
    service_flows(factory, actors, platform, 1)  # warm caches
    t0 = time.perf_counter()
    service_flows(factory, actors, platform, n)
    elapsed = time.perf_counter() - t0
    engine.dispose()
    return n / elapsed


def bench_memory(url: str, n: int) -> tuple[float, float]:
    """Projects per second in memory: SpiffWorkflow alone, and with the platform's
    non-database work (working-time arithmetic, notice PDFs)."""
    engine, factory = prepare(url)
    with factory() as s:
        specs = {pid: procedures.SPECS.get(procedures.latest(s, pid)) for pid in procedures._latest_xml(s, "bpmn")}
        notice = runtime.matters_notice(s, Project(**{k: v for k, v in DECLARATION.items() if k not in ("classified",)},
                                                   project_code="2026-510411-44-03-000001"))
    engine.dispose()
    calendar = WorkCalendar.from_chinese_calendar([2026])
    data = {**{k: v for k, v in DECLARATION.items() if k != "investment"}, "investment": 1200.0,
            "project_code": "2026-510411-44-03-000001",
            "matters_notice": [{"matter_code": m.matter_code, "department": m.department_code} for m in notice],
            "departments": list(dict.fromkeys(m.department_code for m in notice))}
    rates = []
    for functions in (spiff_only_functions(calendar, START), memory_functions(calendar, START, data["project_code"],
                                                                                   {m.matter_code: m.promised_working_days for m in notice})):
        memory_flow(specs, functions, START, data)
        t0 = time.perf_counter()
        for _ in range(n):
            memory_flow(specs, functions, START, data)
        rates.append(n / (time.perf_counter() - t0))
    return rates[0], rates[1]


def bench_task_list(url: str, n_tasks: int) -> tuple[float, float]:
    """Median and p95 of the task list query for one officer with n_tasks open tasks."""
    engine, factory = prepare(url)
    platform = Platform(factory, ManualClock(START), PlatformScope("510411"), "bench-secret" * 4)
    actors = _actors(factory)
    service_flows(factory, actors, platform, 1)
    with unit_of_work(factory) as s:
        instance_id = s.scalar(select(Task.instance_id).limit(1))
    departments = ["drc", "land", "env", "housing", "water", "window"]
    rows = []
    for i in range(n_tasks):
        department = departments[i % len(departments)]
        rows.append({
            "id": str(uuid.uuid4()), "instance_id": instance_id, "element_id": "handling", "title": "办理",
            "lane": f"{department}:officer", "department_code": department,
            "role": "window_officer" if department == "window" else "officer", "project_code": f"2026-510411-44-03-{i:06d}",
            "matter_code": "eia_approval", "status": "ready", "read_only": False, "created_at": START,
            "due_at": START + timedelta(minutes=i % 10000), "light": "green", "version": 1, "context": {},
        })
    with unit_of_work(factory) as s:
        for i in range(0, len(rows), 5000):
            s.execute(insert(Task), rows[i:i + 5000])
    from sqlalchemy import text

    with engine.connect() as conn:
        conn.execute(text("ANALYZE") if engine.dialect.name == "postgresql" else text("ANALYZE"))
        conn.commit()
    actor = actors["env"]

    def one():
        with factory() as s:
            runtime.task_list(s, actor, runtime.TaskFilter(), page=1, page_size=20)

    times = timed(one, 200)
    engine.dispose()
    return median(times) * 1000, percentile(times, 95) * 1000


def _rate(rates: list[float]) -> str:
    return f"{median(rates):8.2f} projects/s ({min(rates):.2f}–{max(rates):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--projects", type=int, default=20)
    parser.add_argument("--runs", type=lambda text: max(1, int(text)), default=3, help="at least 1")
    parser.add_argument("--tasks", type=int, default=100_000)
    args = parser.parse_args()
    runs = range(args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("TZXM_FILES_DIR", str(Path(tmp) / "files"))  # uploaded materials and notice PDFs
        sqlite = [bench_flows(f"sqlite:///{Path(tmp) / f'flows{i}.sqlite3'}", args.projects) for i in runs]
        spiff, memory = zip(*(bench_memory(f"sqlite:///{Path(tmp) / f'memory{i}.sqlite3'}", args.projects) for i in runs))
        sqlite_list = bench_task_list(f"sqlite:///{Path(tmp) / 'tasks.sqlite3'}", args.tasks)
        with postgres_databases() as database:
            pg = [bench_flows(database(f"flows{i}"), args.projects) for i in runs]
    with postgres() as url:
        pg_list = bench_task_list(url, args.tasks)
    spiff_rate, memory_rate, sqlite_rate, pg_rate = (median(r) for r in (spiff, memory, sqlite, pg))
    print(f"whole demo flow, {args.projects} projects (declare → dispatch → replies → 4 matters concluded → conclusion notice),"
          f" median of {args.runs} runs (range)")
    print(f"  SpiffWorkflow alone:          {_rate(spiff)}   (platform functions do nothing)")
    print(f"  in memory:                    {_rate(memory)}   (working time and notice PDFs computed, nothing stored)")
    print(f"  service layer on SQLite:      {_rate(sqlite)}   ratio memory/SQLite     {memory_rate / sqlite_rate:5.2f}x  (alone/SQLite {spiff_rate / sqlite_rate:5.2f}x)")
    print(f"  service layer on PostgreSQL:  {_rate(pg)}   ratio memory/PostgreSQL {memory_rate / pg_rate:5.2f}x  (alone/PostgreSQL {spiff_rate / pg_rate:5.2f}x)")
    print(f"task list with {args.tasks:,} open tasks (one officer's first page, 200 runs)")
    print(f"  SQLite:     median {sqlite_list[0]:6.2f} ms   p95 {sqlite_list[1]:6.2f} ms")
    print(f"  PostgreSQL: median {pg_list[0]:6.2f} ms   p95 {pg_list[1]:6.2f} ms")


if __name__ == "__main__":
    main()
