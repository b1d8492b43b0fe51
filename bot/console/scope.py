"""The scoping layer: which requests, communities and organisations a console user may see.

Every console query goes through here, so a steward of one community never sees another's
requests, lists, counts or exports; an object out of scope is a 404, as if it did not exist.
"""
from __future__ import annotations

from flask import abort
from sqlalchemy import false, select, true
from sqlalchemy.orm import Session

from models import Organisation, ServiceRequest
from models.user import ConsoleUser


def street_id(user: ConsoleUser) -> int | None:
    """The street a street-staff user works for (a social-work committee belongs to its street)."""
    org = user.org
    if org is None:
        return None
    return org.parent_id if org.kind == "social_work_committee" else org.id


def community_ids(user: ConsoleUser):
    """A subquery (or None for everything) of the communities the user may see."""
    if user.sees_everything:
        return None
    if user.role == "steward":
        return select(Organisation.id).where(Organisation.id == user.org_id)
    if user.role == "street_staff":
        return select(Organisation.id).where(Organisation.parent_id == street_id(user),
                                             Organisation.kind == "community")
    return select(Organisation.id).where(false())


def requests_condition(user: ConsoleUser):
    """The WHERE condition limiting ServiceRequest rows to the user's scope."""
    if user.sees_everything:
        return true()
    if user.role == "steward":
        return ServiceRequest.community_id == user.org_id
    if user.role == "street_staff":
        return ServiceRequest.community_id.in_(community_ids(user))
    if user.role == "liaison":
        return ServiceRequest.handler_id == user.org_id
    return false()


def get_request(session: Session, user: ConsoleUser, request_id: int) -> ServiceRequest:
    """The request if the user may see it, else 404."""
    req = session.scalar(select(ServiceRequest).where(ServiceRequest.id == request_id,
                                                      requests_condition(user)))
    if req is None:
        abort(404)
    return req


def communities(session: Session, user: ConsoleUser) -> list[Organisation]:
    """The communities the user may filter by, publish to or record requests for."""
    stmt = select(Organisation).where(Organisation.kind == "community").order_by(Organisation.name)
    ids = community_ids(user)
    if ids is not None:
        stmt = stmt.where(Organisation.id.in_(ids))
    return list(session.scalars(stmt))


def may_see_community(session: Session, user: ConsoleUser, community_id: int | None) -> bool:
    """True when the community is in the user's scope (None is the whole park: everything-roles only)."""
    if user.sees_everything:
        return True
    if community_id is None:
        return False
    return any(c.id == community_id for c in communities(session, user))
