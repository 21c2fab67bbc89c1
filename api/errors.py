"""Errors are always JSON in the shape of ../shared/API.md, never HTML, never a trace.

``{"code": 422, "status": "Unprocessable Entity", "message": "...", "errors": {"field": ["..."]}}``
"""
from __future__ import annotations

import logging

from flask import Flask
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import BadHost, HTTPException, NotFound
from werkzeug.http import HTTP_STATUS_CODES

from engine.db import is_retryable
from engine.errors import DomainError, TooManyAttempts

log = logging.getLogger(__name__)

#: webargs nests field errors under the request location; integrators get the field.
_LOCATIONS = ("json", "query", "form", "files", "view_args", "headers", "path")


def payload(code: int, message: str, errors: dict | None = None) -> dict:
    return {"code": code, "status": HTTP_STATUS_CODES.get(code, "Error"), "message": message, "errors": errors or {}}


def flatten(errors: dict) -> dict:
    """{"json": {"name": [...]}} → {"name": [...]}; nested fields become dotted names."""
    flat: dict[str, list[str]] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            flat.setdefault(prefix or "_schema", []).extend(value)
        else:
            flat.setdefault(prefix or "_schema", []).append(str(value))

    for key, value in errors.items():
        if key in _LOCATIONS and isinstance(value, dict):
            walk("", value)
        else:
            walk(str(key), value)
    return flat


def init_app(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(err: DomainError):
        headers = {"Retry-After": str(err.retry_after)} if isinstance(err, TooManyAttempts) else {}
        return payload(err.status, err.message, err.errors), err.status, headers

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException):
        data = getattr(err, "data", None) or {}
        errors = data.get("errors") or data.get("messages")
        message = data.get("message") or err.description or err.name
        if err.code == 404 and message == NotFound.description:  # no route matched (or an id out of range)
            message = "资源不存在 (not found)"
        if errors and err.code == 422:
            message = "请求数据有误 (invalid request)"
        if err.code == 413:
            message = "请求体过大 (request too large)"
        if isinstance(err, BadHost):  # a Host header the router cannot read (a label over 63 characters)
            message, errors = "请求数据有误 (invalid request)", {"Host": ["主机名无效 (invalid Host header)"]}
        body = payload(err.code or 500, message, flatten(errors) if errors else None)
        return body, err.code, data.get("headers", {})

    @app.errorhandler(StaleDataError)
    def _stale(_err):
        return payload(409, "数据已被他人修改，请刷新后重试 (changed by someone else)"), 409

    @app.errorhandler(IntegrityError)
    def _integrity(_err):
        return payload(409, "与现有数据冲突 (conflicts with existing data)"), 409

    @app.errorhandler(OperationalError)
    def _operational(err):
        if is_retryable(err):  # still aborted after the request was done again (api.transaction)
            log.warning("request aborted by the database on every attempt: %s", err.orig)
            return payload(503, "系统繁忙，请稍后重试 (busy, retry)"), 503, {"Retry-After": "1"}
        log.exception("database error", exc_info=err)
        return payload(503, "数据库暂不可用，请稍后重试 (database unavailable)"), 503

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):
        log.exception("unhandled error", exc_info=err)
        return payload(500, "服务器内部错误 (internal error)"), 500
