"""痕迹管理 (audit trail): every write appends a hash-chained event.

Events are staged on the session by ``record`` and chained just before commit under a
lock on the single ``audit_head`` row. Taking that lock last, just before commit,
keeps it short and gives every event a contiguous ``seq``: a deleted event leaves a
gap, an inserted or edited one breaks the hash, and ``verify`` names the first.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, event, func, select
from sqlalchemy.orm import Session

from engine.db import transaction_memo
from engine.models import AuditEvent, AuditHead

GENESIS = "0" * 64
_PENDING = "audit_pending"


def record(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    project_code: str | None = None,
    summary: dict[str, Any] | None = None,
) -> None:
    """Stage an audit event; it is chained and written with the rest of the transaction."""
    transaction_memo(session).setdefault(_PENDING, []).append(
        {
            "at": at,
            "actor": actor,
            "action": action,
            "target": target,
            "project_code": project_code,
            "summary": summary or {},
        }
    )


def mark(session: Session) -> int:
    """Where the staged events stand now (for ``rollback_to`` when a savepoint is undone)."""
    return len(transaction_memo(session).get(_PENDING, []))


def rollback_to(session: Session, position: int) -> None:
    """Forget the events staged after ``mark``: their changes were rolled back."""
    del transaction_memo(session).get(_PENDING, [])[position:]


def _digest(seq: int, prev_hash: str, ev: dict[str, Any]) -> str:
    body = json.dumps(
        {
            "seq": seq,
            "prev": prev_hash,
            "at": ev["at"].isoformat(),
            "actor": ev["actor"],
            "action": ev["action"],
            "target": ev["target"],
            "project_code": ev["project_code"],
            "summary": ev["summary"],
        },
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _normalise_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """What is hashed must be what a later read returns: JSON round-trip it first."""
    return json.loads(json.dumps(summary, ensure_ascii=False, default=str))


@event.listens_for(Session, "before_commit")
def _chain_pending(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint's release: the events wait for the commit itself (the head's lock stays short)
    pending = transaction_memo(session).pop(_PENDING, None)
    if not pending:
        return
    head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one_or_none()
    if head is None:
        head = AuditHead(id=1, last_seq=0, last_hash=GENESIS)
        session.add(head)
    for ev in pending:
        ev["summary"] = _normalise_summary(ev["summary"])
        seq = head.last_seq + 1
        digest = _digest(seq, head.last_hash, ev)
        session.add(AuditEvent(seq=seq, prev_hash=head.last_hash, hash=digest, **ev))
        head.last_seq, head.last_hash = seq, digest


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str | None = None


def verify(session: Session, batch: int = 5000) -> VerifyResult:
    """Walk the chain in order and report the first edited, inserted or deleted event."""
    prev_hash, expected_seq, checked = GENESIS, 1, 0
    last = 0
    while True:
        rows = session.execute(
            select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch)
        ).scalars().all()
        if not rows:
            break
        for row in rows:
            if row.seq != expected_seq:
                kind = "deleted" if row.seq > expected_seq else "inserted"
                return VerifyResult(False, checked, expected_seq, f"event {expected_seq} {kind}: found seq {row.seq}")
            if row.prev_hash != prev_hash:
                return VerifyResult(False, checked, row.seq, f"event {row.seq} does not follow event {row.seq - 1} (inserted or re-chained)")
            ev = {
                "at": row.at,
                "actor": row.actor,
                "action": row.action,
                "target": row.target,
                "project_code": row.project_code,
                "summary": row.summary,
            }
            if _digest(row.seq, row.prev_hash, ev) != row.hash:
                return VerifyResult(False, checked, row.seq, f"event {row.seq} was edited: its content does not match its hash")
            prev_hash, expected_seq, checked, last = row.hash, expected_seq + 1, checked + 1, row.seq
    head = session.get(AuditHead, 1)
    if head is not None and head.last_seq != checked:
        return VerifyResult(False, checked, checked + 1, f"the chain ends at {checked} but the head says {head.last_seq}: trailing events deleted")
    return VerifyResult(True, checked)



def project_trail(session: Session, project_code: str, *, page: int, page_size: int, hidden_targets: Sequence[str] = ()):
    """One project's events, oldest first, a page at a time; events about ``hidden_targets``
    (what the reader may not see, e.g. a non-public inspection) are left out."""
    where = AuditEvent.project_code == project_code
    if hidden_targets:
        where = and_(where, AuditEvent.target.not_in(hidden_targets))
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(where))
    rows = session.scalars(
        select(AuditEvent).where(where).order_by(AuditEvent.seq).offset((page - 1) * page_size).limit(page_size)
    ).all()
    return rows, total
