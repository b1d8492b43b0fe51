"""Messages the jobs queue: template messages and e-mails through the outbox, never sent inline."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Liaison, ServiceRequest, Steward, enqueue
from models.deadlines import PARK_TZ

from ..context import _field
from ..request_links import page_token


def template(session: Session, settings: dict, openid: str, purpose: str, fields: dict[str, str],
             url: str, key: str) -> None:
    """Queues a template message in the caller's transaction; `key` makes it send once."""
    data = {name: {"value": _field(value)} for name, value in fields.items()}
    enqueue(session, "template", openid,
            {"template_id": settings["templates"][purpose], "url": url, "data": data, "purpose": purpose}, key)


def email(session: Session, to: list[str], subject: str, body: str, key: str, html: str | None = None,
          attachments: list[dict] | None = None) -> None:
    """Queues an e-mail (attachments as {filename, mime, data base64}) in the caller's transaction."""
    enqueue(session, "email", ",".join(to), {"to": to, "cc": [], "subject": subject, "body": body,
                                             "html": html, "attachments": attachments or []}, key)


def request_url(settings: dict, req: ServiceRequest, viewer: str) -> str:
    """The signed page link for one reader: the resident ('r'), a staff openid or an organisation code."""
    token = page_token(settings["app"]["secret_key"], req.ref, viewer)
    return f"{settings['app']['public_url'].rstrip('/')}/m/requests/{req.ref}?t={token}"


def local(when: datetime | None) -> str:
    """A time as the park reads it (YYYY-MM-DD HH:MM)."""
    return when.astimezone(PARK_TZ).strftime("%Y-%m-%d %H:%M") if when else ""


def people_for(session: Session, req: ServiceRequest) -> list[tuple[str, int, str | None, str | None]]:
    """Who answers for a request now: the handler's active liaisons, then the community's stewards."""
    people = []
    if req.handler_id is not None:
        for liaison in session.scalars(select(Liaison).where(Liaison.organisation_id == req.handler_id,
                                                             Liaison.active.is_(True)).order_by(Liaison.id)):
            people.append(("liaison", liaison.id, liaison.openid, liaison.email))
    if req.community_id is not None:
        for steward in session.scalars(select(Steward).where(Steward.community_id == req.community_id)
                                       .order_by(Steward.id)):
            people.append(("steward", steward.id, steward.openid, None))
    return people
