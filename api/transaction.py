"""One transaction per request: the request's session commits only if the answer is a
success, so a failed request leaves the database as it was."""
from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from api.errors import payload
from engine.platform import Platform


def platform() -> Platform:
    return current_app.extensions["tzxm"]


def session() -> Session:
    if "db" not in g:
        g.db = platform().session_factory()
    return g.db


def end_request_transaction() -> None:
    """Commit what the request did so far and release its connection: for endpoints
    whose work runs in transactions of its own (the sweep behind the manual clock),
    which on SQLite would otherwise wait for this request's write lock."""
    db: Session | None = g.pop("db", None)
    if db is not None:
        db.commit()
        db.close()


def init_app(app: Flask) -> None:
    @app.after_request
    def _finish(response):
        db: Session | None = g.pop("db", None)
        if db is None:
            return response
        try:
            if response.status_code < 400 or g.get("keep_changes"):
                db.commit()
            else:
                db.rollback()
        except (StaleDataError, IntegrityError):
            db.rollback()
            response = app.json.response(payload(409, "数据已被他人修改，请刷新后重试 (conflict, retry)"))
            response.status_code = 409
        finally:
            db.close()
        return response

    @app.teardown_request
    def _close(_exc):
        db: Session | None = g.pop("db", None)
        if db is not None:
            db.rollback()
            db.close()
