"""通知书 (notices): the PDF of each notice."""
from __future__ import annotations

from flask_smorest import Blueprint

bp = Blueprint("notices", __name__, url_prefix="/notices", description="通知书 (notices): the PDF of each notice")
