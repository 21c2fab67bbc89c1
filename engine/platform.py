"""The platform's runtime context: what every use case needs besides a session.

Built once per process from configuration; holds no state of its own beyond the
clock (a manual clock is the operator's demo and test device).
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from engine.clock import Clock
from engine.projects import PlatformScope


@dataclass
class Platform:
    session_factory: sessionmaker[Session]
    clock: Clock
    scope: PlatformScope
    secret_key: str
