"""我的积分 and 积分兑换: balance and statement, rewards, redemption codes and `核销 <码>`."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from models import PointsEntry, Redemption, utcnow
from models import points as ledger
from models import volunteer as volunteers
from models.points import Refused

from . import flows
from .context import Context
from .registry import action, choices, completer
from .replies import Reply, Text
from .texts import say
from .volunteers import local_zone, steward_of

REDEEM_FLOW = "reward_redeem"
STATEMENT_LINES = 5


@action("points.balance")
def show_balance(ctx: Context) -> Reply:
    """我的积分: balance, totals, service hours, recent entries and unused redemption codes."""
    rid = ctx.resident.id
    ledger.expire_due(ctx.session, ctx.now, rid)
    recent = ctx.session.scalars(select(PointsEntry).where(PointsEntry.resident_id == rid,
                                                           PointsEntry.points != 0)
                                 .order_by(PointsEntry.id.desc()).limit(STATEMENT_LINES)).all()
    unused = ctx.session.scalars(select(Redemption).where(Redemption.resident_id == rid,
                                                          Redemption.status == "issued")
                                 .order_by(Redemption.id.desc()).limit(STATEMENT_LINES)).all()
    next_expiry = ctx.session.scalar(select(PointsEntry.expires_at).where(
        PointsEntry.resident_id == rid, PointsEntry.kind == "earn", PointsEntry.expires_at > ctx.now)
        .order_by(PointsEntry.expires_at).limit(1))
    return Text(say("points_balance", balance=ledger.balance(ctx.session, rid),
                    totals=ledger.totals(ctx.session, rid), recent=recent, unused=unused,
                    hours=volunteers.service_minutes(ctx.session, rid) / 60,
                    last_day=_last_day(next_expiry, ctx), tz=local_zone(ctx.services)))


def _last_day(expires_at: datetime | None, ctx: Context) -> datetime | None:
    """The last local day points are good for (they are gone at the next midnight)."""
    if expires_at is None:
        return None
    return (expires_at - timedelta(seconds=1)).astimezone(local_zone(ctx.services))


@action("points.rewards")
def rewards(ctx: Context) -> Reply:
    """积分兑换: starts the redemption flow, or says nothing is on offer."""
    if not ledger.catalogue(ctx.session):
        return Text(say("points_no_rewards"))
    return flows.start(ctx, ctx.services.menus.flows[REDEEM_FLOW])


@choices("rewards_on_offer")
def reward_choices(ctx: Context, answers: dict) -> list[tuple[str, str]]:
    """Rewards with their price in points and what is left."""
    return [(str(r.id), say("points_reward_label", r=r)) for r in ledger.catalogue(ctx.session)]


@completer("points.redeem")
def redeem(ctx: Context, answers: dict) -> Reply:
    """Spends the points and gives the code to show the merchant or steward."""
    try:
        red = ledger.redeem(ctx.session, ctx.resident.id, int(answers["reward"]), ctx.now)
    except Refused as exc:
        return Text(say("points_refused", reason=exc.reason, **exc.detail))
    return Text(say("points_redeemed", red=red, reward=red.reward,
                    balance=ledger.balance(ctx.session, ctx.resident.id)))


@action("points.verify")
def verify(ctx: Context) -> Reply:
    """核销 <码>: a steward, or the reward's merchant, uses up a redemption code once."""
    words = ctx.text.split(maxsplit=1)
    if len(words) < 2:
        return Text(say("points_refused", reason="code_needed"))
    red = ledger.lookup(ctx.session, words[1])
    is_steward = steward_of(ctx.session, ctx.resident.openid) is not None
    if red is None or not ledger.may_verify(ctx.session, red, ctx.resident.openid, is_steward):
        # A stranger learns nothing about which codes exist.
        return Text(say("points_refused", reason="unknown_code", code=ledger.normalise_code(words[1])))
    try:
        red = ledger.verify(ctx.session, words[1], ctx.resident.openid, ctx.now)
    except Refused as exc:
        return Text(say("points_refused", reason=exc.reason, tz=local_zone(ctx.services), **exc.detail))
    return Text(say("points_verified", red=red, reward=red.reward, name=red.resident.masked_name))


def expire_points(sessions: sessionmaker, settings: dict, now: datetime | None = None) -> dict:
    """The scheduler's job: writes due expiries in its own transaction; safe to run again."""
    with sessions() as session, session.begin():
        return {"points_expired": ledger.expire_due(session, now or utcnow())}
