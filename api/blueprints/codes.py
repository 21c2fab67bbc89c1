"""GET /api/v1/codes/{code}/verify: 核验项目代码 (officials)."""
from __future__ import annotations

import marshmallow as ma
from flask_smorest import Blueprint

from api.auth import requires
from api.transaction import session
from engine.access import PROJECT_ROLES
from engine.projects import verify_code

bp = Blueprint("codes", __name__, url_prefix="/codes", description="项目代码核验 (code verification)")


class VerificationSchema(ma.Schema):
    code = ma.fields.String(metadata={"description": "the code as asked"})
    result = ma.fields.String(metadata={"description": "valid | unknown | superseded | malformed"})
    project_code = ma.fields.String(allow_none=True, metadata={"description": "the project code (also when a legacy code was asked)"})
    new_code = ma.fields.String(allow_none=True, metadata={"description": "for superseded: the code that replaced it"})
    scheme = ma.fields.String(allow_none=True, metadata={"description": "platform (Jilin 第十一条) | central (GB/T 40058-2021)"})
    problems = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(), allow_none=True, metadata={"description": "for malformed: which part is wrong (length, format, region, type, …)"})


@bp.route("/<path:code>/verify")
@requires(*sorted(PROJECT_ROLES))
@bp.response(200, VerificationSchema)
def verify(code):
    """Verify a project code of either scheme, or a legacy code the platform holds."""
    result = verify_code(session(), code[:200])
    return {"code": code[:200], **result.__dict__}
