"""Schemas of accounts administration (operator)."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from api.schemas.common import JsonBoolean, OptionalText, StrictSchema, Text
from engine.models import MAX_ID, ROLES


class ProjectUnitCreateSchema(StrictSchema):
    name = Text(200, required=True, metadata={"description": "项目单位名称"})
    credit_code = ma.fields.String(required=True, validate=validate.Length(min=1, max=40), metadata={"description": "统一社会信用代码 (GB 32100)"})
    contact_name = OptionalText(64)
    contact_phone = ma.fields.String(load_default="", validate=validate.Regexp(r"^[0-9+\-() ]{0,32}$", error="电话号码格式有误 (phone: digits, + - ( ) and spaces)"))


class ProjectUnitOutSchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    credit_code = ma.fields.String()
    contact_name = ma.fields.String()
    contact_phone = ma.fields.String()


class UserCreateSchema(StrictSchema):
    username = ma.fields.String(required=True, validate=validate.Length(min=2, max=64))
    password = ma.fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=128))
    display_name = Text(64, required=True)
    roles = ma.fields.List(ma.fields.String(validate=validate.OneOf(ROLES)), required=True, validate=validate.Length(min=1, max=len(ROLES)))
    department_code = ma.fields.String(load_default=None, allow_none=True, validate=validate.Length(max=32))
    project_unit_id = ma.fields.Integer(load_default=None, allow_none=True, strict=True, validate=validate.Range(min=1, max=MAX_ID))


class UserOutSchema(ma.Schema):
    id = ma.fields.Integer()
    username = ma.fields.String()
    display_name = ma.fields.String()
    roles = ma.fields.List(ma.fields.String())
    department_code = ma.fields.String(allow_none=True)
    project_unit_id = ma.fields.Integer(allow_none=True)
    active = ma.fields.Boolean()


class UserUpdateSchema(StrictSchema):
    """What the operator changes on an account; only the fields sent change."""

    active = JsonBoolean(metadata={"description": "false: the account is disabled (its tokens refused)"})
    roles = ma.fields.List(ma.fields.String(validate=validate.OneOf(ROLES)), validate=validate.Length(min=1, max=len(ROLES)))
    department_code = ma.fields.String(allow_none=True, validate=validate.Length(max=32))
    project_unit_id = ma.fields.Integer(allow_none=True, strict=True, validate=validate.Range(min=1, max=MAX_ID))
    display_name = Text(64)
    password = ma.fields.String(load_only=True, validate=validate.Length(min=1, max=128),
                                metadata={"description": "a new password (a reset also lifts a sign-in lock-out)"})
