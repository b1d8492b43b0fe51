"""The outbox: every message the platform sends, written in the transaction that causes it."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .base import Base, BigID, UTCDateTime, utcnow
from .labels import codes

KINDS = codes("outbox_kind", ("template", "kf_text", "email"))
STATUSES = ("pending", "sending", "sent", "failed")


class OutboxMessage(Base):
    """A template message, customer-service message or e-mail waiting to go out."""

    __tablename__ = "outbox_messages"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    recipient: Mapped[str] = mapped_column(String(254))
    payload: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # While "sending": when the lease runs out (a dispatcher killed mid-send leaves the row to be
    # taken again then) and which claim holds it, so only that claim records the outcome.
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<OutboxMessage {self.id} {self.kind} {self.status}>"


def enqueue(session: Session, kind: str, recipient: str, payload: dict, key: str) -> OutboxMessage:
    """Adds a message to the outbox in the caller's transaction; the key makes it idempotent."""
    if kind not in KINDS:
        raise ValueError(f"unknown outbox kind {kind!r}")
    existing = session.scalar(select(OutboxMessage).where(OutboxMessage.idempotency_key == key))
    if existing is not None:
        return existing
    msg = OutboxMessage(kind=kind, recipient=recipient, payload=payload, idempotency_key=key)
    session.add(msg)
    return msg
