"""我要求助: file a 求助 / 咨询 / 建议 and notify the community's stewards."""
from __future__ import annotations

from sqlalchemy import select

from models import Steward, file_request

from .context import Context
from .registry import completer
from .replies import Reply, Text
from .request_links import page_url
from .texts import say


@completer("requests.file")
def file(ctx: Context, answers: dict) -> Reply:
    """Files the request and queues a template message to each steward, in one transaction."""
    resident = ctx.resident
    estate = resident.estate
    description = answers["description"]
    if isinstance(description, dict):  # a voice answer: keep WeChat's recognition as the text
        description = description.get("recognition") or "（语音）"
    req = file_request(ctx.session, kind=answers["kind"], category=answers.get("category"),
                       description=description, location=answers.get("location"),
                       photos=answers.get("photos"), resident_id=resident.id,
                       estate_id=estate.id if estate else None,
                       community_id=estate.community_id if estate else None, created_at=ctx.now)
    if estate is not None:
        stewards = ctx.session.scalars(select(Steward).where(Steward.community_id == estate.community_id))
        for steward in stewards:
            ctx.send_template(
                steward.openid, "new_request",
                {"character_string1": req.ref, "thing2": req.kind_label + "·" + (answers.get("category") or ""),
                 "thing3": estate.name, "time4": ctx.now.strftime("%Y-%m-%d %H:%M")},
                url=page_url(ctx.services, req.ref, steward.openid),
                key=f"new_request:{req.id}:{steward.id}")
    from .voice import attach  # a voice description is fetched later and gets a short reply
    return attach(ctx, req, answers) or Text(say("request_filed", ref=req.ref, kind=req.kind_label))
