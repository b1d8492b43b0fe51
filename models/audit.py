"""The audit log: who did what in the console, including every look at unmasked personal data."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from .base import Base, BigID, UTCDateTime, utcnow
from .labels import codes, label

ACTIONS = codes("audit_action", (
    "login", "login_failed", "logout", "reveal_mobile", "export_assessment", "org_edit", "routing_edit",
    "announcement_publish", "handbook_edit", "resource_edit", "user_create", "request_action", "request_offline",
    "user_update", "user_disable", "user_enable", "password_reset", "wechat_link", "wechat_unlink",
    "wechat_bind_link"))


class AuditEntry(Base):
    """One thing a console user did."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_action_at", "action", "at"),)
    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("console_users.id"), index=True)
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[dict | None] = mapped_column(JSON)
    ip: Mapped[str | None] = mapped_column(String(64))

    @property
    def action_label(self) -> str:
        """The action as the audit page shows it."""
        return label("audit_action", self.action)

    def __repr__(self) -> str:
        return f"<AuditEntry {self.id} {self.username} {self.action}>"


def record(session: Session, username: str, action: str, target: str | None = None,
           detail: dict | None = None, user_id: int | None = None, ip: str | None = None) -> AuditEntry:
    """Adds an entry in the caller's transaction, so it commits with what it records."""
    entry = AuditEntry(username=username, action=action, target=target, detail=detail,
                       user_id=user_id, ip=ip, at=utcnow())
    session.add(entry)
    return entry
