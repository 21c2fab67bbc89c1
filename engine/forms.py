"""Department fields of task forms (forms/*.schema.json).

A form names a department by ``"format": "department"`` (the window's dispatch, a
consultation), not by a list of codes: the departments are the organisation's (seeded,
imported, renamed), not the form file's, and a region's own departments (林业, 人防…)
must be as choosable as the shipped five. An answer names a department that handles
matters (approving, coordinating, or named by a catalogue matter); a task's form is
served with those departments as its options (``enum``, and the UI schema's
``ui:enumNames`` with their names), so a client renders a choice as it would from a list
in the file.
"""
from __future__ import annotations

import copy
from typing import Any

from jsonschema import FormatChecker
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db import transaction_memo
from engine.models import Department, Matter

DEPARTMENT_FORMAT = "department"
#: The kinds of department a matter is dispatched to or a consultation asks.
HANDLING_KINDS = ("approving", "coordinating")
NOT_A_HANDLING_DEPARTMENT = "不是办理审批事项的部门 (not a department that handles matters)"
_MEMO = "handling_departments"
_SERVED = "served_forms"


def handling_departments(session: Session) -> dict[str, str]:
    """Code → name of the departments that handle matters: approving or coordinating ones,
    and any that a catalogue matter names (a 行政审批局 may be the window and approve too);
    read once per transaction."""
    memo = transaction_memo(session)
    if _MEMO not in memo:
        memo[_MEMO] = dict(session.execute(select(Department.code, Department.name).where(
            Department.kind.in_(HANDLING_KINDS) | Department.code.in_(select(Matter.department_code)))
            .order_by(Department.code)).all())
    return memo[_MEMO]


def format_checker(session: Session) -> FormatChecker:
    """JSON Schema's formats, and ``department`` checked against the organisation (read
    only when a form has such a field and it is answered)."""
    checker = FormatChecker()
    checker.checks(DEPARTMENT_FORMAT)(lambda value: not isinstance(value, str) or value in handling_departments(session))
    return checker


def _department_fields(schema: dict[str, Any]):
    """(property name, the node holding the format, whether it is an array's items): a
    top-level field, or a top-level array's items (the forms are flat)."""
    for name, node in (schema.get("properties") or {}).items():
        if not isinstance(node, dict):
            continue
        if node.get("format") == DEPARTMENT_FORMAT:
            yield name, node, False
        elif isinstance(node.get("items"), dict) and node["items"].get("format") == DEPARTMENT_FORMAT:
            yield name, node["items"], True


def served(session: Session, names: tuple[str | None, str | None], schema: dict[str, Any], ui_schema: dict[str, Any]
           ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The form and its UI schema as a client renders them: each department field given the
    departments of the moment as options, in place of the format (a strict client refuses
    a format it does not know). Forms without one are returned as they are; a served form
    is made once per transaction (``names``: the form's and UI schema's files), whatever the
    number of tasks listed with it."""
    if not any(True for _ in _department_fields(schema)):
        return schema, ui_schema
    memo = transaction_memo(session).setdefault(_SERVED, {})
    if names not in memo:
        departments = handling_departments(session)
        schema, ui_schema = copy.deepcopy(schema), copy.deepcopy(ui_schema)
        for name, node, is_items in _department_fields(schema):
            del node["format"]
            if not departments:
                continue  # none to offer: the answer is refused, naming the field
            node["enum"] = list(departments)
            ui = ui_schema.setdefault(name, {})
            (ui.setdefault("items", {}) if is_items else ui)["ui:enumNames"] = list(departments.values())
        memo[names] = (schema, ui_schema)
    return memo[names]
