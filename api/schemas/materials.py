"""Schemas of 申报材料 (materials) and 容缺承诺 (tolerated-gap commitments).

Types and lengths are checked here; the rules (which material, whose upload, the
file's type by its bytes, the size limit, the deadline's window) live in engine.materials."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from api.schemas.common import PageQuery, PlatformInstant, StrictSchema, Text
from engine.materials import MAX_COMMITMENT_CHARS, MAX_COMMITMENT_DAYS, SIGNED_DOCUMENT

_CODE = validate.Length(min=1, max=64)


class MaterialUploadSchema(StrictSchema):
    """One multipart/form-data body: the file and the form fields that say what it is."""

    matter_code = ma.fields.String(required=True, validate=_CODE, metadata={"description": "a matter on the project's matters notice"})
    material = ma.fields.String(required=True, validate=_CODE, metadata={
        "description": f"a material code on the matter's service guide, or `{SIGNED_DOCUMENT}` (the matter's department: the signed decision's scan)"})
    file = ma.fields.Raw(required=True, metadata={
        "type": "string", "format": "binary",
        "description": "PDF, OFD, JPEG, PNG, DOC/DOCX or XLS/XLSX, recognised by its content; at most TZXM_MAX_UPLOAD_BYTES (50 MB by default)"})


class MaterialReuseSchema(StrictSchema):
    """不重复提交: which item of which matter the material already submitted is taken for."""

    matter_code = ma.fields.String(required=True, validate=_CODE, metadata={"description": "a matter on the project's matters notice"})
    material = ma.fields.String(required=True, validate=_CODE, metadata={"description": "a material code on that matter's service guide"})


class MaterialSchema(ma.Schema):
    id = ma.fields.Integer()
    project_code = ma.fields.String()
    matter_code = ma.fields.String()
    material = ma.fields.String()
    filename = ma.fields.String()
    sha256 = ma.fields.String()
    size = ma.fields.Integer(metadata={"description": "bytes"})
    media_type = ma.fields.String(metadata={"description": "as read from the content"})
    uploaded_by = ma.fields.String()
    uploaded_at = ma.fields.AwareDateTime()
    status = ma.fields.String(metadata={"description": "submitted | accepted (taken at acceptance, final) | replaced (a newer file for the same item)"})
    url = ma.fields.Method("_url", metadata={"type": "string", "description": "download (as an attachment)"})

    def _url(self, row) -> str:
        return f"/api/v1/projects/{row.project_code}/materials/{row.id}/file"


class MaterialListQuery(PageQuery):
    matter_code = ma.fields.String(validate=_CODE)


class CommitmentRequestSchema(StrictSchema):
    matter_code = ma.fields.String(required=True, validate=_CODE)
    material = ma.fields.String(required=True, validate=_CODE, metadata={"description": "a required material the guide lets be missing (gap_tolerable)"})
    commitment = Text(MAX_COMMITMENT_CHARS, required=True, metadata={"description": "承诺内容 (what the project unit commits to)"})
    deadline = PlatformInstant(required=True, metadata={
        "description": f"补交期限: the instant by which the material is supplied (future, at most {MAX_COMMITMENT_DAYS} days ahead); if it passes, the matter ends"})


class CommitmentSchema(ma.Schema):
    id = ma.fields.Integer()
    project_code = ma.fields.String()
    matter_code = ma.fields.String()
    material = ma.fields.String()
    commitment = ma.fields.String()
    deadline = ma.fields.AwareDateTime(attribute="deadline_at")
    committed_at = ma.fields.AwareDateTime()
    recorded_by = ma.fields.String()
    state = ma.fields.String(metadata={"description": "open | fulfilled (the material was supplied) | lapsed (the deadline passed) | ended (the matter ended without an approval or filing: nothing is owed)"})
    closed_at = ma.fields.AwareDateTime(allow_none=True)
