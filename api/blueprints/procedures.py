"""Procedures: deploy a BPMN/DMN file, validate one without deploying, list, read the XML."""
from __future__ import annotations

import marshmallow as ma
from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

from api.auth import current_actor, requires
from api.openapi import file_response
from api.schemas.common import PageQuery, page_envelope, page_of
from api.transaction import platform, session
from engine import procedures
from engine.errors import Invalid

bp = Blueprint("procedures", __name__, url_prefix="/procedures", description="审批流程 (procedures as BPMN/DMN diagrams)")


class ProcedureFileSchema(ma.Schema):
    file = ma.fields.Raw(required=True, metadata={"type": "string", "format": "binary", "description": "a .bpmn or .dmn file"})


class ProcedureVersionSchema(ma.Schema):
    process_id = ma.fields.String()
    kind = ma.fields.String()
    version = ma.fields.Integer()
    department_code = ma.fields.String(allow_none=True)
    filename = ma.fields.String()
    sha256 = ma.fields.String()
    deployed_at = ma.fields.AwareDateTime()
    deployed_by = ma.fields.String()
    created = ma.fields.Boolean(metadata={"description": "false when the content is that of the newest version (no-op); "
                                                         "an older version's content becomes a new version"})


class ValidationResultSchema(ma.Schema):
    valid = ma.fields.Boolean()
    kind = ma.fields.String()
    process_id = ma.fields.String()


class ProcedureListQuery(PageQuery):
    process_id = ma.fields.String(validate=validate.Length(max=128))


def _uploaded() -> tuple[str, bytes]:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise Invalid.field("file", "请以 multipart/form-data 的 file 字段上传流程文件 (upload the file in the field 'file')")
    return upload.filename, upload.read(procedures.MAX_FILE_BYTES + 1)


@bp.route("")
class Procedures(MethodView):
    @requires("dept_admin", "operator", "analyst")
    @bp.arguments(ProcedureListQuery, location="query")
    @bp.response(200, page_envelope(ProcedureVersionSchema))
    def get(self, query):
        """Every deployed version, newest first per procedure."""
        rows, total = procedures.list_versions(session(), process_id=query.get("process_id"), page=query["page"], page_size=query["page_size"])
        return page_of(rows, total, query["page"], query["page_size"])

    @requires("dept_admin", "operator")
    @bp.arguments(ProcedureFileSchema, location="files")
    @bp.response(201, ProcedureVersionSchema)
    @bp.alt_response(200, schema=ProcedureVersionSchema, description="the newest version's content: that version, nothing stored")
    def post(self, _files):
        """Deploy: checked first (422 naming the element and problem); any content but the newest version's
        becomes version N+1 (an older version's content too: putting it back makes it current)."""
        filename, content = _uploaded()
        deployed = procedures.deploy(session(), actor=current_actor(), now=platform().clock.now(), filename=filename, content=content,
                                     region=platform().scope.region_code)
        row = deployed.procedure
        body = {name: getattr(row, name) for name in ProcedureVersionSchema().fields if name != "created"}
        body["created"] = deployed.created
        return body, 201 if deployed.created else 200


@bp.route("/validate", methods=["POST"])
@requires("analyst", "dept_admin", "operator")
@bp.arguments(ProcedureFileSchema, location="files")
@bp.response(200, ValidationResultSchema)
def validate_file(_files):
    """The same checks as deploying; nothing is stored."""
    filename, content = _uploaded()
    checked = procedures.validate_only(session(), actor=current_actor(), filename=filename, content=content)
    return {"valid": True, "kind": checked.kind, "process_id": checked.process_id}


@bp.route("/<string:process_id>/versions/<int:version>")
@requires("dept_admin", "operator", "analyst")
@bp.response(200, ProcedureVersionSchema)
def get_version(process_id, version):
    return procedures.get_version(session(), process_id, version)


XML_ANSWER = "the deployed XML, as deployed (a version that puts back an older one's content ends with a comment saying so)"


@bp.route("/<string:process_id>/versions/<int:version>/xml")
@requires("dept_admin", "operator", "analyst")
@bp.response(200, description=XML_ANSWER)
@bp.doc(responses={"200": file_response("application/xml", XML_ANSWER)})
def get_xml(process_id, version):
    row = procedures.get_version(session(), process_id, version)
    return Response(row.xml, mimetype="application/xml")
