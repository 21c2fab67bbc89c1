"""What no request may carry, refused once before any view, so that no engine function
meets it: a path segment or id the database cannot hold (a path that matches no route
answers 404, like an absent row), and in query parameters, form fields and JSON bodies
control characters (PostgreSQL's text cannot hold NUL; the others are never typed) and
nesting deeper than any form needs; and a Host header no link to the request can be
made from. Fields are then validated by their schemas."""
from __future__ import annotations

import json

from flask import Flask, request
from flask_smorest import Api
from flask_smorest.spec.plugins import integerconverter2paramschema, unicodeconverter2paramschema
from werkzeug.exceptions import BadHost
from werkzeug.routing import IntegerConverter, UnicodeConverter

from api.errors import payload
from engine.models import MAX_ID
from engine.text import MAX_DEPTH, UNUSABLE_CHARACTERS, unusable_input


class RowId(IntegerConverter):
    """``<int:…>`` path parameters are row ids and versions: 1 up to ``MAX_ID``."""

    def __init__(self, map, **kwargs) -> None:
        super().__init__(map, **{"min": 1, "max": MAX_ID, **kwargs})


class Segment(UnicodeConverter):
    """``<…>`` and ``<string:…>`` path parameters: no control characters or surrogates."""

    def __init__(self, map, *args, **kwargs) -> None:
        super().__init__(map, *args, **kwargs)
        self.regex = self.regex.replace("[^/]", rf"[^/\t\n\r{UNUSABLE_CHARACTERS}]", 1)


def _refuse_unusable_input():
    """Also reads the whole body (form fields and files, JSON, anything else) before any
    view signs in and opens the request's transaction: a slow client's upload is then
    never read while a transaction waits (``DatabaseLimits.idle_in_transaction_timeout``)."""
    try:
        request.url  # a Host the router took but IDNA cannot decode ("xn--") breaks every link to this request
    except UnicodeError:
        raise BadHost() from None
    found: dict[str, list[str]] = {}
    for name, value in [*request.args.items(multi=True), *request.form.items(multi=True)]:
        unusable_input({name: value}, "", 0, found)
    if request.is_json:
        try:
            body = json.loads(request.get_data(cache=True))
        except RecursionError:
            problem = f"JSON嵌套过深 (JSON nested deeper than {MAX_DEPTH} levels)"
            return payload(400, problem, {"body": [problem]}), 400
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None  # not JSON: the schema's parser answers that, naming the body
        except ValueError:  # an integer longer than Python converts (4,300 digits)
            problem = "JSON中的数字过长 (a number in the JSON is too long)"
            return payload(400, problem, {"body": [problem]}), 400
        unusable_input(body, "", 0, found)
    elif not request.form and not request.files:
        request.get_data(cache=True)  # a body of another type: read now all the same (bounded by MAX_CONTENT_LENGTH)
    if found:
        return payload(422, "请求数据有误 (invalid request)", found), 422
    return None


def init_app(app: Flask) -> None:
    """Before the blueprints are registered: their rules take these converters."""
    app.url_map.converters.update(int=RowId, string=Segment, default=Segment)
    app.before_request(_refuse_unusable_input)


def document(api: Api) -> None:
    """The converters' bounds in the OpenAPI document, as werkzeug's own."""
    api.register_converter(RowId, integerconverter2paramschema)
    api.register_converter(Segment, unicodeconverter2paramschema)
