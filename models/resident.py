"""Residents: everyone who chats with the account, keyed by openid."""
from __future__ import annotations

import functools
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, bindparam, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, UTCDateTime, utcnow
from .labels import codes
from .organisation import Estate
from .pii import EncryptedText, mask_mobile, mask_name

PARTY_STATES = codes("party_member", ("none", "pending", "confirmed"))


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
    resident, conversation = _first_contact_statements(session.get_bind().dialect.name)
    params = {"openid": openid, "now": now}
    session.execute(resident, params)
    session.execute(conversation, params)


@functools.cache
def _first_contact_statements(dialect: str):
    """The two INSERT … ON CONFLICT DO NOTHING statements, built once per dialect (values bound per call)."""
    from .conversation import Conversation
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    # Core statements on the tables: an ORM insert given parameters would be a bulk insert.
    residents, conversations = Resident.__table__, Conversation.__table__
    c = conversations.c
    when = bindparam("now", type_=residents.c.created_at.type)
    resident = insert(residents).values(openid=bindparam("openid"), subscribed=True, party_member="none",
                                       created_at=when).on_conflict_do_nothing()
    blank = select(residents.c.id, literal({}, c.data.type), literal([], c.history.type),
                   literal(0, c.version.type), bindparam("now", type_=c.updated_at.type)
                   ).where(residents.c.openid == bindparam("openid"))
    conversation = insert(conversations).from_select(
        ["resident_id", "data", "history", "version", "updated_at"], blank).on_conflict_do_nothing()
    return resident, conversation
