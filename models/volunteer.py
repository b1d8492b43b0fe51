"""Volunteers (红管志愿者): registration approved by a steward, and recorded service hours."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .base import Base, UTCDateTime, utcnow
from .organisation import Estate, Steward
from .points import Refused
from .resident import Resident

VOLUNTEER_STATES = ("pending", "approved", "rejected")
SERVICE_SOURCES = ("attendance", "manual")


class Volunteer(Base):
    """A resident registered as a volunteer; pending until a steward approves."""

    __tablename__ = "volunteers"
    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), unique=True)
    estate_id: Mapped[int | None] = mapped_column(ForeignKey("estates.id"), index=True)
    skills: Mapped[str] = mapped_column(Text)
    availability: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("stewards.id"))

    resident: Mapped[Resident] = relationship()
    estate: Mapped[Estate | None] = relationship()

    @property
    def is_approved(self) -> bool:
        """True once a steward approved the registration."""
        return self.status == "approved"

    def __repr__(self) -> str:
        return f"<Volunteer {self.id} {self.status}>"


class ServiceRecord(Base):
    """Minutes of service as recorded: from an attendance, or entered by hand afterwards."""

    __tablename__ = "service_records"
    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    activity_id: Mapped[int | None] = mapped_column(ForeignKey("activities.id"), index=True)
    # One record per attendance, however often the check-out is scanned.
    signup_id: Mapped[int | None] = mapped_column(ForeignKey("activity_signups.id"), unique=True)
    minutes: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("stewards.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<ServiceRecord {self.id} {self.source} {self.minutes}min>"


def of_resident(session: Session, resident_id: int) -> Volunteer | None:
    """The resident's volunteer registration, if any."""
    return session.scalar(select(Volunteer).where(Volunteer.resident_id == resident_id))


def is_approved(session: Session, resident_id: int) -> bool:
    """True if the resident is an approved volunteer."""
    vol = of_resident(session, resident_id)
    return vol is not None and vol.is_approved


def apply(session: Session, resident: Resident, estate_id: int | None, skills: str,
          availability: str, now: datetime) -> Volunteer:
    """Registers a resident as a volunteer, pending; a rejected one may apply again."""
    vol = of_resident(session, resident.id)
    if vol is not None and vol.status in ("pending", "approved"):
        raise Refused("already_" + vol.status)
    if vol is None:
        vol = Volunteer(resident_id=resident.id)
        session.add(vol)
    vol.estate_id, vol.skills, vol.availability = estate_id, skills, availability
    vol.status, vol.applied_at, vol.decided_at, vol.decided_by_id = "pending", now, None, None
    session.flush()
    return vol


def decide(session: Session, volunteer_id: int, steward: Steward | None, approve: bool,
           now: datetime) -> Volunteer:
    """A steward approves (or rejects) a pending registration of their own community; None: an admin."""
    vol = session.scalar(select(Volunteer).where(Volunteer.id == volunteer_id).with_for_update())
    if vol is None:
        raise Refused("unknown_volunteer", number=volunteer_id)
    if steward is not None and vol.estate is not None and vol.estate.community_id != steward.community_id:
        raise Refused("other_community", number=volunteer_id)
    if vol.status != "pending":
        raise Refused("not_pending", number=volunteer_id, status=vol.status)
    vol.status = "approved" if approve else "rejected"
    vol.decided_at, vol.decided_by_id = now, steward.id if steward is not None else None
    return vol


def pending(session: Session, community_id: int) -> list[Volunteer]:
    """Registrations waiting for the stewards of a community."""
    return list(session.scalars(select(Volunteer).join(Estate, Volunteer.estate_id == Estate.id)
                                .where(Volunteer.status == "pending", Estate.community_id == community_id)
                                .order_by(Volunteer.id)))


def approved_count(session: Session, community_id: int | None = None) -> int:
    """Approved volunteers, park-wide or in one community (for the dashboard)."""
    q = select(func.count(Volunteer.id)).where(Volunteer.status == "approved")
    if community_id is not None:
        q = q.join(Estate, Volunteer.estate_id == Estate.id).where(Estate.community_id == community_id)
    return int(session.scalar(q))


def service_minutes(session: Session, resident_id: int) -> int:
    """All recorded service, in minutes; spending points never changes it."""
    return int(session.scalar(select(func.coalesce(func.sum(ServiceRecord.minutes), 0))
                              .where(ServiceRecord.resident_id == resident_id)))


def record_manual(session: Session, resident_id: int, minutes: int, steward: Steward | None,
                  now: datetime, activity_id: int | None = None, note: str | None = None) -> ServiceRecord:
    """Hours entered by hand afterwards: recorded as service, earning no points."""
    if minutes <= 0 or minutes > 24 * 60:
        raise Refused("bad_hours")
    rec = ServiceRecord(resident_id=resident_id, activity_id=activity_id, minutes=minutes,
                        source="manual", note=note, recorded_by_id=steward.id if steward else None,
                        recorded_at=now)
    session.add(rec)
    session.flush()
    return rec
