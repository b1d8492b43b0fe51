"""Requests filed through the Open311 API: filed like any other, and the stewards told at once."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Steward
from models.apikey import ApiKey
from models.open311 import PARK_TZ, Catalogue, Open311Submission, submit

from .context import Context, Services


def file_from_api(session: Session, services: Services, catalogue: Catalogue, key: ApiKey, form: dict,
                  attributes: dict, now: datetime, idempotency_key: str | None = None
                  ) -> Open311Submission:
    """Files the submission and queues the stewards' template messages in the same transaction."""
    sub, created = submit(session, catalogue, key, form, attributes, now=now,
                          idempotency_key=idempotency_key)
    if not created:
        return sub
    req = sub.request
    # The same notice a request from the chat sends; an API client has no chat of its own.
    ctx = Context(session=session, resident=None, conversation=None, message=None, services=services, now=now)
    where = req.estate.name if req.estate else ""
    for steward in session.scalars(select(Steward).where(Steward.community_id == req.community_id)):
        ctx.send_template(
            steward.openid, "new_request",
            {"character_string1": req.ref, "thing2": req.kind_label + "·" + (req.category or ""),
             "thing3": where, "time4": now.astimezone(PARK_TZ).strftime("%Y-%m-%d %H:%M")},
            url=f"{services.public_url}/m/requests/{req.ref}", key=f"new_request:{req.id}:{steward.id}")
    return sub

