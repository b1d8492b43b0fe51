"""Deadline jobs: reminders before a deadline and at it, escalation one level up after it."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, select
from sqlalchemy.orm import Session, sessionmaker

from models import Notice, ServiceRequest, TimelineEntry, workflow
from models.deadlines import PARK_TZ, add_working_hours, is_working_day, subtract_working_hours
from models.schedule import claim_notice
from models.timeline import SYSTEM

from ..texts import say
from . import notify

logger = logging.getLogger(__name__)

# Statuses in which the handler still owes an answer; only these are reminded and escalated.
WAITING = ("routed", "reopened")
# Deadlines missed longer ago than this were escalated long since (or sit at the top, already
# told): the scans leave them out so their cost stays with the recent past, not all history.
LOOKBACK = timedelta(days=30)


def reminder_candidates(session: Session, hours: float, now: datetime, grace_hours: float = 24) -> list[int]:
    """Ids of waiting requests whose deadline is within `hours` working hours and not yet reminded."""
    horizon = add_working_hours(now, hours)
    kind = f"reminder_{hours:g}"
    already = exists().where(and_(Notice.request_id == ServiceRequest.id, Notice.kind == kind,
                                  Notice.deadline_at == ServiceRequest.deadline_at))
    query = select(ServiceRequest.id).where(ServiceRequest.status.in_(WAITING),
                                            ServiceRequest.deadline_at <= horizon, ~already)
    if hours > 0:
        # A reminder "before" the deadline is pointless once it passed; the one at it goes instead.
        query = query.where(ServiceRequest.deadline_at > now)
    else:
        # Past the grace, escalation speaks instead of the reminder.
        query = query.where(ServiceRequest.deadline_at > subtract_working_hours(now, grace_hours))
    # No ORDER BY: sorting by deadline tempts SQLite into walking the deadline index over every
    # request ever routed instead of the (status, deadline) range; the ids are sorted here instead.
    return sorted(session.scalars(query))


def overdue_candidates(session: Session, grace_hours: float, now: datetime) -> list[int]:
    """Ids of waiting requests past their deadline by the grace, not yet escalated for that deadline."""
    latest = subtract_working_hours(now, grace_hours)
    already = exists().where(and_(Notice.request_id == ServiceRequest.id, Notice.kind == "escalation",
                                  Notice.deadline_at == ServiceRequest.deadline_at))
    return sorted(session.scalars(select(ServiceRequest.id).where(
        ServiceRequest.status.in_(WAITING), ServiceRequest.deadline_at <= latest,
        ServiceRequest.deadline_at > latest - LOOKBACK, ~already)))


def deadline_scan(sessions: sessionmaker, settings: dict, now: datetime) -> dict:
    """Sends due reminders, then escalates what stayed overdue; each request in its own transaction."""
    counts = {"reminded": 0, "escalated": 0, "at_top": 0}
    if not is_working_day(now.astimezone(PARK_TZ).date()):
        return counts  # nobody is at work to answer: what fell due waits for the next working day
    grace = float(settings["scheduler"]["escalation_grace_hours"])
    for hours in sorted((float(h) for h in settings["scheduler"]["reminder_hours"]), reverse=True):
        with sessions() as s:
            ids = reminder_candidates(s, hours, now, grace)
        for req_id in ids:
            with sessions() as s, s.begin():
                counts["reminded"] += _remind(s, settings, req_id, hours, now)
    with sessions() as s:
        ids = overdue_candidates(s, grace, now)
    for req_id in ids:
        with sessions() as s, s.begin():
            outcome = _escalate(s, settings, req_id, now)
            if outcome:
                counts[outcome] += 1
    return counts


def _remind(session: Session, settings: dict, req_id: int, hours: float, now: datetime) -> int:
    """Reminds the handler's liaisons and the stewards of one request, once per deadline and stage."""
    req = session.get(ServiceRequest, req_id)
    if req is None or req.status not in WAITING or req.deadline_at is None:
        return 0
    if req.deadline_at > add_working_hours(now, hours) or (hours and req.deadline_at <= now):
        return 0  # escalated or re-routed since the scan: its new deadline is not due yet
    if not claim_notice(session, req.id, f"reminder_{hours:g}", req.deadline_at.isoformat(), now,
                        deadline_at=req.deadline_at):
        return 0  # another run (or scheduler) got here first
    if hours and req.routed_at and req.routed_at >= subtract_working_hours(req.deadline_at, hours):
        # The deadline was set with less time than that to go: the routing message said it all.
        return 0
    wording = "reminder_due" if hours == 0 else "reminder_soon"
    # Not a transition: the timeline shows the reminder so the handler's record is complete.
    session.add(TimelineEntry(request_id=req.id, at=now, actor_kind=SYSTEM.kind, actor_label=SYSTEM.shown,
                              action="remind", from_status=req.status, to_status=req.status,
                              handler_id=req.handler_id, note=say(wording, req=req), data={"hours": hours}))
    _tell(session, settings, req, wording, f"remind:{req.id}:{hours:g}:{req.deadline_at:%Y%m%d%H%M}")
    return 1


def _escalate(session: Session, settings: dict, req_id: int, now: datetime) -> str | None:
    """Moves one overdue request up a level through the workflow, and tells who must act now."""
    req = session.get(ServiceRequest, req_id)
    if req is None or req.status not in WAITING or req.deadline_at is None:
        return None
    if req.deadline_at > subtract_working_hours(now, float(settings["scheduler"]["escalation_grace_hours"])):
        return None  # escalated or re-routed since the scan
    missed = req.deadline_at
    if not claim_notice(session, req.id, "escalation", missed.isoformat(), now, deadline_at=missed):
        return None
    key = f"escalate:{req.id}:{missed:%Y%m%d%H%M}"
    try:
        workflow.escalate(session, req, SYSTEM, say("reminder_escalation_reason", deadline=notify.local(missed)),
                          now)
    except workflow.WorkflowError as exc:
        if exc.code != "top_level":
            raise
        # Nobody above the organisation department: remind it instead, once per missed deadline.
        _tell(session, settings, req, "reminder_overdue_top", key)
        return "at_top"
    _tell(session, settings, req, "reminder_escalated", key)
    logger.info("request %s escalated to %s", req.ref, req.level)
    return "escalated"


def _tell(session: Session, settings: dict, req: ServiceRequest, wording: str, key: str) -> None:
    """Queues the message `wording` about a request to each liaison and steward who answers for it."""
    fields = {"character_string1": req.ref, "thing2": say(wording, req=req),
              "time3": notify.local(req.deadline_at), "thing4": req.handler.name if req.handler else ""}
    for role, person_id, openid, address in notify.people_for(session, req):
        person_key = f"{key}:{role}:{person_id}"
        # Each reader gets a link signed for them; an e-mail-only liaison reads as their organisation.
        url = notify.request_url(settings, req, openid or (req.handler.code if req.handler else ""))
        if openid:
            notify.template(session, settings, openid, "reminder", fields, url, person_key)
        elif address:
            what = say(wording, req=req)
            notify.email(session, [address], say("reminder_email_subject", req=req, what=what),
                         say("reminder_email", req=req, what=what, deadline=notify.local(req.deadline_at),
                             url=url), person_key)
