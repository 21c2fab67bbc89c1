"""What the OpenAPI document says beyond each view's own decorators: the refusals every
signed-in operation can answer (API.md: 401, 403, 404, 409), files as binary, and
decimals as the strings they travel as.

The refusals are added as each path is registered (an apispec plugin), from what the
route itself shows: ``api.auth.requires`` marks a view that needs a signed-in user, a
path with parameters names a resource that may be absent or not the caller's, and a
write may find the resource changed or in a state that does not allow it. Each refers
to the ``Error`` schema every refusal follows (``api.errors``).
"""
from __future__ import annotations

from typing import Any

import marshmallow as ma
from apispec import BasePlugin
from flask import Flask

WRITES = {"post", "put", "patch", "delete"}
REFUSALS = {
    "401": "未登录或令牌无效 (not signed in, or the token is invalid or expired)",
    "403": "无权进行此操作 (the signed-in user may not do this)",
    "404": "资源不存在，或不在您可见的范围内 (no such resource, or not one you may see)",
    "409": "资源已被他人修改，或当前状态不允许此操作 (changed meanwhile, or its state does not allow this)",
}


ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def refusal(status: str) -> dict[str, Any]:
    return {"description": REFUSALS[status], "content": ERROR_BODY}


def file_response(media_type: str, description: str) -> dict[str, Any]:
    """A 200 whose body is a file (flask-smorest documents no content for a response
    without a schema)."""
    return {"description": description, "content": {media_type: {"schema": {"type": "string", "format": "binary"}}}}


class RefusalsPlugin(BasePlugin):
    """Adds the refusals to each operation of a signed-in route as its path is registered."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def operation_helper(self, path=None, operations=None, **kwargs) -> None:
        rule = kwargs.get("rule")
        view = self.app.view_functions.get(rule.endpoint) if rule is not None else None
        if view is None:
            return
        for method, operation in (operations or {}).items():
            _errors_have_their_body(operation)
            handler = getattr(getattr(view, "view_class", None), method, None) or view  # a MethodView's method
            if not getattr(handler, "requires_sign_in", False):
                continue
            statuses = ["401", "403"]
            if rule.arguments:
                statuses.append("404")
            if method in WRITES:
                statuses.append("409")
            responses = operation.setdefault("responses", {})
            for status in statuses:
                responses.setdefault(status, refusal(status))


def _errors_have_their_body(operation: dict[str, Any]) -> None:
    """A refusal a view documents by its description alone (``alt_response(429, ...)``)
    still answers the ``Error`` JSON: say so, so that a generated client parses it."""
    for status, response in operation.get("responses", {}).items():
        if str(status)[0] in "45" and isinstance(response, dict) and "content" not in response:
            response["content"] = ERROR_BODY


def decimal2properties(self, field, ret, **kwargs) -> dict:
    """OpenAPI for decimals: one kept as a string (no binary rounding; a number is read
    too) is a ``string`` of format ``decimal``, its bounds said in words (OpenAPI 3.0
    bounds only numbers); bounds on one kept as a number are numbers, not strings.
    Registered on the API's marshmallow converter (``api.create_app``)."""
    if not isinstance(field, ma.fields.Decimal):
        return {}
    bounds = {k: float(ret.pop(k)) for k in ("minimum", "maximum") if k in ret}
    if not field.as_string:
        return bounds
    words = "，".join(f"{'不小于' if k == 'minimum' else '不大于'} {v:g}" for k, v in bounds.items())
    description = "；".join(part for part in (ret.get("description"), words) if part)
    return {"type": "string", "format": "decimal", **({"description": description} if description else {})}
