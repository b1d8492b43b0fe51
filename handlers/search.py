"""Search: keywords typed outside a flow (or `搜索 …`) find handbook entries and announcements."""
from __future__ import annotations

from models.content import Announcement, HandbookEntry, search

from .context import Context
from .registry import action
from .replies import Reply, Text
from .texts import say

SEARCH_PREFIXES = ("搜索", "查找", "搜")
SNIPPET_CHARS = 60


def _community_id(ctx: Context) -> int | None:
    """The resident's community, so community notices of others stay out of the results."""
    estate = ctx.resident.estate
    return estate.community_id if estate else None


def _snippet(text: str) -> str:
    """The first characters of a text on one line."""
    text = " ".join((text or "").split())
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS - 1] + "…"


def _item(row) -> dict:
    """What a resident sees of one result: a labelled title and a snippet."""
    if isinstance(row, HandbookEntry):
        return {"label": row.kind_label, "title": row.question, "snippet": _snippet(row.answer)}
    assert isinstance(row, Announcement)
    return {"label": row.channel_label, "title": row.title,
            "snippet": _snippet(row.summary or row.body), "url": row.url}


def suggestions(ctx: Context, text: str, limit: int = 3) -> list[dict]:
    """Up to `limit` answers that match a resident's description (shown before filing)."""
    return [_item(r) for r in search(ctx.session, text, _community_id(ctx), ctx.now, limit=limit)]


def query_of(text: str) -> str:
    """The keywords of a message, without a leading 搜索."""
    text = text.strip()
    for prefix in SEARCH_PREFIXES:
        if text.startswith(prefix):
            return text[len(prefix):].strip(" :：，,")
    return text


@action("search")
def search_action(ctx: Context) -> Reply:
    """Answers typed keywords with the best handbook entries and announcements."""
    query = query_of(ctx.text)
    if not query:
        return Text(say("search_empty"))
    results = suggestions(ctx, query[:200], limit=3)
    if not results:
        return Text(say("fallback"))
    return Text(say("search_results", results=results))
