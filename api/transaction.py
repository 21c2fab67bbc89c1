"""One transaction per request: the request's session commits only if the answer is a
success, so a failed request leaves the database as it was. A request the database
aborted to break a deadlock (or a serialization conflict) is done again, whole, in a
new transaction: the other side went through, and the caller never sees the race."""
from __future__ import annotations

import logging

from flask import Flask, Response, current_app, g, request
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from api.errors import payload
from engine.db import MAX_ATTEMPTS, is_retryable
from engine.errors import DomainError
from engine.platform import Platform

log = logging.getLogger(__name__)

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
    committed_part()


def committed_part() -> None:
    """Part of the request's work is committed (here, or in a transaction of its own such
    as the portal's rate count): it cannot be done again, so no retry from here on."""
    g.committed_part = True


def _finish_transaction(app: Flask, response: Response) -> Response:
    """Commit a success, roll back anything else; a conflict met at commit answers 409."""
    db: Session | None = g.pop("db", None)
    if db is None:
        return response
    try:
        if response.status_code < 400:
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


def _keep_changes() -> None:
    """Commit what a refused request keeps (a failed sign-in's record, counted against
    guessing), before its error answer is made."""
    db: Session | None = g.pop("db", None)
    if db is not None:
        try:
            db.commit()
        finally:
            db.close()


def _start_again() -> None:
    """Forget the aborted attempt: its session (rolled back) and what it read of the body."""
    db: Session | None = g.pop("db", None)
    if db is not None:
        db.rollback()
        db.close()
    for _name, upload in request.files.items(multi=True):
        upload.stream.seek(0)


class TransactionalFlask(Flask):
    """Flask whose view and commit run together, so that a deadlock or serialization
    abort met anywhere in them (the staged lights and the audit chain write at commit)
    runs the request again from the start, up to ``MAX_ATTEMPTS`` times; an error that
    keeps its changes commits them in the same loop. Other error answers (raised to
    Flask's handlers) are rolled back by the ``after_request`` hook."""

    def dispatch_request(self):
        attempt = 1
        while True:
            try:
                try:
                    response = self.make_response(super().dispatch_request())
                except DomainError as err:
                    if err.keep_changes:
                        _keep_changes()
                    raise
                return _finish_transaction(self, response)
            except DBAPIError as exc:
                if attempt >= MAX_ATTEMPTS or not is_retryable(exc) or g.get("committed_part"):
                    raise
                log.warning("request %s %s aborted by the database (%s), attempt %d: doing it again",
                            request.method, request.path, exc.orig.sqlstate, attempt)
                _start_again()
                attempt += 1


def init_app(app: Flask) -> None:
    @app.after_request
    def _finish(response):
        return _finish_transaction(app, response)

    @app.teardown_request
    def _close(_exc):
        db: Session | None = g.pop("db", None)
        if db is not None:
            db.rollback()
            db.close()
