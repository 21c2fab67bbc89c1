"""The matters notice table (应办事项告知, 第十四条(一)): what it must satisfy before it is
deployed.

Every declaration meets it: a table that fails to evaluate, reads what a declaration
does not give, names no matter the platform can add, or silently drops matters (a UNIQUE
table whose rules overlap) would break or empty every declaration after it. So it is
checked as written and then run over sample declarations before any project meets it.
"""
from __future__ import annotations

import ast
import functools
import itertools
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import codes, diagram_checks, scripting, spiff_adapter
from engine.diagram_checks import local_name
from engine.errors import Invalid
from engine.models import REGIMES, Matter
from engine.projects import FACT_FIELDS

#: The decision table of the matters notice (应办事项告知).
MATTERS_DECISION = "matters_notice"

#: What runtime.matters_notice gives the table: the declaration's regime, industry,
#: investment (万元) and facts. An input naming anything else fails on every declaration.
NOTICE_INPUTS = ("regime", "industry_code", "investment", *FACT_FIELDS)
#: Every hit names a matter and the department that handles it.
NOTICE_OUTPUTS = ("matter_code", "department")
#: The declaration's investment: more than 0, at most 10^12 万元, 4 decimal places.
_INVESTMENT_STEP, _INVESTMENT_MAX = 0.0001, 10.0 ** 12
_QUOTED_CODE = re.compile(r"[\"'](\d{2})[\"']")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")


@dataclass(frozen=True)
class _Table:
    """The matters table as written: column ids and every rule's cells (entry id, text),
    the columns in document order (the adapter's lists of names and expressions align)."""

    table_id: str
    input_ids: list[str]
    output_ids: list[str]
    rules: list[tuple[str, list[tuple[str, str]], list[tuple[str, str]]]]


def _cells(rule, name: str) -> list[tuple[str, str]]:
    return [(e.get("id") or rule.get("id") or "", "".join(t.text or "" for t in e if local_name(t) == "text").strip())
            for e in rule if local_name(e) == name]


def _table(content: bytes) -> _Table:
    root, _ = diagram_checks.parse_xml(content)  # validate_dmn has parsed it already
    decision = next(d for d in root.iter() if local_name(d) == "decision" and d.get("id") == MATTERS_DECISION)
    table = next(t for t in decision if local_name(t) == "decisionTable")
    return _Table(
        table_id=table.get("id") or MATTERS_DECISION,
        input_ids=[i.get("id") or MATTERS_DECISION for i in table if local_name(i) == "input"],
        output_ids=[o.get("id") or MATTERS_DECISION for o in table if local_name(o) == "output"],
        rules=[(r.get("id") or MATTERS_DECISION, _cells(r, "inputEntry"), _cells(r, "outputEntry")) for r in table if local_name(r) == "rule"],
    )


def _names(expression: str) -> set[str]:
    """The variables an expression reads (the script engine's builtins and its own bound names aside)."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()  # validate_dmn has refused it already
    return diagram_checks.free_names(tree) - set(scripting.SAFE_BUILTINS)


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _samples(table: _Table, expressions: list[str]) -> list[dict]:
    """Sample declarations: every value of what the table reads (the regimes, each fact
    true and false; what it does not read stays fixed) × the industry codes it names (one
    for each set of cells naming the same codes, which those cells cannot tell apart) and
    one it does not × the investments at and around each amount the rules that may apply
    to that industry name (its own and those naming no industry), and the least and
    largest a declaration may give. Refused when running them would take too long."""
    read = set().union(*(_names(e) for e in expressions)) if expressions else set()
    row_codes: dict[int, set[str]] = {}
    row_amounts: dict[int, set[float]] = {}
    named_by: dict[str, set[tuple[int, int]]] = {}
    for column, expression in enumerate(expressions):
        cells = [(row, inputs[column][1]) for row, (_, inputs, _) in enumerate(table.rules) if column < len(inputs)]
        names = _names(expression)
        for row, cell in cells:
            if "industry_code" in names:
                for code in _QUOTED_CODE.findall(cell):
                    named_by.setdefault(code, set()).add((row, column))
                    row_codes.setdefault(row, set()).add(code)
            if "investment" in names:
                row_amounts.setdefault(row, set()).update(float(n) for n in _NUMBER.findall(cell))
    generic = {row for row in range(len(table.rules)) if row not in row_codes}
    industries = {}
    for code in sorted(named_by):
        rows = {row for row, _ in named_by[code]}
        industries.setdefault(frozenset(named_by[code]), (code, rows | generic))
    unnamed = next((row["code"] for row in codes.industries() if row["code"] not in named_by), None)
    choices = list(industries.values()) + ([(unnamed, generic)] if unnamed else [])
    regimes = REGIMES if "regime" in read else REGIMES[:1]
    facts = list(itertools.product(*[(False, True) if f in read else (False,) for f in FACT_FIELDS]))
    samples = []
    for industry, rows in choices:
        amounts = set().union(*(row_amounts.get(row, set()) for row in rows)) if rows else set()
        investments = sorted({v for a in amounts for v in (a - _INVESTMENT_STEP, a, a + _INVESTMENT_STEP)
                              if 0 < v <= _INVESTMENT_MAX} | {_INVESTMENT_STEP, _INVESTMENT_MAX})
        samples += [{"regime": regime, "industry_code": industry, "investment": investment, **dict(zip(FACT_FIELDS, fact))}
                    for regime, fact, investment in itertools.product(regimes, facts, investments)]
    if len(samples) * max(len(table.rules), 1) > MAX_RULE_EVALUATIONS:
        raise Invalid.field(MATTERS_DECISION, f"决策表过大，部署时无法逐一检验（{len(samples)} 个申报样例 × {len(table.rules)} 条规则），"
                                              f"请合并规则 (the table is too large to check at deploy: {len(samples)} sample "
                                              f"declarations × {len(table.rules)} rules; merge rules)")
    return samples


#: The most rule evaluations a deploy check of the matters table runs (~20 us each): the
#: check runs inside the deploy's request and holds its process meanwhile.
MAX_RULE_EVALUATIONS = 500_000


def _describe(sample: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in sample.items())


@functools.lru_cache(maxsize=8)
def _sample_hits(content: bytes) -> tuple[tuple[dict, list[dict]], ...]:
    """Every sample declaration with the outputs of every rule it matches (cached per
    content: the shipped table is run once per process, not once per database).
    Raises Invalid naming the rule and the sample when a cell does not evaluate."""
    table = _table(content)
    results = []
    for sample in _samples(table, spiff_adapter.dmn_input_expressions(content, MATTERS_DECISION)):
        try:
            results.append((sample, spiff_adapter.decision_hits(content, MATTERS_DECISION, sample)))
        except spiff_adapter.ProcedureError as exc:
            raise Invalid.field(exc.element_id or MATTERS_DECISION,
                                f"申报样例下无法求值 (does not evaluate for the sample declaration {_describe(sample)}): {exc.message}") from None
    return tuple(results)


def check(session: Session, content: bytes) -> None:
    """The matters notice is decided for every declaration: a table that fails, or names
    nothing the platform can use, is refused here rather than met by the declarations.

    Statically: the inputs read only what runtime.matters_notice passes; the outputs
    include matter_code and department; a literal matter is in the catalogue and the
    literal department beside it is that matter's. Then the table is run over sample
    declarations (every cell must evaluate; a UNIQUE table may match at most one rule,
    since its later hits would be silently dropped; computed outputs obey the same
    catalogue rule)."""
    expressions = spiff_adapter.dmn_input_expressions(content, MATTERS_DECISION)  # DiagramRefused: the caller's to tell
    outputs = spiff_adapter.dmn_output_names(content, MATTERS_DECISION)
    policy = spiff_adapter.decision_hit_policy(content, MATTERS_DECISION)
    table = _table(content)
    catalogue = {m.matter_code: m.department_code for m in session.scalars(select(Matter))}
    errors: dict[str, list[str]] = {}
    for input_id, expression in zip(table.input_ids, expressions):
        unknown = sorted(_names(expression) - set(NOTICE_INPUTS))
        if unknown:
            errors.setdefault(input_id, []).append(
                f"输入只能引用申报信息 {', '.join(NOTICE_INPUTS)} (an input reads only the declaration's facts): {', '.join(unknown)}")
    missing = [name for name in NOTICE_OUTPUTS if name not in outputs]
    if missing:
        for output_id, name in zip(table.output_ids, outputs):
            if name not in NOTICE_OUTPUTS:
                errors.setdefault(output_id, []).append(
                    f"输出列须命名为 {' 或 '.join(NOTICE_OUTPUTS)} (name the output column {' or '.join(NOTICE_OUTPUTS)}): {name}")
        errors.setdefault(MATTERS_DECISION, []).append(f"决策表缺少输出列 (the table lacks the output columns): {', '.join(missing)}")
    else:
        _cell_errors(table, outputs, catalogue, errors)
    if errors:
        raise Invalid("应办事项决策表未通过校验 (the matters notice table did not pass the checks)", errors)
    for sample, hits in _sample_hits(bytes(content)):
        if policy == "UNIQUE" and len(hits) > 1:
            raise Invalid.field(table.table_id, f"命中策略为 UNIQUE，但申报样例命中 {len(hits)} 条规则，后者会被丢弃；规则不互斥时请用 COLLECT "
                                                f"(hit policy UNIQUE, yet the sample declaration {_describe(sample)} matches {len(hits)} rules)")
        for hit in hits:
            problem = _value_problem(hit.get("matter_code"), hit.get("department"), catalogue)
            if problem:
                raise Invalid.field(MATTERS_DECISION, f"{problem} — 申报样例 (sample declaration) {_describe(sample)}")


def _value_problem(matter, department, catalogue: dict[str, str]) -> str | None:
    if not isinstance(matter, str) or matter not in catalogue:
        return f"事项目录中没有此事项 (not a matter of the catalogue): {matter}"
    if department != catalogue[matter]:
        return f"事项 {matter} 的办理部门是 {catalogue[matter]}，不是 {department} (the matter is handled by {catalogue[matter]}, not {department})"
    return None


def _cell_errors(table: _Table, outputs: list[str], catalogue: dict[str, str], errors: dict[str, list[str]]) -> None:
    """Each rule names a matter in the matter_code column and, in the department column,
    that matter's department (the literal cells; computed ones are checked by running)."""
    matter_at, department_at = outputs.index("matter_code"), outputs.index("department")
    for rule_id, _, cells in table.rules:
        if max(matter_at, department_at) >= len(cells) or not cells[matter_at][1] or not cells[department_at][1]:
            errors.setdefault(rule_id, []).append("每条规则须给出 matter_code 和 department (every rule gives a matter and its department)")
            continue
        (matter_id, matter_text), (department_id, department_text) = cells[matter_at], cells[department_at]
        matter, department = _literal(matter_text), _literal(department_text)
        if isinstance(matter, str) and matter not in catalogue:
            errors.setdefault(matter_id, []).append(_value_problem(matter, department, catalogue))
        elif isinstance(matter, str) and isinstance(department, str) and department != catalogue[matter]:
            errors.setdefault(department_id, []).append(_value_problem(matter, department, catalogue))
