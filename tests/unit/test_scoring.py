"""The scoring rule (绩效考核): validated on load with the key and problem named, and how
each record is classified (no database)."""
from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone

import pytest

from engine.models import Alert, Clock
from engine.scoring import DEFAULT_RULE, RuleInvalid, configured_rule, load_rule, parse_rule, point_kind

DUE = datetime(2026, 3, 12, 2, tzinfo=timezone.utc)


def test_the_shipped_rule_loads():
    rule = load_rule(DEFAULT_RULE)
    assert rule.base == 100 and rule.minimum == 0
    assert set(rule.points) == {"red_record", "yellow_record", "automatic_reply", "late_reply"}


def test_the_environment_chooses_the_rule_file(tmp_path, monkeypatch):
    path = tmp_path / "rule.json"
    path.write_text(json.dumps({"base": 50, "minimum": 10, "points": {"late_reply": 4}}), encoding="utf-8")
    monkeypatch.setenv("TZXM_SCORING_RULE", str(path))
    rule = configured_rule()
    assert (rule.base, rule.minimum, rule.points, rule.source) == (50, 10, {"late_reply": 4.0}, str(path))


@pytest.mark.parametrize(("data", "problem"), [
    ([], "JSON 对象"),
    ({"points": {"red_record": 1}}, "base"),
    ({"base": 0, "points": {"red_record": 1}}, "base"),
    ({"base": "100", "points": {"red_record": 1}}, "base"),
    ({"base": 100, "minimum": 101, "points": {"red_record": 1}}, "minimum"),
    ({"base": 100, "points": {}}, "points"),
    ({"base": 100, "points": {"red": 1}}, "points.red"),
    ({"base": 100, "points": {"red_record": -1}}, "points.red_record"),
    ({"base": 100, "points": {"red_record": True}}, "points.red_record"),
    ({"base": 100, "points": {"red_record": 1}, "bonus": 5}, "bonus"),
])
def test_a_broken_rule_is_refused_naming_the_key(data, problem):
    with pytest.raises(ValueError, match=problem):
        parse_rule(data, "test")


def test_unreadable_and_malformed_files_name_the_file(tmp_path):
    missing = tmp_path / "missing.json"
    with pytest.raises(RuleInvalid, match="missing.json") as info:
        load_rule(missing)
    assert info.value.status == 503
    broken = tmp_path / "broken.json"
    broken.write_text('{"base": 100,\n "points": }', encoding="utf-8")
    with pytest.raises(RuleInvalid, match=r"broken.json: line 2"):
        load_rule(broken)


def test_an_edited_file_is_read_again(tmp_path):
    path = tmp_path / "rule.json"
    path.write_text(json.dumps({"base": 100, "points": {"red_record": 1}}), encoding="utf-8")
    assert load_rule(path).points == {"red_record": 1.0}
    path.write_text(json.dumps({"base": 100, "points": {"red_record": 7}}), encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert load_rule(path).points == {"red_record": 7.0}


def _reply(stopped):
    return Clock(kind="reply", light="red", due_at=DUE, stopped_at=stopped)


@pytest.mark.parametrize(("light", "clock", "kind"), [
    ("yellow", _reply(DUE + timedelta(microseconds=1)), "yellow_record"),
    ("red", _reply(DUE + timedelta(microseconds=1)), "automatic_reply"),
    ("red", _reply(DUE + timedelta(hours=5)), "late_reply"),
    ("red", _reply(None), "red_record"),
    ("red", Clock(kind="promised", light="red", due_at=DUE, stopped_at=DUE + timedelta(days=2)), "red_record"),
])
def test_each_record_is_scored_once_under_one_kind(light, clock, kind):
    assert point_kind(Alert(light=light, clock_kind=clock.kind), clock) == kind
