"""The thin HTTP shell: app factory, blueprints, schemas. No business rule lives here."""
from __future__ import annotations

from datetime import datetime

from flask import Flask, send_from_directory
import marshmallow as ma
from flask_smorest import Api
from flask_smorest.error_handler import ErrorSchema as SmorestErrorSchema
from swagger_ui_bundle import swagger_ui_path

from api import blueprints, errors, hygiene, request_id, transaction
from api.config import from_environment
from api.openapi import RefusalsPlugin, decimal2properties
from engine import files
from engine.clock import ManualClock, SystemClock
from engine.db import make_engine, make_session_factory
from engine.platform import Platform
from engine.projects import PlatformScope


#: Where the platform serves Swagger UI's files itself (the API docs page loads them):
#: a platform on a network without internet access (政务外网) still shows its docs.
SWAGGER_UI_ASSETS = "/api/v1/docs/assets"
#: The same place as the docs page (``/api/v1/docs``) names it: relative, so that the
#: page behind a proxy mounting the platform under a path prefix still finds its files.
SWAGGER_UI_ASSETS_FROM_PAGE = "docs/assets/"


def _swagger_ui_asset(name: str):
    return send_from_directory(swagger_ui_path, name, max_age=86400)


class ErrorSchema(SmorestErrorSchema):
    """The ``Error`` every refusal answers (API.md), with an unexpected error's request id."""

    request_id = ma.fields.String(metadata={
        "description": "an unexpected error's request id (also in X-Request-Id): what the operator finds it by"})


class _Api(Api):
    ERROR_SCHEMA = ErrorSchema


def create_app(test_config: dict | None = None) -> Flask:
    app = transaction.TransactionalFlask(__name__)
    app.config.update(
        API_TITLE="投资项目在线审批监管平台 API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL=SWAGGER_UI_ASSETS_FROM_PAGE,
        API_SPEC_OPTIONS={
            "security": [{"bearerAuth": []}],
            "info": {"description": "固定资产投资项目在线申报、并联审批、电子监察。The surface integrators may rely on is "
                                    "described in API.md, shipped with the platform's source."},
        },
        MAX_CONTENT_LENGTH=files.max_upload_bytes() + 1024 * 1024,  # the upload limit plus multipart overhead
    )
    app.config.update(test_config if test_config is not None else from_environment())
    app.json.ensure_ascii = False

    engine = make_engine(app.config["DATABASE_URL"])
    clock = app.config.get("TZXM_CLOCK_OBJECT")
    if clock is None:
        if app.config.get("TZXM_CLOCK") == "manual":
            start = app.config.get("TZXM_CLOCK_START")
            clock = ManualClock(datetime.fromisoformat(start) if start else SystemClock().now())
        else:
            clock = SystemClock()
    app.extensions["tzxm"] = Platform(
        session_factory=make_session_factory(engine),
        clock=clock,
        scope=PlatformScope(app.config["TZXM_PLATFORM_REGION"]),
        secret_key=app.config["SECRET_KEY"],
    )
    app.extensions["tzxm_engine"] = engine

    app.add_url_rule(f"{SWAGGER_UI_ASSETS}/<path:name>", "swagger_ui_asset", _swagger_ui_asset)
    request_id.init_app(app)  # first: every later hook and log line has the request's id
    hygiene.init_app(app)
    smorest = _Api(app, spec_kwargs={"extra_plugins": [RefusalsPlugin(app)]})
    hygiene.document(smorest)
    smorest.ma_plugin.converter.add_attribute_function(decimal2properties)
    smorest.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    errors.init_app(app)
    transaction.init_app(app)
    blueprints.register_all(smorest)
    return app
