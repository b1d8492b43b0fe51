"""Demo activities, rewards and a club for sandbox mode, timed from now so the simulator can use them at once."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Club, Organisation, Reward, utcnow
from models import activity as activities
from models.activity import Rules

# (title, place, starts in, hours, capacity, community code or None, options)
ACTIVITIES = [
    ("星湖苑环境清洁", "星湖社区党群服务中心门口", timedelta(minutes=30), 2, 20, "xinghu", {}),
    ("园区助老上门服务", "湖西街道社工委", timedelta(days=3), 3, 10, None,
     {"volunteers_only": True, "points_per_hour": 2}),
    ("亲子公益跑", "金鸡湖东岸", timedelta(days=7), 2, 2, None,
     {"early_access_points": 5, "opens_in": timedelta(days=2)}),
]
REWARDS = [
    ("环保购物袋", 2, 50, "星湖便民超市"),
    ("理发券", 5, 20, "翰林理发店"),
    ("电影票", 10, 5, None),
]
# (name, description, organiser's openid: chat as this openid in the simulator to answer requests)
CLUBS = [("亲子跑团", "每周六早上金鸡湖边慢跑，带上孩子一起", "sandbox_club_runner")]


def load_demo_activities(session: Session) -> None:
    """Publishes the demo activities and stocks the reward catalogue (once)."""
    if session.scalar(select(Reward.id).limit(1)) is not None:
        return
    now = utcnow()
    for title, place, starts_in, hours, capacity, community, options in ACTIVITIES:
        options = dict(options)
        opens_in = options.pop("opens_in", None)
        community_id = session.scalar(select(Organisation.id).where(Organisation.code == community)) \
            if community else None
        activities.publish(session, Rules(), title=title, place=place, starts_at=now + starts_in,
                           ends_at=now + starts_in + timedelta(hours=hours), capacity=capacity, now=now,
                           community_id=community_id, opens_at=now + opens_in if opens_in else None,
                           **options)
    for name, cost, stock, merchant in REWARDS:
        session.add(Reward(name=name, points_cost=cost, stock=stock, merchant=merchant, active=True))
    for name, description, organiser in CLUBS:
        session.add(Club(name=name, description=description, organiser_openid=organiser, active=True))
    session.flush()
