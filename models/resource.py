"""The three resource directories (资源库: 行政 / 市场 / 公益): who offers what in the park."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .base import Base, UTCDateTime, utcnow
from .content import search_text, tokens
from .labels import codes, label
from .organisation import Organisation

DIRECTORIES = codes("resource_directory", ("administrative", "market", "public_welfare"))


class Resource(Base):
    """An entry of a resource directory: a service, its provider, how to reach it."""

    __tablename__ = "resources"
    __table_args__ = (Index("ix_resources_directory_name", "directory", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    directory: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(128))
    category: Mapped[str] = mapped_column(String(64), default="")
    provider: Mapped[str] = mapped_column(String(128), default="")
    # A service desk's public number, never a person's own mobile.
    phone: Mapped[str] = mapped_column(String(32), default="")
    address: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    community_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    search_text: Mapped[str] = mapped_column(Text, default="")

    community: Mapped[Organisation | None] = relationship()

    @property
    def directory_label(self) -> str:
        """行政资源 / 市场资源 / 公益资源."""
        return label("resource_directory", self.directory)

    def refresh_search_text(self) -> None:
        """Re-segments the searchable words after an edit."""
        self.search_text = search_text(self.name, self.category, self.provider, self.description)

    def __repr__(self) -> str:
        return f"<Resource {self.id} {self.directory}>"


def search_resources(session: Session, directory: str | None, query: str, limit: int = 100) -> list[Resource]:
    """Entries of a directory (or all) whose words match any of the query's words."""
    stmt = select(Resource).order_by(Resource.directory, Resource.category, Resource.name).limit(limit)
    if directory in DIRECTORIES:
        stmt = stmt.where(Resource.directory == directory)
    words = tokens(query or "", limit=8)
    if query and not words:
        words = [query.strip().lower()]
    if words:
        stmt = stmt.where(or_(*[Resource.search_text.contains(f" {w} ", autoescape=True) for w in words],
                              *[Resource.name.contains(w, autoescape=True) for w in words]))
    return list(session.scalars(stmt))
