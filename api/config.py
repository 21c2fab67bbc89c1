"""Configuration from the environment, with the defaults `make run` relies on."""
from __future__ import annotations

import os
import secrets

from engine.settings import VAR, default_database_url


def secret_key() -> str:
    """SECRET_KEY from the environment; unset → generated once and kept under var/."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = VAR / "secret_key"
    VAR.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def from_environment() -> dict:
    return {
        "DATABASE_URL": default_database_url(),
        "SECRET_KEY": secret_key(),
        "TZXM_CLOCK": os.environ.get("TZXM_CLOCK", "system"),
        "TZXM_CLOCK_START": os.environ.get("TZXM_CLOCK_START"),
        "TZXM_PLATFORM_REGION": os.environ.get("TZXM_PLATFORM_REGION", "510411"),
        "TZXM_SWEEP_SECONDS": float(os.environ.get("TZXM_SWEEP_SECONDS", "5")),
        "TZXM_PORTAL_RATE": os.environ.get("TZXM_PORTAL_RATE"),
        "TZXM_TRUSTED_PROXY_HOPS": os.environ.get("TZXM_TRUSTED_PROXY_HOPS", "0"),
    }
