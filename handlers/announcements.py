"""红管发布 and 便民资讯: the newest announcements as a news (articles) reply."""
from __future__ import annotations

from models.content import latest_announcements

from .context import Context
from .registry import action
from .replies import Article, News, Reply, Text
from .texts import say

# WeChat shows up to 8 cards when answering a menu click, but only one when answering
# a message the resident typed.
MAX_CARDS_EVENT = 8
MAX_CARDS_MESSAGE = 1


def _news(ctx: Context, channel: str) -> Reply:
    """The channel's newest notices the resident may see (park-wide and their community's)."""
    estate = ctx.resident.estate
    limit = MAX_CARDS_EVENT if ctx.message_type == "event" else MAX_CARDS_MESSAGE
    rows = latest_announcements(ctx.session, channel, estate.community_id if estate else None,
                                ctx.now, limit=limit)
    if not rows:
        return Text(say("announcements_none", channel=channel))
    return News(tuple(Article(title=a.title, description=a.summary or a.body[:120], url=a.url,
                              image=a.image_url) for a in rows))


@action("announcements.news")
def news(ctx: Context) -> Reply:
    """红管发布: notices of the park and the resident's community."""
    return _news(ctx, "news")


@action("announcements.info")
def info(ctx: Context) -> Reply:
    """便民资讯: practical information (clinic hours, bus routes, how-tos)."""
    return _news(ctx, "info")
