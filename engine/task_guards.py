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
- ``pauseBudget`` = ``<field>:<clock kind>:<pause reason>:<working days>`` with
  ``pauseBudgetWhen`` = ``<field>=<value>``: when the condition holds, the working days
  the submitted field asks the clock to stand still for, added to those it already
  stood still for that reason, may not exceed the budget (特别程序：默认30个工作日，
  最多60个工作日 — in all, not per request). Otherwise 422 naming the field.
- ``datesSinceDeclaration`` = ``<field>[,<field>…]``: each of these dates, when given,
  lies between the day the project was declared and today (a decision's document date
  is published on the portal: not a date to come, nor one before the project existed).
  Otherwise 422 naming the field.
"""
from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import calendar, clocks, materials, projects
from engine.clock import SHANGHAI
from engine.errors import Invalid
from engine.models import Clock, Project, ProjectMatter

MATERIALS_COMPLETE_WHEN = "materialsCompleteWhen"
CORRECTION_ITEMS_FIELD = "correctionItemsField"
PAUSE_BUDGET = "pauseBudget"
PAUSE_BUDGET_WHEN = "pauseBudgetWhen"
DATES_SINCE_DECLARATION = "datesSinceDeclaration"
_FIELD = r"[A-Za-z][A-Za-z0-9_]{0,63}"
_CONDITION = re.compile(rf"^({_FIELD})=([^=\s]{{1,64}})$")
_FIELD_NAME = re.compile(rf"^{_FIELD}$")
_BUDGET = re.compile(rf"^({_FIELD}):({_FIELD}):({_FIELD}):([1-9][0-9]{{0,2}})$")
_FIELDS = re.compile(rf"^{_FIELD}(,{_FIELD})*$")


def property_problems(properties: dict[str, str]) -> list[str]:
    """What is wrong with a user task's guard properties (checked when a diagram is deployed)."""
    problems = []
    condition = properties.get(MATERIALS_COMPLETE_WHEN)
    if condition is not None and not _CONDITION.match(condition):
        problems.append(f"{MATERIALS_COMPLETE_WHEN} must be <field>=<value>, not {condition!r}")
    field_name = properties.get(CORRECTION_ITEMS_FIELD)
    if field_name is not None and not _FIELD_NAME.match(field_name):
        problems.append(f"{CORRECTION_ITEMS_FIELD} must name a form field, not {field_name!r}")
    budget, when = properties.get(PAUSE_BUDGET), properties.get(PAUSE_BUDGET_WHEN)
    if budget is not None and not _BUDGET.match(budget):
        problems.append(f"{PAUSE_BUDGET} must be <field>:<clock kind>:<pause reason>:<working days>, not {budget!r}")
    if (budget is None) != (when is None) or (when is not None and not _CONDITION.match(when)):
        problems.append(f"{PAUSE_BUDGET} goes with {PAUSE_BUDGET_WHEN} = <field>=<value>")
    dates = properties.get(DATES_SINCE_DECLARATION)
    if dates is not None and not _FIELDS.match(dates):
        problems.append(f"{DATES_SINCE_DECLARATION} must name form fields, comma-separated, not {dates!r}")
    return problems


def _project_matter(session: Session, project: Project, matter_code: str | None) -> ProjectMatter | None:
    return projects.project_matter(session, project, matter_code) if matter_code is not None else None


def apply(session: Session, *, properties: dict[str, str], project: Project, matter_code: str | None,
          data: dict[str, Any], now: datetime, actor: str) -> dict[str, Any]:
    """Run the task's guards on the submitted data; returns the data to complete the task
    with. The matter is read only when a guard's condition holds (most steps: none).
    ``actor``: whose act the task's completion is (what a guard does is audited as theirs)."""
    _check_dates_since_declaration(properties.get(DATES_SINCE_DECLARATION), project, data, now)
    corrections = properties.get(CORRECTION_ITEMS_FIELD)
    corrections = corrections if corrections and data.get(corrections) else None
    accepting = _met(properties.get(MATERIALS_COMPLETE_WHEN), data)
    budget = _BUDGET.match(properties.get(PAUSE_BUDGET, "")) if _met(properties.get(PAUSE_BUDGET_WHEN), data) else None
    if not (corrections or accepting or budget):
        return data
    pm = _project_matter(session, project, matter_code)
    if pm is None:
        return data
    data = dict(data)
    if corrections:
        data[corrections] = materials.check_correction_items(session, project_matter=pm, items=list(data[corrections]))
    if accepting:
        materials.check_acceptance(session, project_matter=pm, now=now, actor=actor)
    if budget:
        _check_pause_budget(session, pm, data, *budget.groups(), now=now)
    return data


def _met(condition: str | None, data: dict[str, Any]) -> bool:
    """A ``<field>=<value>`` condition on the submitted data."""
    match = _CONDITION.match(condition or "")
    return bool(match) and str(data.get(match.group(1))) == match.group(2)


def _check_dates_since_declaration(fields: str | None, project: Project, data: dict[str, Any], now: datetime) -> None:
    if not fields:
        return
    first, last = project.declared_at.astimezone(SHANGHAI).date(), now.astimezone(SHANGHAI).date()
    for name in fields.split(","):
        try:
            day = date.fromisoformat(data[name]) if isinstance(data.get(name), str) else None
        except ValueError:
            continue  # the form's own date format answers for it
        if day is not None and not first <= day <= last:
            raise Invalid.field(f"data.{name}", f"须在项目申报之日（{first.isoformat()}）至今天（{last.isoformat()}）之间 "
                                                f"(between the declaration, {first.isoformat()}, and today, {last.isoformat()})")


def _check_pause_budget(session: Session, pm: ProjectMatter, data: dict[str, Any], field: str, kind: str, reason: str,
                        limit: str, *, now: datetime) -> None:
    clock = session.scalar(select(Clock).where(Clock.instance_id == pm.instance_id, Clock.kind == kind)
                           .order_by(Clock.id.desc()).limit(1)) if pm.instance_id is not None else None
    asked = data.get(field)
    if clock is None or not isinstance(asked, (int, float)) or isinstance(asked, bool):
        return  # no such clock yet, or the form's own check answers for the field
    used = clocks.paused_working_days(clock, calendar.current(session), reason, now=now)
    if used + asked > int(limit):
        left = max(0, int(limit) - used)
        raise Invalid.field(field, f"累计不得超过{limit}个工作日，已用{used:g}个，尚可{left:g}个 "
                                   f"(at most {limit} working days in all: {used:g} used, {left:g} left)")
