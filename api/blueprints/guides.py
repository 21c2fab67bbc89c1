"""办事指南 (service guides): public list, department admins publish versions."""
from __future__ import annotations

from flask_smorest import Blueprint

bp = Blueprint("guides", __name__, url_prefix="", description="办事指南 (service guides): public list, department admins publish versions")
