"""Text as a reader sees it: what counts as blank, and what reorders it.

A name or a document number made only of characters that show nothing (a zero-width
space, a byte-order mark, a soft hyphen, a Hangul filler) reads as empty on a notice or
the portal, so it is blank however many characters it has. Bidirectional controls make
text read in another order than it is stored (a name shown reversed on the portal).
"""
from __future__ import annotations

import re
import unicodedata

#: The bidirectional embeddings, overrides and isolates, as a regex character range.
BIDI_CONTROLS = r"\u202a-\u202e\u2066-\u2069"
_BIDI = re.compile(f"[{BIDI_CONTROLS}]")

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
