"""Service requests (诉求): what residents file, with a short reference number."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .base import Base, UTCDateTime, utcnow
from .organisation import Estate, Organisation
from .resident import Resident

KINDS = {"help": "求助", "inquiry": "咨询", "suggestion": "建议"}
TYPES = {"government": "政务类", "self_governance": "民主自治类",
         "market_service": "市场服务类", "public_welfare": "公益类"}
CHANNELS = ("wechat", "visit", "meeting", "walk_in", "phone")

# The reference is a bijection of the row id onto 8 digits: unique without retries,
# yet not a counter a stranger could walk.
_REF_MOD = 10 ** 8
_REF_MUL = 48271
_REF_ADD = 3_600_913


def ref_for_id(row_id: int) -> str:
    """The 8-digit reference number of a request id."""
    return f"{(row_id * _REF_MUL + _REF_ADD) % _REF_MOD:08d}"


class ServiceRequest(Base):
    """A resident's 求助, 咨询 or 建议."""

    __tablename__ = "service_requests"
    __table_args__ = (Index("ix_requests_community_status", "community_id", "status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str | None] = mapped_column(String(16), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    type: Mapped[str | None] = mapped_column(String(32))
    category: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text)
    location: Mapped[dict | None] = mapped_column(JSON)
    photos: Mapped[list | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="submitted", index=True)
    channel: Mapped[str] = mapped_column(String(16), default="wechat")
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id"), index=True)
    estate_id: Mapped[int | None] = mapped_column(ForeignKey("estates.id"), index=True)
    community_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    resident: Mapped[Resident | None] = relationship()
    estate: Mapped[Estate | None] = relationship()
    community: Mapped[Organisation | None] = relationship()

    @property
    def kind_label(self) -> str:
        """求助 / 咨询 / 建议."""
        return KINDS.get(self.kind, self.kind)

    def __repr__(self) -> str:
        return f"<ServiceRequest {self.ref} {self.status}>"


def file_request(session: Session, **fields) -> ServiceRequest:
    """Creates a request and gives it its reference number (in the caller's transaction)."""
    req = ServiceRequest(**fields)
    session.add(req)
    session.flush()
    req.ref = ref_for_id(req.id)
    return req
