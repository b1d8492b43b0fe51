"""Erasure: a resident anonymised everywhere, found through the foreign keys that lead to them."""
from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path

from sqlalchemy import Table, func, insert, or_, select, update
from sqlalchemy.orm import Session

from models import Base, MediaFile, OutboxMessage, Resident, ServiceRequest
from models.pii import EncryptedText

ERASED = "＊"
# Columns that name a WeChat user; rows of staff tables keep theirs (a steward is not erased
# because the same person also used the account as a resident).
OPENID_COLUMNS = ("openid", "recipient", "touser")
STAFF_TABLES = {"stewards", "liaisons", "console_users", "rewards"}
# Kept whole on erasure: proof of consent and of the erasure itself carry no identity.
KEEP_TABLES = {"residents", "consent_records", "rights_requests"}


def owned_rows(session: Session, resident_id: int) -> dict[Table, object]:
    """For every table holding rows about the resident: the WHERE clause that finds them.

    Rows refer to the resident directly (a foreign key to residents) or to a row that does
    (a request's timeline, a request's voice note), two levels deep.
    """
    tables = Base.metadata.tables
    residents = tables["residents"]
    clauses: dict[Table, object] = {residents: residents.c.id == resident_id}
    frontier = {residents}
    for _ in range(2):
        found: dict[Table, list] = {}
        for table in Base.metadata.sorted_tables:
            for fk in table.foreign_keys:
                parent = fk.column.table
                if parent in frontier and parent is not table and table is not residents:
                    ids = select(fk.column).where(clauses[parent])
                    found.setdefault(table, []).append(fk.parent.in_(ids) if parent is not residents
                                                       else fk.parent == resident_id)
        for table, conds in found.items():
            clauses[table] = or_(clauses[table], *conds) if table in clauses else or_(*conds)
        frontier = set(found)
    return clauses


def points_balance(session: Session, resident_id: int) -> int:
    """The resident's points, if the points ledger exists."""
    ledger = Base.metadata.tables.get("points_entries")
    if ledger is None:
        return 0
    return int(session.scalar(select(func.coalesce(func.sum(ledger.c.points), 0))
                              .where(ledger.c.resident_id == resident_id)))


def erase(session: Session, resident: Resident, settings: dict, now: datetime) -> dict:
    """Anonymises a resident everywhere: identity gone, requests kept for statistics, points forfeited."""
    secrets_ = [v for v in (resident.name, resident.mobile, resident.id_number, resident.address,
                            resident.openid) if v and len(v) >= 2]
    openid = resident.openid
    forfeited = _forfeit_points(session, resident.id, now)
    _cancel_outbox(session, openid)
    requests = list(session.scalars(select(ServiceRequest).where(ServiceRequest.resident_id == resident.id)))
    media = delete_media(session, settings, [r.id for r in requests], now)
    for req in requests:
        req.location, req.photos = None, None
    resident.name = resident.mobile = resident.id_number = resident.address = None
    resident.openid = "erased:" + secrets.token_hex(12)
    resident.subscribed, resident.last_message_at = False, None
    session.flush()
    scrub_rows(session, owned_rows(session, resident.id), secrets_)
    scrub_openid_rows(session, openid, secrets_)
    session.expire_all()  # rows were rewritten in SQL: reload anything read later
    return {"requests": len(requests), "points": forfeited, "media": media}


def _cancel_outbox(session: Session, openid: str) -> None:
    """Messages not yet sent to the resident are not sent: there is nobody to send them to."""
    session.execute(update(OutboxMessage).where(OutboxMessage.recipient == openid,
                                                OutboxMessage.status.in_(("pending", "sending")))
                    .values(status="failed", last_error="recipient erased their account")
                    .execution_options(synchronize_session=False))


def _forfeit_points(session: Session, resident_id: int, now: datetime) -> int:
    """Adds one ledger line taking the balance to zero (the ledger is append-only)."""
    balance = points_balance(session, resident_id)
    if balance > 0:
        # Written as spending, which uses up the earned lots, so their later expiry finds nothing left.
        session.execute(insert(Base.metadata.tables["points_entries"]).values(
            resident_id=resident_id, kind="spend", points=-balance, key=f"erase:{resident_id}",
            created_at=now))
    return max(balance, 0)


def delete_media(session: Session, settings: dict, request_ids: list[int], now: datetime) -> int:
    """Deletes the voice notes and photos of these requests from disk; returns how many."""
    if not request_ids:
        return 0
    rows = session.scalars(select(MediaFile).where(MediaFile.request_id.in_(request_ids),
                                                   MediaFile.status != "deleted")).all()
    for row in rows:
        forget_media_file(row, now)
    photos = 0
    media_dir = Path(settings["app"]["media_dir"])
    for photo_list in session.scalars(select(ServiceRequest.photos).where(ServiceRequest.id.in_(request_ids))):
        for photo in photo_list or []:
            if isinstance(photo, dict) and photo.get("file"):
                (media_dir / Path(photo["file"]).name).unlink(missing_ok=True)
                photos += 1
    return len(rows) + photos


def forget_media_file(row: MediaFile, now: datetime) -> None:
    """Removes a media file's copies from disk and marks it deleted."""
    for path in (row.path, row.playable_path):
        if path:
            Path(path).unlink(missing_ok=True)
    row.status, row.path, row.playable_path, row.deleted_at = "deleted", None, None, now
    row.recognition = None


def _scrub(value, secrets_: list[str]):
    """The value with every secret string replaced, inside JSON too."""
    if isinstance(value, str):
        for secret in secrets_:
            value = value.replace(secret, ERASED)
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, secrets_) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets_) for v in value]
    return value


def scrub_rows(session: Session, clauses: dict[Table, object], secrets_: list[str]) -> int:
    """Clears encrypted values and replaces the secrets in every text and JSON value; returns rows changed."""
    changed = 0
    for table, clause in clauses.items():
        if table.name in KEEP_TABLES or not table.primary_key.columns:
            continue
        for row in session.execute(select(table).where(clause)).all():
            values = row._mapping
            new = {}
            for column in table.columns:
                value = values[column.name]
                if column.name in OPENID_COLUMNS and isinstance(value, str) and value in secrets_:
                    new[column.name] = "erased"
                    continue
                if isinstance(column.type, EncryptedText) and value is not None:
                    # Encrypted columns hold personal data by definition: none of it stays.
                    new[column.name] = None if column.nullable else ERASED
                    continue
                cleaned = _scrub(value, secrets_)
                if cleaned != value:
                    new[column.name] = cleaned
            if new:
                pk = [c == values[c.name] for c in table.primary_key.columns]
                session.execute(update(table).where(*pk).values(**new))
                changed += 1
    return changed


def scrub_openid_rows(session: Session, openid: str, secrets_: list[str]) -> int:
    """Rows that name the WeChat user without a foreign key: sent messages, de-duplication records."""
    tables = Base.metadata.tables
    clauses: dict[Table, object] = {}
    for table in tables.values():
        if table.name in STAFF_TABLES or table.name in KEEP_TABLES:
            continue
        cols = [table.c[name] == openid for name in OPENID_COLUMNS if name in table.c]
        if cols:
            clauses[table] = or_(*cols)
    processed = tables.get("processed_messages")
    if processed is not None:
        # De-duplication keys carry a digest of the sender, never the openid itself.
        from .dispatch import sender_digest
        digest = sender_digest(openid)
        clauses[processed] = or_(processed.c.key.like(f"m:{digest}:%"), processed.c.key.like(f"e:{digest}:%"))
    return scrub_rows(session, clauses, secrets_)
