"""Daily jobs: each steward's summary, and the satisfaction follow-up of unrated resolved requests."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session, sessionmaker

from models import Notice, ServiceRequest, Steward, workflow
from models.deadlines import PARK_TZ
from models.schedule import claim_notice, claim_period
from models.timeline import SYSTEM

from ..request_links import RESIDENT
from ..texts import say
from . import notify
from .deadlines import WAITING


def community_counts(session: Session, now: datetime) -> dict[int, dict[str, int]]:
    """Per community: requests new in the last day, overdue, and resolved awaiting a rating."""
    since = now - timedelta(days=1)
    # Grouping on community_id + 0, not the bare column, keeps SQLite from walking the
    # (community, status) index over the whole table to group; each count reads one index range.
    community = (ServiceRequest.community_id + 0).label("community")
    queries = {
        "new": select(community, func.count()).where(ServiceRequest.created_at >= since),
        "overdue": select(community, func.count()).where(
            ServiceRequest.status.in_(WAITING), ServiceRequest.deadline_at < now),
        "awaiting_rating": select(community, func.count()).where(
            ServiceRequest.status == "resolved", ServiceRequest.resolved_at.is_not(None)),
    }
    counts: dict[int, dict[str, int]] = {}
    for name, query in queries.items():
        for community_id, n in session.execute(query.group_by(community)):
            if community_id is not None:
                counts.setdefault(community_id, {"new": 0, "overdue": 0, "awaiting_rating": 0})[name] = n
    return counts


def daily_summary(sessions: sessionmaker, settings: dict, now: datetime) -> dict:
    """Tells each steward what is new, overdue and awaiting a rating in the community; once a day."""
    day = now.astimezone(PARK_TZ).date().isoformat()
    url = f"{settings['app']['public_url'].rstrip('/')}/console/requests"
    sent = 0
    with sessions() as s, s.begin():
        run = claim_period(s, "daily_summary", day)
        if run is None:
            return {"stewards": 0}
        counts = community_counts(s, now)
        for steward in s.scalars(select(Steward).where(Steward.community_id.in_(counts)).order_by(Steward.id)):
            c = counts[steward.community_id]
            if not any(c.values()):
                continue
            notify.template(s, settings, steward.openid, "reminder",
                            {"thing1": say("reminder_daily_title"), "thing2": say("reminder_daily_summary", **c),
                             "time3": notify.local(now)}, url, f"daily:{day}:{steward.id}")
            sent += 1
        run.result = {"stewards": sent}
    return {"stewards": sent}


def follow_up_candidates(session: Session, stage: int, cut_off: datetime) -> list[int]:
    """Resolved, unrated requests due for a stage: resolved before the cut-off (stage 1), or
    whose previous stage went out before it (a second try waits from the first, not from 办结)."""
    done = exists().where(and_(Notice.request_id == ServiceRequest.id, Notice.kind == f"follow_up_{stage}",
                               Notice.deadline_at == ServiceRequest.resolved_at))
    query = select(ServiceRequest.id).where(ServiceRequest.status == "resolved", ~done)
    if stage == 1:
        query = query.where(ServiceRequest.resolved_at <= cut_off)
    else:
        earlier = exists().where(and_(Notice.request_id == ServiceRequest.id,
                                      Notice.kind == f"follow_up_{stage - 1}",
                                      Notice.deadline_at == ServiceRequest.resolved_at,
                                      Notice.created_at <= cut_off))
        query = query.where(ServiceRequest.resolved_at.is_not(None), earlier)
    return list(session.scalars(query.order_by(ServiceRequest.resolved_at)))


def follow_up(sessions: sessionmaker, settings: dict, now: datetime) -> dict:
    """Asks residents to rate resolved requests, twice; unrated after that closes as unrated."""
    first = timedelta(days=settings["scheduler"]["follow_up_days"])
    retry = timedelta(days=settings["scheduler"]["follow_up_retry_days"])
    counts = {"asked": 0, "asked_again": 0, "closed_unrated": 0}
    # Stage 3 is not a message: the second try went unanswered, so the request closes unrated.
    for stage, cut_off, outcome in ((1, now - first, "asked"), (2, now - retry, "asked_again"),
                                    (3, now - retry, "closed_unrated")):
        with sessions() as s:
            ids = follow_up_candidates(s, stage, cut_off)
        for req_id in ids:
            with sessions() as s, s.begin():
                counts[outcome] += _follow_up_one(s, settings, req_id, stage, now)
    return counts


def _follow_up_one(session: Session, settings: dict, req_id: int, stage: int, now: datetime) -> int:
    """One stage of one request's follow-up, recorded so it never repeats."""
    req = session.get(ServiceRequest, req_id)
    if req is None or req.status != "resolved" or req.resolved_at is None:
        return 0
    # Keyed by the resolution: a request reopened and resolved again is followed up afresh.
    if not claim_notice(session, req.id, f"follow_up_{stage}", req.resolved_at.isoformat(), now,
                        deadline_at=req.resolved_at):
        return 0
    if stage == 3:
        workflow.close(session, req, SYSTEM, "no_rating", now)
        return 1
    if req.resident is not None and req.resident.subscribed:
        notify.template(session, settings, req.resident.openid, "request_update",
                        {"character_string1": req.ref, "thing2": say("reminder_rating", stage=stage),
                         "time3": notify.local(req.resolved_at)},
                        notify.request_url(settings, req, RESIDENT), f"follow_up:{req.id}:{stage}:{req.resolved_at:%Y%m%d%H%M}")
    return 1
