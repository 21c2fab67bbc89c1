"""Text as a reader sees it: what counts as blank.

A name or a document number made only of characters that show nothing (a zero-width
space, a byte-order mark, a soft hyphen, a Hangul filler) reads as empty on a notice or
the portal, so it is blank however many characters it has.
"""
from __future__ import annotations

import unicodedata

#: Letters and symbols that show nothing though Unicode does not call them space or
#: format characters: the Hangul fillers and the blank braille pattern.
_SHOW_NOTHING = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def is_blank(value: str) -> bool:
    """No character a reader would see: white space, format characters (Unicode Cf), fillers."""
    return all(ch.isspace() or ch in _SHOW_NOTHING or unicodedata.category(ch) == "Cf" for ch in value)
