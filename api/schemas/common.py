"""Shared marshmallow pieces: pagination, plain-text validation, errors."""
from __future__ import annotations

import decimal
import re

import marshmallow as ma
from marshmallow import validate

from engine.text import BIDI_CONTROLS, UNUSABLE_CHARACTERS, is_blank
from engine.workcal import FIRST_YEAR, LAST_YEAR


#: Markup and SQL fragments have no place in a declaration; refusing them keeps
#: disclosure pages and exports safe for every consumer downstream. Nor have
#: bidirectional controls, which make a name read in another order than it is stored.
#: Ordinary text keeps its signs: a comparison (容积率<2.0，建筑高度>24米) is not a tag, and
#: a dash (一期--二期) is not a comment; a tag begins ``<`` with a letter, ``/``, ``!`` or ``?``.
_FORBIDDEN = re.compile(
    rf"[{UNUSABLE_CHARACTERS}{BIDI_CONTROLS}]|<[a-z/!?]|;\s*(drop|delete|insert|update|select|alter|truncate|create)\b"
    r"|'\s*or\s+'?\d|\bunion\s+select\b",
    re.IGNORECASE,
)


#: A 6-digit administrative region code (行政区划代码), ASCII digits only.
REGION_CODE = validate.Regexp(r"^[0-9]{6}$", error="须为6位数字行政区划代码 (6-digit region code)")


def plain_text(value: str) -> None:
    if _FORBIDDEN.search(value):
        raise ma.ValidationError("不得包含标记或SQL片段 (markup, control characters or SQL are not allowed)")
    if is_blank(value):
        raise ma.ValidationError("不能为空 (must not be blank: white space or invisible characters only)")




def within_platform_years(value) -> None:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ma.ValidationError(f"须在{FIRST_YEAR}年至{LAST_YEAR}年之间 (between {FIRST_YEAR} and {LAST_YEAR})")


def PlatformDate(**kwargs) -> ma.fields.Date:
    """A day given by a client (a filter, a deadline), within the platform's years."""
    return ma.fields.Date(validate=within_platform_years, **kwargs)


def PlatformInstant(**kwargs) -> ma.fields.AwareDateTime:
    """An instant given by a client, with its offset, within the platform's years."""
    return ma.fields.AwareDateTime(validate=within_platform_years, **kwargs)


class JsonBoolean(ma.fields.Boolean):
    """A JSON body's boolean: true or false, nothing else (marshmallow's own also takes 1,
    "yes" and "on", which the OpenAPI document does not promise)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


#: A decimal as text: ASCII digits, an optional sign and point (no spaces, no full-width digits).
_DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?")


class ExactDecimal(ma.fields.Decimal):
    """A decimal given with at most ``places`` digits after the point: more is refused
    (an amount of 0.001 yuan is not 0.00), where marshmallow's own would round. Given as
    text, it is plain ASCII digits; a JSON number is taken too, a boolean is not."""

    default_error_messages = {"places": "小数位数不得超过{places}位 (at most {places} decimal places)"}

    def _validated(self, value):
        if isinstance(value, bool) or (isinstance(value, str) and not _DECIMAL_TEXT.fullmatch(value)):
            raise self.make_error("invalid")
        number = super()._validated(value)
        return number.copy_abs() if number is not None and number.is_zero() else number  # no "-0.00" is kept

    def _format_num(self, value):
        num = value if isinstance(value, decimal.Decimal) else decimal.Decimal(str(value))
        if self.places is not None and num.is_finite():
            places = -self.places.as_tuple().exponent  # marshmallow keeps places as a quantum (0.01)
            if _fraction_digits(num) > places:
                raise self.make_error("places", places=places)
        return super()._format_num(value)


def _fraction_digits(num: decimal.Decimal) -> int:
    """Digits after the point, trailing zeros left out, read off the digits themselves
    (arithmetic in a decimal context would round or overflow first)."""
    _sign, digits, exponent = num.as_tuple()
    significant = "".join(map(str, digits)).rstrip("0")
    if not significant:
        return 0  # zero, however many zeros it is written with
    return max(0, -(exponent + len(digits) - len(significant)))


def Text(max_length: int, **kwargs) -> ma.fields.String:
    return ma.fields.String(validate=[validate.Length(min=1, max=max_length), plain_text], **kwargs)


def OptionalText(max_length: int, **kwargs) -> ma.fields.String:
    """Plain text that may be left empty (a note, a report's remarks, a contact's name)."""
    return ma.fields.String(load_default="", validate=[validate.Length(max=max_length), lambda v: plain_text(v) if v else None],
                            **kwargs)


class StrictSchema(ma.Schema):
    """Unknown fields are refused (422), never silently dropped."""

    class Meta:
        unknown = ma.RAISE


class PageQuery(StrictSchema):
    page = ma.fields.Integer(load_default=1, validate=validate.Range(min=1, max=100000))
    page_size = ma.fields.Integer(load_default=20, validate=validate.Range(min=1, max=200))


def page_envelope(item_schema: type[ma.Schema]) -> type[ma.Schema]:
    """A page of items with the counts a client needs to walk the list."""
    return type(
        f"{item_schema.__name__.removesuffix('Schema')}PageSchema",
        (ma.Schema,),
        {
            "items": ma.fields.List(ma.fields.Nested(item_schema)),
            "page": ma.fields.Integer(),
            "page_size": ma.fields.Integer(),
            "total": ma.fields.Integer(),
        },
    )


def page_of(rows, total: int, page: int, page_size: int) -> dict:
    """The envelope every list answers with."""
    return {"items": rows, "page": page, "page_size": page_size, "total": total}
