"""Residents' rights over their data: consent to the privacy notice, and requests to see or erase it."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, Index, String, bindparam, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .base import Base, UTCDateTime, utcnow

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


def agree(resident, record: ConsentRecord, now: datetime) -> None:
    """Records the resident's agreement to the notice they were shown."""
    record.agreed_at = now
    resident.consented_version = record.notice_version


def notice_shown(session: Session, resident_id: int, version: str, purpose: str | None,
                 now: datetime) -> ConsentRecord:
    """Records that the notice was shown (the resident has not agreed yet)."""
    record = ConsentRecord(resident_id=resident_id, notice_version=version, purpose=purpose, shown_at=now)
    session.add(record)
    return record


def pending_notice(session: Session, resident_id: int, version: str, now: datetime,
                   within: timedelta) -> ConsentRecord | None:
    """The notice shown to the resident recently and not yet answered, if any."""
    return session.scalar(_PENDING_NOTICE, {"resident_id": resident_id, "version": version,
                                            "since": now - within})


# Asked on the step after every notice: built once, each call binds its values.
_PENDING_NOTICE = (select(ConsentRecord).where(
    ConsentRecord.resident_id == bindparam("resident_id"), ConsentRecord.notice_version == bindparam("version"),
    ConsentRecord.agreed_at.is_(None), ConsentRecord.declined_at.is_(None),
    ConsentRecord.shown_at >= bindparam("since")).order_by(ConsentRecord.id.desc()).limit(1))


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
