"""Console users: who may sign in to the web console, with which role and scope."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Boolean, ForeignKey, Index, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .base import Base, BigID, UTCDateTime, utcnow
from .labels import codes, label
from .organisation import Organisation

# Roles and the organisation kind each one's scope must be (None: the whole park).
ROLES = {
    "admin": None,
    "organisation_department": None,
    "street_staff": ("street", "social_work_committee"),
    "steward": ("community",),
    "liaison": None,  # any handler organisation
}
codes("role", tuple(ROLES))
MIN_PASSWORD_LENGTH = 10
# Roles that may link a WeChat account and enter the console from the mobile pages.
WECHAT_ROLES = ("steward", "liaison")
# How long a one-time WeChat binding link stays valid.
BIND_LINK_LIFETIME = timedelta(minutes=15)

# argon2id at OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): about 50 ms per
# check on one core, so a login burst cannot starve the web workers of CPU and memory.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Verifying against this keeps a login for an unknown username as slow as a real one.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


class UserError(ValueError):
    """A user cannot be created or changed as asked; the message says why, `code` names the case."""

    def __init__(self, message: str, code: str = "invalid"):
        """The message (English, for the CLI) and a code the console words for people."""
        super().__init__(message)
        self.code = code


class ConsoleUser(Base):
    """A person who signs in to the console."""

    __tablename__ = "console_users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(32))
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    display_name: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The WeChat openid the person entered the console with from the mobile pages.
    wechat_openid: Mapped[str | None] = mapped_column(String(64), unique=True)
    wechat_linked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # SHA-256 of the one-time binding link's token (the token itself is never stored).
    bind_digest: Mapped[str | None] = mapped_column(String(64), unique=True)
    bind_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Raised when the password, role or WeChat link changes: sessions signed in before end.
    session_epoch: Mapped[int] = mapped_column(default=0)

    org: Mapped[Organisation | None] = relationship()

    @property
    def role_label(self) -> str:
        """The role as the console shows it."""
        return label("role", self.role)

    @property
    def sees_everything(self) -> bool:
        """Admins and the organisation department see the whole park."""
        return self.role in ("admin", "organisation_department")

    @property
    def may_use_wechat(self) -> bool:
        """True for the roles that enter the console from WeChat."""
        return self.role in WECHAT_ROLES

    def set_password(self, password: str) -> None:
        """Stores an argon2id hash of a new password."""
        if len(password) < MIN_PASSWORD_LENGTH:
            raise UserError(f"password must have at least {MIN_PASSWORD_LENGTH} characters", "password_short")
        self.password_hash = _hasher.hash(password)

    def end_sessions(self) -> None:
        """Signs the user out everywhere (their next page asks them to sign in again)."""
        self.session_epoch = (self.session_epoch or 0) + 1

    def check_password(self, password: str) -> bool:
        """True when the password matches; rehashes when the parameters changed."""
        try:
            _hasher.verify(self.password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        if _hasher.check_needs_rehash(self.password_hash):
            self.password_hash = _hasher.hash(password)
        return True

    def __repr__(self) -> str:
        return f"<ConsoleUser {self.username} {self.role}>"


@lru_cache(maxsize=4)
def shared_hash(password: str) -> str:
    """One hash for a password many sandbox accounts share (demo data only: the salt is shared too)."""
    return _hasher.hash(password)


def create_user(session: Session, username: str, password: str, role: str,
                org_code: str | None = None, display_name: str | None = None,
                password_hash: str | None = None) -> ConsoleUser:
    """Creates a user after checking the role and that its scope organisation fits."""
    username = username.strip()
    if not username or len(username) > 64:
        raise UserError("username must have 1 to 64 characters", "username")
    if session.scalar(select(ConsoleUser.id).where(ConsoleUser.username == username)):
        raise UserError(f"user {username!r} exists already", "username_taken")
    org = scope_org(session, role, org_code)
    user = ConsoleUser(username=username, role=role, org=org,
                       display_name=display_name, active=True)
    if password_hash and _hasher.verify(password_hash, password):
        user.password_hash = password_hash
    else:
        user.set_password(password)
    session.add(user)
    session.flush()
    return user


def scope_org(session: Session, role: str, org_code: str | None) -> Organisation | None:
    """The organisation a role is scoped to (None for park-wide roles), after checking it fits."""
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; one of: {', '.join(ROLES)}", "role")
    org = None
    if org_code:
        org = session.scalar(select(Organisation).where(Organisation.code == org_code))
        if org is None:
            raise UserError(f"no organisation with code {org_code!r}", "org_unknown")
    needs_org = role in ("street_staff", "steward", "liaison")
    if needs_org and org is None:
        raise UserError(f"role {role} needs --org (the organisation it is scoped to)", "org_needed")
    kinds = ROLES[role]
    if org is not None and kinds and org.kind not in kinds:
        raise UserError(f"role {role} must be scoped to a {' or '.join(kinds)}, not a {org.kind}", "org_kind")
    return org if needs_org else None


def _other_active_admins(session: Session, user: ConsoleUser) -> int:
    """How many active admins there are besides this user."""
    return session.scalar(select(func.count(ConsoleUser.id)).where(
        ConsoleUser.role == "admin", ConsoleUser.active.is_(True), ConsoleUser.id != user.id)) or 0


def _keep_an_admin(session: Session, user: ConsoleUser) -> None:
    """Refuses to take away the last active admin, so the console always has someone to run it."""
    if user.role == "admin" and user.active and not _other_active_admins(session, user):
        raise UserError("the last active admin cannot be removed", "last_admin")


def change_role(session: Session, user: ConsoleUser, role: str, org_code: str | None) -> None:
    """Gives a user another role or scope; their sessions end so the new scope applies at once."""
    org = scope_org(session, role, org_code)
    if role != "admin":
        _keep_an_admin(session, user)
    user.role, user.org = role, org
    if role not in WECHAT_ROLES:
        user.wechat_openid = user.wechat_linked_at = None
    user.end_sessions()


def set_active(session: Session, user: ConsoleUser, active: bool) -> None:
    """Disables (signs out at once) or enables an account; never the last active admin."""
    if not active:
        _keep_an_admin(session, user)
    user.active = active


def link_wechat(session: Session, user: ConsoleUser, openid: str) -> None:
    """Links a WeChat openid to the account; one openid opens one account."""
    openid = openid.strip()
    if not user.may_use_wechat:
        raise UserError(f"role {user.role} does not sign in with WeChat", "wechat_role")
    if not openid or len(openid) > 64:
        raise UserError("openid must have 1 to 64 characters", "openid")
    other = session.scalar(select(ConsoleUser).where(ConsoleUser.wechat_openid == openid,
                                                     ConsoleUser.id != user.id))
    if other is not None:
        raise UserError(f"this WeChat is linked to {other.username} already", "openid_taken")
    user.wechat_openid, user.wechat_linked_at = openid, utcnow()
    user.bind_digest = user.bind_expires_at = None


def unlink_wechat(user: ConsoleUser) -> None:
    """Removes the WeChat link; sessions opened through it end."""
    user.wechat_openid = user.wechat_linked_at = None
    user.bind_digest = user.bind_expires_at = None
    user.end_sessions()


def _digest(token: str) -> str:
    """What is stored of a binding token."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_bind_token(user: ConsoleUser, now: datetime | None = None) -> str:
    """A new one-time binding token for the account (an older one stops working)."""
    if not user.may_use_wechat:
        raise UserError(f"role {user.role} does not sign in with WeChat", "wechat_role")
    token = secrets.token_urlsafe(24)
    user.bind_digest, user.bind_expires_at = _digest(token), (now or utcnow()) + BIND_LINK_LIFETIME
    return token


def user_for_bind_token(session: Session, token: str, now: datetime | None = None) -> ConsoleUser | None:
    """The active account a binding token was issued to, while it is valid."""
    if not token or len(token) > 128:
        return None
    user = session.scalar(select(ConsoleUser).where(ConsoleUser.bind_digest == _digest(token)))
    if user is None or not user.active or not user.may_use_wechat:
        return None
    if user.bind_expires_at is None or user.bind_expires_at < (now or utcnow()):
        return None
    return user


def user_for_openid(session: Session, openid: str) -> ConsoleUser | None:
    """The account linked to a WeChat openid, whatever its state (the caller decides)."""
    return session.scalar(select(ConsoleUser).where(ConsoleUser.wechat_openid == openid))


def authenticate(session: Session, username: str, password: str) -> ConsoleUser | None:
    """The active user with this username and password, or None (same cost either way)."""
    user = session.scalar(select(ConsoleUser).where(ConsoleUser.username == username.strip()))
    if user is None:
        try:
            _hasher.verify(_DUMMY_HASH, password)
        except VerificationError:
            pass
        return None
    if not user.check_password(password) or not user.active:
        return None
    user.last_login_at = utcnow()
    return user


class LoginFailure(Base):
    """A failed sign-in, counted per username and per address to slow down guessing."""

    __tablename__ = "console_login_failures"
    __table_args__ = (Index("ix_login_failures_key_at", "key", "at"),)
    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def failures_since(session: Session, key: str, window: timedelta, now: datetime | None = None) -> int:
    """How many failures a key had in the window."""
    since = (now or utcnow()) - window
    return session.scalar(select(func.count(LoginFailure.id))
                          .where(LoginFailure.key == key, LoginFailure.at >= since)) or 0


def record_failure(session: Session, keys: list[str], now: datetime | None = None) -> None:
    """Counts one failure against each key."""
    for key in keys:
        session.add(LoginFailure(key=key, at=now or utcnow()))
