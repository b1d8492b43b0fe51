"""满意度评价: after resolution the resident rates 1/2/3 (or in words), with an optional comment."""
from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import ServiceRequest
from models import workflow as wf
from models.labels import labels_of

from . import request_notices as notices
from .context import Context, Services
from .replies import Reply, Text
from .texts import say

# What a resident may reply: the numbers rating_ask lists, the usual words, and (below) the
# rating labels in force, so a renamed label is understood as soon as residents read it.
ANSWERS = {"1": "satisfied", "2": "basically_satisfied", "3": "unsatisfied",
           "满意": "satisfied", "基本满意": "basically_satisfied", "不满意": "unsatisfied"}


def parse(text: str) -> tuple[str, str | None] | None:
    """('satisfied', comment) for '1 谢谢' / '满意'; None for anything else."""
    answers, pattern = _answers(tuple(labels_of("rating").items()))
    match = pattern.match((text or "").strip())
    if match is None:
        return None
    comment = (match.group(2) or "").strip() or None
    return answers[match.group(1)], comment


@lru_cache(maxsize=4)
def _answers(shown: tuple[tuple[str, str], ...]) -> tuple[dict[str, str], re.Pattern]:
    """Word -> rating and the pattern of a rating reply, built once per set of rating labels."""
    answers = {**ANSWERS, **{word: code for code, word in shown}}
    # Longest words first so 基本满意 and 不满意 are not read as 满意.
    words = "|".join(re.escape(w) for w in sorted(answers, key=len, reverse=True))
    return answers, re.compile(rf"^({words})(?:[\s,，。:：]+(.*))?$", re.S)


def awaiting_rating(session: Session, resident_id: int) -> ServiceRequest | None:
    """The resident's most recently resolved request still waiting for a rating."""
    return session.scalar(select(ServiceRequest).where(ServiceRequest.resident_id == resident_id,
                                                       ServiceRequest.status == "resolved")
                          .order_by(ServiceRequest.resolved_at.desc(), ServiceRequest.id.desc()).limit(1)
                          .with_for_update())


def rate_request(session: Session, services: Services, req: ServiceRequest, rating: str,
                 comment: str | None, now: datetime) -> str:
    """Records the rating and tells the handler when it reopens or moves up; returns the outcome."""
    outcome = wf.rate(session, req, wf.Actor("resident", req.resident_id), rating, now, comment)
    if outcome == "reopened":
        notices.notify_handler(session, services, req, now, status=req.status_label)
    elif outcome == "escalated":
        notices.notify_handler(session, services, req, now)
    return outcome


def maybe_rate(ctx: Context) -> Reply | None:
    """A rating typed in chat when a request awaits one; None lets the message go on."""
    if ctx.message_type != "text":
        return None
    parsed = parse(ctx.text)
    if parsed is None:
        return None
    req = awaiting_rating(ctx.session, ctx.resident.id)
    if req is None:
        return None
    outcome = rate_request(ctx.session, ctx.services, req, parsed[0], parsed[1], ctx.now)
    return Text(say("rating_" + outcome, req=req))
