"""Retention: old requests lose their identity, old voice notes and photos are deleted (a daily job)."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import Base, MediaFile, Resident, ServiceRequest
from models.consent import RetentionMark

from .erasure import forget_media_file, scrub_rows

BATCH = 500


def retention(sessions: sessionmaker, settings: dict, now: datetime) -> dict:
    """The scheduled job: deletes media past its period, anonymises requests past theirs."""
    privacy = settings["privacy"]
    media_cutoff = now - timedelta(days=privacy["media_retention_days"])
    request_cutoff = now - timedelta(days=privacy["request_retention_days"])
    counts = {"media_deleted": 0, "photos_deleted": 0, "requests_anonymised": 0}
    while True:  # batches, each its own transaction, so a big first run never holds one long lock
        with sessions() as s, s.begin():
            media = delete_old_media(s, media_cutoff, now)
            photos, seen = delete_old_photos(s, settings, media_cutoff)
            anonymised = anonymise_old_requests(s, request_cutoff)
        counts["media_deleted"] += media
        counts["photos_deleted"] += photos
        counts["requests_anonymised"] += anonymised
        if max(media, seen, anonymised) < BATCH:
            return counts


def delete_old_media(session: Session, cutoff: datetime, now: datetime) -> int:
    """Voice notes (and tracked photos) downloaded before the cutoff: files removed, rows kept."""
    rows = session.scalars(select(MediaFile).where(MediaFile.status == "downloaded",
                                                   MediaFile.downloaded_at < cutoff)
                           .order_by(MediaFile.id).limit(BATCH)).all()
    for row in rows:
        forget_media_file(row, now)
    return len(rows)


def _advance(session: Session, name: str, cutoff: datetime) -> tuple[datetime | None, RetentionMark]:
    """Where the last run of a retention task stopped, and its mark to move forward."""
    mark = session.get(RetentionMark, name)
    if mark is None:
        mark = RetentionMark(name=name, reached=cutoff)
        session.add(mark)
        return None, mark
    return mark.reached, mark


def _slice(session: Session, name: str, cutoff: datetime, *where) -> tuple[list[ServiceRequest], RetentionMark]:
    """The next batch of requests filed before the cutoff and after the task's mark."""
    start, mark = _advance(session, name, cutoff)
    query = select(ServiceRequest).where(ServiceRequest.created_at < cutoff, *where)
    if start is not None:
        query = query.where(ServiceRequest.created_at >= start)
    rows = session.scalars(query.order_by(ServiceRequest.created_at, ServiceRequest.id).limit(BATCH)).all()
    # A full batch means more may follow: stop the mark at the last one seen (re-doing it is harmless).
    mark.reached = rows[-1].created_at if len(rows) == BATCH else cutoff
    return rows, mark


def delete_old_photos(session: Session, settings: dict, cutoff: datetime) -> tuple[int, int]:
    """Photos of requests filed before the cutoff: files removed, references dropped; (cleared, seen)."""
    rows, _ = _slice(session, "photos", cutoff, ServiceRequest.photos.is_not(None))
    media_dir = Path(settings["app"]["media_dir"])
    cleared = 0
    for req in rows:
        if not req.photos:  # a JSON null is not an SQL NULL: nothing to clear
            continue
        for photo in req.photos:
            if isinstance(photo, dict) and photo.get("file"):
                (media_dir / Path(photo["file"]).name).unlink(missing_ok=True)
        req.photos = None
        cleared += 1
    return cleared, len(rows)


def anonymise_old_requests(session: Session, cutoff: datetime) -> int:
    """Requests filed before the cutoff keep kind, category, estate, dates and outcome, not identity."""
    rows, _ = _slice(session, "requests", cutoff)
    tables = Base.metadata.tables
    for req in rows:
        secrets_ = _identity(session, req)
        req.resident_id, req.location, req.photos = None, None, None
        for column in ("contact_name", "contact_mobile", "rating_comment"):
            if hasattr(req, column):
                setattr(req, column, None)
        session.flush()
        if secrets_:
            # The request and whatever hangs off it (timeline notes, notices) lose the names in their text.
            clauses = {tables["service_requests"]: tables["service_requests"].c.id == req.id}
            for table in Base.metadata.sorted_tables:
                for fk in table.foreign_keys:
                    if fk.column.table.name == "service_requests" and table.name != "media_files":
                        clauses[table] = fk.parent == req.id
            scrub_rows(session, clauses, secrets_)
    session.expire_all()
    return len(rows)


def _identity(session: Session, req: ServiceRequest) -> list[str]:
    """The strings that identify a request's resident (and an offline contact)."""
    values = [getattr(req, "contact_name", None), getattr(req, "contact_mobile", None)]
    if req.resident_id is not None:
        resident = session.get(Resident, req.resident_id)
        values += [resident.name, resident.mobile, resident.id_number, resident.address, resident.openid]
    return [v for v in values if v and len(v) >= 2]
