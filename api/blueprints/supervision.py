"""电子监察 (e-supervision): summary, scoring, risk warnings, forecast, exports."""
from __future__ import annotations

from flask_smorest import Blueprint

bp = Blueprint("supervision", __name__, url_prefix="/supervision", description="电子监察 (e-supervision): summary, scoring, risk warnings, forecast, exports")
