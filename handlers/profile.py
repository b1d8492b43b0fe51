"""个人中心: my requests (list, detail and timeline by number) and my profile (view, correct)."""
from __future__ import annotations

import re

from sqlalchemy import select

from models import Estate, ServiceRequest
from models.deadlines import PARK_TZ
from models.timeline import TimelineEntry

from .context import Context
from .registry import Invalid, action, completer
from .replies import Reply, Text
from .texts import say

REF_RE = re.compile(r"\d{6,10}")
LIST_LIMIT = 10


@action("profile.requests")
def my_requests(ctx: Context) -> Reply:
    """我的诉求: the resident's newest requests with their status."""
    rows = ctx.session.scalars(select(ServiceRequest).where(ServiceRequest.resident_id == ctx.resident.id)
                               .order_by(ServiceRequest.created_at.desc(), ServiceRequest.id.desc())
                               .limit(LIST_LIMIT)).all()
    return Text(say("my_requests", rows=rows, tz=PARK_TZ))


@action("profile.request_detail")
def request_detail(ctx: Context) -> Reply:
    """查询 <编号>: one of the resident's own requests with its timeline."""
    match = REF_RE.search(ctx.text.replace(" ", ""))
    if match is None:
        return Text(say("request_ref_needed"))
    req = ctx.session.scalar(select(ServiceRequest).where(ServiceRequest.ref == match.group(0),
                                                          ServiceRequest.resident_id == ctx.resident.id))
    if req is None:  # someone else's number reads the same as a wrong one
        return Text(say("request_not_found", ref=match.group(0)))
    timeline = ctx.session.scalars(select(TimelineEntry).where(TimelineEntry.request_id == req.id)
                                   .order_by(TimelineEntry.id)).all()
    return Text(say("request_detail", req=req, timeline=timeline, tz=PARK_TZ))


@action("profile.view")
def view(ctx: Context) -> Reply:
    """我的资料: what we hold about the resident, masked."""
    return Text(say("my_profile", r=ctx.resident))


@completer("profile.update")
def update(ctx: Context, answers: dict) -> Reply:
    """Corrects the mobile number, the estate or the building/unit."""
    resident = ctx.resident
    field = answers["field"]
    if field == "mobile":
        resident.mobile = answers["mobile"]
    elif field == "estate":
        estate = ctx.session.scalar(select(Estate).where(Estate.code == answers["estate"]))
        if estate is None:
            raise Invalid(say("hint_estate_gone"))
        resident.estate_id = estate.id
        resident.estate = estate
        resident.address = answers.get("building") or None
    elif field == "building":
        resident.address = answers["building"]
    return Text(say("profile_updated", r=resident))
