"""Where the platform keeps its files by default (no Flask: the CLI and alembic use it too)."""
from __future__ import annotations

import math
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"


def default_database_url() -> str:
    """DATABASE_URL selects PostgreSQL; the default is an SQLite file under var/. A URL
    that cannot be used (not a URL, a port that is no number, a driver not installed) is a
    ``ConfigurationError`` naming what is wrong, never the URL (it may hold a password)."""
    if os.environ.get("DATABASE_URL"):
        url = os.environ["DATABASE_URL"]
        from sqlalchemy.engine import make_url  # the settings module is read before the database is
        from sqlalchemy.exc import ArgumentError
        try:
            parsed = make_url(url)
            parsed.port  # noqa: B018 - read: a port that is no number raises here, not at the first connection
            parsed.get_dialect().import_dbapi()  # its driver installed
        except (ArgumentError, ValueError, ImportError) as exc:
            raise ConfigurationError(f"DATABASE_URL cannot be used: {type(exc).__name__}: {exc}") from None
        return url
    VAR.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{VAR / 'tzxm.sqlite3'}"


#: The platform's title when ``TZXM_PLATFORM_NAME`` is unset.
DEFAULT_PLATFORM_NAME = "投资项目在线审批监管平台"
#: the notice's footer (本通知书由…生成, 9 pt) fits the A4 text width up to about 42 characters
PLATFORM_NAME_MAX = 40


def platform_name() -> str:
    """TZXM_PLATFORM_NAME: the platform's title as its notices and the portal's feeds print it
    (e.g. 吉林省投资项目在线审批监管平台); one line of at most 40 printable characters."""
    value = os.environ.get("TZXM_PLATFORM_NAME", "").strip() or DEFAULT_PLATFORM_NAME
    if len(value) > PLATFORM_NAME_MAX or not value.isprintable():
        raise ConfigurationError(f"TZXM_PLATFORM_NAME must be one line of at most {PLATFORM_NAME_MAX} printable "
                                 f"characters, not {value[:80]!r}")
    return value


class ConfigurationError(RuntimeError):
    """A setting from the environment that cannot be used: the message names the variable
    and what it must be (the console script prints it on one line)."""


def number_from_environment(name: str, default: float, *, integer: bool = False, positive: bool = False) -> float:
    """A finite number from the environment variable ``name`` (``default`` when unset):
    never negative, and above zero when ``positive``."""
    raw = os.environ.get(name, "").strip()
    if not raw:  # empty as unset (an env file's ``NAME=``)
        return default
    kind = "a whole number" if integer else "a number"
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be {kind}, not {raw!r}") from None
    if not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a finite number, not {raw!r}")
    if value < 0 or (positive and value == 0):
        raise ConfigurationError(f"{name} must be {'above zero' if positive else 'zero or more'}, not {raw!r}")
    return value
