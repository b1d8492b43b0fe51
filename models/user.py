"""Console users: who may sign in to the web console, with which role and scope."""
from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Boolean, ForeignKey, Index, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .base import Base, BigID, UTCDateTime, utcnow
from .organisation import Organisation

# Roles and the organisation kind each one's scope must be (None: the whole park).
ROLES = {
    "admin": None,
    "organisation_department": None,
    "street_staff": ("street", "social_work_committee"),
    "steward": ("community",),
    "liaison": None,  # any handler organisation
}
ROLE_LABELS = {"admin": "管理员", "organisation_department": "组织部", "street_staff": "街道·社工委",
               "steward": "红管负责人", "liaison": "联络人"}
MIN_PASSWORD_LENGTH = 10

# argon2id at OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): about 50 ms per
# check on one core, so a login burst cannot starve the web workers of CPU and memory.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Verifying against this keeps a login for an unknown username as slow as a real one.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


class UserError(ValueError):
    """A user cannot be created or changed as asked; the message says why."""


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

    org: Mapped[Organisation | None] = relationship()

    @property
    def role_label(self) -> str:
        """The role as the console shows it."""
        return ROLE_LABELS.get(self.role, self.role)

    @property
    def sees_everything(self) -> bool:
        """Admins and the organisation department see the whole park."""
        return self.role in ("admin", "organisation_department")

    def set_password(self, password: str) -> None:
        """Stores an argon2id hash of a new password."""
        if len(password) < MIN_PASSWORD_LENGTH:
            raise UserError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
        self.password_hash = _hasher.hash(password)

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
        raise UserError("username must have 1 to 64 characters")
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; one of: {', '.join(ROLES)}")
    if session.scalar(select(ConsoleUser.id).where(ConsoleUser.username == username)):
        raise UserError(f"user {username!r} exists already")
    org = None
    if org_code:
        org = session.scalar(select(Organisation).where(Organisation.code == org_code))
        if org is None:
            raise UserError(f"no organisation with code {org_code!r}")
    needs_org = role in ("street_staff", "steward", "liaison")
    if needs_org and org is None:
        raise UserError(f"role {role} needs --org (the organisation it is scoped to)")
    kinds = ROLES[role]
    if org is not None and kinds and org.kind not in kinds:
        raise UserError(f"role {role} must be scoped to a {' or '.join(kinds)}, not a {org.kind}")
    user = ConsoleUser(username=username, role=role, org=org if needs_org else None,
                       display_name=display_name, active=True)
    if password_hash and _hasher.verify(password_hash, password):
        user.password_hash = password_hash
    else:
        user.set_password(password)
    session.add(user)
    session.flush()
    return user


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
