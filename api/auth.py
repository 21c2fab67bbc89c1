"""Bearer-token authentication and role checks for every endpoint."""
from __future__ import annotations

import functools

from flask import g, request

from api.transaction import platform, session
from engine.access import Actor, require_role
from engine.accounts import user_for_token
from engine.errors import Unauthenticated


def current_actor() -> Actor:
    if "actor" not in g:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("需要登录 (bearer token required)")
        p = platform()
        user = user_for_token(session(), token.strip(), now=p.clock.now(), secret=p.secret_key)
        g.actor = Actor.of(user)
    return g.actor


def requires(*roles: str):
    """Authenticate, and when roles are given require one of them."""

    def wrap(view):
        @functools.wraps(view)
        def inner(*args, **kwargs):
            actor = current_actor()
            if roles:
                require_role(actor, *roles)
            return view(*args, **kwargs)

        inner.requires_sign_in = True  # the OpenAPI document lists the refusals it can answer (api.openapi)
        return inner

    return wrap
