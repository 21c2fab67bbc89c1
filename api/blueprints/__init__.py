"""One blueprint per resource."""
from __future__ import annotations

from flask_smorest import Api, Blueprint
from webargs.flaskparser import FlaskParser


class StrictParser(FlaskParser):
    """Unknown query parameters are refused like unknown body fields (422), never dropped:
    a misspelt filter must not silently widen a list."""

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": None, "querystring": None}


Blueprint.ARGUMENTS_PARSER = StrictParser()

from api.blueprints import (
    accounts, admin, alerts, codes, guides, health, implementation, instances, intermediaries, materials, notices, portal,
    procedures, projects, reference, supervision, tasks, tokens,
)

ALL = (
    health.bp, tokens.bp, projects.bp, codes.bp, reference.bp, accounts.bp, procedures.bp, tasks.bp, instances.bp,
    alerts.bp, admin.bp, guides.bp, materials.bp, notices.bp, intermediaries.bp, implementation.bp, portal.bp,
    supervision.bp,
)


def register_all(smorest: Api) -> None:
    for bp in ALL:
        smorest.register_blueprint(bp, url_prefix=f"/api/v1{bp.url_prefix or ''}")
