"""What a request's transitions send: template messages, the rating question, department e-mails.

Everything is queued in the outbox in the caller's transaction, keyed so a retry sends once.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Liaison, Organisation, ServiceRequest, Steward, enqueue
from models.deadlines import PARK_TZ
from models.labels import label

from .context import Services, _field
from .request_links import RESIDENT, page_url
from .texts import say

# WeChat lets an account write to a resident within 48 hours of their last message.
KF_WINDOW = timedelta(hours=48)


def local_time(when: datetime | None) -> str:
    """A time as the park reads it: 2026-11-26 14:05."""
    return when.astimezone(PARK_TZ).strftime("%Y-%m-%d %H:%M") if when else ""


def _stamp(now: datetime) -> int:
    """Milliseconds, to tell two notices of the same kind apart in idempotency keys."""
    return int(now.timestamp() * 1000)


def _template(session: Session, services: Services, openid: str, purpose: str, fields: dict, url: str,
              key: str, ref: str) -> None:
    """Queues one template message with short, single-line fields."""
    data = {name: {"value": _field(value)} for name, value in fields.items()}
    enqueue(session, "template", openid, {"template_id": services.template_id(purpose), "url": url,
                                          "data": data, "purpose": purpose, "ref": ref}, key)


def place_of(req: ServiceRequest) -> str:
    """The estate, else the community, a request is about."""
    if req.estate is not None:
        return req.estate.name
    return req.community.name if req.community else ""


def notify_stewards(session: Session, services: Services, req: ServiceRequest, now: datetime,
                    skip: int | None = None) -> None:
    """Tells every steward of the community about a new request (template message)."""
    if req.community_id is None:
        return
    for steward in session.scalars(select(Steward).where(Steward.community_id == req.community_id)):
        if steward.id == skip:
            continue
        _template(session, services, steward.openid, "new_request",
                  {"character_string1": req.ref, "thing2": f"{req.kind_label}·{req.category or ''}",
                   "thing3": place_of(req), "time4": local_time(now)},
                  page_url(services, req.ref, steward.openid), f"new:{req.id}:s{steward.id}", req.ref)


def notify_handler(session: Session, services: Services, req: ServiceRequest, now: datetime,
                   status: str | None = None) -> None:
    """Tells the handler's liaisons (template message) and, for a park department, e-mails it."""
    handler = req.handler
    if handler is None:
        return
    liaisons = session.scalars(select(Liaison).where(Liaison.organisation_id == handler.id,
                                                     Liaison.active.is_(True), Liaison.openid.is_not(None)))
    for liaison in liaisons:
        if status:
            fields = {"character_string1": req.ref, "phrase2": status, "thing3": place_of(req),
                      "time4": local_time(req.deadline_at)}
            purpose = "request_update"
        else:
            fields = {"character_string1": req.ref, "thing2": f"{req.type_label}·{req.category or ''}",
                      "thing3": place_of(req), "time4": local_time(req.deadline_at)}
            purpose = "new_request"
        _template(session, services, liaison.openid, purpose, fields,
                  page_url(services, req.ref, liaison.openid),
                  f"h:{req.id}:l{liaison.id}:{_stamp(now)}", req.ref)
    if handler.kind == "park_department" and handler.email:
        email_department(session, services, req, handler, now)


def email_department(session: Session, services: Services, req: ServiceRequest, dept: Organisation,
                     now: datetime) -> None:
    """Routine matter for a park department: from the street committee, organisation department in Cc."""
    committee = None
    street = req.community.ancestor("street") if req.community else None
    if street is not None:
        committee = session.scalar(select(Organisation).where(Organisation.parent_id == street.id,
                                                              Organisation.kind == "social_work_committee"))
    orgdept = session.scalar(select(Organisation).where(Organisation.kind == "organisation_department"))
    context = {"req": req, "dept": dept, "committee": committee, "place": place_of(req),
               "deadline": local_time(req.deadline_at), "url": page_url(services, req.ref, dept.code)}
    payload = {"to": [dept.email], "cc": [orgdept.email] if orgdept and orgdept.email else [],
               "subject": say("request_mail_subject", **context), "body": say("request_mail_body", **context),
               "html": None, "ref": req.ref}
    if committee is not None and committee.email:
        payload["sender"] = committee.email
    enqueue(session, "email", dept.email, payload, f"mail:{req.id}:{dept.id}:{_stamp(now)}")


def notify_resident(session: Session, services: Services, req: ServiceRequest, now: datetime) -> None:
    """Tells the resident the new status (template message linking to their page)."""
    resident = req.resident
    if resident is None or not resident.subscribed:
        return
    handler = req.handler.name if req.handler else label("actor", "steward")
    _template(session, services, resident.openid, "request_update",
              {"character_string1": req.ref, "phrase2": req.status_label, "thing3": handler,
               "time4": local_time(now)},
              page_url(services, req.ref, RESIDENT), f"r:{req.id}:{req.status}:{_stamp(now)}", req.ref)


def ask_rating(session: Session, services: Services, req: ServiceRequest, now: datetime) -> None:
    """Asks the resident to rate in chat, when WeChat still lets us write to them (48 hours)."""
    resident = req.resident
    if resident is None or not resident.subscribed or resident.last_message_at is None:
        return
    if now - resident.last_message_at > KF_WINDOW:
        return  # the template message's page carries the rating form instead
    enqueue(session, "kf_text", resident.openid,
            {"content": say("rating_ask", ref=req.ref, resolution=req.resolution), "ref": req.ref},
            f"ask:{req.id}:{_stamp(now)}")
