"""Errors are always JSON in the shape of ../shared/API.md, never HTML, never a trace.

``{"code": 422, "status": "Unprocessable Entity", "message": "...", "errors": {"field": ["..."]}}``
"""
from __future__ import annotations

import logging
import re

from flask import Flask
from sqlalchemy.exc import IntegrityError, InternalError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import BadHost, HTTPException, NotFound
from werkzeug.http import HTTP_STATUS_CODES

from api import request_id as request_ids
from engine.db import is_busy, is_session_ended
from engine.errors import DomainError, TooManyAttempts

log = logging.getLogger(__name__)

#: webargs nests field errors under the request location; integrators get the field.
_LOCATIONS = ("json", "query", "form", "files", "view_args", "headers", "path")


#: The field messages marshmallow and webargs give in English, said in Chinese first, as
#: every message of the platform is: a form shows them beside the field.
_IN_CHINESE = [(re.compile(pattern), chinese) for pattern, chinese in (
    (r"Missing data for required field\.", "缺少必填字段"),
    (r"Field may not be null\.", "不能为 null"),
    (r"Unknown field\.", "未知字段"),
    (r"Not a valid ([a-z ]+)\.", "格式无效"),
    (r"Invalid input type\.", "类型无效"),
    (r"Invalid value\.", "取值无效"),
    (r"Length must be between (\d+) and (\d+)\.", r"长度须在\1至\2之间"),
    (r"Shorter than minimum length (\d+)\.", r"长度不得少于\1"),
    (r"Longer than maximum length (\d+)\.", r"长度不得超过\1"),
    (r"Length must be (\d+)\.", r"长度须为\1"),
    (r"Must be greater than or equal to (\S+) and less than or equal to (\S+)\.", r"须在\1至\2之间"),
    (r"Must be greater than or equal to (\S+)\.", r"不得小于\1"),
    (r"Must be less than or equal to (\S+)\.", r"不得大于\1"),
    (r"Must be one of: (.*)\.", r"须为以下之一：\1"),
    (r"String does not match expected pattern\.", "格式不符合要求"),
    (r"Special numeric values \(nan or infinity\) are not permitted\.", "不能为 NaN 或无穷大"),
    (r"Number too large\.", "数值过大"),
)]
_CJK = re.compile(r"[\u3400-\u9fff]")
#: Refusals werkzeug words in English only, by status.
_STATUS_IN_CHINESE = {400: "请求格式有误 (bad request)", 405: "不支持该请求方法 (method not allowed)",
                      415: "不支持的内容类型 (unsupported media type)"}


def in_chinese(message: str) -> str:
    """A library's English field message as ``中文 (English)``; the platform's own are already so."""
    if _CJK.search(message):
        return message
    for pattern, chinese in _IN_CHINESE:
        if match := pattern.fullmatch(message):
            return f"{match.expand(chinese)} ({message})"
    return message


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
            flat.setdefault(prefix or "_schema", []).extend(in_chinese(v) for v in value)
        else:
            flat.setdefault(prefix or "_schema", []).append(in_chinese(str(value)))

    for key, value in errors.items():
        if key in _LOCATIONS and isinstance(value, dict):
            walk("", value)
        else:
            walk(str(key), value)
    return flat


#: Seconds a caller turned away for a busy or unreachable database is asked to wait.
RETRY_AFTER = 1


def busy():
    """503 for a database too busy to serve the request now; nothing of it was kept."""
    return payload(503, "系统繁忙，请稍后重试 (the platform is busy, retry)"), 503, {"Retry-After": str(RETRY_AFTER)}


def unavailable():
    """503 for a database that could not serve the request (gone, or it ended the session)."""
    return payload(503, "数据库暂不可用，请稍后重试 (database unavailable)"), 503, {"Retry-After": str(RETRY_AFTER)}


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
        if err.code in _STATUS_IN_CHINESE and not _CJK.search(message):
            message = _STATUS_IN_CHINESE[err.code]
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
        if is_busy(err):  # aborted on every attempt, or a lock/statement/busy timeout reached
            log.warning("request turned away by a busy database: %s", err.orig)
            return busy()
        log.exception("database error", exc_info=err)
        return unavailable()

    @app.errorhandler(InternalError)
    def _session_ended(err):
        """The server ended the session the request's transaction ran in (it waited past the
        idle limit): nothing was kept, as for a lost connection; any other internal error of
        the database is ours."""
        if not is_session_ended(err):
            return _unexpected(err)
        log.warning("the database ended the request's session: %s", err.orig)
        return unavailable()

    @app.errorhandler(PoolTimeoutError)
    def _pool_exhausted(err):
        """Every pooled connection stayed in use for the pool's timeout (slow requests, a
        database that stopped answering): not the caller's fault, not an internal error."""
        log.warning("no database connection free in time: %s", err)
        return busy()

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):
        request_id = request_ids.current() or "-"
        log.exception("unhandled error (request %s)", request_id, exc_info=err)
        body = payload(500, f"服务器内部错误，请向运维人员提供请求编号 {request_id} (internal error; request id {request_id})")
        return {**body, "request_id": request_id}, 500
