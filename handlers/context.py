"""The context a handler gets: the session, the resident, the message and the services."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from models import Conversation, Resident, enqueue

from .menus import Menus


@dataclass
class Services:
    """What handlers may use beyond the database: settings and the loaded menus."""

    settings: dict
    menus: Menus

    @property
    def public_url(self) -> str:
        """Base URL of the pages residents and stewards open from a template message."""
        return self.settings["app"]["public_url"].rstrip("/")

    def template_id(self, purpose: str) -> str:
        """The WeChat template id configured for a purpose (new_request, reminder, …)."""
        return self.settings["templates"][purpose]


@dataclass
class Context:
    """One incoming message being handled, inside one database transaction."""

    session: Session
    resident: Resident
    conversation: Conversation
    message: Any
    services: Services
    now: datetime
    extra: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The message's text, or '' for anything that is not a text message."""
        return (getattr(self.message, "content", None) or "").strip() if self.message_type == "text" else ""

    @property
    def message_type(self) -> str:
        """text, image, voice, location, event, …"""
        return getattr(self.message, "type", "unknown")

    def send_template(self, openid: str, purpose: str, fields: dict[str, str], url: str,
                      key: str) -> None:
        """Queues a template message in this transaction; `key` makes it send once."""
        data = {name: {"value": _field(value)} for name, value in fields.items()}
        enqueue(self.session, "template", openid,
                {"template_id": self.services.template_id(purpose), "url": url, "data": data,
                 "purpose": purpose}, key)

    def send_email(self, to: list[str], subject: str, body: str, key: str,
                   cc: list[str] | None = None, html: str | None = None) -> None:
        """Queues an e-mail in this transaction."""
        enqueue(self.session, "email", ",".join(to),
                {"to": to, "cc": cc or [], "subject": subject, "body": body, "html": html}, key)


def _field(value: str) -> str:
    """Template fields: at most 20 characters, one line (WeChat's rules since 2023)."""
    value = " ".join(str(value).split())
    return value if len(value) <= 20 else value[:19] + "…"
