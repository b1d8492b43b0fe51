"""Service requests (诉求): what residents file, with a short reference number."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .base import Base, UTCDateTime, utcnow
from .labels import codes, label
from .organisation import Estate, Organisation
from .pii import EncryptedText
from .resident import Resident
from .timeline import Actor, TimelineEntry

# Code names people see through their labels in templates/labels.yaml.
KINDS = codes("request_kind", ("help", "inquiry", "suggestion"))
TYPES = codes("request_type", ("government", "self_governance", "market_service", "public_welfare"))
CHANNELS = codes("request_channel", ("wechat", "visit", "meeting", "walk_in", "phone"))
STATUSES = codes("request_status", ("submitted", "accepted", "routed", "answered", "resolved", "rated", "closed",
                                    "reopened"))
# Still someone's work: counted in to-do lists, reminders and escalation.
OPEN_STATUSES = ("submitted", "accepted", "routed", "answered", "reopened")
RATINGS = codes("rating", ("satisfied", "basically_satisfied", "unsatisfied"))
CLOSE_REASONS = codes("close_reason", ("duplicate", "not_our_remit", "withdrawn", "no_rating", "rated"))
# Escalation goes up these levels, each with the kind of organisation that takes it.
LEVELS = {"community": None, "street": "social_work_committee",
          "organisation_department": "organisation_department"}
codes("request_level", tuple(LEVELS))

# The reference is a bijection of the row id onto 8 digits: unique without retries,
# yet not a counter a stranger could walk.
_REF_MOD = 10 ** 8
_REF_MUL = 48271
_REF_ADD = 3_600_913


def ref_for_id(row_id: int) -> str:
    """The 8-digit reference number of a request id."""
    return f"{(row_id * _REF_MUL + _REF_ADD) % _REF_MOD:08d}"


class ServiceRequest(Base):
    """A resident's 求助, 咨询 or 建议."""

    __tablename__ = "service_requests"
    __table_args__ = (Index("ix_requests_community_status", "community_id", "status"),
                      # The scheduler's scans: waiting requests by deadline, resolved ones by date
                      # (with the community, so per-community counts never touch the table),
                      # requests that reached a level by the time they got there.
                      Index("ix_requests_status_deadline", "status", "deadline_at", "community_id"),
                      Index("ix_requests_status_resolved", "status", "resolved_at", "community_id"),
                      Index("ix_requests_level_routed", "level", "routed_at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str | None] = mapped_column(String(16), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    type: Mapped[str | None] = mapped_column(String(32))
    category: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text)
    location: Mapped[dict | None] = mapped_column(JSON)
    photos: Mapped[list | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="submitted", index=True)
    channel: Mapped[str] = mapped_column(String(16), default="wechat")
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id"), index=True)
    estate_id: Mapped[int | None] = mapped_column(ForeignKey("estates.id"), index=True)
    community_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # Offline intake: who recorded it, and a contact when the resident has no WeChat.
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("stewards.id"))
    contact_name: Mapped[str | None] = mapped_column(EncryptedText)
    contact_mobile: Mapped[str | None] = mapped_column(EncryptedText)
    # Routing: the handler (承办单位), the level it sits at, and the deadline.
    handler_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    level: Mapped[str] = mapped_column(String(32), default="community")
    deadline_days: Mapped[int | None] = mapped_column(Integer)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # The latest reply and the resolution, shown in full on the resident's page.
    answer: Mapped[str | None] = mapped_column(Text)
    resolution: Mapped[str | None] = mapped_column(Text)
    close_reason: Mapped[str | None] = mapped_column(String(32))
    close_note: Mapped[str | None] = mapped_column(Text)
    rating: Mapped[str | None] = mapped_column(String(24))
    rating_comment: Mapped[str | None] = mapped_column(Text)
    unsatisfied_count: Mapped[int] = mapped_column(Integer, default=0)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    # Milestones, kept apart so assessment can count resolution and closure separately.
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    routed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    resident: Mapped[Resident | None] = relationship()
    estate: Mapped[Estate | None] = relationship()
    community: Mapped[Organisation | None] = relationship(foreign_keys=[community_id])
    handler: Mapped[Organisation | None] = relationship(foreign_keys=[handler_id])

    @property
    def status_label(self) -> str:
        """The status as people read it (templates/labels.yaml)."""
        return label("request_status", self.status)

    @property
    def type_label(self) -> str:
        """The type as people read it, or '' before classification."""
        return label("request_type", self.type)

    @property
    def is_open(self) -> bool:
        """True while someone still has to act on it."""
        return self.status in OPEN_STATUSES

    @property
    def kind_label(self) -> str:
        """The kind as people read it."""
        return label("request_kind", self.kind)

    def __repr__(self) -> str:
        return f"<ServiceRequest {self.ref} {self.status}>"


def file_request(session: Session, actor: Actor | None = None, **fields) -> ServiceRequest:
    """Creates a request with its reference number and first timeline entry (caller's transaction)."""
    req = ServiceRequest(**fields)
    session.add(req)
    session.flush()
    req.ref = ref_for_id(req.id)
    actor = actor or Actor("resident", req.resident_id)
    session.add(TimelineEntry(request_id=req.id, at=req.created_at, actor_kind=actor.kind,
                              actor_id=actor.id, actor_label=actor.shown[:128],
                              action="submit" if req.channel == "wechat" else "record",
                              from_status=None, to_status=req.status, data={"channel": req.channel}))
    return req
