"""What a handler returns: a text, a set of articles, or nothing."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Text:
    """A text reply shown in the chat."""

    content: str

    def to_dict(self) -> dict:
        """Serialises the reply so a retried delivery gets the very same answer."""
        return {"type": "text", "content": self.content}


@dataclass(frozen=True)
class Article:
    """One card of a news reply."""

    title: str
    description: str = ""
    url: str = ""
    image: str = ""


@dataclass(frozen=True)
class News:
    """A news (articles) reply: at most 8 cards are shown by WeChat, we send up to 8."""

    articles: tuple[Article, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        """Serialises the reply."""
        return {"type": "news", "articles": [a.__dict__ for a in self.articles]}


@dataclass(frozen=True)
class NoReply:
    """Answer WeChat with `success`: nothing is shown to the resident."""

    def to_dict(self) -> dict:
        """Serialises the reply."""
        return {"type": "none"}


Reply = Text | News | NoReply


def from_dict(data: dict | None) -> Reply:
    """Rebuilds a stored reply."""
    if not data or data.get("type") == "none":
        return NoReply()
    if data["type"] == "news":
        return News(tuple(Article(**a) for a in data["articles"]))
    return Text(data["content"])
