"""公益社团: residents list clubs and ask to join; organisers answer `社团 同意/婉拒 <申请号>`."""
from __future__ import annotations

from models import club as clubs
from models.activity import community_of
from models.points import Refused

from . import flows
from .context import Context
from .registry import action, choices, completer
from .replies import Reply, Text
from .texts import say
from .volunteers import local_zone, notify

JOIN_FLOW = "club_join"
PENDING_SHOWN = 20  # a chat reply holds about 2,000 bytes


@action("clubs.command")
def command(ctx: Context) -> Reply:
    """社团: organisers see and answer requests; everyone else is offered the clubs to join."""
    words = ctx.text.split()
    if clubs.organises(ctx.session, ctx.resident.openid) and len(words) > 1:
        verb, args = words[1], words[2:]
        if verb in ("同意", "婉拒") and args and args[0].isdigit():
            try:
                member = clubs.decide(ctx.session, int(args[0]), ctx.resident.openid, verb == "同意", ctx.now)
            except Refused as exc:
                return Text(say("club_refused", reason=exc.reason, **exc.detail))
            notify(ctx.session, ctx.services, member.resident.openid, "club", "club_tpl_decided",
                   key=f"club_decided:{member.id}:{int(ctx.now.timestamp())}", member=member,
                   when=ctx.now.astimezone(local_zone(ctx.services)))
            return Text(say("club_decided", member=member))
        if verb == "申请":
            rows = clubs.pending_for(ctx.session, ctx.resident.openid)
            return Text(say("club_pending", rows=rows[:PENDING_SHOWN], more=len(rows) - PENDING_SHOWN))
        return Text(say("club_command_help"))
    if not clubs.open_to(ctx.session, community_of(ctx.resident)):
        return Text(say("club_none"))
    return flows.start(ctx, ctx.services.menus.flows[JOIN_FLOW])


@choices("clubs_open")
def club_choices(ctx: Context, answers: dict) -> list[tuple[str, str]]:
    """Clubs the resident may join, with what they do."""
    return [(str(c.id), say("club_label", c=c)) for c in clubs.open_to(ctx.session, community_of(ctx.resident))]


@completer("clubs.join")
def join(ctx: Context, answers: dict) -> Reply:
    """Files the request and tells the organiser by template message."""
    try:
        member = clubs.request_join(ctx.session, int(answers["club"]), ctx.resident, ctx.now)
    except Refused as exc:
        return Text(say("club_refused", reason=exc.reason, **exc.detail))
    notify(ctx.session, ctx.services, member.club.organiser_openid, "club", "club_tpl_requested",
           key=f"club_requested:{member.id}:{int(member.requested_at.timestamp())}", member=member,
           when=ctx.now.astimezone(local_zone(ctx.services)))
    return Text(say("club_requested", member=member))
