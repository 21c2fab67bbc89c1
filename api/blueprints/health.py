"""GET /api/v1/health: database reachable, migrations at head, time of last sweep."""
from __future__ import annotations

import marshmallow as ma
from flask_smorest import Blueprint

from api.transaction import platform, session
from engine import health

bp = Blueprint("health", __name__, url_prefix="/health", description="平台运行状态 (health)")


class HealthSchema(ma.Schema):
    status = ma.fields.String()
    database = ma.fields.Boolean()
    migration = ma.fields.String(allow_none=True)
    migrations_at_head = ma.fields.Boolean()
    last_sweep_at = ma.fields.AwareDateTime(allow_none=True)
    now = ma.fields.AwareDateTime()
    clock = ma.fields.String()


@bp.route("")
@bp.doc(security=[])
@bp.response(200, HealthSchema)
@bp.alt_response(503, schema=HealthSchema, description="database unreachable or migrations behind")
def get_health():
    h = health.check(session())
    ok = h.database and h.migrations_at_head
    p = platform()
    body = {
        "status": "ok" if ok else "degraded",
        "database": h.database,
        "migration": h.migration,
        "migrations_at_head": h.migrations_at_head,
        "last_sweep_at": h.last_sweep_at,
        "now": p.clock.now(),
        "clock": "manual" if p.clock.manual else "system",
    }
    return body, 200 if ok else 503
