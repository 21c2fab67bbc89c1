"""Shared marshmallow pieces: pagination, plain-text validation, errors."""
from __future__ import annotations

import re

import marshmallow as ma
from marshmallow import validate

#: Markup and SQL fragments have no place in a declaration; refusing them keeps
#: disclosure pages and exports safe for every consumer downstream.
_FORBIDDEN = re.compile(
    r"[<>\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|--|/\*|\*/|;\s*(drop|delete|insert|update|select|alter|truncate|create)\b"
    r"|'\s*or\s+'?\d|\bunion\s+select\b",
    re.IGNORECASE,
)


def plain_text(value: str) -> None:
    if _FORBIDDEN.search(value):
        raise ma.ValidationError("不得包含标记或SQL片段 (markup, control characters or SQL are not allowed)")
    if not value.strip():
        raise ma.ValidationError("不能为空 (must not be blank)")


def Text(max_length: int, **kwargs) -> ma.fields.String:
    return ma.fields.String(validate=[validate.Length(min=1, max=max_length), plain_text], **kwargs)


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
