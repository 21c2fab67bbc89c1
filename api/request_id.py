"""Each request's id: taken from a proxy's ``X-Request-Id`` when it is a plain token, made
otherwise; answered in the same header and written on every log line of the request, so
an operator finds the lines of the request a user reports (a 500 answers it in its body)."""
from __future__ import annotations

import logging
import re
import uuid

from flask import Flask, g, has_request_context, request

HEADER = "X-Request-Id"
_PLAIN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def current() -> str | None:
    return g.get("request_id") if has_request_context() else None


class RequestContext(logging.Filter):
    """Adds ``request`` to every record: the request's id, method and path, or ``-``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request = f"{current()} {request.method} {_printable(request.path)}" if current() else "-"
        return True


def _printable(text: str) -> str:
    """A path as one line: a decoded newline in it cannot start a forged log line."""
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def configure_logging() -> None:
    """Timestamped lines naming the request, for a served process (``tzxm serve``, ``api.wsgi``,
    ``tzxm sweeper``); once per process, however often it is asked."""
    root = logging.getLogger()
    if any(isinstance(f, RequestContext) for handler in root.handlers for f in handler.filters):
        return
    handler = logging.StreamHandler()
    handler.addFilter(RequestContext())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request)s] %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for chatty in ("apscheduler", "alembic"):  # a line for every sweep, every health check's schema read
        logging.getLogger(chatty).setLevel(logging.WARNING)


def init_app(app: Flask) -> None:
    @app.before_request
    def _identify() -> None:
        given = request.headers.get(HEADER, "")
        g.request_id = given if _PLAIN.match(given) else uuid.uuid4().hex

    @app.after_request
    def _answer(response):
        if current():
            response.headers[HEADER] = current()
        return response
