"""Configuration from the environment, with the defaults `make run` relies on."""
from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from engine.settings import VAR, default_database_url


def secret_key() -> str:
    """SECRET_KEY from the environment; unset → generated once and kept under var/.

    The generated key is for one host (``make run``): several hosts serving one platform
    must be given the same SECRET_KEY, or a token signed by one is refused by another."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = VAR / "secret_key"
    VAR.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _create_once(path, secrets.token_urlsafe(48))
    key = path.read_text().strip()
    if not key:
        raise RuntimeError(f"{path} is empty: delete it to have a key generated, or set SECRET_KEY")
    return key


def _create_once(path: Path, text: str) -> None:
    """Write the file whole under another name, then link it into place: a process
    starting at the same moment reads either no file or the whole key (never an empty
    one), and the first link wins for every process."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")  # mode 0600
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process was first: its key is the key
    finally:
        os.unlink(tmp)


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
