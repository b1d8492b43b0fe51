"""成为志愿者: registration from 个人中心, and the stewards' `志愿者 通过 <编号>` command."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Estate, Steward, enqueue
from models import volunteer as volunteers
from models.points import Refused

from . import flows
from .context import Context, Services
from .registry import Invalid, action, completer
from .replies import Reply, Text
from .texts import say

REGISTER_FLOW = "volunteer_register"
PENDING_SHOWN = 8


def template_fields(name: str, **kw) -> dict[str, str]:
    """Template-message fields worded in templates/replies/<name>.txt, one `field: value` a line."""
    fields = {}
    for line in say(name, **kw).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            # WeChat's rules since 2023: at most 20 characters, one line.
            value = " ".join(value.split())
            fields[key.strip()] = value if len(value) <= 20 else value[:19] + "…"
    return fields


def notify(session: Session, services: Services, openid: str, purpose: str, fields_template: str,
           key: str, url: str = "", **kw) -> None:
    """Queues a template message in the caller's transaction; the key makes it send once."""
    data = {name: {"value": value} for name, value in template_fields(fields_template, **kw).items()}
    enqueue(session, "template", openid, {"template_id": services.template_id(purpose), "url": url,
                                          "data": data, "purpose": purpose}, key)


def local_zone(services: Services) -> ZoneInfo:
    """The park's time zone, in which residents read every time."""
    return ZoneInfo(services.settings["scheduler"]["timezone"])


def steward_of(session: Session, openid: str) -> Steward | None:
    """The steward writing, if the sender is one."""
    return session.scalar(select(Steward).where(Steward.openid == openid))


@action("volunteers.start")
def start(ctx: Context) -> Reply:
    """成为志愿者: shows a registration already made, or starts the registration flow."""
    vol = volunteers.of_resident(ctx.session, ctx.resident.id)
    if vol is not None and vol.status in ("pending", "approved"):
        return Text(say("volunteer_status", vol=vol,
                        hours=volunteers.service_minutes(ctx.session, ctx.resident.id) / 60))
    return flows.start(ctx, ctx.services.menus.flows[REGISTER_FLOW])


@completer("volunteers.register")
def register(ctx: Context, answers: dict) -> Reply:
    """Files the registration (pending) and tells the community's stewards by template message."""
    estate = ctx.session.scalar(select(Estate).where(Estate.code == answers["estate"]))
    if estate is None:
        raise Invalid(say("hint_estate_gone"))
    try:
        vol = volunteers.apply(ctx.session, ctx.resident, estate.id, answers["skills"],
                               ctx.extra.get("labels", {}).get("availability") or answers["availability"],
                               ctx.now)
    except Refused as exc:
        return Text(say("volunteer_refused", reason=exc.reason, **exc.detail))
    stewards = ctx.session.scalars(select(Steward).where(Steward.community_id == estate.community_id))
    for steward in stewards:
        notify(ctx.session, ctx.services, steward.openid, "volunteer", "volunteer_tpl_applied",
               key=f"volunteer_applied:{vol.id}:{steward.id}:{int(vol.applied_at.timestamp())}",
               number=vol.id, estate=estate.name, when=ctx.now.astimezone(local_zone(ctx.services)))
    return Text(say("volunteer_applied", number=vol.id, estate=estate.name))


def decide(session: Session, services: Services, volunteer_id: int, steward: Steward | None,
           approve: bool, now: datetime) -> volunteers.Volunteer:
    """Approves or rejects a registration and tells the resident (chat command; the console passes None)."""
    vol = volunteers.decide(session, volunteer_id, steward, approve, now)
    notify(session, services, vol.resident.openid, "volunteer", "volunteer_tpl_decided",
           key=f"volunteer_decided:{vol.id}:{int(now.timestamp())}", approved=vol.is_approved,
           when=now.astimezone(local_zone(services)))
    return vol


@action("volunteers.command")
def command(ctx: Context) -> Reply:
    """志愿者: stewards list (待审) and decide (通过/不通过 <编号>); residents register."""
    steward = steward_of(ctx.session, ctx.resident.openid)
    if steward is None:
        return start(ctx)
    words = ctx.text.split()
    verb = words[1] if len(words) > 1 else "待审"
    if verb in ("通过", "不通过") and len(words) > 2 and words[2].isdigit():
        try:
            vol = decide(ctx.session, ctx.services, int(words[2]), steward, verb == "通过", ctx.now)
        except Refused as exc:
            return Text(say("volunteer_refused", reason=exc.reason, **exc.detail))
        return Text(say("volunteer_decided", vol=vol, name=vol.resident.masked_name))
    if verb == "待审":
        rows = volunteers.pending(ctx.session, steward.community_id)
        # A chat reply holds about 2,000 bytes: the oldest first, the rest after they are decided.
        return Text(say("volunteer_pending", rows=rows[:PENDING_SHOWN], more=len(rows) - PENDING_SHOWN))
    return Text(say("volunteer_command_help"))
