"""Accounts administration: project units and users (the operator, 建设运维部门)."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import current_actor, requires
from api.schemas.accounts import (
    ProjectUnitCreateSchema, ProjectUnitOutSchema, UserCreateSchema, UserOutSchema, UserUpdateSchema,
)
from api.schemas.common import PageQuery, page_envelope, page_of
from api.transaction import platform, session
from engine import accounts

bp = Blueprint("accounts", __name__, url_prefix="", description="用户与项目单位管理 (accounts, operator)")


@bp.route("/units", methods=["POST"])
@requires("operator")
@bp.arguments(ProjectUnitCreateSchema)
@bp.response(201, ProjectUnitOutSchema)
def create_unit(body):
    """Register a project unit; its credit code is checked (GB 32100 check character)."""
    return accounts.create_project_unit(session(), now=platform().clock.now(), actor=current_actor().username, **body)


@bp.route("/users")
class Users(MethodView):
    @requires("operator")
    @bp.arguments(PageQuery, location="query")
    @bp.response(200, page_envelope(UserOutSchema))
    def get(self, query):
        rows, total = accounts.list_users(session(), **query)
        return page_of(rows, total, query["page"], query["page_size"])

    @requires("operator")
    @bp.arguments(UserCreateSchema)
    @bp.response(201, UserOutSchema)
    def post(self, body):
        """Create an account; the password must meet the minimum strength."""
        return accounts.create_user(session(), now=platform().clock.now(), actor=current_actor().username, **body)


@bp.route("/users/<int:user_id>", methods=["PATCH"])
@requires("operator")
@bp.arguments(UserUpdateSchema)
@bp.response(200, UserOutSchema)
def update_user(body, user_id):
    """Disable or enable an account, change its roles, department, unit or name, or reset its
    password (设置用户权限). Audited; the operator cannot disable itself."""
    return accounts.update_user(session(), now=platform().clock.now(), actor=current_actor(), user_id=user_id, changes=body)
