"""WeChat plumbing kept in the database: processed messages, the shared token, sandbox calls."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, BigID, UTCDateTime, utcnow


class ProcessedMessage(Base):
    """A delivery already handled, with the reply it got, so a retry gets the same reply."""

    __tablename__ = "processed_messages"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    reply: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class AccessToken(Base):
    """The one access token every process shares (when Redis is not configured)."""

    __tablename__ = "access_tokens"
    appid: Mapped[str] = mapped_column(String(64), primary_key=True)
    token: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SandboxCall(Base):
    """A WeChat API call recorded by the sandbox stand-in (sandbox mode only)."""

    __tablename__ = "sandbox_calls"
    __table_args__ = (Index("ix_sandbox_calls_openid", "openid", "id"),)
    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    endpoint: Mapped[str] = mapped_column(String(128))
    openid: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
