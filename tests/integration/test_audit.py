"""痕迹管理: the hash chain detects an edited, inserted or deleted event."""
from __future__ import annotations

from sqlalchemy import delete, text, update

from engine import audit
from engine.db import unit_of_work
from engine.models import AuditEvent, AuditHead
from tests.integration.helpers import declare


def _declare_three(client, token):
    return [declare(client, token)["project_code"] for _ in range(3)]


def test_every_write_is_audited_and_the_chain_verifies(client, token, platform):
    codes = _declare_three(client, token)
    with platform.session_factory() as s:
        result = audit.verify(s)
        events = s.query(AuditEvent).filter(AuditEvent.action == "project.declare").all()
    assert result.ok and result.checked >= 3
    assert [e.project_code for e in events] == codes
    assert all(e.actor == "applicant" and e.summary["name"] for e in events)


def test_an_edited_event_is_found(client, token, platform):
    _declare_three(client, token)
    with unit_of_work(platform.session_factory) as s:
        victim = s.query(AuditEvent).filter(AuditEvent.action == "project.declare").order_by(AuditEvent.seq).all()[1]
        s.execute(update(AuditEvent).where(AuditEvent.seq == victim.seq).values(actor="someone-else"))
    with platform.session_factory() as s:
        result = audit.verify(s)
    assert not result.ok and result.first_bad_seq == victim.seq and "edited" in result.problem


def test_a_deleted_event_is_found(client, token, platform):
    _declare_three(client, token)
    with unit_of_work(platform.session_factory) as s:
        seqs = [e.seq for e in s.query(AuditEvent).order_by(AuditEvent.seq)]
        s.execute(delete(AuditEvent).where(AuditEvent.seq == seqs[-2]))
    with platform.session_factory() as s:
        result = audit.verify(s)
    assert not result.ok and result.first_bad_seq == seqs[-2] and "deleted" in result.problem


def test_a_deleted_last_event_is_found(client, token, platform):
    _declare_three(client, token)
    with unit_of_work(platform.session_factory) as s:
        last = s.get(AuditHead, 1).last_seq
        s.execute(delete(AuditEvent).where(AuditEvent.seq == last))
    with platform.session_factory() as s:
        result = audit.verify(s)
    assert not result.ok and result.first_bad_seq == last


def test_an_inserted_event_is_found(client, token, platform):
    _declare_three(client, token)
    with unit_of_work(platform.session_factory) as s:
        events = s.query(AuditEvent).order_by(AuditEvent.seq).all()
        # Make room after event 2 and forge an event there, re-numbering the rest.
        for e in reversed(events[2:]):
            s.execute(update(AuditEvent).where(AuditEvent.seq == e.seq).values(seq=e.seq + 1))
        forged = events[1]
        s.expunge_all()
        s.add(AuditEvent(seq=forged.seq + 1, at=forged.at, actor="forger", action="project.declare",
                         project_code=None, target="x", summary={}, prev_hash=forged.hash, hash="0" * 64))
    with platform.session_factory() as s:
        result = audit.verify(s)
    assert not result.ok and result.first_bad_seq == events[1].seq + 1


def test_audit_verify_command(client, token, platform, database_url, monkeypatch):
    from click.testing import CliRunner

    from api.cli import main

    _declare_three(client, token)
    monkeypatch.setenv("DATABASE_URL", database_url)
    ok = CliRunner().invoke(main, ["audit", "verify"])
    assert ok.exit_code == 0 and "intact" in ok.output
    with unit_of_work(platform.session_factory) as s:
        s.execute(text("UPDATE audit_events SET action = 'x' WHERE seq = 2"))
    bad = CliRunner().invoke(main, ["audit", "verify"])
    assert bad.exit_code == 1 and "event 2" in bad.output
