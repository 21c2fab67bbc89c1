"""申报材料 (materials): upload, list, download; 容缺承诺 (tolerated-gap commitments)."""
from __future__ import annotations

from urllib.parse import quote

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from werkzeug.datastructures import CombinedMultiDict, FileStorage

from api.auth import current_actor, requires
from api.blueprints import StrictParser
from api.openapi import file_response
from api.schemas.common import page_envelope, page_of
from api.schemas.materials import (
    CommitmentRequestSchema,
    CommitmentSchema,
    MaterialListQuery,
    MaterialReuseSchema,
    MaterialSchema,
    MaterialUploadSchema,
)
from api.transaction import platform, session
from engine import files, materials, projects
from engine.errors import Invalid



class _MultipartParser(StrictParser):
    """The ``files`` location reads the form fields too, so one schema checks the whole
    multipart body (unknown fields refused) and the OpenAPI document shows it as one."""

    DEFAULT_UNKNOWN_BY_LOCATION = {**StrictParser.DEFAULT_UNKNOWN_BY_LOCATION, "files": None}

    def load_files(self, req, schema):
        return self._makeproxy(CombinedMultiDict([req.files, req.form]), schema)


bp = Blueprint("materials", __name__, url_prefix="/projects", description="申报材料 (materials): upload, list, download")
bp.ARGUMENTS_PARSER = _MultipartParser()


def _read(upload) -> bytes:
    """At most limit + 1 bytes: enough to tell the file is too large without holding more."""
    if not isinstance(upload, FileStorage):
        raise Invalid.field("file", "请以 multipart/form-data 的 file 字段上传材料 (upload the file in the field 'file')")
    return upload.read(files.max_upload_bytes() + 1)


def _attachment(filename: str) -> str:
    """RFC 6266: an ASCII fallback for old clients, the UTF-8 name (Chinese) for the rest."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@bp.route("/<string:code>/materials")
class Materials(MethodView):
    @requires()
    @bp.arguments(MaterialListQuery, location="query")
    @bp.response(200, page_envelope(MaterialSchema))
    def get(self, query, code):
        """The project's uploads (replaced ones included), oldest first; ``matter_code`` narrows to one matter."""
        s = session()
        project = projects.visible_project(s, current_actor(), code)
        rows, total = materials.list_for(s, current_actor(), project, matter_code=query.get("matter_code"),
                                         page=query["page"], page_size=query["page_size"])
        return page_of(rows, total, query["page"], query["page_size"])

    @requires("applicant", "officer")
    @bp.arguments(MaterialUploadSchema, location="files")
    @bp.response(201, MaterialSchema)
    def post(self, body, code):
        """Upload a material of a matter on the project's matters notice (the project unit;
        the matter's department for ``signed_document``). The type is read from the bytes:
        422 for anything else; 413 above the size limit. The same bytes are stored once."""
        s, p, actor = session(), platform(), current_actor()
        project = projects.visible_project(s, actor, code)
        upload = body["file"]
        data = _read(upload)
        return materials.upload(s, actor=actor, project=project, matter_code=body["matter_code"],
                                material=body["material"], filename=upload.filename, data=data, now=p.clock.now())


@bp.route("/<string:code>/materials/<int:material_id>/reuse", methods=["POST"])
@requires("applicant")
@bp.arguments(MaterialReuseSchema)
@bp.response(201, MaterialSchema)
def reuse(body, code, material_id):
    """不重复提交: take a material already submitted (for another matter of the project, or under
    the code it had before re-coding) for an item of a matter, without sending the file again;
    the same checks as an upload."""
    s, p, actor = session(), platform(), current_actor()
    project = projects.visible_project(s, actor, code)
    return materials.reuse(s, actor=actor, project=project, source_id=material_id, matter_code=body["matter_code"],
                           material=body["material"], now=p.clock.now())


@bp.route("/<string:code>/materials/<int:material_id>/file")
@requires()
@bp.response(200, description="the file, as an attachment (never shown inline)",
             content_type="application/octet-stream")
@bp.doc(responses={"200": file_response("application/octet-stream", "the file, as an attachment (never shown inline)")})
def download(code, material_id):
    """A material's bytes as uploaded, with its media type as read from the content."""
    s, actor = session(), current_actor()
    project = projects.visible_project(s, actor, code)
    row, data = materials.read(s, actor, project, material_id)
    return Response(data, mimetype=row.media_type, headers={
        "Content-Disposition": _attachment(row.filename),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, no-store",
    })


@bp.route("/<string:code>/materials/commitments")
class Commitments(MethodView):
    @requires()
    @bp.arguments(MaterialListQuery, location="query")
    @bp.response(200, page_envelope(CommitmentSchema))
    def get(self, query, code):
        """The project's 容缺承诺 (open, fulfilled, lapsed, ended), oldest first."""
        s = session()
        project = projects.visible_project(s, current_actor(), code)
        rows, total = materials.commitments_for(s, current_actor(), project, matter_code=query.get("matter_code"),
                                                page=query["page"], page_size=query["page_size"])
        return page_of(rows, total, query["page"], query["page_size"])

    @requires("applicant")
    @bp.arguments(CommitmentRequestSchema)
    @bp.response(201, CommitmentSchema)
    def post(self, body, code):
        """容缺承诺: the project unit commits to supply a gap-tolerable required material by a
        deadline; while it is open the matter's clocks do not count, and if the deadline
        passes the matter ends."""
        s, p, actor = session(), platform(), current_actor()
        project = projects.visible_project(s, actor, code)
        return materials.commit(s, actor=actor, project=project, now=p.clock.now(), **body)
