"""POST /api/v1/auth/token: a signed bearer token for a username and password."""
from __future__ import annotations

import marshmallow as ma
from flask_smorest import Blueprint
from marshmallow import validate

from api.schemas.common import StrictSchema
from api.transaction import platform, session
from engine.accounts import authenticate

bp = Blueprint("auth", __name__, url_prefix="/auth", description="登录 (sign-in)")


class TokenRequestSchema(StrictSchema):
    username = ma.fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = ma.fields.String(required=True, validate=validate.Length(min=1, max=128), load_only=True)


class TokenSchema(ma.Schema):
    access_token = ma.fields.String()
    token_type = ma.fields.String()
    expires_in = ma.fields.Integer()


@bp.route("/token", methods=["POST"])
@bp.doc(security=[])
@bp.arguments(TokenRequestSchema)
@bp.response(200, TokenSchema)
@bp.alt_response(401, description="wrong username or password (the same answer for both)")
@bp.alt_response(429, description="too many failed sign-ins for this username; see Retry-After")
def issue_token(body):
    p = platform()
    return authenticate(
        session(), username=body["username"], password=body["password"], now=p.clock.now(), secret=p.secret_key
    )
