"""The park's hierarchy: organisations (handlers among them) and estates."""
from __future__ import annotations

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base

# Organisation kinds, from the top of the park down; the handler kinds can be routed to.
ORG_KINDS = (
    "park", "organisation_department", "park_department", "street",
    "social_work_committee", "community", "party_organisation", "residents_committee",
    "workstation", "owners_committee", "property_company",
)


class Organisation(Base):
    """A body in the park: the park itself, a street, a community, or a handler."""

    __tablename__ = "organisations"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    email: Mapped[str | None] = mapped_column(String(254))

    parent: Mapped["Organisation | None"] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list["Organisation"]] = relationship(back_populates="parent")
    estates: Mapped[list["Estate"]] = relationship(back_populates="community")

    def __repr__(self) -> str:
        return f"<Organisation {self.code} {self.kind}>"


class Estate(Base):
    """A residential estate (小区) in a community."""

    __tablename__ = "estates"
    __table_args__ = (UniqueConstraint("community_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    community_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)

    community: Mapped[Organisation] = relationship(back_populates="estates")

    def __repr__(self) -> str:
        return f"<Estate {self.code}>"


class Steward(Base):
    """A community steward (红管负责人): gets every new request of the community."""

    __tablename__ = "stewards"
    id: Mapped[int] = mapped_column(primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    community_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    email: Mapped[str | None] = mapped_column(String(254))

    community: Mapped[Organisation] = relationship()

    def __repr__(self) -> str:
        return f"<Steward {self.id} community={self.community_id}>"
