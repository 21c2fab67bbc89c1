"""绩效考核 (Hunan 第二十一条): each department's score per period, and the records behind it.

The regulation leaves the points to each region's annual assessment rules, so the
rule is data, not code: a JSON file (``engine/data/scoring_rule.json`` unless
``TZXM_SCORING_RULE`` names another) giving a base score, an optional floor and the
points lost per kind of record:

* ``red_record``: a red (overdue) record of any clock but a reply clock;
* ``yellow_record``: a yellow warning (0 in the shipped demo rule: 黄灯预警提示 is a
  prompt while the limit still holds, not a failure to handle a matter as required;
  a region whose rules deduct for it says so in its file);
* ``automatic_reply``: a reply clock that ran out, so the platform replied for the
  department (逾期未回复，视为本阶段不存在需要办理的事项);
* ``late_reply``: a reply an officer entered after the reply clock was due.

A reply clock's red record is scored as an automatic or a late reply, never twice.
A red reply clock the timer has not yet stopped counts as a red record. Every point
lost carries the alert and clock it comes from, so a department can check its score.
The file is validated on every load (cached by modification time) and a broken rule
is refused with the file, the key and the problem named.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.access import Actor
from engine.clocks import UNIT_KINDS
from engine.errors import DomainError
from engine.models import Alert, Clock, Department, Project
from engine.supervision import Period, month_period, period_of, reply_outcome, scope_for

DEFAULT_RULE = Path(__file__).resolve().parent / "data" / "scoring_rule.json"
RULE_ENV = "TZXM_SCORING_RULE"
POINT_KINDS = ("red_record", "yellow_record", "automatic_reply", "late_reply")
_ALLOWED = {"name", "basis", "base", "minimum", "points"}
#: Departments that are scored: those that handle matters.
SCORED_KINDS = ("approving", "coordinating")
_cache_lock = threading.Lock()
_cache: dict[str, tuple[float, "Rule"]] = {}


class RuleInvalid(DomainError):
    """The configured rule cannot be used: a server configuration fault, not the caller's."""

    status = 503


@dataclass(frozen=True)
class Rule:
    name: str
    base: float
    minimum: float
    points: dict[str, float]
    source: str

    def as_dict(self) -> dict:
        return {"name": self.name, "base": self.base, "minimum": self.minimum, "points": dict(self.points),
                "source": self.source}


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} 须为数字 (must be a number), got {value!r}")
    return float(value)


def parse_rule(data, source: str) -> Rule:
    """Check a rule's shape; ValueError names the key and the problem."""
    if not isinstance(data, dict):
        raise ValueError("规则须为 JSON 对象 (the rule must be a JSON object)")
    unknown = sorted(set(data) - _ALLOWED)
    if unknown:
        raise ValueError(f"未知的键 (unknown keys): {', '.join(unknown)}")
    if "base" not in data:
        raise ValueError("缺少 base (base score missing)")
    base = _number(data["base"], "base")
    if base <= 0:
        raise ValueError("base 须大于0 (base must be positive)")
    minimum = _number(data.get("minimum", 0), "minimum")
    if not 0 <= minimum <= base:
        raise ValueError("minimum 须在0与base之间 (minimum must lie between 0 and base)")
    points = data.get("points")
    if not isinstance(points, dict) or not points:
        raise ValueError("points 须为非空对象 (points must be a non-empty object)")
    table = {}
    for kind, value in points.items():
        if kind not in POINT_KINDS:
            raise ValueError(f"points.{kind}: 未知的扣分项 (unknown kind; known: {', '.join(POINT_KINDS)})")
        table[kind] = _number(value, f"points.{kind}")
        if table[kind] < 0:
            raise ValueError(f"points.{kind} 不得为负 (must not be negative)")
    name = data.get("name", "")
    if not isinstance(name, str):
        raise ValueError("name 须为文本 (name must be text)")
    return Rule(name=name, base=base, minimum=minimum, points=table, source=source)


def load_rule(path: Path | str) -> Rule:
    """Read and check a rule file; RuleInvalid names the file and the problem."""
    path = Path(path)
    try:
        stamp = path.stat().st_mtime
    except OSError as exc:
        raise RuleInvalid(f"评分规则文件不可读 (scoring rule unreadable): {path}: {exc.strerror}") from None
    with _cache_lock:
        cached = _cache.get(str(path))
        if cached and cached[0] == stamp:
            return cached[1]
    try:
        rule = parse_rule(json.loads(path.read_text(encoding="utf-8")), str(path))
    except json.JSONDecodeError as exc:
        raise RuleInvalid(f"评分规则不是有效的JSON (scoring rule is not valid JSON): {path}: "
                          f"line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:
        raise RuleInvalid(f"评分规则无效 (scoring rule invalid): {path}: {exc}") from None
    with _cache_lock:
        _cache[str(path)] = (stamp, rule)
    return rule


def configured_rule() -> Rule:
    return load_rule(os.environ.get(RULE_ENV) or DEFAULT_RULE)


def _record(alert: Alert, clock: Clock) -> dict:
    return {"alert_id": alert.id, "clock_id": clock.id, "clock_kind": clock.kind, "light": alert.light,
            "project_code": alert.project_code, "matter_code": alert.matter_code, "due_at": clock.due_at,
            "at": alert.at, "stopped_at": clock.stopped_at}


def point_kind(alert: Alert, clock: Clock) -> str:
    if alert.light == "yellow":
        return "yellow_record"
    outcome = reply_outcome(clock)
    return f"{outcome}_reply" if outcome else "red_record"


def score_departments(session: Session, actor: Actor, rule: Rule, period: Period, *, region: str | None = None,
                      department: str | None = None) -> list[dict]:
    """Each department in scope: base minus the points of its records in the period."""
    scope = scope_for(session, actor, region=region, department=department)
    dept_query = select(Department).where(Department.kind.in_(SCORED_KINDS))
    if scope.regions is not None:
        dept_query = dept_query.where(Department.region_code.in_(scope.regions))
    if scope.department is not None:
        dept_query = select(Department).where(Department.code == scope.department)
    names = {d.code: d.name for d in session.scalars(dept_query)}
    lost: dict[str, list[dict]] = {code: [] for code in names}
    # a record of a department not listed above (another region's department handling a
    # project in scope) adds that department: its name comes with the record, in this one
    # statement, not from a lookup per department
    rows = session.execute(
        select(Alert, Clock, Department.name).join(Clock, Clock.id == Alert.clock_id)
        .join(Project, Project.project_code == Alert.project_code)
        .outerjoin(Department, Department.code == Alert.department_code)
        .where(scope.project_condition(), scope.department_condition(Alert.department_code), period.between(Alert.at),
               Alert.clock_kind.not_in(UNIT_KINDS))  # the project unit's deadlines are not the department's
        .order_by(Alert.at, Alert.id)).all()
    for alert, clock, name in rows:
        kind = point_kind(alert, clock)
        points = rule.points.get(kind, 0.0)
        if not points or name is None:
            continue
        if alert.department_code not in lost:
            names[alert.department_code], lost[alert.department_code] = name, []
        lost[alert.department_code].append({"kind": kind, "points": points, "record": _record(alert, clock)})
    result = []
    for code in sorted(names):
        total = round(sum(item["points"] for item in lost[code]), 2)
        result.append({"department": code, "name": names[code],
                       "score": round(max(rule.minimum, rule.base - total), 2), "points_lost_total": total,
                       "points_lost": lost[code]})
    return result


def scores(session: Session, actor: Actor, *, now: datetime, month: str | None = None, start: date | None = None,
           end: date | None = None, region: str | None = None, department: str | None = None) -> dict:
    """The scores of a month (``YYYY-MM``) or of the days from ``start`` to ``end``."""
    period = month_period(month) if month else period_of(now, start, end)
    rule = configured_rule()
    return {"period": {"from": period.start, "to": period.end}, "rule": rule.as_dict(),
            "departments": score_departments(session, actor, rule, period, region=region, department=department)}
