"""Points (积分): an append-only ledger, rewards with stock, and redemptions verified once."""
from __future__ import annotations

import secrets
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import (Boolean, ForeignKey, Index, Integer, String, Text, and_, func, select,
                        update)
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column, relationship

from .base import Base, BigID, UTCDateTime, utcnow
from .labels import codes
from .resident import Resident

ENTRY_KINDS = codes("points_entry", ("earn", "spend", "expire"))
REDEMPTION_STATES = ("issued", "verified")
# Codes are read aloud and typed by a merchant: no 0/O, 1/I/L.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 8


class Refused(Exception):
    """A rule says no; `reason` names which, `detail` carries what the wording needs."""

    def __init__(self, reason: str, **detail):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


class PointsEntry(Base):
    """One line of a resident's points ledger; rows are only ever added, never changed."""

    __tablename__ = "points_entries"
    __table_args__ = (Index("ix_points_resident_kind", "resident_id", "kind"),
                      Index("ix_points_due", "kind", "expires_at"))
    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"))
    kind: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(Integer)
    # What caused the entry (attend:<signup>, spend:<redemption>, expire:<lot>): once only.
    key: Mapped[str] = mapped_column(String(96), unique=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("points_entries.id"))
    activity_id: Mapped[int | None] = mapped_column(ForeignKey("activities.id"))
    redemption_id: Mapped[int | None] = mapped_column(ForeignKey("redemptions.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<PointsEntry {self.id} {self.kind} {self.points:+d} resident={self.resident_id}>"


class Reward(Base):
    """Something points buy, with a stock that never goes below zero."""

    __tablename__ = "rewards"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    description: Mapped[str | None] = mapped_column(Text)
    points_cost: Mapped[int] = mapped_column(Integer)
    stock: Mapped[int] = mapped_column(Integer, default=0)
    merchant: Mapped[str | None] = mapped_column(String(60))
    merchant_openid: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<Reward {self.id} cost={self.points_cost} stock={self.stock}>"


class Redemption(Base):
    """A reward taken with points; its code is verified once by the merchant or a steward."""

    __tablename__ = "redemptions"
    id: Mapped[int] = mapped_column(primary_key=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id"), index=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    points: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="issued")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    verified_by: Mapped[str | None] = mapped_column(String(64))

    reward: Mapped[Reward] = relationship()
    resident: Mapped[Resident] = relationship()

    def __repr__(self) -> str:
        return f"<Redemption {self.id} {self.status}>"


def balance(session: Session, resident_id: int) -> int:
    """The resident's points: the sum of their ledger, nothing cached."""
    return int(session.scalar(select(func.coalesce(func.sum(PointsEntry.points), 0))
                              .where(PointsEntry.resident_id == resident_id)))


def totals(session: Session, resident_id: int) -> dict[str, int]:
    """Points by kind (earn, spend, expire), as positive amounts, for the statement."""
    rows = session.execute(select(PointsEntry.kind, func.sum(PointsEntry.points))
                           .where(PointsEntry.resident_id == resident_id).group_by(PointsEntry.kind))
    out = {kind: 0 for kind in ENTRY_KINDS}
    out.update({kind: abs(int(total or 0)) for kind, total in rows})
    return out


def expiry_for(earned_at: datetime, years: int, tz: str) -> datetime | None:
    """End of the calendar year `years` after the one earned in, local time; None never expires."""
    if years <= 0:
        return None
    zone = ZoneInfo(tz)
    local_year = earned_at.astimezone(zone).year
    # The first instant of the following year is when the points are gone.
    return datetime(local_year + years + 1, 1, 1, tzinfo=zone)


def earn(session: Session, resident_id: int, points: int, key: str, now: datetime,
         expires_at: datetime | None, activity_id: int | None = None) -> PointsEntry | None:
    """Adds earned points once per key; returns None when that key was already awarded."""
    if points <= 0:
        return None
    if session.scalar(select(PointsEntry.id).where(PointsEntry.key == key)) is not None:
        return None
    entry = PointsEntry(resident_id=resident_id, kind="earn", points=points, key=key,
                        expires_at=expires_at, activity_id=activity_id, created_at=now)
    session.add(entry)
    session.flush()
    return entry


def _lock_resident(session: Session, resident_id: int) -> None:
    """Row-locks the resident so their ledger changes one at a time (PostgreSQL; SQLite serialises)."""
    session.execute(select(Resident.id).where(Resident.id == resident_id).with_for_update())


def expire_due(session: Session, now: datetime, resident_id: int | None = None) -> int:
    """Writes the expiry of every lot whose time has come; running it again writes nothing."""
    expired = aliased(PointsEntry)
    due = (select(PointsEntry.resident_id).distinct()
           .outerjoin(expired, and_(expired.lot_id == PointsEntry.id, expired.kind == "expire"))
           .where(PointsEntry.kind == "earn", PointsEntry.expires_at <= now, expired.id.is_(None)))
    if resident_id is not None:
        due = due.where(PointsEntry.resident_id == resident_id)
    total = 0
    for rid in session.scalars(due).all():
        total += _expire_resident(session, rid, now)
    return total


def _expire_resident(session: Session, resident_id: int, now: datetime) -> int:
    """Expires what is left of a resident's due lots; spending uses the soonest-expiring points first."""
    _lock_resident(session, resident_id)
    entries = session.scalars(select(PointsEntry).where(PointsEntry.resident_id == resident_id)
                              .order_by(PointsEntry.id)).all()
    expired_of = {e.lot_id: -e.points for e in entries if e.kind == "expire"}
    spent = -sum(e.points for e in entries if e.kind == "spend")
    lots = sorted((e for e in entries if e.kind == "earn"),
                  key=lambda e: (e.expires_at is None, e.expires_at or now, e.id))
    written = 0
    for lot in lots:
        # An expired lot only still holds what spending took from it before it expired.
        capacity = lot.points - expired_of.get(lot.id, 0)
        used = min(capacity, spent)
        spent -= used
        if lot.id in expired_of or lot.expires_at is None or lot.expires_at > now:
            continue
        left = capacity - used
        # A zero entry still records that the lot was looked at, so the job stays idempotent.
        session.add(PointsEntry(resident_id=resident_id, kind="expire", points=-left,
                                key=f"expire:{lot.id}", lot_id=lot.id, created_at=now))
        written += left
    session.flush()
    return written


def _new_code(session: Session) -> str:
    """A fresh redemption code not used before."""
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if session.scalar(select(Redemption.id).where(Redemption.code == code)) is None:
            return code


def redeem(session: Session, resident_id: int, reward_id: int, now: datetime) -> Redemption:
    """Spends points on a reward; refuses without enough points or stock, even under concurrency."""
    _lock_resident(session, resident_id)
    expire_due(session, now, resident_id)
    reward = session.scalar(select(Reward).where(Reward.id == reward_id).with_for_update()
                            .execution_options(populate_existing=True))
    if reward is None or not reward.active:
        raise Refused("reward_gone")
    if reward.stock <= 0:
        raise Refused("out_of_stock", reward=reward.name)
    have = balance(session, resident_id)
    if have < reward.points_cost:
        raise Refused("not_enough", balance=have, cost=reward.points_cost, reward=reward.name)
    reward.stock -= 1
    red = Redemption(reward_id=reward.id, resident_id=resident_id, points=reward.points_cost,
                     code=_new_code(session), status="issued", created_at=now)
    session.add(red)
    session.flush()
    session.add(PointsEntry(resident_id=resident_id, kind="spend", points=-reward.points_cost,
                            key=f"spend:{red.id}", redemption_id=red.id, created_at=now))
    session.flush()
    return red


def normalise_code(raw: str) -> str:
    """Codes are typed in any case, with spaces or dashes."""
    return "".join(ch for ch in raw.upper() if ch.isalnum())


def verify(session: Session, code: str, verifier: str, now: datetime) -> Redemption:
    """Marks a redemption code as used, once; a second attempt is refused with when it was used."""
    code = normalise_code(code)
    # One conditional UPDATE: of two verifiers at the same moment, exactly one changes the row.
    done = session.execute(update(Redemption)
                           .where(Redemption.code == code, Redemption.status == "issued")
                           .values(status="verified", verified_at=now, verified_by=verifier)
                           .execution_options(synchronize_session=False))
    red = session.scalar(select(Redemption).where(Redemption.code == code)
                         .execution_options(populate_existing=True))
    if red is None:
        raise Refused("unknown_code", code=code)
    if done.rowcount != 1:
        raise Refused("already_verified", code=code, verified_at=red.verified_at)
    return red


def may_verify(session: Session, redemption: Redemption, openid: str, is_steward: bool) -> bool:
    """Stewards verify any code; a merchant only codes for their own rewards."""
    return is_steward or (redemption.reward.merchant_openid or "") == openid


def lookup(session: Session, code: str) -> Redemption | None:
    """The redemption with this code, if any."""
    return session.scalar(select(Redemption).where(Redemption.code == normalise_code(code)))


def catalogue(session: Session) -> list[Reward]:
    """Rewards on offer, cheapest first."""
    return list(session.scalars(select(Reward).where(Reward.active.is_(True))
                                .order_by(Reward.points_cost, Reward.id)))
