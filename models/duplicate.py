"""Merged duplicates: requests about one matter handled as one, each reporter still answered."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .base import Base, UTCDateTime, utcnow
from .request import ServiceRequest


class DuplicateLink(Base):
    """A request that follows another (the primary): every step of the primary is repeated on it."""

    __tablename__ = "duplicate_links"
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("service_requests.id"), unique=True)
    primary_id: Mapped[int] = mapped_column(ForeignKey("service_requests.id"), index=True)
    merged_by: Mapped[str] = mapped_column(String(128), default="")
    merged_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<DuplicateLink {self.request_id} → {self.primary_id}>"


class MergeError(ValueError):
    """A merge that cannot be made; `code` names why."""

    def __init__(self, code: str, ref: str):
        """Keeps the reason and the request it concerns, for the steward's reply."""
        super().__init__(f"{code}: {ref}")
        self.code, self.ref = code, ref


def primary_of(session: Session, request_id: int) -> ServiceRequest | None:
    """The request this one was merged into, if any."""
    return session.scalar(select(ServiceRequest).join(DuplicateLink, DuplicateLink.primary_id == ServiceRequest.id)
                          .where(DuplicateLink.request_id == request_id))


def followers_of(session: Session, primary_id: int) -> list[ServiceRequest]:
    """The requests merged into this one, oldest first."""
    return list(session.scalars(select(ServiceRequest)
                                .join(DuplicateLink, DuplicateLink.request_id == ServiceRequest.id)
                                .where(DuplicateLink.primary_id == primary_id)
                                .order_by(ServiceRequest.created_at)))


def link(session: Session, primary: ServiceRequest, follower: ServiceRequest, merged_by: str,
         now: datetime) -> DuplicateLink:
    """Merges `follower` into `primary`; both must be open, in one community, and not yet merged."""
    if follower.id == primary.id:
        raise MergeError("same", follower.ref)
    for req in (primary, follower):
        if not req.is_open:
            raise MergeError("not_open", req.ref)
    if follower.community_id != primary.community_id:
        raise MergeError("other_community", follower.ref)
    if primary_of(session, primary.id) is not None:
        raise MergeError("primary_is_follower", primary.ref)
    if primary_of(session, follower.id) is not None or followers_of(session, follower.id):
        raise MergeError("already_merged", follower.ref)
    entry = DuplicateLink(request_id=follower.id, primary_id=primary.id, merged_by=merged_by[:128],
                          merged_at=now)
    session.add(entry)
    session.flush()
    return entry
