"""实施情况与监管 (implementation reports, inspections, rectification, penalties)."""
from __future__ import annotations

from flask_smorest import Blueprint

bp = Blueprint("implementation", __name__, url_prefix="/projects", description="实施情况与监管 (implementation reports, inspections, rectification, penalties)")
