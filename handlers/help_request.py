"""我要求助: file a 求助 / 咨询 / 建议 and notify the community's stewards."""
from __future__ import annotations

from sqlalchemy import select

from models import Organisation, Steward, file_request
from models.deadlines import PARK_TZ
from models.media import queue_download

from .context import Context
from .registry import Invalid, completer, validator
from .request_links import page_url
from .replies import Reply, Text
from .texts import say


@validator("help_kind")
def help_kind(ctx: Context, value: str) -> str:
    """Anyone may ask (咨询) or suggest; a 求助 needs a verified resident the steward can call."""
    if value == "help" and not ctx.resident.is_verified:
        raise Invalid(say("hint_verify_for_help"))
    return value


@validator("in_park")
def in_park(ctx: Context, value: dict) -> dict:
    """A shared location must lie in the park's bounds (from the flow's options); typed text passes."""
    flow = ctx.services.menus.flows.get(ctx.conversation.flow or "")
    bounds = (flow.options.get("park_bounds") if flow else None) or {}
    if "lat" in value and bounds:
        inside = (bounds["lat_min"] <= value["lat"] <= bounds["lat_max"]
                  and bounds["lng_min"] <= value["lng"] <= bounds["lng_max"])
        if not inside:
            raise Invalid(say("hint_outside_park"))
    return value


@completer("requests.file")
def file(ctx: Context, answers: dict) -> Reply:
    """Files the request and queues a template message to each steward, in one transaction."""
    resident = ctx.resident
    estate = resident.estate
    community_id = estate.community_id if estate else None
    if community_id is None and answers.get("community"):
        community_id = ctx.session.scalar(select(Organisation.id).where(
            Organisation.code == answers["community"], Organisation.kind == "community"))
    description = answers["description"]
    if isinstance(description, dict):  # a voice answer: keep WeChat's recognition as the text
        description = description.get("recognition") or say("voice_description")
    req = file_request(ctx.session, kind=answers["kind"], category=answers.get("category"),
                       description=description, location=answers.get("location"),
                       photos=answers.get("photos"), resident_id=resident.id,
                       estate_id=estate.id if estate else None,
                       community_id=community_id, created_at=ctx.now)
    for photo in answers.get("photos") or []:
        # The media API download happens in the media job, once per id, never in the webhook.
        queue_download(ctx.session, photo["media_id"], "image", request_id=req.id, now=ctx.now)
    where = estate.name if estate else (req.community.name if req.community else "")
    stewards = ctx.session.scalars(select(Steward).where(Steward.community_id == community_id)) \
        if community_id else []
    for steward in stewards:
        ctx.send_template(
            steward.openid, "new_request",
            {"character_string1": req.ref, "thing2": req.kind_label + "·" + (answers.get("category") or ""),
             "thing3": where, "time4": ctx.now.astimezone(PARK_TZ).strftime("%Y-%m-%d %H:%M")},
            url=page_url(ctx.services, req.ref, steward.openid),
            key=f"new_request:{req.id}:{steward.id}")
    from .voice import attach  # a voice description is fetched later and gets a short reply
    return attach(ctx, req, answers) or Text(say("request_filed", ref=req.ref, kind=req.kind_label))
