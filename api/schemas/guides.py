"""Schemas of the service guide (办事指南): the content a department admin publishes and
what the portal shows.

The input schema checks shape, types and lengths with the engine's own rules
(``engine.guides.text_problem`` and its limits), so the API and the engine refuse the
same values; the rules across fields (the matter's department, unique material codes,
at least one required material, promised ≤ statutory) are the engine's alone.
"""
from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from api.schemas.common import JsonBoolean, PageQuery, StrictSchema
from engine import guides
from engine.models import REGIMES

_DAYS = validate.Range(min=guides.MIN_DAYS, max=guides.MAX_DAYS)


def _plain(max_length: int, *, allow_empty: bool = False):
    def check(value: str) -> None:
        problem = guides.text_problem(value, max_length, allow_empty=allow_empty)
        if problem:
            raise ma.ValidationError(problem)
    return check


def _template(value: str) -> None:
    problem = guides.template_problem(value)
    if problem:
        raise ma.ValidationError(problem)


def _text(key: str, description: str) -> ma.fields.String:
    return ma.fields.String(required=True, validate=_plain(guides.TEXT_FIELDS[key]), metadata={"description": description})


class GuideMaterialSchema(StrictSchema):
    code = ma.fields.String(required=True, validate=validate.Regexp(
        guides.MATERIAL_CODE, error="须为小写字母开头的2至64位小写字母、数字或下划线 ({regex})"),
        metadata={"description": "材料编码，指南内唯一 (unique within the guide; materials are uploaded under it)"})
    name = ma.fields.String(required=True, validate=_plain(guides.MATERIAL_TEXT_FIELDS["name"][0]), metadata={"description": "材料名称"})
    required = JsonBoolean(required=True, metadata={"description": "是否必交"})
    gap_tolerable = JsonBoolean(required=True, metadata={"description": "必交材料暂缺时可否容缺受理 (only for required materials)"})
    template = ma.fields.String(required=True, validate=_template, metadata={"description": "样表/模板：空、文件名或 http(s) 地址"})
    description = ma.fields.String(required=True, validate=_plain(guides.MATERIAL_TEXT_FIELDS["description"][0], allow_empty=True),
                                   metadata={"description": "填报说明"})


class GuideContentSchema(StrictSchema):
    """The body of POST /guides/{matter_code}: one complete guide (Hunan 第八条)."""

    name = _text("name", "事项名称")
    department_code = ma.fields.String(required=True, validate=_plain(guides.DEPARTMENT_CODE_MAX), metadata={"description": "办理部门 (must be the matter's department)"})
    legal_basis = _text("legal_basis", "审批依据")
    content = _text("content", "审批内容")
    acceptance_conditions = _text("acceptance_conditions", "受理条件")
    materials = ma.fields.List(ma.fields.Nested(GuideMaterialSchema), required=True,
                               validate=validate.Length(min=1, max=guides.MAX_MATERIALS), metadata={"description": "申报材料"})
    process = _text("process", "办理流程")
    promised_working_days = ma.fields.Integer(required=True, strict=True, validate=_DAYS, metadata={"description": "承诺时限（工作日）"})
    statutory_working_days = ma.fields.Integer(required=True, strict=True, allow_none=True, validate=_DAYS, metadata={"description": "法定时限（工作日），无则 null"})
    fees = _text("fees", "收费标准")
    supervision_requirements = _text("supervision_requirements", "监管要求")
    contact = _text("contact", "联系方式")
    regimes = ma.fields.List(ma.fields.String(validate=validate.OneOf(REGIMES)), required=True, validate=validate.Length(min=1, max=len(REGIMES)),
                             metadata={"description": "适用的管理方式：examination 审批 | approval 核准 | filing 备案"})


class DepartmentRefSchema(ma.Schema):
    code = ma.fields.String()
    name = ma.fields.String()


class _GuideMetaSchema(ma.Schema):
    matter_code = ma.fields.String()
    version = ma.fields.Integer(metadata={"description": "指南版本：项目保留告知时的版本"})
    published_at = ma.fields.AwareDateTime()
    published_by = ma.fields.String(metadata={"description": "who published it: in the publisher's own answer only, not on the portal"})


class GuideSchema(_GuideMetaSchema, GuideContentSchema):
    """One version of a guide: its metadata and its whole content."""

    class Meta:
        unknown = ma.RAISE


class GuideSummarySchema(_GuideMetaSchema):
    """A guide in the public list: enough to choose one, the rest at its own address."""

    name = ma.fields.String()
    department = ma.fields.Nested(DepartmentRefSchema)
    regimes = ma.fields.List(ma.fields.String())
    promised_working_days = ma.fields.Integer()
    statutory_working_days = ma.fields.Integer(allow_none=True)
    fees = ma.fields.String()


class GuideVersionSchema(_GuideMetaSchema):
    pass


class RegimeMatterSchema(ma.Schema):
    matter_code = ma.fields.String()
    name = ma.fields.String()
    department = ma.fields.Nested(DepartmentRefSchema)
    promised_working_days = ma.fields.Integer()
    guide_version = ma.fields.Integer()


class GuideListQuery(PageQuery):
    regime = ma.fields.String(validate=validate.OneOf(REGIMES), metadata={"description": "examination | approval | filing"})
    department = ma.fields.String(validate=validate.Length(min=1, max=guides.DEPARTMENT_CODE_MAX))
    matter_code = ma.fields.String(validate=validate.Length(min=1, max=64))
    q = ma.fields.String(validate=[validate.Length(min=1, max=100), _plain(100)], metadata={"description": "事项名称包含的文字"})


class GuideVersionQuery(StrictSchema):
    version = ma.fields.Integer(validate=validate.Range(min=1, max=1_000_000), metadata={"description": "an older version (default: the newest)"})
