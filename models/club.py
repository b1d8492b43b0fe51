"""Clubs (公益社团): listed, residents ask to join, the organiser accepts or declines."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, Text, UniqueConstraint, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .base import Base, UTCDateTime, utcnow
from .points import Refused
from .resident import Resident

MEMBER_STATES = ("pending", "accepted", "declined")


class Club(Base):
    """A public-welfare club run by a resident organiser (e.g. a parent-child running club)."""

    __tablename__ = "clubs"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    description: Mapped[str | None] = mapped_column(Text)
    # None: open to the whole park.
    community_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    organiser_openid: Mapped[str] = mapped_column(String(64), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<Club {self.id}>"


class ClubMember(Base):
    """A resident's request to join a club, and the organiser's answer."""

    __tablename__ = "club_members"
    __table_args__ = (UniqueConstraint("club_id", "resident_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    club_id: Mapped[int] = mapped_column(ForeignKey("clubs.id"), index=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    club: Mapped[Club] = relationship()
    resident: Mapped[Resident] = relationship()

    def __repr__(self) -> str:
        return f"<ClubMember {self.id} {self.status}>"


def open_to(session: Session, community_id: int | None) -> list[Club]:
    """Active clubs a resident of this community may join."""
    where = [Club.active.is_(True)]
    where.append(or_(Club.community_id.is_(None), Club.community_id == community_id)
                 if community_id is not None else Club.community_id.is_(None))
    return list(session.scalars(select(Club).where(*where).order_by(Club.name, Club.id)))


def request_join(session: Session, club_id: int, resident: Resident, now: datetime) -> ClubMember:
    """Asks to join; a declined resident may ask again, a member or a pending one may not."""
    club = session.get(Club, club_id)
    if club is None or not club.active:
        raise Refused("unknown_club", number=club_id)
    member = session.scalar(select(ClubMember).where(ClubMember.club_id == club_id,
                                                     ClubMember.resident_id == resident.id))
    if member is not None and member.status != "declined":
        raise Refused("already_" + member.status, club=club.name)
    if member is None:
        member = ClubMember(club_id=club_id, resident_id=resident.id)
        session.add(member)
    member.status, member.requested_at, member.decided_at = "pending", now, None
    session.flush()
    return member


def decide(session: Session, member_id: int, organiser_openid: str, accept: bool,
           now: datetime) -> ClubMember:
    """The organiser accepts or declines a pending request to their own club."""
    member = session.scalar(select(ClubMember).where(ClubMember.id == member_id).with_for_update())
    if member is None or member.club.organiser_openid != organiser_openid:
        raise Refused("unknown_request", number=member_id)
    if member.status != "pending":
        raise Refused("not_pending", number=member_id, status=member.status)
    member.status, member.decided_at = ("accepted" if accept else "declined"), now
    return member


def pending_for(session: Session, organiser_openid: str) -> list[ClubMember]:
    """Requests waiting for an organiser, oldest first."""
    return list(session.scalars(select(ClubMember).join(Club)
                                .where(Club.organiser_openid == organiser_openid,
                                       ClubMember.status == "pending")
                                .order_by(ClubMember.requested_at, ClubMember.id)))


def organises(session: Session, openid: str) -> bool:
    """True if this person organises at least one club."""
    return session.scalar(select(Club.id).where(Club.organiser_openid == openid).limit(1)) is not None
