"""Reference data a declaration form needs: regions, industries, departments."""
from __future__ import annotations

import marshmallow as ma
from flask_smorest import Blueprint

from api.auth import requires
from api.transaction import session
from engine import codes, organisation

bp = Blueprint("reference", __name__, url_prefix="/reference", description="基础数据 (reference data)")


class RegionSchema(ma.Schema):
    code = ma.fields.String()
    name = ma.fields.String()
    parent_code = ma.fields.String(allow_none=True)
    level = ma.fields.String()


class IndustrySchema(ma.Schema):
    code = ma.fields.String()
    name = ma.fields.String()
    section = ma.fields.String()


class DepartmentSchema(ma.Schema):
    code = ma.fields.String()
    name = ma.fields.String()
    region_code = ma.fields.String()
    kind = ma.fields.String()


@bp.route("/regions")
@requires()
@bp.response(200, RegionSchema(many=True))
def regions():
    return organisation.regions(session())


@bp.route("/industries")
@requires()
@bp.response(200, IndustrySchema(many=True))
def industries():
    return codes.industries()


@bp.route("/departments")
@requires()
@bp.response(200, DepartmentSchema(many=True))
def departments():
    return organisation.departments(session())
