"""Housekeeping: stale conversations cleared, old de-duplication records purged."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.orm import sessionmaker

from models import Conversation, ProcessedMessage


def housekeeping(sessions: sessionmaker, settings: dict, now: datetime) -> dict:
    """Clears conversations idle too long and purges processed-message ids past their use."""
    keep_conv = timedelta(hours=settings["scheduler"]["conversation_keep_hours"])
    keep_dedup = timedelta(seconds=settings["app"]["dedup_keep_seconds"])
    with sessions() as s, s.begin():
        # The flow name stays in expired_notice so a returning resident can be told why.
        cleared = s.execute(
            update(Conversation)
            .where(Conversation.flow.is_not(None), Conversation.updated_at < now - keep_conv)
            .values(expired_notice=Conversation.flow, flow=None, step=None, data={}, history=[])
            .execution_options(synchronize_session=False)).rowcount
        purged = s.execute(
            delete(ProcessedMessage).where(ProcessedMessage.created_at < now - keep_dedup)
            .execution_options(synchronize_session=False)).rowcount
    return {"conversations_cleared": cleared, "dedup_purged": purged}
