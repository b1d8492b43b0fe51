"""Forms defined only in menus.yaml (宠物登记, 共享车位申请): stored for the stewards, with quotas."""
from __future__ import annotations

import re
import unicodedata

from sqlalchemy import select

from models import Estate, Steward
from models.form import FormSubmission, count_active, for_community
from models.media import queue_download

from .context import Context
from .flows import answers_of
from .registry import Invalid, action, completer, validator
from .replies import Reply, Text
from .texts import say

# 苏E·12345, 苏E12345, and new-energy plates with six characters after the region letter.
PLATE_RE = re.compile(r"^[\u4e00-\u9fa5][A-Z][A-Z0-9]{5,6}$")


@validator("plate_number")
def plate_number(ctx: Context, value: str) -> str:
    """A mainland licence plate, accepted with spaces, a dot or lower case (苏e 12345 → 苏E12345)."""
    plate = re.sub(r"[\s·.\-]", "", unicodedata.normalize("NFKC", value)).upper()
    if not PLATE_RE.match(plate):
        raise Invalid(say("hint_plate"))
    return plate


@completer("forms.submit")
def submit(ctx: Context, answers: dict) -> Reply:
    """Stores the form for the estate's stewards, unless the flow's quota per estate is taken."""
    flow = ctx.services.menus.flows[ctx.conversation.flow]
    estate_id = ctx.resident.estate_id
    if estate_id is None:
        raise Invalid(say("hint_estate_needed"))
    # Locking the estate row makes two residents racing for the last place queue up.
    estate = ctx.session.scalar(select(Estate).where(Estate.id == estate_id).with_for_update())
    quota = flow.options.get("quota_per_estate")
    if quota is not None and count_active(ctx.session, flow.name, estate.id) >= int(quota):
        return Text(say("form_quota_full", title=flow.title, estate=estate.name, quota=quota))
    labels = ctx.extra.get("labels", {})
    summary = flow.summary.render(answers=answers_of(flow, answers), resident=ctx.resident,
                                  labels=labels).strip() \
        if flow.summary else ""
    sub = FormSubmission(flow=flow.name, title=flow.title, resident_id=ctx.resident.id,
                         estate_id=estate.id, community_id=estate.community_id, answers=answers,
                         summary=summary[:1000], created_at=ctx.now)
    ctx.session.add(sub)
    ctx.session.flush()
    for step in flow.steps:
        if step.type == "images":
            for photo in answers.get(step.id) or []:
                # Fetched once by the media job, as the photos of a 求助 are.
                queue_download(ctx.session, photo["media_id"], "image", now=ctx.now)
    return Text(say("form_submitted", title=flow.title, number=sub.id, estate=estate.name))


@action("forms.list")
def steward_list(ctx: Context) -> Reply:
    """For a steward: the newest forms residents of their community submitted."""
    steward = ctx.session.scalar(select(Steward).where(Steward.openid == ctx.resident.openid))
    if steward is None:
        return Text(say("fallback"))
    rows = for_community(ctx.session, steward.community_id, limit=10)
    return Text(say("form_list", rows=rows))

