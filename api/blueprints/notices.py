"""通知书 (notices): the PDF of each notice."""
from __future__ import annotations

from urllib.parse import quote

from flask import Response
from flask_smorest import Blueprint

from api.auth import current_actor, requires
from api.openapi import file_response
from api.transaction import session
from engine import notices

bp = Blueprint("notices", __name__, url_prefix="/notices", description="通知书 (notices): the PDF of each notice")

PDF_RESPONSE = file_response("application/pdf", "the notice as issued (application/pdf, as an attachment)")


def attachment(filename: str) -> str:
    """Content-Disposition for a download whose name may be Chinese (RFC 6266 / RFC 5987):
    an ASCII fallback and the UTF-8 name percent-encoded."""
    fallback = filename.encode("ascii", "replace").decode("ascii").replace("?", "_").replace('"', "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@bp.route("/<int:notice_id>/pdf")
@requires()
@bp.response(200, description=PDF_RESPONSE["description"])
@bp.doc(responses={"200": PDF_RESPONSE})
@bp.alt_response(404, description="no such notice, or not one of your projects")
def notice_pdf(notice_id):
    """The notice's PDF, for the project unit and the officials who may see the project."""
    notice, data = notices.read_pdf(session(), current_actor(), notice_id)
    response = Response(data, mimetype="application/pdf")
    response.headers["Content-Disposition"] = attachment(f"{notice.number}.pdf")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"  # a project unit's document: no shared caches
    return response
