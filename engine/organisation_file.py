"""An organisation file: the regions, departments and catalogue of matters one platform
serves, imported by ``tzxm import-organisation`` (or ``POST /admin/organisation``) and
written by ``tzxm export-organisation``.

Provinces, cities and districts each run a platform; the shipped seed is 仁和区's. Another
region describes its own in one JSON file::

    {"regions": [{"code": "220000", "name": "吉林省", "parent": null, "level": "province"}, …],
     "departments": [{"code": "window", "name": "…综合窗口", "region": "220102", "kind": "general_window"}, …],
     "matters": [{"code": "…", "name": "…", "department": "drc", "promised_working_days": 20,
                  "legal_basis": "…", "regimes": ["approval"]}, …]}

Every section may be left out (a ``description`` for people may be added). The whole file
is checked before anything is written, and each problem is named by its place
(``departments.2.region``): a refusal writes nothing. Entries are matched with the
database by code: a new one is created; one whose name (a matter's legal basis too)
changed is updated (机构改革 renames departments; a notice issued before keeps the name
it printed); one whose structure differs (a region's parent or level, a department's
region or kind, a matter's department, regimes or promised days) is refused, because
projects in progress were told it: a department promises fewer days in a new service
guide, not here. One audit event records what was created and updated.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import audit, codes, guides, text
from engine.access import Actor, require_role
from engine.errors import Invalid, Problems
from engine.models import DEPARTMENT_KINDS, REGIMES, REGION_LEVELS, Department, Matter, Region

DESCRIPTION_MAX = 4000
#: Department codes are what lanes name (``<department>:<role>``): no colon, no ``$``.
_DEPARTMENT_CODE = re.compile(r"[a-z][a-z0-9_]{0,31}")
#: A matter's procedure is ``matter_<code>``: a BPMN process id.
_MATTER_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True)
class _Section:
    """How one section's entries map onto a table."""

    name: str
    model: type
    key: str  # the model's primary key attribute, which an entry's "code" fills
    columns: dict[str, str]  # an entry's other keys → the model's attributes
    required: frozenset[str]
    descriptive: tuple[str, ...]  # keys an import may change on an existing row

    def code_of(self, row: Any) -> str:
        return getattr(row, self.key)


REGIONS = _Section("regions", Region, "code", {"name": "name", "parent": "parent_code", "level": "level"},
                   frozenset({"code", "name", "level"}), ("name",))
DEPARTMENTS = _Section("departments", Department, "code", {"name": "name", "region": "region_code", "kind": "kind"},
                       frozenset({"code", "name", "region", "kind"}), ("name",))
MATTERS = _Section("matters", Matter, "matter_code",
                   {"name": "name", "department": "department_code", "promised_working_days": "promised_working_days",
                    "legal_basis": "legal_basis", "regimes": "regimes"},
                   frozenset({"code", "name", "department", "promised_working_days", "regimes"}), ("name", "legal_basis"))
SECTIONS = (REGIONS, DEPARTMENTS, MATTERS)  # in the order rows are written: each refers only to those before


@dataclass
class Report:
    """What an import did (or, checked only, would do), by section."""

    created: dict[str, list[str]] = field(default_factory=lambda: {s.name: [] for s in SECTIONS})
    #: a name changed (a matter's legal basis too)
    updated: dict[str, list[str]] = field(default_factory=lambda: {s.name: [] for s in SECTIONS})
    unchanged: dict[str, int] = field(default_factory=lambda: {s.name: 0 for s in SECTIONS})

    @property
    def changed(self) -> bool:
        return any(self.created.values()) or any(self.updated.values())

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}


def export(session: Session) -> dict[str, Any]:
    """The organisation the database holds, as a file ``import_organisation`` takes back
    unchanged (``tzxm export-organisation``): a start for another region's file, or the
    same organisation moved to another database."""
    document: dict[str, Any] = {}
    for section in SECTIONS:
        rows = session.scalars(select(section.model).order_by(getattr(section.model, section.key)))
        document[section.name] = [{"code": section.code_of(row), **{key: getattr(row, attribute)
                                                                   for key, attribute in section.columns.items()}}
                                  for row in rows]
    document["regions"].sort(key=lambda entry: (REGION_LEVELS.index(entry["level"]), entry["code"]))
    return document


def parse(data: bytes) -> Any:
    """The file's JSON (UTF-8, with or without a byte order mark); unreadable → 422 on ``file``."""
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise Invalid.field("file", "须为 UTF-8 编码的 JSON (must be JSON encoded in UTF-8)") from None
    except RecursionError:
        raise Invalid.field("file", f"嵌套过深 (nested deeper than {text.MAX_DEPTH} levels)") from None
    except ValueError as exc:
        raise Invalid.field("file", f"不是有效的 JSON (not valid JSON): {exc}") from None


def import_organisation(session: Session, document: Any, *, actor: Actor, now: datetime,
                        dry_run: bool = False) -> Report:
    """Check the whole document, then (unless ``dry_run``) write it: the operator's act."""
    require_role(actor, "operator")
    problems = Problems("组织机构文件有误，未导入任何内容 (the organisation file is invalid: nothing was imported)")
    problems.errors.update(text.unusable_input(document))  # what the API refuses in any request, for a file too
    problems.raise_if_any()
    entries = _entries(document, problems)
    problems.raise_if_any()
    existing = {s.name: {s.code_of(row): row for row in session.scalars(
        select(s.model).where(getattr(s.model, s.key).in_([e["code"] for _, e in entries[s.name]])))}
        for s in SECTIONS}
    _check_references(session, entries, problems)
    report = Report()
    entries["regions"].sort(key=lambda item: REGION_LEVELS.index(item[1]["level"]))  # a parent is written first
    writes = [[write for path, entry in entries[section.name]
               for write in _compare(section, path, entry, existing[section.name].get(entry["code"]), report, problems)]
              for section in SECTIONS]
    problems.raise_if_any()
    if dry_run or not report.changed:
        return report
    for section_writes in writes:  # a section's rows refer to the sections' before, a region to its parent
        for write in section_writes:
            write(session)
            session.flush()
    audit.record(session, at=now, actor=actor.username, action="organisation.import", target="platform",
                 summary=report.as_dict())
    return report


# --- the shape of each entry ------------------------------------------------------------

def _entries(document: Any, problems: Problems) -> dict[str, list[tuple[str, dict]]]:
    """Each section's entries with their place, every problem of shape noted (the entries
    are looked at further only when there is none)."""
    entries: dict[str, list[tuple[str, dict]]] = {s.name: [] for s in SECTIONS}
    if not isinstance(document, dict):
        problems.add("file", "须为 JSON 对象 (must be a JSON object)")
        return entries
    for key in sorted(set(document) - {s.name for s in SECTIONS} - {"description"}, key=str):
        problems.add(str(key), "未知字段 (unknown field)")
    if "description" in document:
        problems.add("description", guides.text_problem(document["description"], DESCRIPTION_MAX, allow_empty=True))
    if not any(document.get(s.name) for s in SECTIONS):
        problems.add("file", "没有可导入的地区、部门或事项 (no region, department or matter to import)")
    for section in SECTIONS:
        items = document.get(section.name, [])
        if not isinstance(items, list):
            problems.add(section.name, "须为列表 (must be a list)")
            continue
        first_place: dict[str, str] = {}
        for index, entry in enumerate(items):
            path = f"{section.name}.{index}"
            if not isinstance(entry, dict):
                problems.add(path, "须为 JSON 对象 (must be a JSON object)")
                continue
            if _keys_complete(section, path, entry, problems):
                _CHECKS[section.name](path, entry, problems)
            code = entry.get("code")
            if isinstance(code, str) and code in first_place:
                problems.add(f"{path}.code", f"与 {first_place[code]} 重复 (a duplicate of {first_place[code]})")
            elif isinstance(code, str):
                first_place[code] = path
            entries[section.name].append((path, entry))
    return entries


def _keys_complete(section: _Section, path: str, entry: dict, problems: Problems) -> bool:
    """Unknown keys and missing ones are named; the entry's values are checked only when
    every required key is there."""
    for key in sorted(set(entry) - {"code", *section.columns}, key=str):
        problems.add(f"{path}.{key}", "未知字段 (unknown field)")
    missing = sorted(section.required - set(entry))
    for key in missing:
        problems.add(f"{path}.{key}", "必填 (required)")
    return not missing


def _check_region(path: str, entry: dict, problems: Problems) -> None:
    code, level, parent = entry["code"], entry["level"], entry.get("parent")
    problems.add(f"{path}.name", _name_problem(entry["name"], 64))
    if level not in REGION_LEVELS:
        problems.add(f"{path}.level", f"须为 {', '.join(REGION_LEVELS)} 之一 (one of {', '.join(REGION_LEVELS)})")
    code_problem = codes.region_problem(code)
    problems.add(f"{path}.code", code_problem)
    if code_problem is None and level in REGION_LEVELS and not _code_fits_level(code, level):
        problems.add(f"{path}.code", f"与层级 {level} 不符 (does not fit the level {level}: GB/T 2260 codes end in "
                                     "0000 for a province, 00 for a city)")
    if level == "province" and parent is not None:
        problems.add(f"{path}.parent", "省级地区没有上级 (a province has no parent)")
    elif level in ("city", "district"):
        problems.add(f"{path}.parent", codes.region_problem(parent))


def _is_code(pattern: re.Pattern, value: Any) -> bool:
    """The whole value is a code (``fullmatch``: a ``$`` would let a trailing line feed in)."""
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def _name_problem(value: Any, max_length: int) -> str | None:
    """A name is one line of plain text: printed as a label on notices and lists."""
    if isinstance(value, str) and any(ch in value for ch in "\t\r\n"):
        return "须为一行，不含制表符或换行 (one line: no tab or line break)"
    return guides.text_problem(value, max_length)


def _code_fits_level(code: str, level: str) -> bool:
    if level == "province":
        return code.endswith("0000")
    if level == "city":
        return code.endswith("00") and not code.endswith("0000")
    return not code.endswith("00")


def _check_identifier(path: str, entry: dict, pattern: re.Pattern, longest: int, name_max: int,
                      problems: Problems) -> None:
    """A department's or matter's code (an identifier diagrams name) and its name."""
    if not _is_code(pattern, entry["code"]):
        problems.add(f"{path}.code", f"须为小写字母开头的字母、数字、下划线，至多{longest}个字符 "
                                     f"(lower-case letters, digits and _, a letter first, at most {longest})")
    problems.add(f"{path}.name", _name_problem(entry["name"], name_max))


def _check_department(path: str, entry: dict, problems: Problems) -> None:
    _check_identifier(path, entry, _DEPARTMENT_CODE, 32, 64, problems)
    problems.add(f"{path}.region", codes.region_problem(entry["region"]))
    if entry["kind"] not in DEPARTMENT_KINDS:
        problems.add(f"{path}.kind", f"须为 {', '.join(DEPARTMENT_KINDS)} 之一 (one of {', '.join(DEPARTMENT_KINDS)})")


def _check_matter(path: str, entry: dict, problems: Problems) -> None:
    _check_identifier(path, entry, _MATTER_CODE, 64, 200, problems)
    if not _is_code(_DEPARTMENT_CODE, entry["department"]):
        problems.add(f"{path}.department", "须为部门代码 (a department code)")
    problems.add(f"{path}.promised_working_days", guides.days_problem(entry["promised_working_days"]))
    if "legal_basis" in entry:
        problems.add(f"{path}.legal_basis", guides.text_problem(entry["legal_basis"], guides.TEXT_FIELDS["legal_basis"],
                                                                allow_empty=True))
    guides.check_regimes(entry["regimes"], problems, f"{path}.regimes")


_CHECKS = {"regions": _check_region, "departments": _check_department, "matters": _check_matter}


# --- what the entries name, and what the database holds -----------------------------------

def _check_references(session: Session, entries, problems: Problems) -> None:
    """A region's parent, a department's region and a matter's department exist, in the file
    or the database; a region sits one level below its parent, under its code's prefix."""
    in_file = {s.name: {e["code"]: e for _, e in entries[s.name]} for s in SECTIONS}
    named = {
        "regions": {e["parent"] for _, e in entries["regions"] if e.get("parent")} | {e["region"] for _, e in entries["departments"]},
        "departments": {e["department"] for _, e in entries["matters"]},
    }
    stored = {name: {section.code_of(r): r for r in session.scalars(
        select(section.model).where(getattr(section.model, section.key).in_(named[name] - set(in_file[name]))))}
        for name, section in (("regions", REGIONS), ("departments", DEPARTMENTS))}
    levels = {code: e["level"] for code, e in in_file["regions"].items()}
    levels.update({code: r.level for code, r in stored["regions"].items()})
    for path, entry in entries["regions"]:
        parent = entry.get("parent")
        if parent is None:
            continue
        if parent not in levels:
            problems.add(f"{path}.parent", f"上级地区 {parent} 不在文件或数据库中 (the parent region is neither in the file nor stored)")
            continue
        above = REGION_LEVELS[REGION_LEVELS.index(entry["level"]) - 1]
        if levels[parent] != above:
            problems.add(f"{path}.parent", f"上级须为 {above} 级 (the parent must be a {above}), 不是 {levels[parent]}")
        elif not entry["code"].startswith(parent[:2] if entry["level"] == "city" else parent[:4]):
            problems.add(f"{path}.code", f"不在上级地区 {parent} 的代码之下 (not under the parent region's code)")
    for path, entry in entries["departments"]:
        if entry["region"] not in levels:
            problems.add(f"{path}.region", f"地区 {entry['region']} 不在文件或数据库中 (the region is neither in the file nor stored)")
    departments = set(in_file["departments"]) | set(stored["departments"])
    for path, entry in entries["matters"]:
        if entry["department"] not in departments:
            problems.add(f"{path}.department",
                         f"部门 {entry['department']} 不在文件或数据库中 (the department is neither in the file nor stored)")


def _canonical(attribute: str, value: Any) -> Any:
    """A matter's regimes in the catalogue's order: the same regimes listed otherwise are the same."""
    return sorted(value, key=REGIMES.index) if attribute == "regimes" else value


def _compare(section: _Section, path: str, entry: dict, row: Any, report: Report, problems: Problems) -> list:
    """What the entry changes: a row to create, names to update, or a refused change of structure."""
    values = {attribute: _canonical(attribute, entry.get(key)) for key, attribute in section.columns.items()
              if key in entry or key == "parent"}
    if row is None:
        report.created[section.name].append(entry["code"])
        return [lambda session: session.add(section.model(**{section.key: entry["code"]}, **values))]
    for key, attribute in section.columns.items():
        if key in section.descriptive or attribute not in values or \
                _canonical(attribute, getattr(row, attribute)) == values[attribute]:
            continue
        problems.add(f"{path}.{key}", f"与已有的不同（已有 {getattr(row, attribute)!r}），导入不改变结构 "
                                      f"(differs from the stored {getattr(row, attribute)!r}: an import does not change it)")
    changes = {section.columns[key]: entry[key] for key in section.descriptive
               if key in entry and getattr(row, section.columns[key]) != entry[key]}
    if not changes:
        report.unchanged[section.name] += 1
        return []
    report.updated[section.name].append(entry["code"])

    def update(_session: Session) -> None:
        for attribute, value in changes.items():
            setattr(row, attribute, value)
    return [update]
