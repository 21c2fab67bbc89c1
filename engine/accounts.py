"""Accounts and sign-in (MLPS level 3: authentication, lock-out, strong passwords).

Passwords are hashed with argon2id; tokens are signed (HS256) with an expiry; five
failed sign-ins within 15 minutes refuse the username for 15 minutes.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from engine import audit, codes, runtime
from engine.access import OFFICIAL_ROLES, Actor
from engine.db import is_postgresql
from engine.errors import Invalid, NotFound, TooManyAttempts, Unauthenticated
from engine.models import ROLES, Department, LoginFailure, ProjectUnit, User

_hasher = PasswordHasher()
#: A hash to verify against when the username is unknown, so that a wrong username
#: and a wrong password take the same time and give the same answer.
_DUMMY_HASH = _hasher.hash("tzxm-dummy-password")

FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES = 5
TOKEN_LIFETIME = timedelta(hours=8)
USERNAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{1,63}$")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_problem(password: str, username: str = "") -> str | None:
    """The minimum strength for accounts: at least 10 characters, three of the four
    character classes, not containing the username."""
    if len(password) < 10:
        return "密码至少10个字符 (password must be at least 10 characters)"
    if len(password) > 128:
        return "密码最多128个字符 (password must be at most 128 characters)"
    classes = sum(
        bool(re.search(p, password)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]")
    )
    if classes < 3:
        return "密码须包含大写字母、小写字母、数字、符号中的至少三类 (use three of: lower, upper, digit, symbol)"
    if username and username.lower() in password.lower():
        return "密码不得包含用户名 (password must not contain the username)"
    return None


#: Roles one account never holds together: a project unit's applicant is never an
#: official (he would approve his own declaration), and 电子监察 stays independent of
#: the officers and department admins it supervises.
EXCLUSIVE_ROLES = (
    (frozenset({"applicant"}), frozenset(OFFICIAL_ROLES)),
    (frozenset({"supervisor"}), frozenset({"window_officer", "officer", "dept_admin"})),
)


def _check_roles(roles: list[str]) -> None:
    unknown = [r for r in roles if r not in ROLES]
    if not roles or unknown:
        raise Invalid.field("roles", f"未知角色 (unknown roles): {unknown}" if unknown else "至少一个角色 (at least one role)")
    if len(set(roles)) != len(roles):
        raise Invalid.field("roles", "角色重复 (a role is given twice)")
    for side, other in EXCLUSIVE_ROLES:
        clash = sorted(side & set(roles)), sorted(other & set(roles))
        if all(clash):
            raise Invalid.field("roles", f"角色不能兼任 (roles that one account never holds together): {clash[0]} + {clash[1]}")


def _check_affiliation(session: Session, roles: list[str], department_code: str | None, project_unit_id: int | None) -> None:
    """An applicant acts for one project unit and no department; an official belongs to one
    department and acts for no unit."""
    if "applicant" in roles:
        if project_unit_id is None or session.get(ProjectUnit, project_unit_id) is None:
            raise Invalid.field("project_unit_id", "申报用户须属于一个项目单位 (an applicant acts for one project unit)")
        if department_code is not None:
            raise Invalid.field("department_code", "申报用户不属于任何部门 (an applicant belongs to no department)")
    else:
        if department_code is None or session.get(Department, department_code) is None:
            raise Invalid.field("department_code", "工作人员须属于一个部门 (an official belongs to a department)")
        if project_unit_id is not None:
            raise Invalid.field("project_unit_id", "工作人员不代表项目单位 (an official acts for no project unit)")


def create_user(
    session: Session,
    *,
    now: datetime,
    actor: str,
    username: str,
    password: str,
    display_name: str,
    roles: list[str],
    department_code: str | None = None,
    project_unit_id: int | None = None,
    check_strength: bool = True,
    password_hash: str | None = None,
) -> User:
    """Create an account. ``password_hash`` lets the demo seed hash its shared password once."""
    if not USERNAME_RE.match(username):
        raise Invalid.field("username", "用户名须为小写字母开头的2-64位字母、数字、_.- (invalid username)")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Invalid.field("username", "用户名已存在 (username taken)")
    if check_strength and (problem := password_problem(password, username)):
        raise Invalid.field("password", problem)
    _check_roles(roles)
    _check_affiliation(session, roles, department_code, project_unit_id)
    user = User(
        username=username,
        password_hash=password_hash or hash_password(password),
        display_name=display_name,
        roles=list(roles),
        department_code=department_code,
        project_unit_id=project_unit_id,
        created_at=now,
    )
    session.add(user)
    session.flush()
    audit.record(
        session, at=now, actor=actor, action="user.create", target=f"user:{username}",
        summary={"roles": list(roles), "department": department_code, "project_unit_id": project_unit_id},
    )
    return user


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    token_type: str
    expires_in: int


def _recent_failures(session: Session, username: str, now: datetime) -> list[datetime]:
    return list(
        session.scalars(
            select(LoginFailure.at)
            .where(LoginFailure.username == username, LoginFailure.at > now - FAILURE_WINDOW)
            .order_by(LoginFailure.at)
        )
    )


#: The first key of the advisory locks that serialise one username's sign-ins.
_SIGN_IN_LOCKS = 0x7A786D01


def _one_sign_in_at_a_time(session: Session, username: str) -> None:
    """One username's sign-ins one after another across every server process (PostgreSQL;
    SQLite serialises writers at BEGIN): otherwise guesses sent at once each count the
    failures committed before they started, and any number of them pass the lockout.
    A transaction-scoped lock: the failure a guess records is committed before the next
    guess counts."""
    if is_postgresql(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:space, hashtext(:username))"),
                        {"space": _SIGN_IN_LOCKS, "username": username})


def authenticate(session: Session, *, username: str, password: str, now: datetime, secret: str) -> IssuedToken:
    """Check a password and issue a token.

    A failure is recorded even though the caller's request fails: the caller commits
    the failure record before answering 401 (``Unauthenticated.keep_changes``).
    """
    # as typed in a full-width input method, with a stray space or a capital: usernames
    # are lower-case ASCII (USERNAME_RE), so these name the same account
    username = unicodedata.normalize("NFKC", username).strip().lower()
    _one_sign_in_at_a_time(session, username)
    failures = _recent_failures(session, username, now)
    if len(failures) >= MAX_FAILURES:
        retry = int((failures[-MAX_FAILURES] + FAILURE_WINDOW - now).total_seconds()) + 1
        raise TooManyAttempts("登录失败次数过多，请稍后再试 (too many failed sign-ins)", retry_after=max(retry, 1))
    user = session.scalar(select(User).where(User.username == username))
    try:
        _hasher.verify(user.password_hash if user and user.active else _DUMMY_HASH, password)
        ok = user is not None and user.active
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok:
        session.add(LoginFailure(username=username[:64], at=now))
        # what was typed is not kept in the chain (it may be a password typed in the wrong box): the
        # account when there is one, and nobody is named as the one who tried
        audit.record(session, at=now, actor="anonymous", action="auth.failure",
                     target=f"user:{user.username}" if user is not None else "user:(unknown)")
        err = Unauthenticated("用户名或密码错误 (wrong username or password)")
        err.keep_changes = True
        raise err
    session.execute(delete(LoginFailure).where(LoginFailure.username == username))
    audit.record(session, at=now, actor=user.username, action="auth.sign_in", target=f"user:{user.username}")
    return issue_token(user, now=now, secret=secret)


def issue_token(user: User, *, now: datetime, secret: str) -> IssuedToken:
    expires = now + TOKEN_LIFETIME
    token = jwt.encode(
        {"sub": str(user.id), "usr": user.username, "ver": user.token_version, "iat": int(now.timestamp()),
         "exp": int(expires.timestamp())},
        secret,
        algorithm="HS256",
    )
    return IssuedToken(token, "Bearer", int(TOKEN_LIFETIME.total_seconds()))


def user_for_token(session: Session, token: str, *, now: datetime, secret: str) -> User:
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False, "verify_nbf": False})
    except jwt.PyJWTError:
        raise Unauthenticated("令牌无效 (invalid token)") from None
    # Expiry is checked against the platform clock, not the wall clock, so a manual
    # clock behaves consistently.
    if int(claims.get("exp", 0)) <= int(now.timestamp()):
        raise Unauthenticated("令牌已过期 (token expired)")
    user = session.get(User, int(claims["sub"])) if str(claims.get("sub", "")).isdigit() else None
    if user is None or not user.active or user.username != claims.get("usr") or claims.get("ver", 0) != user.token_version:
        raise Unauthenticated("令牌无效 (invalid token)")
    return user



def create_project_unit(
    session: Session, *, now: datetime, actor: str, name: str, credit_code: str, contact_name: str = "", contact_phone: str = ""
) -> ProjectUnit:
    """Register a project unit under its 统一社会信用代码 (checked with its GB 32100 check character)."""
    try:
        compact = codes.validate_credit_code(credit_code)
    except ValueError as exc:
        raise Invalid.field("credit_code", str(exc)) from None
    if session.scalar(select(ProjectUnit.id).where(ProjectUnit.credit_code == compact)) is not None:
        raise Invalid.field("credit_code", "该统一社会信用代码已登记 (unit already registered)")
    unit = ProjectUnit(name=name, credit_code=compact, contact_name=contact_name, contact_phone=contact_phone)
    session.add(unit)
    session.flush()
    audit.record(session, at=now, actor=actor, action="unit.create", target=f"unit:{compact}", summary={"name": name})
    return unit


#: What the operator may change on an account (设置用户权限, Jilin 第九条).
USER_CHANGES = ("active", "roles", "department_code", "project_unit_id", "display_name", "password")


def update_user(session: Session, *, now: datetime, actor: Actor, user_id: int, changes: dict) -> User:
    """Change an account: disable or enable it, its roles, department or unit, its name, or
    reset its password (which also lifts a sign-in lock-out). Disabling it or resetting its
    password ends every token issued before (``token_version``), for good: enabled again,
    the account signs in anew. A role or department taken away applies at once
    (every request reads the account). The operator cannot disable the account it works
    with or take its own operator role away: the platform would be left with no one to
    undo it."""
    user = session.scalar(select(User).where(User.id == user_id).with_for_update(of=User))
    if user is None:
        raise NotFound("用户不存在 (no such user)")
    if not changes:  # which fields there are is the schema's to say (UserUpdateSchema)
        raise Invalid.field("body", f"至少修改一项 (change at least one of {', '.join(USER_CHANGES)})")
    roles = list(changes.get("roles", user.roles))
    if user.id == actor.user_id and (changes.get("active") is False or "operator" not in roles):
        raise Invalid.field("active" if changes.get("active") is False else "roles",
                            "不能停用本人账户或取消本人的运维角色 (the operator cannot disable itself or drop its own operator role)")
    department_code = changes.get("department_code", user.department_code)
    project_unit_id = changes.get("project_unit_id", user.project_unit_id)
    if {"roles", "department_code", "project_unit_id"} & set(changes):
        _check_roles(roles)
        _check_affiliation(session, roles, department_code, project_unit_id)
    summary = {name: value for name, value in changes.items() if name != "password"}
    if "password" in changes:
        if problem := password_problem(changes["password"], user.username):
            raise Invalid.field("password", problem)
        user.password_hash = hash_password(changes["password"])
        user.token_version += 1  # a reset is what is done when an account is compromised: its tokens end
        session.execute(delete(LoginFailure).where(LoginFailure.username == user.username))
        summary["password_reset"] = True
    user.roles, user.department_code, user.project_unit_id = roles, department_code, project_unit_id
    if changes.get("active") is False and user.active:
        user.token_version += 1  # enabled again later, the account does not get its old tokens back
    user.active = changes.get("active", user.active)
    user.display_name = changes.get("display_name", user.display_name)
    audit.record(session, at=now, actor=actor.username, action="user.update", target=f"user:{user.username}", summary=summary)
    session.flush()
    if {"active", "roles", "department_code", "project_unit_id"} & set(changes):
        runtime.release_claims(session, user, now=now, actor=actor.username)
    return user


def list_users(session: Session, *, page: int, page_size: int) -> tuple[list[User], int]:
    total = session.scalar(select(func.count()).select_from(User))
    rows = session.scalars(select(User).order_by(User.id).offset((page - 1) * page_size).limit(page_size)).all()
    return list(rows), total
