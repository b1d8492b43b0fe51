"""A small park for the volunteer, activity and points tests: estates, stewards, verified residents."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from models import Estate, Organisation, OutboxMessage, Resident, Reward, Steward, utcnow
from models import activity as activities
from models.activity import Rules

STEWARD_XH = "o_steward_xinghu"
STEWARD_HL = "o_steward_hanlin"


def build_park(session) -> None:
    """Two communities with two estates each, one steward each."""
    park = Organisation(code="park", name="苏州工业园区", kind="park")
    street = Organisation(code="hx", name="湖西街道", kind="street", parent=park)
    session.add_all([park, street])
    for code, name, steward, estates in (
            ("xinghu", "星湖社区", STEWARD_XH, [("xhy", "星湖苑"), ("lhjy", "玲珑家园")]),
            ("hanlin", "翰林社区", STEWARD_HL, [("hlsy", "翰林水岸"), ("yhy", "月亮湾花园")])):
        community = Organisation(code=code, name=name, kind="community", parent=street)
        session.add(community)
        session.flush()
        session.add_all([Estate(code=c, name=n, community_id=community.id) for c, n in estates])
        session.add(Steward(openid=steward, name="红管" + name[:2], community_id=community.id))
    session.commit()


def verified_resident(session, openid: str, estate_code: str = "xhy", name: str = "张小芳") -> Resident:
    """A resident who completed 实名认证 (as the verification flow would leave them)."""
    estate = session.scalar(select(Estate).where(Estate.code == estate_code))
    resident = Resident(openid=openid, name=name, mobile="13812345678", estate_id=estate.id,
                        verified_at=utcnow(), subscribed=True, party_member="none")
    session.add(resident)
    session.commit()
    return resident


def community_id(session, code: str) -> int:
    """The id of a community by code."""
    return session.scalar(select(Organisation.id).where(Organisation.code == code))


def publish(session, starts_in: timedelta = timedelta(minutes=30), hours: float = 2, capacity: int = 10,
            community: str | None = "xinghu", now: datetime | None = None, **kw):
    """Publishes an activity starting a little later, committed."""
    now = now or utcnow()
    act = activities.publish(session, Rules(), title=kw.pop("title", "星湖苑环境清洁"),
                             place=kw.pop("place", "星湖社区活动室"), starts_at=now + starts_in,
                             ends_at=now + starts_in + timedelta(hours=hours), capacity=capacity, now=now,
                             community_id=community_id(session, community) if community else None, **kw)
    session.commit()
    return act


def add_reward(session, name: str = "环保购物袋", cost: int = 2, stock: int = 5, **kw) -> Reward:
    """A reward in the catalogue, committed."""
    reward = Reward(name=name, points_cost=cost, stock=stock, active=True, **kw)
    session.add(reward)
    session.commit()
    return reward


def templates_to(session, openid: str) -> list[OutboxMessage]:
    """Template messages queued in the outbox for an openid, oldest first."""
    return list(session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == openid,
                                                            OutboxMessage.kind == "template")
                                .order_by(OutboxMessage.id)))


@pytest.fixture
def park(app, sessions):
    """The small park loaded into the test's database."""
    with sessions() as s:
        build_park(s)
    return app
