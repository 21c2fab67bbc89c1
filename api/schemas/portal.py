"""Schemas of the public portal and the disclosure lists, and their Atom 1.0 form.

The field lists here are the allow-list of what the public sees (engine/portal.py
builds answers holding only these fields; the tests compare every key at every depth
against them). Add a field here only if it is public by law and by the project unit's
consent: no investment, location, contacts, materials, comments or reasons.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any, Iterable

import marshmallow as ma
from marshmallow import validate

from api.schemas.common import REGION_CODE, PageQuery, PlatformDate, StrictSchema
from engine.clock import SHANGHAI

ATOM_NS = "http://www.w3.org/2005/Atom"
ATOM_MEDIA_TYPE = "application/atom+xml"
#: Newest entries an Atom feed carries.
FEED_SIZE = 50


class PortalCodeNameSchema(ma.Schema):
    code = ma.fields.String()
    name = ma.fields.String()


class PortalNameSchema(ma.Schema):
    name = ma.fields.String()


class PortalResultSchema(ma.Schema):
    decision = ma.fields.String(allow_none=True, metadata={"description": "approved | denied | filed | refused (不予受理) | …"})
    document_number = ma.fields.String(allow_none=True, metadata={"description": "文号"})
    document_title = ma.fields.String(allow_none=True)
    document_date = ma.fields.String(allow_none=True, metadata={"description": "YYYY-MM-DD, as on the document"})


class PortalMatterSchema(ma.Schema):
    matter_code = ma.fields.String()
    matter_name = ma.fields.String()
    department = ma.fields.Nested(PortalCodeNameSchema)
    status = ma.fields.String(metadata={"description": "notified | dispatched | handling | concluded | refused | no_matter | cancelled | terminated | closed"})
    light = ma.fields.String(metadata={"description": "green | yellow | red"})
    received_at = ma.fields.AwareDateTime(allow_none=True, metadata={"description": "收件: the department received it"})
    accepted_at = ma.fields.AwareDateTime(allow_none=True, metadata={"description": "受理: the promised time limit runs from here"})
    concluded_at = ma.fields.AwareDateTime(allow_none=True, metadata={"description": "办结"})
    result = ma.fields.Nested(PortalResultSchema, allow_none=True, metadata={"description": "null until decided"})


class PortalParticularsSchema(ma.Schema):
    decision_number = ma.fields.Raw(metadata={"description": "处罚决定书文号"})
    amount = ma.fields.Raw(metadata={"description": "罚款金额"})
    legal_basis = ma.fields.Raw(metadata={"description": "处罚依据"})


class PortalProjectRecordSchema(ma.Schema):
    reference = ma.fields.String(metadata={"description": "opaque, stable reference of the record"})
    department = ma.fields.Nested(PortalCodeNameSchema)
    kind = ma.fields.String(metadata={"description": "inspection | rectification | penalty"})
    title = ma.fields.String()
    content = ma.fields.String()
    particulars = ma.fields.Nested(PortalParticularsSchema)
    state = ma.fields.String(metadata={"description": "open (rectification under way) | closed"})
    recorded_at = ma.fields.AwareDateTime()
    closed_at = ma.fields.AwareDateTime(allow_none=True)


class PortalProjectSchema(ma.Schema):
    project_code = ma.fields.String()
    name = ma.fields.String()
    project_unit = ma.fields.Nested(PortalNameSchema)
    regime = ma.fields.String(metadata={"description": "examination 审批 | approval 核准 | filing 备案"})
    region = ma.fields.Nested(PortalCodeNameSchema)
    status = ma.fields.String()
    declared_at = ma.fields.Date(metadata={"description": "申报日期 (Asia/Shanghai)"})
    matters = ma.fields.List(ma.fields.Nested(PortalMatterSchema))
    supervision = ma.fields.List(ma.fields.Nested(PortalProjectRecordSchema), metadata={"description": "public supervision records"})


class PortalApprovalSchema(PortalResultSchema):
    project_code = ma.fields.String()
    project_name = ma.fields.String()
    region = ma.fields.Nested(PortalCodeNameSchema)
    matter_code = ma.fields.String()
    matter_name = ma.fields.String()
    department = ma.fields.Nested(PortalCodeNameSchema)
    status = ma.fields.String(metadata={"description": "concluded"})
    concluded_at = ma.fields.AwareDateTime()


class PortalRecordSchema(PortalProjectRecordSchema):
    project_code = ma.fields.String()
    project_name = ma.fields.String()
    region = ma.fields.Nested(PortalCodeNameSchema)




class RecordFilterSchema(StrictSchema):
    """Filters of the supervision and penalty lists (dates: recorded, Asia/Shanghai, inclusive)."""

    region = ma.fields.String(validate=REGION_CODE, metadata={"description": "行政区划 (includes the regions below it)"})
    department = ma.fields.String(validate=validate.Length(min=1, max=32))
    date_from = PlatformDate(data_key="from", metadata={"description": "first day, YYYY-MM-DD"})
    date_to = PlatformDate(data_key="to", metadata={"description": "last day, YYYY-MM-DD"})


class ApprovalFilterSchema(RecordFilterSchema):
    """Filters of the approvals list (dates: concluded, Asia/Shanghai, inclusive)."""

    matter_code = ma.fields.String(validate=validate.Length(min=1, max=64))


class RecordQuerySchema(RecordFilterSchema, PageQuery):
    pass


class ApprovalQuerySchema(ApprovalFilterSchema, PageQuery):
    pass


# --------------------------------------------------------------------------- Atom 1.0

#: Characters XML 1.0 cannot carry at all (escaping does not help): dropped from text.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: Any) -> str:
    return _NOT_XML.sub("", "" if value is None else str(value))


def atom_instant(instant: datetime) -> str:
    """RFC 3339 with the offset (Asia/Shanghai), as Atom's date constructs require."""
    return instant.astimezone(SHANGHAI).isoformat(timespec="seconds")


def _child(parent: ET.Element, tag: str, text: Any = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", {k: _text(v) for k, v in attributes.items()})
    if text is not None:
        element.text = _text(text)
    return element


def atom_feed(*, feed_id: str, title: str, self_url: str, alternate_url: str, author: str,
              updated: datetime, entries: Iterable[dict[str, Any]]) -> bytes:
    """An Atom 1.0 document (RFC 4287) built as a tree, so every text and attribute is
    escaped by the serializer. Each entry: id, title, updated, published, link, summary,
    category (optional)."""
    ET.register_namespace("", ATOM_NS)
    feed = ET.Element(f"{{{ATOM_NS}}}feed", {"{http://www.w3.org/XML/1998/namespace}lang": "zh-CN"})
    _child(feed, "id", feed_id)
    _child(feed, "title", title, type="text")
    _child(feed, "updated", atom_instant(updated))
    _child(_child(feed, "author"), "name", author)
    _child(feed, "link", rel="self", type=ATOM_MEDIA_TYPE, href=self_url)
    _child(feed, "link", rel="alternate", type="application/json", href=alternate_url)
    for item in entries:
        entry = _child(feed, "entry")
        _child(entry, "id", item["id"])
        _child(entry, "title", item["title"], type="text")
        _child(entry, "updated", atom_instant(item["updated"]))
        _child(entry, "published", atom_instant(item["published"]))
        _child(entry, "link", rel="alternate", type="application/json", href=item["link"])
        if item.get("category"):
            _child(entry, "category", term=item["category"])
        _child(entry, "summary", item["summary"], type="text")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
