"""Residents: everyone who chats with the account, keyed by openid."""
from __future__ import annotations

import functools
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, bindparam, text, update
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.orm.attributes import set_committed_value

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


def write_now(session, resident: Resident, column: str, value) -> None:
    """Writes one column of the resident with its own UPDATE and marks it saved on the object.

    For the columns a conversation step touches (last_message_at, consented_version): one
    prepared statement costs less than the unit-of-work flush that setting the attribute
    would lead to.
    """
    session.execute(_one_column_update(column), {"rid": resident.id, "value": value})
    set_committed_value(resident, column, value)


@functools.cache
def _one_column_update(column: str):
    """UPDATE residents SET <column> = :value WHERE id = :rid, built once per column."""
    t = Resident.__table__
    return update(t).where(t.c.id == bindparam("rid")).values(
        {column: bindparam("value", type_=t.c[column].type)})


def first_contact(session, openid: str, now: datetime) -> None:
    """Creates the resident and their conversation row unless they exist (safe when workers race)."""
    resident, conversation = _first_contact_statements()
    params = {"openid": openid, "now": now}
    session.execute(resident, params)
    session.execute(conversation, params)


@functools.cache
def _first_contact_statements():
    """The two INSERT … ON CONFLICT DO NOTHING statements (SQLite and PostgreSQL spell them alike).

    Written as text with typed parameters: SQLAlchemy never caches the compiled form of its
    dialects' ON CONFLICT inserts, and compiling them each time took a fifth of a first contact.
    """
    from .conversation import Conversation
    r, c = Resident.__table__.c, Conversation.__table__.c
    resident = text(
        "INSERT INTO residents (openid, subscribed, party_member, created_at) "
        "VALUES (:openid, :subscribed, :party, :now) ON CONFLICT DO NOTHING"
    ).bindparams(bindparam("subscribed", True, type_=r.subscribed.type),
                 bindparam("party", "none", type_=r.party_member.type),
                 bindparam("now", type_=r.created_at.type))
    conversation = text(
        "INSERT INTO conversations (resident_id, data, history, version, updated_at) "
        "SELECT id, :data, :history, 0, :now FROM residents WHERE openid = :openid ON CONFLICT DO NOTHING"
    ).bindparams(bindparam("data", {}, type_=c.data.type), bindparam("history", [], type_=c.history.type),
                 bindparam("now", type_=c.updated_at.type))
    return resident, conversation
