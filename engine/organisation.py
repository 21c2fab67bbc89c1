"""The organisation as reference data: regions and departments, for forms and pickers."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.models import Department, Region


def regions(session: Session) -> list[Region]:
    return list(session.scalars(select(Region).order_by(Region.code)))


def departments(session: Session) -> list[Department]:
    return list(session.scalars(select(Department).order_by(Department.code)))
