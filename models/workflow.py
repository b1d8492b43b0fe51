"""The request state machine: every transition checked, stamped and written to the timeline.

submitted → accepted (classified) → routed (handler + deadline) → answered → resolved
→ rated → closed. Unsatisfied residents reopen (then escalate); requests can be
transferred or escalated while open, and closed early with a reason shown to the resident.
Pure rules: no Flask, no messages; handlers send what a transition causes.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .deadlines import add_working_days
from .organisation import Organisation
from .labels import label, labels_of
from .request import CLOSE_REASONS, LEVELS, OPEN_STATUSES, RATINGS, TYPES, ServiceRequest
from .timeline import SYSTEM, Actor, TimelineEntry

# action → (statuses it may start from, status it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "classify": (("submitted", "accepted"), "accepted"),
    "route": (("accepted",), "routed"),
    "transfer": (("routed", "answered", "reopened"), "routed"),
    "escalate": (OPEN_STATUSES, "routed"),
    "answer": (("routed", "answered", "reopened"), "answered"),
    "resolve": (("routed", "answered", "reopened"), "resolved"),
    "rate": (("resolved",), "rated"),
    "reopen": (("resolved", "rated"), "reopened"),
    "close": ((*OPEN_STATUSES, "resolved", "rated"), "closed"),
}
# Reasons a request may be closed while still open; each is shown to the resident.
EARLY_CLOSE_REASONS = ("duplicate", "not_our_remit", "withdrawn")
DEFAULT_DEADLINE_DAYS = 5
LEVEL_ORDER = tuple(LEVELS)

__all__ = ["Actor", "SYSTEM", "WorkflowError", "classify", "route", "transfer", "escalate", "answer",
           "resolve", "rate", "reopen", "close", "escalation_target", "find_by_ref", "TRANSITIONS"]


class WorkflowError(ValueError):
    """A refused transition; `code` picks the kind wording, `params` fill it in."""

    def __init__(self, code: str, message: str, **params):
        super().__init__(message)
        self.code = code
        self.params = params


def _check(req: ServiceRequest, action: str) -> str:
    """Refuses an action the request's status does not allow; returns the status it leads to."""
    allowed, to_status = TRANSITIONS[action]
    if req.status not in allowed:
        raise WorkflowError("bad_status", f"cannot {action} a request that is {req.status}",
                            ref=req.ref, action=action, status=req.status, status_label=req.status_label)
    return to_status


def _move(session: Session, req: ServiceRequest, actor: Actor, action: str, to_status: str,
          now: datetime, note: str | None = None, data: dict | None = None) -> TimelineEntry:
    """Sets the status and appends the timeline entry, in the caller's transaction."""
    entry = TimelineEntry(request_id=req.id, at=now, actor_kind=actor.kind, actor_id=actor.id,
                          actor_label=actor.shown[:128], action=action, from_status=req.status,
                          to_status=to_status, handler_id=req.handler_id, note=note, data=data)
    req.status = to_status
    req.updated_at = now
    session.add(entry)
    return entry


def classify(session: Session, req: ServiceRequest, actor: Actor, type_: str, category: str,
             now: datetime) -> ServiceRequest:
    """Accepts the request with its type (政务类 …) and finer category."""
    to_status = _check(req, "classify")
    if type_ not in TYPES:
        raise WorkflowError("bad_type", f"unknown type {type_!r}", value=type_,
                            types=list(labels_of("request_type").values()))
    category = (category or "").strip()
    if not category:
        raise WorkflowError("category_missing", "a category is required", ref=req.ref)
    req.type, req.category = type_, category[:64]
    req.accepted_at = req.accepted_at or now
    _move(session, req, actor, "classify", to_status, now, data={"type": type_, "category": req.category})
    return req


def _assign(req: ServiceRequest, handler: Organisation, days: int | None, now: datetime) -> None:
    """Sets the handler, its level, and a fresh deadline counted from now."""
    days = days if days is not None else (req.deadline_days or DEFAULT_DEADLINE_DAYS)
    if days < 1:
        raise WorkflowError("bad_deadline", "a deadline needs at least one working day", days=days)
    req.handler_id = handler.id
    req.handler = handler
    if handler.kind == "social_work_committee":
        req.level = "street"
    elif handler.kind == "organisation_department":
        req.level = "organisation_department"
    req.deadline_days = days
    req.deadline_at = add_working_days(now, days)
    req.routed_at = now


def route(session: Session, req: ServiceRequest, actor: Actor, handler: Organisation,
          deadline_days: int | None, now: datetime, note: str | None = None) -> ServiceRequest:
    """Routes a classified request to a handler with a deadline in working days."""
    if req.status == "submitted":
        raise WorkflowError("not_classified", "classify the request before routing it", ref=req.ref)
    to_status = _check(req, "route")
    _assign(req, handler, deadline_days, now)
    _move(session, req, actor, "route", to_status, now, note,
          data={"handler": handler.code, "deadline_days": req.deadline_days})
    return req


def transfer(session: Session, req: ServiceRequest, actor: Actor, handler: Organisation,
             now: datetime, note: str | None = None, deadline_days: int | None = None) -> ServiceRequest:
    """Hands an open request to another handler (转办), with a new deadline."""
    to_status = _check(req, "transfer")
    if handler.id == req.handler_id:
        raise WorkflowError("same_handler", "already with that handler", ref=req.ref, handler=handler.name)
    previous = req.handler.code if req.handler else None
    _assign(req, handler, deadline_days, now)
    _move(session, req, actor, "transfer", to_status, now, note,
          data={"from": previous, "handler": handler.code, "deadline_days": req.deadline_days})
    return req


def escalation_target(session: Session, req: ServiceRequest) -> tuple[str, Organisation]:
    """The next level up and the organisation that takes it there."""
    position = LEVEL_ORDER.index(req.level) if req.level in LEVEL_ORDER else 0
    for level in LEVEL_ORDER[position + 1:]:
        org = _level_organisation(session, req, level)
        if org is not None:
            return level, org
    raise WorkflowError("top_level", "already at the organisation department", ref=req.ref)


def _level_organisation(session: Session, req: ServiceRequest, level: str) -> Organisation | None:
    """The street's social-work committee, or the park's organisation department."""
    kind = LEVELS[level]
    if level == "street":
        street = req.community.ancestor("street") if req.community else None
        if street is None:
            return None
        return session.scalar(select(Organisation).where(Organisation.parent_id == street.id,
                                                         Organisation.kind == kind)
                              .order_by(Organisation.id))
    return session.scalar(select(Organisation).where(Organisation.kind == kind).order_by(Organisation.id))


def escalate(session: Session, req: ServiceRequest, actor: Actor, reason: str, now: datetime,
             deadline_days: int | None = None) -> ServiceRequest:
    """Sends an open request one level up (community → street → organisation department)."""
    to_status = _check(req, "escalate")
    reason = (reason or "").strip()
    if not reason:
        raise WorkflowError("reason_missing", "escalation needs a reason", ref=req.ref)
    level, org = escalation_target(session, req)
    previous = req.handler.code if req.handler else None
    _assign(req, org, deadline_days, now)
    req.level = level
    _move(session, req, actor, "escalate", to_status, now, reason,
          data={"from": previous, "handler": org.code, "level": level})
    return req


def _required_text(req: ServiceRequest, text: str | None) -> str:
    """The reply or explanation the resident will read; refused when empty."""
    text = (text or "").strip()
    if not text:
        raise WorkflowError("text_missing", "a reply or explanation is required", ref=req.ref)
    return text


def answer(session: Session, req: ServiceRequest, actor: Actor, text: str, now: datetime) -> ServiceRequest:
    """Records the handler's reply; the resident reads it in full on their page."""
    to_status = _check(req, "answer")
    text = _required_text(req, text)
    req.answer = text
    req.answered_at = req.answered_at or now
    _move(session, req, actor, "answer", to_status, now, text)
    return req


def resolve(session: Session, req: ServiceRequest, actor: Actor, text: str, now: datetime) -> ServiceRequest:
    """Marks the matter resolved (办结) with an explanation; the resident is then asked to rate."""
    to_status = _check(req, "resolve")
    text = _required_text(req, text)
    req.resolution = text
    req.answered_at = req.answered_at or now
    req.resolved_at = now
    _move(session, req, actor, "resolve", to_status, now, text)
    return req


def rate(session: Session, req: ServiceRequest, actor: Actor, rating: str, now: datetime,
         comment: str | None = None) -> str:
    """The resident's rating; returns what followed: 'closed', 'reopened' or 'escalated'."""
    to_status = _check(req, "rate")
    if rating not in RATINGS:
        raise WorkflowError("bad_rating", f"unknown rating {rating!r}", value=rating)
    comment = (comment or "").strip() or None
    req.rating, req.rating_comment, req.rated_at = rating, comment, now
    _move(session, req, actor, "rate", to_status, now, comment, data={"rating": rating})
    if rating != "unsatisfied":
        close(session, req, SYSTEM, "rated", now)
        return "closed"
    req.unsatisfied_count += 1
    reopen(session, req, actor, now, comment)
    if req.unsatisfied_count >= 2:
        # A second 不满意 is no longer the handler's to fix alone: send it up a level.
        try:
            escalate(session, req, SYSTEM, comment or label("rating", "unsatisfied"), now)
        except WorkflowError as exc:
            if exc.code != "top_level":
                raise
            return "reopened"
        return "escalated"
    return "reopened"


def reopen(session: Session, req: ServiceRequest, actor: Actor, now: datetime,
           note: str | None = None) -> ServiceRequest:
    """Gives the request back to its handler with a fresh deadline."""
    to_status = _check(req, "reopen")
    req.reopen_count += 1
    req.resolved_at = None
    if req.deadline_days:
        req.deadline_at = add_working_days(now, req.deadline_days)
    _move(session, req, actor, "reopen", to_status, now, note)
    return req


def close(session: Session, req: ServiceRequest, actor: Actor, reason: str, now: datetime,
          note: str | None = None) -> ServiceRequest:
    """Closes the request; an open one only as a duplicate, out of remit or withdrawn, with a note."""
    to_status = _check(req, "close")
    if reason not in CLOSE_REASONS:
        raise WorkflowError("bad_reason", f"unknown close reason {reason!r}", value=reason)
    note = (note or "").strip() or None
    if req.status in OPEN_STATUSES:
        if reason not in EARLY_CLOSE_REASONS:
            raise WorkflowError("still_open", "an open request closes only with a reason",
                                ref=req.ref, reasons=[label("close_reason", r) for r in EARLY_CLOSE_REASONS])
        if not note:
            raise WorkflowError("reason_missing", "closing an open request needs a note for the resident",
                                ref=req.ref)
    req.close_reason, req.close_note, req.closed_at = reason, note, now
    _move(session, req, actor, "close", to_status, now, note, data={"reason": reason})
    return req


def find_by_ref(session: Session, ref: str, lock: bool = False) -> ServiceRequest | None:
    """The request with this reference number (spaces and dashes ignored); `lock` before changing it."""
    ref = "".join(ch for ch in (ref or "") if ch.isdigit())
    if not ref:
        return None
    query = select(ServiceRequest).where(ServiceRequest.ref == ref)
    # Two staff acting at once queue on the row instead of overwriting each other's transition.
    return session.scalar(query.with_for_update() if lock else query)
