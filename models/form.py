"""Form submissions: what the flows defined only in menus.yaml (宠物登记, 共享车位申请) collect."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .base import Base, UTCDateTime, utcnow
from .organisation import Estate
from .resident import Resident

STATUSES = ("submitted", "accepted", "rejected", "withdrawn")


class FormSubmission(Base):
    """One completed form of a resident, for the community's stewards to see and act on."""

    __tablename__ = "form_submissions"
    __table_args__ = (Index("ix_form_submissions_flow_estate", "flow", "estate_id", "status"),
                      Index("ix_form_submissions_community", "community_id", "created_at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    flow: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(64))
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    estate_id: Mapped[int | None] = mapped_column(ForeignKey("estates.id"))
    community_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    answers: Mapped[dict] = mapped_column(JSON, default=dict)
    summary: Mapped[str] = mapped_column(String(1000), default="")
    status: Mapped[str] = mapped_column(String(16), default="submitted")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    resident: Mapped[Resident] = relationship()
    estate: Mapped[Estate | None] = relationship()

    def __repr__(self) -> str:
        return f"<FormSubmission {self.id} {self.flow} {self.status}>"


def count_active(session: Session, flow: str, estate_id: int) -> int:
    """Submissions of a form in an estate that still take a place of its quota."""
    return session.scalar(select(func.count(FormSubmission.id)).where(
        FormSubmission.flow == flow, FormSubmission.estate_id == estate_id,
        FormSubmission.status.in_(("submitted", "accepted")))) or 0


def for_community(session: Session, community_id: int, limit: int = 20) -> list[FormSubmission]:
    """The newest submissions of a community, for its stewards."""
    return list(session.scalars(select(FormSubmission).where(FormSubmission.community_id == community_id)
                                .order_by(FormSubmission.created_at.desc(), FormSubmission.id.desc())
                                .limit(limit)))
