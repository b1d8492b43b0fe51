"""实名认证: name, mobile, community → estate → building; Party membership pending a steward."""
from __future__ import annotations

import re

from sqlalchemy import select

from models import Estate, Organisation

from .context import Context
from .registry import Invalid, choices, completer, validator
from .replies import Reply, Text
from .texts import say

NAME_RE = re.compile(r"^[\u4e00-\u9fa5·]{2,15}$|^[A-Za-z][A-Za-z .'-]{1,39}$")


@validator("person_name")
def person_name(ctx: Context, value: str) -> str:
    """A real name: 2–15 Chinese characters (or a Latin name), no digits or emoji."""
    value = value.strip()
    if not NAME_RE.match(value):
        raise Invalid(say("hint_name"))
    return value


@choices("communities")
def community_choices(ctx: Context, answers: dict) -> list[tuple[str, str]]:
    """Every community of the park, by name."""
    rows = ctx.session.execute(select(Organisation.code, Organisation.name)
                               .where(Organisation.kind == "community").order_by(Organisation.name))
    return [(code, name) for code, name in rows]


@choices("estates_of_community")
def estate_choices(ctx: Context, answers: dict) -> list[tuple[str, str]]:
    """The estates of the community chosen in the previous step."""
    rows = ctx.session.execute(select(Estate.code, Estate.name).join(Estate.community)
                               .where(Organisation.code == answers.get("community"))
                               .order_by(Estate.name))
    return [(code, name) for code, name in rows]


@completer("verification.complete")
def complete(ctx: Context, answers: dict) -> Reply:
    """Stores the verified identity (encrypted) and the estate."""
    resident = ctx.resident
    estate = ctx.session.scalar(select(Estate).where(Estate.code == answers["estate"]))
    if estate is None:
        raise Invalid(say("hint_estate_gone"))
    resident.name = answers["name"]
    resident.mobile = answers["mobile"]
    resident.estate_id = estate.id
    resident.address = answers.get("building") or None
    resident.verified_at = ctx.now
    if answers.get("party_member") == "yes" and resident.party_member == "none":
        resident.party_member = "pending"
    return Text(say("verified", name=resident.masked_name, estate=estate.name,
                    party_pending=resident.party_member == "pending"))
