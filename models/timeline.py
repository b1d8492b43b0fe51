"""The timeline of a request: every transition, who made it, when, and why."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .base import Base, BigID, UTCDateTime, utcnow
from .labels import codes, label

ACTIONS = codes("timeline_action", ("submit", "record", "classify", "route", "transfer", "escalate", "answer",
                                     "resolve", "rate", "reopen", "close", "remind"))
ACTOR_KINDS = codes("actor", ("resident", "steward", "liaison", "staff", "system"))


@dataclass(frozen=True)
class Actor:
    """Who makes a transition: kind (resident/steward/liaison/staff/system), id, display label."""

    kind: str
    id: int | None = None
    label: str = ""  # e.g. the steward's community and role; empty: the kind's label

    @property
    def shown(self) -> str:
        """What the timeline records as who: the label, or the kind's label (居民, 系统)."""
        return self.label or label("actor", self.kind)


SYSTEM = Actor("system", None)


class TimelineEntry(Base):
    """One step in a request's life; the resident's page and assessments read these."""

    __tablename__ = "request_timeline"
    __table_args__ = (Index("ix_timeline_request", "request_id", "id"),
                      Index("ix_timeline_action_at", "action", "at"))
    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("service_requests.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_label: Mapped[str] = mapped_column(String(128), default="")
    action: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    handler_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict | None] = mapped_column(JSON)

    request = relationship("ServiceRequest")
    handler = relationship("Organisation")

    @property
    def action_label(self) -> str:
        """The step as people read it (templates/labels.yaml)."""
        return label("timeline_action", self.action)

    def __repr__(self) -> str:
        return f"<TimelineEntry {self.request_id} {self.action} {self.from_status}->{self.to_status}>"


def timeline_of(session: Session, request_id: int) -> list[TimelineEntry]:
    """The request's entries, oldest first."""
    return list(session.scalars(select(TimelineEntry).where(TimelineEntry.request_id == request_id)
                                .order_by(TimelineEntry.id)))
