"""Announcements (红管发布 / 便民资讯) and the FAQ/case handbook, searchable in Chinese."""
from __future__ import annotations

import logging
import math
import re
from datetime import date, datetime, time
from functools import reduce

from sqlalchemy import ForeignKey, Index, String, Text, case, func, literal_column, or_, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from . import segmenter
from .base import Base, UTCDateTime, utcnow
from .deadlines import PARK_TZ
from .labels import codes, label
from .organisation import Organisation

logger = logging.getLogger(__name__)

CHANNELS = codes("announcement_channel", ("news", "info"))
HANDBOOK_KINDS = codes("handbook_kind", ("faq", "case"))

# Words that say how a resident asks, not what about; matching on them finds noise.
STOPWORDS = frozenset("""
    的 了 吗 呢 吧 啊 呀 么 是 在 有 和 与 及 或 就 都 也 还 很 我 你 他 她 它 我们 你们 他们
    请问 请 问 一下 怎么 怎么办 怎样 如何 什么 哪里 哪儿 哪个 为什么 可以 能否 能不能 是否 需要
    这个 那个 这些 那些 现在 已经 一直 没有 不是 一个 谢谢 您好 你好 麻烦 想 要 会 能 去 到 给
""".split())
_WORD_RE = re.compile(r"[\u4e00-\u9fff]|[a-z0-9]{2,}")

def tokens(text: str, limit: int | None = None) -> list[str]:
    """The searchable words of a text: jieba's search-mode cut, without stopwords, in order."""
    seen: list[str] = []
    for word in segmenter.tokenizer().cut_for_search((text or "").lower()):
        word = word.strip()
        if not word or word in STOPWORDS or not _WORD_RE.search(word):
            continue
        if len(word) == 1 and not word.isdigit():
            continue  # single characters (坏, 水) match nearly everything
        if word not in seen:
            seen.append(word)
    return seen[:limit] if limit else seen


_CJK_GAP = re.compile(r"(?<=[\u3000-\u9fff\uff00-\uffef])\s+(?=[\u3000-\u9fff\uff00-\uffef])")


def tidy(text) -> str:
    """Joins lines YAML folded with spaces between Chinese characters (a space there is a typo)."""
    return _CJK_GAP.sub("", str(text or "").strip())


def search_text(*parts: str | None) -> str:
    """The segmented form stored beside a text: ' word word ' so a token matches whole."""
    return " " + " ".join(tokens(" ".join(p for p in parts if p))) + " "


class Announcement(Base):
    """A notice in 红管发布 (channel news) or 便民资讯 (channel info), park-wide or for one community."""

    __tablename__ = "announcements"
    __table_args__ = (
        Index("ix_announcements_channel_published", "channel", "published_at"),
        Index("ix_announcements_fts", text("to_tsvector('simple', search_text)"),
              postgresql_using="gin").ddl_if(dialect="postgresql"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    channel: Mapped[str] = mapped_column(String(16), default="news")
    title: Mapped[str] = mapped_column(String(64))
    summary: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str] = mapped_column(String(1024), default="")
    image_url: Mapped[str] = mapped_column(String(1024), default="")
    community_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    search_text: Mapped[str] = mapped_column(Text, default="")

    community: Mapped[Organisation | None] = relationship()

    @property
    def channel_label(self) -> str:
        """红管发布 or 便民资讯."""
        return label("announcement_channel", self.channel)

    def refresh_search_text(self) -> None:
        """Re-segments the searchable words after an edit."""
        self.search_text = search_text(self.title, self.summary, self.body)

    def __repr__(self) -> str:
        return f"<Announcement {self.key} {self.channel}>"


class HandbookEntry(Base):
    """An entry of the 诉求答疑案例手册: a frequent question (faq) or a worked case (case)."""

    __tablename__ = "handbook_entries"
    __table_args__ = (
        Index("ix_handbook_fts", text("to_tsvector('simple', search_text)"),
              postgresql_using="gin").ddl_if(dialect="postgresql"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(8), default="faq")
    category: Mapped[str] = mapped_column(String(64), default="")
    question: Mapped[str] = mapped_column(String(200))
    answer: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    search_text: Mapped[str] = mapped_column(Text, default="")

    @property
    def kind_label(self) -> str:
        """常见问题 or 案例."""
        return label("handbook_kind", self.kind)

    def refresh_search_text(self) -> None:
        """Re-segments the searchable words after an edit."""
        self.search_text = search_text(self.question, self.category, self.answer)

    def __repr__(self) -> str:
        return f"<HandbookEntry {self.key} {self.kind}>"


def visible_announcements(community_id: int | None):
    """The condition: park-wide, or for the resident's own community."""
    if community_id is None:
        return Announcement.community_id.is_(None)
    return or_(Announcement.community_id.is_(None), Announcement.community_id == community_id)


def latest_announcements(session: Session, channel: str, community_id: int | None,
                         now: datetime, limit: int = 8) -> list[Announcement]:
    """The newest published announcements of a channel that a resident may see."""
    return list(session.scalars(
        select(Announcement).where(Announcement.channel == channel, Announcement.published_at <= now,
                                   visible_announcements(community_id))
        .order_by(Announcement.published_at.desc(), Announcement.id.desc()).limit(limit)))


def _like(column, word: str):
    """column LIKE '% word %' with the word's own % and _ escaped."""
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(f"% {escaped} %", escape="\\")


def _weights(session: Session, model, words: list[str], where) -> dict[str, float]:
    """Inverse document frequency of each word among the rows: rare words count, common ones barely."""
    counts = session.execute(select(func.count(), *[
        func.coalesce(func.sum(case((_like(model.search_text, w), 1), else_=0)), 0) for w in words])
        .select_from(model).where(*where)).one()
    total, freqs = counts[0], counts[1:]
    return {w: math.log((total + 1) / df) for w, df in zip(words, freqs) if df}


def _ranked(session: Session, model, words: list[str], where, order_tail, limit: int) -> list:
    """Rows whose segmented text holds the query's words, the rarest matches first.

    PostgreSQL filters with its full-text index (the 'simple' configuration over the
    pre-segmented column); SQLite matches the same whole tokens with LIKE. Words found
    nowhere are dropped; a row must score at least half the best row's score.
    """
    weights = _weights(session, model, words, where)
    if not weights:
        return []
    words = list(weights)
    score = reduce(lambda a, b: a + b, [case((_like(model.search_text, w), weights[w]), else_=0.0)
                                        for w in words])
    if session.get_bind().dialect.name == "postgresql":
        simple = literal_column("'simple'::regconfig")
        query = reduce(lambda a, b: a.op("||")(b), [func.plainto_tsquery(simple, w) for w in words])
        # The same expression as the GIN index, so PostgreSQL uses it.
        match = func.to_tsvector(simple, model.search_text).op("@@")(query)
    else:
        match = or_(*[_like(model.search_text, w) for w in words])
    rows = session.execute(select(model, score.label("score")).where(match, *where)
                           .order_by(score.desc(), *order_tail).limit(limit)).all()
    best = rows[0][1] if rows else 0
    return [row for row, points in rows if points >= best / 2 and points > 0.1]


def search(session: Session, query: str, community_id: int | None, now: datetime,
           limit: int = 3) -> list[HandbookEntry | Announcement]:
    """Handbook entries first, then announcements, that best match the query's words."""
    words = tokens(query, limit=8)
    if not words:
        return []
    found: list = _ranked(session, HandbookEntry, words, [], [HandbookEntry.id], limit)
    if len(found) < limit:
        found += _ranked(session, Announcement, words,
                         [Announcement.published_at <= now, visible_announcements(community_id)],
                         [Announcement.published_at.desc()], limit - len(found))
    return found


class ContentError(ValueError):
    """A content file is wrong; the message says which entry and why."""


def load_content(session: Session, doc: dict, now: datetime | None = None) -> dict[str, int]:
    """Creates or updates announcements and handbook entries by key; returns counts."""
    if not isinstance(doc, dict):
        raise ContentError("the file must be a mapping with 'announcements' and/or 'handbook'")
    now = now or utcnow()
    counts = {"announcements": 0, "handbook": 0}
    for i, item in enumerate(doc.get("handbook") or [], 1):
        _require(item, ("key", "question", "answer"), f"handbook #{i}")
        kind = item.get("kind", "faq")
        if kind not in HANDBOOK_KINDS:
            raise ContentError(f"handbook #{i} ({item['key']}): kind must be one of {', '.join(HANDBOOK_KINDS)}")
        entry = session.scalar(select(HandbookEntry).where(HandbookEntry.key == item["key"])) \
            or HandbookEntry(key=item["key"])
        entry.kind, entry.category = kind, str(item.get("category", ""))
        entry.question, entry.answer = tidy(item["question"]), tidy(item["answer"])
        entry.updated_at = now
        entry.refresh_search_text()
        session.add(entry)
        counts["handbook"] += 1
    for i, item in enumerate(doc.get("announcements") or [], 1):
        _require(item, ("key", "title"), f"announcement #{i}")
        channel = item.get("channel", "news")
        if channel not in CHANNELS:
            raise ContentError(f"announcement #{i} ({item['key']}): channel must be news or info")
        community_id = None
        if item.get("community"):
            community_id = session.scalar(select(Organisation.id).where(
                Organisation.code == item["community"], Organisation.kind == "community"))
            if community_id is None:
                raise ContentError(f"announcement #{i} ({item['key']}): no community {item['community']!r}")
        ann = session.scalar(select(Announcement).where(Announcement.key == item["key"])) \
            or Announcement(key=item["key"])
        ann.channel, ann.title = channel, tidy(item["title"])
        ann.summary, ann.body = tidy(item.get("summary", "")), tidy(item.get("body", ""))
        ann.url, ann.image_url = str(item.get("url", "")), str(item.get("image_url", ""))
        ann.community_id = community_id
        ann.published_at = _when(item.get("published_at"), now, f"announcement #{i}")
        ann.refresh_search_text()
        session.add(ann)
        counts["announcements"] += 1
    session.flush()
    return counts


def reindex(session: Session, batch: int = 500) -> dict[str, int]:
    """Re-segments the stored search words of every announcement, handbook entry and resource.

    Needed once the segmenter cuts differently (a new dictionary), so stored words and the words
    of a resident's query come from the same cut again.
    """
    from .resource import Resource
    counts = {}
    for model in (Announcement, HandbookEntry, Resource):
        counts[model.__tablename__] = 0
        last = 0
        while rows := session.scalars(select(model).where(model.id > last).order_by(model.id).limit(batch)).all():
            for row in rows:
                row.refresh_search_text()
            counts[model.__tablename__] += len(rows)
            last = rows[-1].id
            session.flush()
    return counts


def _require(item, keys: tuple[str, ...], where: str) -> None:
    """Refuses an entry that lacks a required field."""
    if not isinstance(item, dict):
        raise ContentError(f"{where}: must be a mapping")
    missing = [k for k in keys if not item.get(k)]
    if missing:
        raise ContentError(f"{where}: missing {', '.join(missing)}")


def _when(value, default: datetime, where: str) -> datetime:
    """A publication time from YAML (date or datetime, China time when naive)."""
    if value is None:
        return default
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=PARK_TZ)
    if isinstance(value, date):
        return datetime.combine(value, time(9, 0), tzinfo=PARK_TZ)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise ContentError(f"{where}: published_at {value!r} is not a date") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=PARK_TZ)
