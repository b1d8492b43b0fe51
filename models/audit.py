"""The audit log: who did what in the console, including every look at unmasked personal data."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from .base import Base, BigID, UTCDateTime, utcnow

ACTIONS = {
    "login": "登录", "login_failed": "登录失败", "logout": "退出",
    "reveal_mobile": "查看完整手机号", "export_assessment": "导出考核表",
    "org_edit": "编辑组织", "routing_edit": "编辑流转规则", "announcement_publish": "发布公告",
    "handbook_edit": "编辑手册", "resource_edit": "编辑资源", "user_create": "创建账号",
    "request_action": "处理诉求", "request_offline": "登记线下诉求",
    "user_update": "修改账号角色", "user_disable": "停用账号", "user_enable": "启用账号",
    "password_reset": "重置密码", "wechat_link": "绑定微信", "wechat_unlink": "解除微信绑定",
    "wechat_bind_link": "生成微信绑定链接",
}


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
        return ACTIONS.get(self.action, self.action)

    def __repr__(self) -> str:
        return f"<AuditEntry {self.id} {self.username} {self.action}>"


def record(session: Session, username: str, action: str, target: str | None = None,
           detail: dict | None = None, user_id: int | None = None, ip: str | None = None) -> AuditEntry:
    """Adds an entry in the caller's transaction, so it commits with what it records."""
    entry = AuditEntry(username=username, action=action, target=target, detail=detail,
                       user_id=user_id, ip=ip, at=utcnow())
    session.add(entry)
    return entry
