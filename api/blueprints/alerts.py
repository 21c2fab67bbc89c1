"""GET /api/v1/alerts: yellow warnings and red overdue records."""
from __future__ import annotations

import marshmallow as ma
from flask_smorest import Blueprint
from marshmallow import validate

from api.auth import current_actor, requires
from api.schemas.common import PageQuery, page_envelope, page_of
from api.transaction import session
from engine.access import PROJECT_ROLES
from engine.alerts import AlertFilter, list_alerts
from engine.clocks import CLOCK_KINDS

bp = Blueprint("alerts", __name__, url_prefix="/alerts", description="黄灯预警与红灯超时 (alerts)")


class AlertSchema(ma.Schema):
    id = ma.fields.Integer()
    light = ma.fields.String(metadata={"description": "yellow | red"})
    clock = ma.fields.String(attribute="clock_kind")
    project_code = ma.fields.String()
    matter_code = ma.fields.String(allow_none=True)
    department = ma.fields.String(attribute="department_code", allow_none=True)
    due_at = ma.fields.AwareDateTime(allow_none=True)
    at = ma.fields.AwareDateTime(metadata={"description": "the instant the light changed (for a late sweep, still when it came due)"})
    calendar_provisional = ma.fields.Boolean(metadata={"description": "computed on a year whose official schedule is not loaded"})


class AlertQuery(PageQuery):
    project_code = ma.fields.String(validate=validate.Length(max=64))
    light = ma.fields.String(validate=validate.OneOf(("yellow", "red")))
    clock = ma.fields.String(validate=validate.OneOf(CLOCK_KINDS))
    department = ma.fields.String(validate=validate.Length(max=32))
    matter_code = ma.fields.String(validate=validate.Length(max=64))


@bp.route("")
@requires(*sorted(PROJECT_ROLES))
@bp.arguments(AlertQuery, location="query")
@bp.response(200, page_envelope(AlertSchema))
def alerts(query):
    page, size = query.pop("page"), query.pop("page_size")
    rows, total = list_alerts(session(), current_actor(), AlertFilter(**query), page=page, page_size=size)
    return page_of(rows, total, page, size)
