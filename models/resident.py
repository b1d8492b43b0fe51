"""Residents: everyone who chats with the account, keyed by openid."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, UTCDateTime, utcnow
from .organisation import Estate
from .pii import EncryptedText, mask_mobile, mask_name

PARTY_STATES = ("none", "pending", "confirmed")


class Resident(Base):
    """A person following the account; real-name data is encrypted at rest."""

    __tablename__ = "residents"
    id: Mapped[int] = mapped_column(primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), unique=True)
    subscribed: Mapped[bool] = mapped_column(Boolean, default=True)
    estate_id: Mapped[int | None] = mapped_column(ForeignKey("estates.id"), index=True)
    name: Mapped[str | None] = mapped_column(EncryptedText)
    mobile: Mapped[str | None] = mapped_column(EncryptedText)
    id_number: Mapped[str | None] = mapped_column(EncryptedText)
    address: Mapped[str | None] = mapped_column(EncryptedText)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    party_member: Mapped[str] = mapped_column(String(16), default="none")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The privacy-notice version the resident last agreed to (consent_records keeps the history);
    # kept here so a flow step needs no query to know consent is in place.
    consented_version: Mapped[str | None] = mapped_column(String(32))

    estate: Mapped[Estate | None] = relationship()

    @property
    def is_verified(self) -> bool:
        """True once real-name verification is complete."""
        return self.verified_at is not None

    @property
    def masked_name(self) -> str:
        """The name as shown to anyone but its owner (张*芳)."""
        return mask_name(self.name)

    @property
    def masked_mobile(self) -> str:
        """The mobile number as shown to anyone but its owner (138****5678)."""
        return mask_mobile(self.mobile)

    def __repr__(self) -> str:
        return f"<Resident {self.id} {self.openid[:6]}…>"


def first_contact(session, openid: str, now: datetime) -> None:
    """Creates the resident and their conversation row unless they exist (safe when workers race)."""
    from .conversation import Conversation
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(Resident).values(openid=openid, subscribed=True, party_member="none",
                                            created_at=now).on_conflict_do_nothing())
    c = Conversation.__table__.c
    blank = select(Resident.id, literal({}, c.data.type), literal([], c.history.type),
                   literal(0, c.version.type), literal(now, c.updated_at.type)).where(Resident.openid == openid)
    session.execute(insert(Conversation).from_select(
        ["resident_id", "data", "history", "version", "updated_at"], blank).on_conflict_do_nothing())
