"""申报材料 (materials): upload, list, download."""
from __future__ import annotations

from flask_smorest import Blueprint

bp = Blueprint("materials", __name__, url_prefix="/projects", description="申报材料 (materials): upload, list, download")
