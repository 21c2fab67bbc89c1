"""What a transaction keeps for itself (``engine.db.transaction_memo``): emptied when it
ends; only the rows a step reads again by key are held; a light a step records reaches
its matter at commit, before the audit chain locks its head (matter rows first)."""
from __future__ import annotations

import re
from contextlib import contextmanager
from decimal import Decimal

from sqlalchemy import event, select

from engine import audit, clocks, platform_state, runtime
from engine.access import Actor
from engine.db import transaction_memo, unit_of_work
from engine.models import AuditEvent, Clock, Department, Matter, ProcessInstance, Project, ProjectMatter, Task, User
from tests.integration.helpers import declare
from tests.integration.test_workflow_api import ACCEPT, DECIDE, FILING_PROJECT, PRE_CHECK_PASS, find, to_matters, work


@contextmanager
def statements_of(session):
    """The SQL the session sends inside the block, whitespace folded."""
    sent: list[str] = []

    def listen(conn, cursor, statement, *args):
        sent.append(re.sub(r"\s+", " ", statement))

    event.listen(session.get_bind(), "before_cursor_execute", listen)
    try:
        yield sent
    finally:
        event.remove(session.get_bind(), "before_cursor_execute", listen)


def test_the_memo_lives_as_long_as_its_transaction(platform):
    for end in ("commit", "rollback"):
        with platform.session_factory() as s:
            platform_state.value(s, platform_state.CALENDAR_REVISION)
            assert "settings" in transaction_memo(s)
            getattr(s, end)()
            assert transaction_memo(s) == {}


def test_a_setting_written_is_read_back_by_the_same_transaction(platform):
    with platform.session_factory() as s:
        assert platform_state.value(s, platform_state.YELLOW_FRACTIONS) is None
        clocks.set_yellow_fractions(s, {"promised": 0.75}, now=platform.clock.now(), actor="operator")
        assert clocks.yellow_fraction(s, "promised", None) == Decimal("0.75")
        s.rollback()
        assert platform_state.value(s, platform_state.YELLOW_FRACTIONS) is None


def test_only_rows_a_step_reads_again_by_key_are_held(client, token, platform):
    declare(client, token)
    with platform.session_factory() as s:
        s.scalars(select(ProcessInstance)).all()
        s.scalars(select(Matter)).all()
        s.scalars(select(Department)).all()
        s.scalars(select(Task)).all()
        s.scalars(select(AuditEvent)).all()  # a batched read (audit verify, exports) stays bounded
        held = {type(row) for row in transaction_memo(s)["held"]}
    assert held == {ProcessInstance, Matter, Department}


def test_a_light_a_step_records_reaches_its_matter_at_commit_before_the_audit_head(client, token, platform):
    code = declare(client, token)["project_code"]
    with platform.session_factory() as s:
        project = s.scalar(select(Project).where(Project.project_code == code))
        pm = s.scalars(select(ProjectMatter).where(ProjectMatter.project_id == project.id)).first()
        instance = s.scalar(select(ProcessInstance).where(ProcessInstance.project_id == project.id))
        pm.instance_id = instance.id
        clock = Clock(kind="promised", project_id=project.id, project_code=code, matter_code=pm.matter_code,
                      department_code=pm.department_code, instance_id=instance.id, started_at=platform.clock.now(),
                      limit_days=5, state="running", light="yellow")
        s.add(clock)
        clocks.show_on_matter_at_commit(s, clock)
        audit.record(s, at=platform.clock.now(), actor="test", action="test.light", target=f"project:{code}")
        s.flush()
        assert s.scalar(select(ProjectMatter.light).where(ProjectMatter.id == pm.id)) == "green"  # not before commit

        with statements_of(s) as statements:
            s.commit()
    matter_update = next(i for i, sql in enumerate(statements) if sql.startswith("UPDATE project_matters"))
    audit_head = next(i for i, sql in enumerate(statements) if "audit_head" in sql)
    assert matter_update < audit_head
    with platform.session_factory() as s:
        assert s.get(ProjectMatter, pm.id).light == "yellow"


def test_a_savepoint_released_leaves_the_audit_chain_and_the_lights_to_the_commit(client, token, platform):
    """Releasing a step's savepoint neither locks the audit head (held to the commit, it
    would serialise every audited transaction meanwhile) nor applies staged lights."""
    code = declare(client, token)["project_code"]
    with platform.session_factory() as s, statements_of(s) as statements:
        savepoint = s.begin_nested()
        audit.record(s, at=platform.clock.now(), actor="test", action="test.step", target=f"project:{code}")
        savepoint.commit()
        assert not any("audit_head" in sql for sql in statements)
        s.commit()
    assert any("audit_head" in sql for sql in statements)
    with platform.session_factory() as s:
        assert s.scalar(select(AuditEvent.action).order_by(AuditEvent.seq.desc()).limit(1)) == "test.step"


def test_a_handling_step_costs_eleven_statements_at_most(client, token, platform):
    """The cost of a step is its statements (docs: README, Benchmarks). Completing
    `handling`: the lock reads of the instance, its clocks and its ready tasks; the
    savepoint and its release; the task, the next task and the instance written; the
    audit head read, the event, the head written. A read added to every step shows here."""
    code = to_matters(client, token, **FILING_PROJECT)
    work(client, token, "land", "pre_check", code, PRE_CHECK_PASS, "land_pre_review")
    work(client, token, "land", "acceptance", code, ACCEPT, "land_pre_review")
    handling = find(client, token, "land", "handling", code, "land_pre_review")
    with unit_of_work(platform.session_factory) as s:
        officer = Actor.of(s.scalar(select(User).where(User.username == "land")))
        s.commit()  # the officer's read is not the step's
        with statements_of(s) as statements:
            runtime.complete_task(s, actor=officer, task_id=handling["id"], version=handling["version"], data=DECIDE,
                                  now=platform.clock.now())
            s.commit()
    kinds = [sql.split()[0] for sql in statements if not sql.startswith("BEGIN")]  # SQLite's BEGIN IMMEDIATE
    assert len(kinds) <= 11, kinds
