"""Subscribe and QR scans: the welcome, and binding a resident to an estate's code."""
from __future__ import annotations

from sqlalchemy import select

from models import Estate

from . import activities
from .context import Context
from .registry import action
from .replies import Reply, Text
from .texts import say

ESTATE_SCENE_PREFIX = "estate_"


@action("event.subscribe")
def subscribed(ctx: Context) -> Reply:
    """Welcomes a follower; a scene from an estate's poster binds them to that estate."""
    scene = str(getattr(ctx.message, "scene_id", "") or "")
    if scene.startswith(activities.SCENE_PREFIX):
        return activities.scan(ctx, scene)  # an activity's check-in or check-out code
    estate = None
    if scene.startswith(ESTATE_SCENE_PREFIX):
        estate = ctx.session.scalar(select(Estate).where(Estate.code == scene[len(ESTATE_SCENE_PREFIX):]))
        if estate is not None:
            ctx.resident.estate_id = estate.id
    return Text(say("welcome", estate=estate, verified=ctx.resident.is_verified,
                    returning=ctx.message.event == "scan"))


@action("help")
def show_help(ctx: Context) -> Reply:
    """What the account can do, for a resident who asks 帮助."""
    return Text(say("help"))
