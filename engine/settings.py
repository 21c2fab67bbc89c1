"""Where the platform keeps its files by default (no Flask: the CLI and alembic use it too)."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"


def default_database_url() -> str:
    """DATABASE_URL selects PostgreSQL; the default is an SQLite file under var/."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    VAR.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{VAR / 'tzxm.sqlite3'}"
