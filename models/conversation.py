"""A resident's place in a flow, kept in the database so any worker can continue it."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow


class Conversation(Base):
    """One row per resident: the flow in progress, its step and the answers so far."""

    __tablename__ = "conversations"
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), primary_key=True)
    flow: Mapped[str | None] = mapped_column(String(64))
    step: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    history: Mapped[list] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expired_notice: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=0)

    def clear(self) -> None:
        """Leaves any flow."""
        self.flow = None
        self.step = None
        self.data = {}
        self.history = []

    def __repr__(self) -> str:
        return f"<Conversation {self.resident_id} {self.flow}:{self.step}>"
