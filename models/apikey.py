"""API keys of the Open311 API: hashed at rest, scoped to a community or the park, rate-limited."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .base import Base, BigID, UTCDateTime, utcnow
from .organisation import Organisation

# A key reads "rs_<prefix>_<secret>": the prefix finds the row, only the hash of the whole is kept.
KEY_PREFIX = "rs"
SCOPE_KINDS = ("park", "community")
DEFAULT_RATE_LIMIT = 60  # calls a minute


class ApiKeyError(ValueError):
    """A key cannot be created as asked (unknown scope, bad limit)."""


class ApiKey(Base):
    """A key given to an outside application; it may file requests within its scope."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    scope_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    rate_limit: Mapped[int] = mapped_column(Integer, default=DEFAULT_RATE_LIMIT)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    scope: Mapped[Organisation] = relationship()

    @property
    def active(self) -> bool:
        """True until the key is revoked."""
        return self.revoked_at is None

    def __repr__(self) -> str:
        return f"<ApiKey {self.prefix} scope={self.scope_id}>"


class ApiKeyUsage(Base):
    """Calls of one key in one minute: a fixed-window counter shared by every worker."""

    __tablename__ = "api_key_usage"
    __table_args__ = (UniqueConstraint("api_key_id", "window_start"),)
    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    calls: Mapped[int] = mapped_column(Integer, default=0)


def _digest(plaintext: str) -> str:
    """SHA-256 of a key: keys are 192 random bits, so a slow hash would add nothing."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def create_key(session: Session, scope_code: str, name: str,
               rate_limit: int = DEFAULT_RATE_LIMIT) -> tuple[ApiKey, str]:
    """Creates a key scoped to the park or a community; returns it with the only plaintext copy."""
    scope = session.scalar(select(Organisation).where(Organisation.code == scope_code))
    if scope is None or scope.kind not in SCOPE_KINDS:
        raise ApiKeyError(f"no park or community with code {scope_code!r}")
    if rate_limit < 1:
        raise ApiKeyError("rate limit must be at least 1 call a minute")
    prefix = secrets.token_hex(4)
    plaintext = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(24)}"
    key = ApiKey(prefix=prefix, key_hash=_digest(plaintext), name=name or scope.name,
                 scope_id=scope.id, rate_limit=rate_limit)
    session.add(key)
    session.flush()
    return key, plaintext


def authenticate(session: Session, plaintext: str) -> ApiKey | None:
    """The active key this plaintext belongs to, or None."""
    parts = (plaintext or "").split("_")
    if len(parts) < 3 or parts[0] != KEY_PREFIX:
        return None
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    if key is None or not key.active:
        return None
    return key if hmac.compare_digest(key.key_hash, _digest(plaintext)) else None


def consume(session: Session, key: ApiKey, now: datetime | None = None) -> bool:
    """Counts one call; False when the key has used up its calls for this minute."""
    now = now or utcnow()
    window = now.replace(second=0, microsecond=0)
    bump = (update(ApiKeyUsage)
            .where(ApiKeyUsage.api_key_id == key.id, ApiKeyUsage.window_start == window)
            .values(calls=ApiKeyUsage.calls + 1))
    if session.execute(bump).rowcount == 0:
        try:
            with session.begin_nested():
                session.add(ApiKeyUsage(api_key_id=key.id, window_start=window, calls=1))
        except IntegrityError:  # another worker opened the window first
            session.execute(bump)
    calls = session.scalar(select(ApiKeyUsage.calls).where(
        ApiKeyUsage.api_key_id == key.id, ApiKeyUsage.window_start == window))
    key.last_used_at = now
    # Old windows are of no further use; dropping them keeps the table a few rows per key.
    session.execute(ApiKeyUsage.__table__.delete().where(
        ApiKeyUsage.api_key_id == key.id, ApiKeyUsage.window_start < window - timedelta(minutes=5)))
    return calls <= key.rate_limit


def revoke(session: Session, prefix: str) -> ApiKey | None:
    """Revokes the key with this prefix; returns it, or None when there is none."""
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is not None and key.revoked_at is None:
        key.revoked_at = utcnow()
    return key


def list_keys(session: Session) -> list[ApiKey]:
    """Every key, newest first, for the console."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id.desc())))
