"""Text as a reader sees it: what counts as blank, and what reorders it.

A name or a document number made only of characters that show nothing (a zero-width
space, a byte-order mark, a soft hyphen, a Hangul filler) reads as empty on a notice or
the portal, so it is blank however many characters it has. Bidirectional controls make
text read in another order than it is stored (a name shown reversed on the portal).
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any

#: The bidirectional embeddings, overrides and isolates, as a regex character range.
BIDI_CONTROLS = r"\u202a-\u202e\u2066-\u2069"
_BIDI = re.compile(f"[{BIDI_CONTROLS}]")

#: What no text holds (a regex character range): C0 controls other than tab, line feed
#: and carriage return, DEL, and UTF-16 surrogates (a lone ``\ud800`` escape in JSON
#: decodes to text no UTF-8 encoder writes, and PostgreSQL's text cannot hold NUL).
UNUSABLE_CHARACTERS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff"
_UNUSABLE = re.compile(f"[{UNUSABLE_CHARACTERS}]")
_UNUSABLE_TEXT = "不得包含控制字符或孤立代理码位 (control characters or lone surrogates are not allowed)"
#: Deeper JSON is refused: a form's data, an organisation file, are a few levels deep.
MAX_DEPTH = 32

#: Letters and symbols that show nothing though Unicode does not call them space or
#: format characters: the Hangul fillers and the blank braille pattern.
_SHOW_NOTHING = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def is_blank(value: str) -> bool:
    """No character a reader would see: white space, format characters (Unicode Cf), fillers."""
    return all(ch.isspace() or ch in _SHOW_NOTHING or unicodedata.category(ch) == "Cf" for ch in value)


def unreadable(value: str) -> str | None:
    """Why submitted text would not read as typed, or None: it is not white space yet
    shows nothing, or it holds bidirectional controls. (White space alone is the form's
    business: an empty optional comment may arrive as a line break.)"""
    if _BIDI.search(value):
        return "不得包含文字方向控制字符 (bidirectional control characters are not allowed)"
    if value.strip() and is_blank(value):
        return "不能只含不可见字符 (invisible characters only)"
    return None


def unusable_input(value: Any, path: str = "", depth: int = 0, found: dict[str, list[str]] | None = None
                   ) -> dict[str, list[str]]:
    """Where decoded JSON holds what no field may (``UNUSABLE_CHARACTERS`` in a text or a
    key, nesting deeper than ``MAX_DEPTH``), by path (``departments.2.region``; ``body``
    for the whole): the API refuses it in every request, the engine in a file an operator
    hands it, before any field is looked at."""
    found = {} if found is None else found
    if depth > MAX_DEPTH:
        found[path or "body"] = [f"嵌套超过{MAX_DEPTH}层 (nested deeper than {MAX_DEPTH} levels)"]
    elif isinstance(value, str):
        if _UNUSABLE.search(value):
            found[path or "body"] = [_UNUSABLE_TEXT]
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            if _UNUSABLE.search(str(key)):
                found[name] = [_UNUSABLE_TEXT]
            else:
                unusable_input(item, name, depth + 1, found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            unusable_input(item, f"{path}.{index}" if path else str(index), depth + 1, found)
    return found
