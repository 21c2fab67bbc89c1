"""One blueprint per resource."""
from __future__ import annotations

from flask_smorest import Api, Blueprint
from marshmallow import ValidationError
from webargs.flaskparser import FlaskParser


#: Said of a parameter or form field given more than once where it takes one value.
REPEATED = "只能给一个值，不能重复 (given more than once; it takes one value)"


class StrictParser(FlaskParser):
    """Unknown query parameters are refused like unknown body fields (422), never dropped:
    a misspelt filter must not silently widen a list. A parameter or form field repeated
    where it takes one value is refused too, rather than read as its first value
    (``?status=ready&status=done`` is not a list of ready tasks)."""

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": None, "querystring": None}

    def _makeproxy(self, multidict, schema):
        proxy = super()._makeproxy(multidict, schema)
        if hasattr(multidict, "getlist"):  # the names the schema reads (an unknown one is refused anyway)
            names = {field.data_key or name for name, field in schema.fields.items()}
            repeated = {key: [REPEATED] for key in names
                        if key not in proxy.multiple_keys and len(multidict.getlist(key)) > 1}
            if repeated:
                raise ValidationError(repeated)
        return proxy


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
