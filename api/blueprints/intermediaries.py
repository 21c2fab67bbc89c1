"""中介服务 (intermediary services)."""
from __future__ import annotations

from flask_smorest import Blueprint

bp = Blueprint("intermediaries", __name__, url_prefix="/projects", description="中介服务 (intermediary services)")
