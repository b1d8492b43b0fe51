"""Residents' rights over their data: consent to the privacy notice, and requests to see or erase it."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, Index, String, bindparam, insert, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from .base import Base, UTCDateTime, utcnow
from .resident import write_now

RIGHTS = ("export", "correction", "deletion")


class ConsentRecord(Base):
    """The privacy notice of one version shown to a resident, and when they agreed to it."""

    __tablename__ = "consent_records"
    __table_args__ = (Index("ix_consent_resident", "resident_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"))
    notice_version: Mapped[str] = mapped_column(String(32))
    # The flow the resident wanted when the notice was shown; it starts once they agree.
    purpose: Mapped[str | None] = mapped_column(String(64))
    shown_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    agreed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    declined_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<ConsentRecord {self.resident_id} v{self.notice_version} agreed={self.agreed_at}>"


class RightsRequest(Base):
    """A resident exercising a right (export, correction, deletion): asked, then done."""

    __tablename__ = "rights_requests"
    __table_args__ = (Index("ix_rights_resident", "resident_id", "kind", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"))
    kind: Mapped[str] = mapped_column(String(16))
    asked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<RightsRequest {self.resident_id} {self.kind} done={self.done_at}>"


class RetentionMark(Base):
    """How far a retention job has got, so each run only looks at what newly came of age."""

    __tablename__ = "retention_marks"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    reached: Mapped[datetime] = mapped_column(UTCDateTime)


def has_consented(resident, version: str) -> bool:
    """True when the resident agreed to this version of the notice."""
    return resident.consented_version == version


def notice_shown(session: Session, resident_id: int, version: str, purpose: str | None,
                 now: datetime) -> None:
    """Records that the notice was shown (the resident has not agreed yet)."""
    session.execute(_SHOWN, {"who": resident_id, "version": version, "why": purpose, "now": now})


def agree_to_pending(session: Session, resident, version: str, purpose: str, now: datetime,
                     within: timedelta) -> bool:
    """Records agreement to the notice shown recently for `purpose` and not yet answered, if any."""
    agreed = session.execute(_AGREE, {"who": resident.id, "version": version, "why": purpose,
                                      "since": now - within, "now": now}).rowcount
    if agreed:
        write_now(session, resident, "consented_version", version)
    return bool(agreed)


# Written on a flow's first step and on the answer after it: statements built once, values bound
# (under names other than the columns', which SQLAlchemy keeps for itself in INSERT and UPDATE).
_records = ConsentRecord.__table__
_SHOWN = insert(_records).values(
    resident_id=bindparam("who"), notice_version=bindparam("version"), purpose=bindparam("why"),
    shown_at=bindparam("now", type_=_records.c.shown_at.type))
# The latest notice shown within the window and unanswered is the one agreed to, if it was
# shown for the flow the resident is answering.
_latest_open = (select(_records.c.id).where(
    _records.c.resident_id == bindparam("who"), _records.c.notice_version == bindparam("version"),
    _records.c.agreed_at.is_(None), _records.c.declined_at.is_(None),
    _records.c.shown_at >= bindparam("since", type_=_records.c.shown_at.type))
    .order_by(_records.c.id.desc()).limit(1).scalar_subquery())
_AGREE = (update(_records).where(_records.c.id == _latest_open, _records.c.purpose == bindparam("why"))
          .values(agreed_at=bindparam("now", type_=_records.c.agreed_at.type)))


def ask_right(session: Session, resident_id: int, kind: str, now: datetime) -> RightsRequest:
    """Records that a resident asked to exercise a right."""
    if kind not in RIGHTS:
        raise ValueError(f"unknown right {kind!r}")
    row = RightsRequest(resident_id=resident_id, kind=kind, asked_at=now)
    session.add(row)
    return row


def pending_right(session: Session, resident_id: int, kind: str, now: datetime,
                  within: timedelta) -> RightsRequest | None:
    """A recent request of this kind not yet carried out (a deletion awaiting its confirmation)."""
    return session.scalar(select(RightsRequest).where(
        RightsRequest.resident_id == resident_id, RightsRequest.kind == kind,
        RightsRequest.done_at.is_(None), RightsRequest.asked_at >= now - within)
        .order_by(RightsRequest.id.desc()).limit(1))
