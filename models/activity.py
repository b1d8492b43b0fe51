"""Activities (活动): publication, sign-up with a waitlist, check-in/out and the points they earn."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, func, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from . import points as points_ledger
from . import volunteer as volunteers
from .base import Base, UTCDateTime, utcnow
from .organisation import Organisation
from .points import Refused
from .resident import Resident
from .volunteer import ServiceRecord

SIGNUP_STATES = ("signed_up", "waitlisted", "cancelled")
# A chat reply holds about 2,000 bytes: the soonest activities only.
UPCOMING_LIMIT = 8


@dataclass(frozen=True)
class Rules:
    """The configured rules of activities and points (from the [points] settings)."""

    points_per_hour: int = 1
    expiry_years: int = 1
    timezone: str = "Asia/Shanghai"
    max_hours: int = 8
    checkin_early_minutes: int = 60
    checkout_late_minutes: int = 120

    @classmethod
    def from_settings(cls, settings: dict) -> "Rules":
        """Reads [points] and the scheduler's time zone."""
        p = settings["points"]
        return cls(points_per_hour=p["per_hour"], expiry_years=p["expiry_years"],
                   timezone=settings["scheduler"]["timezone"], max_hours=p["max_hours_per_activity"],
                   checkin_early_minutes=p["checkin_early_minutes"],
                   checkout_late_minutes=p["checkout_late_minutes"])


class Activity(Base):
    """A volunteer or community activity residents sign up for."""

    __tablename__ = "activities"
    __table_args__ = (Index("ix_activities_status_starts", "status", "starts_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(60))
    place: Mapped[str] = mapped_column(String(100))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    capacity: Mapped[int] = mapped_column(Integer)
    points_per_hour: Mapped[int] = mapped_column(Integer)
    max_minutes: Mapped[int] = mapped_column(Integer)
    # None: open to the whole park.
    community_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    volunteers_only: Mapped[bool] = mapped_column(Boolean, default=False)
    # Before opens_at only approved volunteers with at least this many points may sign up.
    early_access_points: Mapped[int | None] = mapped_column(Integer)
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="published")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("stewards.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    community: Mapped[Organisation | None] = relationship()

    def __repr__(self) -> str:
        return f"<Activity {self.id} {self.status}>"


class Signup(Base):
    """A resident's place in an activity (or on its waitlist), and their attendance."""

    __tablename__ = "activity_signups"
    __table_args__ = (UniqueConstraint("activity_id", "resident_id"),
                      Index("ix_signups_activity_status", "activity_id", "status", "queued_at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id"))
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    # Waitlist order: the time of the latest sign-up.
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    checked_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    marked_by_id: Mapped[int | None] = mapped_column(ForeignKey("stewards.id"))
    minutes: Mapped[int | None] = mapped_column(Integer)
    points: Mapped[int | None] = mapped_column(Integer)

    activity: Mapped[Activity] = relationship()
    resident: Mapped[Resident] = relationship()

    def __repr__(self) -> str:
        return f"<Signup {self.id} {self.status}>"


def publish(session: Session, rules: Rules, *, title: str, place: str, starts_at: datetime,
            ends_at: datetime, capacity: int, now: datetime, points_per_hour: int | None = None,
            community_id: int | None = None, volunteers_only: bool = False,
            early_access_points: int | None = None, opens_at: datetime | None = None,
            max_hours: float | None = None, steward_id: int | None = None) -> Activity:
    """Publishes an activity (chat command or console); refuses impossible times or numbers."""
    if ends_at <= starts_at:
        raise Refused("ends_before_start")
    if starts_at <= now:
        raise Refused("in_the_past")
    if capacity < 1 or capacity > 10_000:
        raise Refused("bad_capacity")
    if opens_at is not None and opens_at >= starts_at:
        raise Refused("opens_too_late")
    duration = int((ends_at - starts_at).total_seconds() // 60)
    cap_minutes = int((max_hours or rules.max_hours) * 60)
    act = Activity(title=title.strip()[:60], place=place.strip()[:100], starts_at=starts_at,
                   ends_at=ends_at, capacity=capacity,
                   points_per_hour=rules.points_per_hour if points_per_hour is None else points_per_hour,
                   max_minutes=min(duration, cap_minutes), community_id=community_id,
                   volunteers_only=volunteers_only, early_access_points=early_access_points,
                   opens_at=opens_at or now, status="published", created_by_id=steward_id,
                   created_at=now)
    session.add(act)
    session.flush()
    return act


def community_of(resident: Resident) -> int | None:
    """The community the resident lives in, if known."""
    return resident.estate.community_id if resident.estate is not None else None


def upcoming(session: Session, resident: Resident, now: datetime) -> list[Activity]:
    """Published activities not yet started that this resident may see, soonest first."""
    community = community_of(resident)
    where = [Activity.status == "published", Activity.starts_at > now]
    where.append(or_(Activity.community_id.is_(None), Activity.community_id == community)
                 if community is not None else Activity.community_id.is_(None))
    return list(session.scalars(select(Activity).where(*where).order_by(Activity.starts_at, Activity.id)
                                .limit(UPCOMING_LIMIT)))


def seats_taken(session: Session, activity_id: int) -> int:
    """Confirmed sign-ups of an activity."""
    return int(session.scalar(select(func.count(Signup.id)).where(Signup.activity_id == activity_id,
                                                                  Signup.status == "signed_up")))


def _locked_activity(session: Session, activity_id: int) -> Activity:
    """The activity row, locked so seats are counted and taken one sign-up at a time."""
    act = session.scalar(select(Activity).where(Activity.id == activity_id).with_for_update()
                         .execution_options(populate_existing=True))
    if act is None or act.status != "published":
        raise Refused("unknown_activity", number=activity_id)
    return act


def find_signup(session: Session, activity_id: int, resident_id: int) -> Signup | None:
    """The resident's sign-up row for an activity, whatever its state."""
    return session.scalar(select(Signup).where(Signup.activity_id == activity_id,
                                               Signup.resident_id == resident_id))


def sign_up(session: Session, activity_id: int, resident: Resident, now: datetime) -> Signup:
    """Takes a seat, or a place on the waitlist when the activity is full."""
    act = _locked_activity(session, activity_id)
    if act.starts_at <= now:
        raise Refused("started", title=act.title)
    if act.community_id is not None and act.community_id != community_of(resident):
        raise Refused("other_community", title=act.title)
    is_volunteer = volunteers.is_approved(session, resident.id)
    if act.volunteers_only and not is_volunteer:
        raise Refused("volunteers_only", title=act.title)
    if act.opens_at > now:
        early = act.early_access_points
        if early is None or not is_volunteer or points_ledger.balance(session, resident.id) < early:
            raise Refused("not_open_yet", title=act.title, opens_at=act.opens_at, early_points=early)
    signup = find_signup(session, act.id, resident.id)
    if signup is not None and signup.status != "cancelled":
        raise Refused("already_" + signup.status, title=act.title)
    full = seats_taken(session, act.id) >= act.capacity
    if signup is None:
        signup = Signup(activity_id=act.id, resident_id=resident.id)
        session.add(signup)
    signup.status = "waitlisted" if full else "signed_up"
    signup.queued_at, signup.cancelled_at, signup.promoted_at = now, None, None
    session.flush()
    return signup


def waitlist_position(session: Session, signup: Signup) -> int:
    """1 for the first on the waitlist."""
    ahead = session.scalar(select(func.count(Signup.id)).where(
        Signup.activity_id == signup.activity_id, Signup.status == "waitlisted",
        or_(Signup.queued_at < signup.queued_at,
            (Signup.queued_at == signup.queued_at) & (Signup.id < signup.id))))
    return int(ahead) + 1


def cancel(session: Session, activity_id: int, resident: Resident, now: datetime) -> tuple[Signup, Signup | None]:
    """Gives up a seat or waitlist place; returns it and whoever was promoted to the seat."""
    act = _locked_activity(session, activity_id)
    signup = find_signup(session, act.id, resident.id)
    if signup is None or signup.status == "cancelled":
        raise Refused("not_signed_up", title=act.title)
    if signup.checked_in_at is not None:
        raise Refused("already_checked_in", title=act.title)
    had_seat = signup.status == "signed_up"
    signup.status, signup.cancelled_at = "cancelled", now
    session.flush()
    promoted = None
    if had_seat and act.starts_at > now:
        promoted = session.scalar(select(Signup).where(Signup.activity_id == act.id,
                                                       Signup.status == "waitlisted")
                                  .order_by(Signup.queued_at, Signup.id).limit(1))
        if promoted is not None:
            promoted.status, promoted.promoted_at = "signed_up", now
            session.flush()
    return signup, promoted


def my_signups(session: Session, resident_id: int, now: datetime) -> list[Signup]:
    """The resident's active sign-ups of activities not yet over."""
    return list(session.scalars(select(Signup).join(Activity)
                                .where(Signup.resident_id == resident_id,
                                       Signup.status.in_(("signed_up", "waitlisted")),
                                       Activity.ends_at > now, Activity.status == "published")
                                .order_by(Activity.starts_at)))


def _locked_signup(session: Session, activity_id: int, resident_id: int) -> Signup | None:
    """The sign-up row, locked so a scan and a steward's mark cannot award twice."""
    return session.scalar(select(Signup).where(Signup.activity_id == activity_id,
                                               Signup.resident_id == resident_id)
                          .with_for_update().execution_options(populate_existing=True))


def check_in(session: Session, rules: Rules, activity_id: int, resident_id: int, now: datetime,
             steward_id: int | None = None) -> tuple[Signup, bool]:
    """Marks arrival; returns (sign-up, False) when already checked in, so repeats change nothing."""
    act = session.get(Activity, activity_id)
    if act is None or act.status != "published":
        raise Refused("unknown_activity", number=activity_id)
    signup = _locked_signup(session, activity_id, resident_id)
    if signup is None or signup.status == "cancelled":
        raise Refused("not_signed_up", title=act.title)
    if signup.status == "waitlisted":
        raise Refused("still_waitlisted", title=act.title)
    if signup.checked_in_at is not None:
        return signup, False
    if steward_id is None:
        if now < act.starts_at - timedelta(minutes=rules.checkin_early_minutes):
            raise Refused("too_early", title=act.title, starts_at=act.starts_at)
        if now > act.ends_at:
            raise Refused("over", title=act.title)
    signup.checked_in_at, signup.marked_by_id = now, steward_id or signup.marked_by_id
    session.flush()
    return signup, True


def check_out(session: Session, rules: Rules, activity_id: int, resident_id: int, now: datetime,
              steward_id: int | None = None) -> tuple[Signup, bool]:
    """Marks departure and awards hours and points once; repeats return (sign-up, False)."""
    act = session.get(Activity, activity_id)
    if act is None or act.status != "published":
        raise Refused("unknown_activity", number=activity_id)
    signup = _locked_signup(session, activity_id, resident_id)
    if signup is None or signup.status != "signed_up":
        raise Refused("not_signed_up", title=act.title)
    if signup.checked_in_at is None:
        raise Refused("not_checked_in", title=act.title)
    if signup.checked_out_at is not None:
        return signup, False
    if steward_id is None and now > act.ends_at + timedelta(minutes=rules.checkout_late_minutes):
        raise Refused("checkout_too_late", title=act.title)
    # Service counts from the later of arrival and the start, to the earlier of leaving and the end.
    start = max(signup.checked_in_at, act.starts_at)
    end = min(now, act.ends_at)
    minutes = max(0, min(int((end - start).total_seconds() // 60), act.max_minutes))
    earned = minutes * act.points_per_hour // 60
    signup.checked_out_at, signup.minutes, signup.points = now, minutes, earned
    if steward_id is not None:
        signup.marked_by_id = steward_id
    session.add(ServiceRecord(resident_id=resident_id, activity_id=act.id, signup_id=signup.id,
                              minutes=minutes, source="attendance", recorded_by_id=steward_id,
                              recorded_at=now))
    points_ledger.earn(session, resident_id, earned, f"attend:{signup.id}", now,
                       points_ledger.expiry_for(now, rules.expiry_years, rules.timezone),
                       activity_id=act.id)
    session.flush()
    return signup, True


def roster(session: Session, activity_id: int) -> list[Signup]:
    """Everyone signed up (then the waitlist), in order, for the steward's list."""
    return list(session.scalars(select(Signup).where(Signup.activity_id == activity_id,
                                                     Signup.status.in_(("signed_up", "waitlisted")))
                                .order_by(Signup.status, Signup.queued_at, Signup.id)))

