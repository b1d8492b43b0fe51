"""The park's hierarchy: organisations (handlers among them) and estates."""
from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base
from .labels import codes
from .pii import EncryptedText, mask_name

# Organisation kinds, from the top of the park down; the handler kinds can be routed to.
ORG_KINDS = codes("org_kind", (
    "park", "organisation_department", "park_department", "street",
    "social_work_committee", "community", "party_organisation", "residents_committee",
    "workstation", "owners_committee", "property_company",
))
# Kinds a request can be routed to (承办单位).
HANDLER_KINDS = (
    "party_organisation", "residents_committee", "workstation", "owners_committee",
    "property_company", "social_work_committee", "park_department", "organisation_department",
)
# The three parties of an estate's tripartite agreement.
TRIPARTITE_KINDS = ("party_organisation", "owners_committee", "property_company")


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
    estates: Mapped[list["Estate"]] = relationship(back_populates="community",
                                                   foreign_keys="Estate.community_id")
    liaisons: Mapped[list["Liaison"]] = relationship(back_populates="organisation")

    def ancestor(self, kind: str) -> "Organisation | None":
        """The nearest organisation of `kind` above this one (or this one)."""
        org: Organisation | None = self
        while org is not None and org.kind != kind:
            org = org.parent
        return org

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
    # The tripartite agreement (三方协议): who answers for this estate.
    party_organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    owners_committee_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    property_company_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))

    community: Mapped[Organisation] = relationship(back_populates="estates", foreign_keys=[community_id])
    party_organisation: Mapped[Organisation | None] = relationship(foreign_keys=[party_organisation_id])
    owners_committee: Mapped[Organisation | None] = relationship(foreign_keys=[owners_committee_id])
    property_company: Mapped[Organisation | None] = relationship(foreign_keys=[property_company_id])

    def tripartite(self) -> dict[str, Organisation | None]:
        """The estate's three parties by kind."""
        return {"party_organisation": self.party_organisation, "owners_committee": self.owners_committee,
                "property_company": self.property_company}

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


class Liaison(Base):
    """A named contact (联络人) of a handler: gets routed requests by template message or e-mail."""

    __tablename__ = "liaisons"
    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    openid: Mapped[str | None] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(EncryptedText)
    email: Mapped[str | None] = mapped_column(String(254))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    organisation: Mapped[Organisation] = relationship(back_populates="liaisons")

    @property
    def masked_name(self) -> str:
        """The name as shown on pages and in logs."""
        return mask_name(self.name)

    def __repr__(self) -> str:
        return f"<Liaison {self.id} org={self.organisation_id}>"
