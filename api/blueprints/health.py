"""GET /api/v1/health: database reachable, migrations at head, time of last sweep, next year's calendar, the
platform's region."""
from __future__ import annotations

import marshmallow as ma
from flask import current_app
from flask_smorest import Blueprint

from api.transaction import platform
from engine import health

bp = Blueprint("health", __name__, url_prefix="/health", description="平台运行状态 (health)")


class HealthSchema(ma.Schema):
    status = ma.fields.String()
    database = ma.fields.Boolean()
    migration = ma.fields.String(allow_none=True)
    migrations_at_head = ma.fields.Boolean()
    last_sweep_at = ma.fields.AwareDateTime(allow_none=True)
    sweep_behind = ma.fields.Boolean(allow_none=True, metadata={
        "description": "no sweep for ten sweep intervals (at least a minute): limits are not being met on time; "
                       "null before the first sweep or while the database does not answer"})
    calendar_next_year_loaded = ma.fields.Boolean(allow_none=True, metadata={
        "description": "next year's official holiday schedule is loaded (load it when the State Council publishes it)"})
    platform_region_known = ma.fields.Boolean(allow_none=True, metadata={
        "description": "the region this platform serves (TZXM_PLATFORM_REGION) is in the database: until its "
                       "organisation is seeded or imported (tzxm import-organisation), every declaration is refused"})
    now = ma.fields.AwareDateTime()
    clock = ma.fields.String()


@bp.route("")
@bp.doc(security=[])
@bp.response(200, HealthSchema)
@bp.alt_response(503, schema=HealthSchema,
                 description="database unreachable (or not answering within seconds) or migrations behind")
def get_health():
    p = platform()  # the probe uses a session of its own, bounded in time (engine.health.probe)
    h = health.probe(p.session_factory, p.clock.now(), region=p.scope.region_code)
    ok = h.database and h.migrations_at_head
    body = {
        "status": "ok" if ok else "degraded",
        "database": h.database,
        "migration": h.migration,
        "migrations_at_head": h.migrations_at_head,
        "last_sweep_at": h.last_sweep_at,
        "sweep_behind": h.sweep_behind(p.clock.now(), float(current_app.config.get("TZXM_SWEEP_SECONDS", 5))),
        "calendar_next_year_loaded": h.calendar_next_year_loaded,
        "platform_region_known": h.platform_region_known,
        "now": p.clock.now(),
        "clock": "manual" if p.clock.manual else "system",
    }
    return body, 200 if ok else 503

