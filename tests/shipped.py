"""The shipped diagrams as tests edit them: one copy of the file read, one way to change
it that fails loudly when the text to change is not there (a shipped diagram edited
since the test was written)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BPMN = ROOT / "bpmn"
FORMS = ROOT / "forms"
#: A Chinese character: every refusal speaks Chinese first.
CJK = re.compile(r"[\u4e00-\u9fff]")


def shipped(name: str) -> str:
    return (BPMN / name).read_text(encoding="utf-8")


def edit(text: str, old: str, new: str, count: int = 1) -> str:
    assert old in text, old
    return text.replace(old, new, count)
