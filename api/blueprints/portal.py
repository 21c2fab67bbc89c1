"""门户 (portal): public progress lookup and disclosure."""
from __future__ import annotations

from flask_smorest import Blueprint

bp = Blueprint("portal", __name__, url_prefix="/portal", description="门户 (portal): public progress lookup and disclosure")
