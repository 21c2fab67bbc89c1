"""Checks a diagram asks for before one of its user tasks completes.

Which task accepts a matter, and which field lists what a correction notice asks
for, is the procedure's business: the diagram says so on the user task with the
SpiffWorkflow ecosystem's extension properties, and this module holds only the
mechanism (the rules themselves live in ``engine.materials``):

- ``materialsCompleteWhen`` = ``<field>=<value>``: when the submitted field has that
  value (the officer accepts), every required material on the matter's guide must
  have been submitted or be covered by an open commitment (容缺受理); the submitted
  ones become accepted. Otherwise 422 naming the missing materials.
- ``correctionItemsField`` = ``<field>``: the materials a correction notice asks for;
  each must be on the guide's list and not already accepted (no re-submitting what
  was filed, no hidden extra demands). The items are completed with the materials'
  names for the notice.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from engine import materials, projects
from engine.models import Project, ProjectMatter

MATERIALS_COMPLETE_WHEN = "materialsCompleteWhen"
CORRECTION_ITEMS_FIELD = "correctionItemsField"
_FIELD = r"[A-Za-z][A-Za-z0-9_]{0,63}"
_CONDITION = re.compile(rf"^({_FIELD})=([^=\s]{{1,64}})$")
_FIELD_NAME = re.compile(rf"^{_FIELD}$")


def property_problems(properties: dict[str, str]) -> list[str]:
    """What is wrong with a user task's guard properties (checked when a diagram is deployed)."""
    problems = []
    condition = properties.get(MATERIALS_COMPLETE_WHEN)
    if condition is not None and not _CONDITION.match(condition):
        problems.append(f"{MATERIALS_COMPLETE_WHEN} must be <field>=<value>, not {condition!r}")
    field_name = properties.get(CORRECTION_ITEMS_FIELD)
    if field_name is not None and not _FIELD_NAME.match(field_name):
        problems.append(f"{CORRECTION_ITEMS_FIELD} must name a form field, not {field_name!r}")
    return problems


def _project_matter(session: Session, project: Project, matter_code: str | None) -> ProjectMatter | None:
    return projects.project_matter(session, project, matter_code) if matter_code is not None else None


def apply(session: Session, *, properties: dict[str, str], project: Project, matter_code: str | None,
          data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Run the task's guards on the submitted data; returns the data to complete the task with."""
    if MATERIALS_COMPLETE_WHEN not in properties and CORRECTION_ITEMS_FIELD not in properties:
        return data
    pm = _project_matter(session, project, matter_code)
    if pm is None:
        return data
    data = dict(data)
    field_name = properties.get(CORRECTION_ITEMS_FIELD)
    if field_name and data.get(field_name):
        data[field_name] = materials.check_correction_items(session, project_matter=pm, items=list(data[field_name]))
    condition = _CONDITION.match(properties.get(MATERIALS_COMPLETE_WHEN, ""))
    if condition and str(data.get(condition.group(1))) == condition.group(2):
        materials.check_acceptance(session, project_matter=pm, now=now)
    return data
