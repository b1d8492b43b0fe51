"""Media a resident sent (voice notes, photos): downloaded once from WeChat and kept for a while."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .base import Base, UTCDateTime, utcnow

KINDS = ("voice", "image")
# pending → downloaded (file kept) → deleted (retention or the resident's deletion);
# failed when WeChat no longer has the media (media ids live three days).
STATUSES = ("pending", "downloaded", "failed", "deleted")


class MediaFile(Base):
    """One WeChat media id, fetched once through media/get and kept on disk."""

    __tablename__ = "media_files"
    __table_args__ = (Index("ix_media_due", "status", "next_attempt_at"),
                      Index("ix_media_kept", "status", "downloaded_at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    media_id: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[int | None] = mapped_column(ForeignKey("service_requests.id"), index=True)
    # The format WeChat names in the message (amr, speex, jpg): picks the decoder.
    source_format: Mapped[str | None] = mapped_column(String(16))
    # WeChat's speech recognition, kept when a steward's summary replaces the request's text.
    recognition: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    path: Mapped[str | None] = mapped_column(Text)
    playable_path: Mapped[str | None] = mapped_column(Text)
    duration: Mapped[float | None]
    size: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    downloaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def duration_label(self) -> str:
        """0:07, 1:25 — how long a voice note is, or '' before it is downloaded."""
        if self.duration is None:
            return ""
        seconds = max(1, round(self.duration))
        return f"{seconds // 60}:{seconds % 60:02d}"

    @property
    def playable(self) -> bool:
        """True when a browser-playable copy is on disk."""
        return self.status == "downloaded" and bool(self.playable_path)

    def __repr__(self) -> str:
        return f"<MediaFile {self.id} {self.kind} {self.status}>"


def queue_download(session: Session, media_id: str, kind: str, request_id: int | None = None,
                   source_format: str | None = None, recognition: str | None = None,
                   now: datetime | None = None) -> MediaFile:
    """Records a media id to fetch once; the same id queued twice stays one row."""
    if kind not in KINDS:
        raise ValueError(f"unknown media kind {kind!r}")
    row = session.scalar(select(MediaFile).where(MediaFile.media_id == media_id))
    if row is None:
        now = now or utcnow()
        row = MediaFile(media_id=media_id, kind=kind, request_id=request_id, source_format=source_format,
                        recognition=recognition or None, status="pending", attempts=0, created_at=now, next_attempt_at=now)
        session.add(row)
        session.flush()
    elif row.request_id is None and request_id is not None:
        row.request_id = request_id
    return row


def media_of_request(session: Session, request_id: int, kind: str | None = None) -> list[MediaFile]:
    """The media attached to a request, oldest first (voice and photos, or one kind)."""
    query = select(MediaFile).where(MediaFile.request_id == request_id)
    if kind:
        query = query.where(MediaFile.kind == kind)
    return list(session.scalars(query.order_by(MediaFile.id)))


def voice_of_request(session: Session, request_id: int) -> MediaFile | None:
    """The request's voice note, if it was filed by voice."""
    rows = media_of_request(session, request_id, "voice")
    return rows[0] if rows else None


def add_summary(request, text: str) -> None:
    """A steward's written summary becomes the request's text; the recognition stays on the voice."""
    text = " ".join(text.split())
    if not text:
        raise ValueError("empty summary")
    request.description = text
    request.updated_at = utcnow()
