"""Configuration from the environment, with the defaults `make run` relies on."""
from __future__ import annotations

import os
import secrets
import tempfile
from datetime import datetime
from pathlib import Path

from engine import codes
from engine.settings import VAR, ConfigurationError, default_database_url, number_from_environment, platform_name

#: HS256 tokens are signed with the key: RFC 7518 asks for at least as many bytes as the hash.
MIN_SECRET_KEY_BYTES = 32
CLOCKS = ("system", "manual")


def secret_key() -> str:
    """SECRET_KEY from the environment; unset → generated once and kept under var/.

    The generated key is for one host (``make run``): several hosts serving one platform
    must be given the same SECRET_KEY, or a token signed by one is refused by another."""
    if os.environ.get("SECRET_KEY"):
        key = os.environ["SECRET_KEY"]
        if len(key.encode("utf-8")) < MIN_SECRET_KEY_BYTES:
            raise ConfigurationError(f"SECRET_KEY must be at least {MIN_SECRET_KEY_BYTES} bytes long (tokens are signed "
                                     f"with it), not {len(key.encode('utf-8'))}")
        return key
    path = VAR / "secret_key"
    VAR.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _create_once(path, secrets.token_urlsafe(48))
    key = path.read_text().strip()
    if not key:
        raise ConfigurationError(f"{path} is empty: delete it to have a key generated, or set SECRET_KEY")
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
    """The settings, each checked here: a bad value stops the start with one line naming it."""
    platform_name()  # the engine reads it where it prints it (notices, feeds): checked at start all the same
    return {
        "DATABASE_URL": default_database_url(),
        "SECRET_KEY": secret_key(),
        "TZXM_CLOCK": _choice("TZXM_CLOCK", CLOCKS),
        "TZXM_CLOCK_START": _instant("TZXM_CLOCK_START"),
        "TZXM_PLATFORM_REGION": platform_region(),
        "TZXM_SWEEP_SECONDS": number_from_environment("TZXM_SWEEP_SECONDS", 5.0, positive=True),
        "TZXM_PORTAL_RATE": os.environ.get("TZXM_PORTAL_RATE"),
        "TZXM_TRUSTED_PROXY_HOPS": os.environ.get("TZXM_TRUSTED_PROXY_HOPS", "0"),
    }


def _choice(name: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name) or choices[0]  # empty as unset (an env file's ``TZXM_CLOCK=``)
    if value not in choices:
        raise ConfigurationError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def platform_region() -> str:
    """TZXM_PLATFORM_REGION, the region this platform serves (仁和区, 510411, when unset): a
    GB/T 2260 code (six digits), whose organisation the database holds (``tzxm
    seed-organisation`` or ``tzxm import-organisation``)."""
    value = os.environ.get("TZXM_PLATFORM_REGION") or "510411"
    if codes.region_problem(value):
        raise ConfigurationError(f"TZXM_PLATFORM_REGION must be a 6-digit region code (GB/T 2260, e.g. 510411), "
                                 f"not {value!r}")
    return value


def _instant(name: str) -> str | None:
    """An ISO 8601 instant with its UTC offset (e.g. 2026-03-02T09:00:00+08:00), or unset."""
    value = os.environ.get(name)
    if not value:
        return None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        raise ConfigurationError(f"{name} must be an ISO 8601 instant with its UTC offset "
                                 f"(e.g. 2026-03-02T09:00:00+08:00), not {value!r}")
    return value
