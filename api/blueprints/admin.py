"""Operator tools: the manual clock, calendar years, another region's organisation."""
from __future__ import annotations

import marshmallow as ma
from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

from api.auth import current_actor, requires
from api.schemas.common import PlatformInstant, StrictSchema
from api.transaction import end_request_transaction, platform, session
from engine import calendar, clocks, organisation_file
from engine.clock import ManualClock
from engine.errors import Invalid, NotFound
from engine.sweep import calendar_loaded, sweep

bp = Blueprint("admin", __name__, url_prefix="/admin", description="运维 (operator tools)")


class ClockSetSchema(StrictSchema):
    now = PlatformInstant(required=True, metadata={"description": "the instant to set, with offset"})


class ClockStateSchema(ma.Schema):
    now = ma.fields.AwareDateTime()
    sweep = ma.fields.Dict(metadata={"description": "what the sweep fired"})


class FractionsSchema(StrictSchema):
    fractions = ma.fields.Dict(
        required=True, keys=ma.fields.String(validate=validate.Length(max=80)),
        values=ma.fields.Float(validate=validate.Range(min=0, max=1, min_inclusive=False, max_inclusive=False)),
        metadata={"description": "e.g. {\"promised\": 0.8, \"promised:eia_approval\": 0.7}"},
    )


class CalendarYearSchema(ma.Schema):
    year = ma.fields.Integer()
    source = ma.fields.String()
    loaded_at = ma.fields.AwareDateTime()


class CalendarLoadedSchema(ma.Schema):
    year = ma.fields.Integer()
    instances_rearmed = ma.fields.Integer()


@bp.route("/clock", methods=["POST"])
@requires("operator")
@bp.arguments(ClockSetSchema)
@bp.response(200, ClockStateSchema)
@bp.alt_response(404, description="the server runs on the system clock: there is no manual clock to set")
def set_clock(body):
    """Manual clock only (TZXM_CLOCK=manual): set the time, run the sweep, answer when it is done."""
    p = platform()
    if not isinstance(p.clock, ManualClock):
        raise NotFound("手动时钟未启用 (the server runs on the system clock)")
    p.clock.set(body["now"])
    end_request_transaction()
    report = sweep(p)
    return {"now": p.clock.now(), "sweep": report.fired}


@bp.route("/yellow-fractions")
class YellowFractions(MethodView):
    """When the light turns yellow: per clock kind (`promised`) or kind and matter (`promised:eia_approval`)."""

    @requires("operator", "supervisor", "coordinator")
    @bp.response(200, FractionsSchema)
    def get(self):
        return {"fractions": clocks.yellow_fractions(session())}

    @requires("operator", "coordinator")
    @bp.arguments(FractionsSchema)
    @bp.response(200, FractionsSchema)
    def put(self, body):
        fractions = clocks.set_yellow_fractions(session(), body["fractions"], now=platform().clock.now(), actor=current_actor().username)
        return {"fractions": fractions}


@bp.route("/calendar/years")
@requires("operator", "supervisor")
@bp.response(200, CalendarYearSchema(many=True))
def calendar_years():
    return calendar.years(session())


class CalendarFileSchema(ma.Schema):
    file = ma.fields.Raw(required=True, metadata={"type": "string", "format": "binary",
                                                  "description": "one year's schedule, UTF-8 text (the format of `tzxm calendar load`)"})


@bp.route("/calendar/years", methods=["POST"])
@requires("operator")
@bp.arguments(CalendarFileSchema, location="files")
@bp.response(201, CalendarLoadedSchema)
def load_calendar_year(_files):
    """Load or correct a year's official schedule (multipart `file`, the text format of `tzxm calendar load`);
    open clocks are recomputed and their timers re-armed."""
    upload = request.files.get("file")
    if upload is None:
        raise Invalid.field("file", "请上传节假日安排文件 (upload the schedule in the field 'file')")
    try:
        text = upload.read(256 * 1024).decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid.field("file", "文件须为UTF-8文本 (the file must be UTF-8 text)") from None
    p = platform()
    s = session()
    year = calendar.load_year_text(s, text, now=p.clock.now(), actor=current_actor().username)
    return {"year": year, "instances_rearmed": calendar_loaded(s, p.clock.now())}


class OrganisationQuery(StrictSchema):
    dry_run = ma.fields.Boolean(load_default=False, metadata={
        "description": "check the file and answer what it would do; write nothing"})


class OrganisationFileSchema(StrictSchema):
    """The organisation file (engine/organisation_file.py): each entry is checked by the
    engine, which names every problem by its place (``departments.2.region``)."""

    description = ma.fields.String(metadata={"description": "for people; not stored"})
    regions = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "{code (GB/T 2260, 6 digits), name, parent (null for a province), level: province | city | district}"})
    departments = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "{code (what lanes name), name, region, kind: general_window | approving | coordinating | "
                       "supervision | operator}"})
    matters = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "{code (its procedure is matter_<code>), name, department, promised_working_days, "
                       "legal_basis (optional), regimes: [examination | approval | filing]}"})


class OrganisationReportSchema(ma.Schema):
    created = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.List(ma.fields.String()),
                             metadata={"description": "codes created (or, dry run, that would be), by section"})
    updated = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.List(ma.fields.String()),
                             metadata={"description": "codes whose name (a matter's legal basis) changed, by section"})
    unchanged = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer(), metadata={"description": "by section"})
    dry_run = ma.fields.Boolean()


@bp.route("/organisation", methods=["POST"])
@requires("operator")
@bp.arguments(OrganisationQuery, location="query")
@bp.arguments(OrganisationFileSchema)
@bp.response(200, OrganisationReportSchema)
def import_organisation(query, body):
    """Import another region's regions, departments and catalogue of matters (`tzxm
    import-organisation`): all or nothing; new entries created, names (a matter's legal
    basis) updated, a change of structure refused."""
    report = organisation_file.import_organisation(session(), body, actor=current_actor(), now=platform().clock.now(),
                                                   dry_run=query["dry_run"])
    return {**report.as_dict(), "dry_run": query["dry_run"]}
